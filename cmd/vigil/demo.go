package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-cctv/vigil/agent"
	"github.com/vigil-cctv/vigil/agent/camerasim"
	"github.com/vigil-cctv/vigil/agent/config"
	"github.com/vigil-cctv/vigil/storage"
)

type demoOptions struct {
	dataDir  string
	duration time.Duration
	cameras  int
	verbose  bool
}

// demoDistrict is the district id of the demo's agent.
const demoDistrict = "demo"

func newDemoCommand() *cobra.Command {
	o := demoOptions{dataDir: "demo-data"}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run simulated cameras and a district agent on embedded defaults",
		Long: `Run a complete district on this machine: simulated RTSP cameras looping the
embedded clips, and an agent recording them on motion into filesystem storage
under --data. Each stored segment is printed. Stop with Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data", o.dataDir, "directory for the demo's footage, index and configuration")
	f.DurationVar(&o.duration, "duration", 0, "stop after this long (default: until Ctrl-C)")
	f.IntVar(&o.cameras, "cameras", 0, "number of simulated cameras (default: one per embedded clip)")
	f.BoolVar(&o.verbose, "verbose", false, "log every component's messages")
	return cmd
}

// demoInfo is written to DATA/demo.json (mode 0600), as DESIGN.md specifies,
// so people and scripts can find the demo's parts and log in.
type demoInfo struct {
	Central       string              `json:"central"`
	CAFingerprint string              `json:"ca_fingerprint"`
	Users         map[string]demoUser `json:"users"`
	AgentConfig   string              `json:"agent_config"`
	AgentData     string              `json:"agent_data"`
	Footage       string              `json:"footage"`
	Cameras       []string            `json:"cameras"`
}

type demoUser struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

func runDemo(cmd *cobra.Command, o demoOptions) error {
	if o.cameras < 0 || o.cameras > 64 {
		return fmt.Errorf("--cameras: %d is not within 1-64", o.cameras)
	}
	if o.duration < 0 {
		return fmt.Errorf("--duration: must be positive")
	}
	ctx := cmd.Context()
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	out := cmd.OutOrStdout()
	dataDir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("--data: %w", err)
	}
	logLevel := slog.LevelWarn
	if o.verbose {
		logLevel = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: logLevel}))

	clips, err := camerasim.EmbeddedClips()
	if err != nil {
		return err
	}
	sim, err := camerasim.New(camerasim.Config{Listen: "127.0.0.1:0", Clips: clips, Count: o.cameras, Logger: logger})
	if err != nil {
		return err
	}
	if err := sim.Start(); err != nil {
		return err
	}
	defer sim.Close()

	cfg := &config.Config{
		District: demoDistrict,
		DataDir:  filepath.Join(dataDir, "agent"),
		Storage:  config.Storage{FS: &config.FSStorage{Path: filepath.Join(dataDir, "footage")}},
	}
	info := demoInfo{AgentData: cfg.DataDir, Footage: cfg.Storage.FS.Path, AgentConfig: filepath.Join(dataDir, "agent.yaml")}
	for n := 1; n <= sim.Count(); n++ {
		id := fmt.Sprintf("cam%d", n)
		cfg.Cameras = append(cfg.Cameras, config.Camera{ID: id, URL: sim.URL(n), Transport: config.TransportTCP})
		info.Cameras = append(info.Cameras, demoDistrict+"/"+id)
	}
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return err
	}
	central, err := startDemoCentral(ctx, dataDir, logger)
	if err != nil {
		return err
	}
	defer central.stop()
	info.Central, info.CAFingerprint = central.srv.APIAddr(), central.srv.Fingerprint()
	if info.Users, err = demoUsers(central.srv, previousDemoUsers(dataDir)); err != nil {
		return err
	}
	if err := enrollDemoAgent(ctx, central.srv, cfg, logger); err != nil {
		return err
	}
	if err := writeDemoFiles(dataDir, cfg, info); err != nil {
		return err
	}

	var printMu sync.Mutex
	printf := func(format string, args ...any) {
		printMu.Lock()
		defer printMu.Unlock()
		fmt.Fprintf(out, format, args...)
	}
	a, err := agent.New(cfg, agent.Options{
		Logger: logger,
		OnStored: func(s storage.Segment) {
			printf("%s  stored   %-10s %s → %s  %5.1fs  %9s  %s\n", time.Now().Format(time.TimeOnly),
				s.District+"/"+s.Camera, s.Start.Local().Format(time.TimeOnly), s.End.Local().Format(time.TimeOnly),
				s.Duration().Seconds(), humanBytes(s.Bytes), s.Key)
		},
	})
	if err != nil {
		return err
	}

	fmt.Fprintf(out, "vigil demo: district %q, %d simulated cameras, footage in %s\n", demoDistrict, sim.Count(), cfg.Storage.FS.Path)
	for n := 1; n <= sim.Count(); n++ {
		c := sim.Clip(n)
		fmt.Fprintf(out, "  %s/cam%d  %s  (clip %s, %s %dx%d, %d motion events per %s loop)\n", demoDistrict, n,
			sim.URL(n), c.Name, c.Codec, c.Width, c.Height, len(c.Events), c.Duration.Round(time.Second))
	}
	fmt.Fprintf(out, "Recording on motion (pre-roll %s, post-roll %s, retention %s).\n",
		cfg.Cameras[0].PreRoll, cfg.Cameras[0].PostRoll, cfg.Retention)
	fmt.Fprintf(out, "Central: %s (CA fingerprint %s)\n", info.Central, info.CAFingerprint)
	fmt.Fprintf(out, "Users operator, officer, auditor and admin; their passwords are in %s.\n", filepath.Join(dataDir, "demo.json"))
	fmt.Fprintf(out, "From another terminal (bin/vigil after make demo):\n")
	fmt.Fprintf(out, "  vigil login --central %s --user operator --ca-fingerprint %s\n", info.Central, info.CAFingerprint)
	fmt.Fprintf(out, "  vigil recordings list --camera %s/cam2 --from -1h\n", demoDistrict)
	fmt.Fprintf(out, "  vigil agents list\n")
	fmt.Fprintf(out, "  vigil login --central %s --user auditor   # then: vigil audit log; vigil audit verify\n", info.Central)
	fmt.Fprintf(out, "  vigil agent status --agent-data %s\n", cfg.DataDir)
	fmt.Fprintln(out, "Press Ctrl-C to stop.")

	statusCtx, stopStatus := context.WithCancel(ctx)
	defer stopStatus()
	go printCameraChanges(statusCtx, a, printf)

	if err := a.Run(ctx); err != nil {
		return err
	}
	stopStatus()
	fmt.Fprintf(out, "demo stopped; footage and index are kept in %s\n", dataDir)
	return nil
}

// printCameraChanges prints a line whenever a camera's state changes, so a
// newcomer sees cameras come up and what went wrong when one does not.
func printCameraChanges(ctx context.Context, a *agent.Agent, printf func(string, ...any)) {
	last := map[string]string{}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, c := range a.Status().Cameras {
			line := string(c.Stream.State)
			switch {
			case c.Stream.State == "up":
				line = fmt.Sprintf("up (%s %dx%d over %s)", c.Stream.Codec, c.Stream.Width, c.Stream.Height, c.Stream.Transport)
			case c.Stream.LastError != "":
				line += ": " + c.Stream.LastError
			}
			if c.Detector != "" {
				line += "; motion detection down, recording continuously: " + c.Detector
			}
			if last[c.ID] != line {
				last[c.ID] = line
				printf("%s  camera   %s/%s %s\n", time.Now().Format(time.TimeOnly), demoDistrict, c.ID, line)
			}
		}
	}
}

// writeDemoFiles writes the agent configuration the demo runs with (so it can
// be reused with `vigil agent --config`) and demo.json.
func writeDemoFiles(dataDir string, cfg *config.Config, info demoInfo) error {
	data, err := cfg.Marshal()
	if err != nil {
		return err
	}
	data = append([]byte("# Written by `vigil demo`; the simulated cameras' ports change at every run.\n"), data...)
	if err := os.WriteFile(info.AgentConfig, data, 0o600); err != nil {
		return err
	}
	js, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dataDir, "demo.json"), append(js, '\n'), 0o600)
}
