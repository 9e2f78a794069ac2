package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-cctv/vigil/agent"
	"github.com/vigil-cctv/vigil/agent/camerasim"
	"github.com/vigil-cctv/vigil/agent/config"
	"github.com/vigil-cctv/vigil/storage"
)

type demoOptions struct {
	dataDir   string
	duration  time.Duration
	cameras   int
	verbose   bool
	retention retentionValue
}

// retentionValue is a --retention flag: a duration that may be written in
// days as the agent's configuration is ("7d", "36h", "3m").
type retentionValue time.Duration

func (r *retentionValue) String() string { return shortDuration(time.Duration(*r)) }
func (r *retentionValue) Type() string   { return "duration" }
func (r *retentionValue) Set(s string) error {
	d, err := config.ParseDuration(s)
	if err != nil {
		return err
	}
	*r = retentionValue(d)
	return nil
}

// shortDuration writes a duration as the agent's configuration reads it,
// without Go's trailing zero units: "3m", "1h30m", "7d", "90s".
func shortDuration(d time.Duration) string {
	s := config.Duration(d).String()
	s = strings.TrimSuffix(s, "m0s")
	if len(s) < len(config.Duration(d).String()) {
		s += "m"
	}
	if t := strings.TrimSuffix(s, "h0m"); t != s {
		s = t + "h"
	}
	return s
}

// Bounds of the demo's --retention: the agent's own (1m to the legal 7d).
const demoMinRetention = time.Minute

// checkDemoRetention refuses a retention the agent would refuse, before
// anything starts.
func checkDemoRetention(d time.Duration) error {
	switch {
	case d < demoMinRetention:
		return fmt.Errorf("--retention: %s is below the minimum of 1m", shortDuration(d))
	case d > config.MaxRetention:
		return fmt.Errorf("--retention: %s is above the legal maximum of 7d", shortDuration(d))
	}
	return nil
}

// demoDistrict is the district id of the demo's agent.
const demoDistrict = "demo"

func newDemoCommand() *cobra.Command {
	o := demoOptions{dataDir: "demo-data", retention: retentionValue(config.MaxRetention)}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run simulated cameras and a district agent on embedded defaults",
		Long: `Run a complete district on this machine: simulated RTSP cameras looping the
embedded clips, and an agent recording them on motion into filesystem storage
under --data. Each stored segment is printed. Stop with Ctrl-C.

--retention shortens how long footage is kept (default and legal maximum
7d): with --retention 3m, segments are deleted about three minutes after
they start, so expiry, and judicial holds that keep footage past it, can be
seen within minutes. A shortened retention also applies to the footage an
earlier run left under --data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data", o.dataDir, "directory for the demo's footage, index and configuration")
	f.DurationVar(&o.duration, "duration", 0, "stop after this long (default: until Ctrl-C)")
	f.IntVar(&o.cameras, "cameras", 0, "number of simulated cameras (default: one per embedded clip)")
	f.BoolVar(&o.verbose, "verbose", false, "log every component's messages")
	f.Var(&o.retention, "retention", "keep footage this long, 1m to 7d (e.g. 3m to see expiry and holds within minutes)")
	return cmd
}

// demoInfo is written to DATA/demo.json (mode 0600), as DESIGN.md specifies,
// so people and scripts can find the demo's parts and log in.
type demoInfo struct {
	Central       string              `json:"central"`
	Console       string              `json:"console"`
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
	retention := time.Duration(o.retention)
	if err := checkDemoRetention(retention); err != nil {
		return err
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

	urls := make([]string, sim.Count())
	for n := range urls {
		urls[n] = sim.URL(n + 1)
	}
	cfg, err := demoAgentConfig(dataDir, urls, retention)
	if err != nil {
		return err
	}
	info := demoInfo{AgentData: cfg.DataDir, Footage: cfg.Storage.FS.Path, AgentConfig: filepath.Join(dataDir, "agent.yaml")}
	for _, c := range cfg.Cameras {
		info.Cameras = append(info.Cameras, demoDistrict+"/"+c.ID)
	}
	central, err := startDemoCentral(ctx, dataDir, logger)
	if err != nil {
		return err
	}
	defer central.stop()
	info.Central, info.CAFingerprint, info.Console = central.srv.APIAddr(), central.srv.Fingerprint(), central.srv.ConsoleURL()
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
		cfg.Cameras[0].PreRoll, cfg.Cameras[0].PostRoll, shortDuration(time.Duration(cfg.Retention)))
	fmt.Fprintf(out, "Central: %s (CA fingerprint %s)\n", info.Central, info.CAFingerprint)
	fmt.Fprintf(out, "Console: %s  (its certificate comes from central's own CA, %s: import it in the browser, or accept the warning)\n",
		info.Console, filepath.Join(dataDir, "central", "pki", "ca.crt"))
	fmt.Fprintf(out, "Users operator, officer, auditor and admin; their passwords are in %s.\n", filepath.Join(dataDir, "demo.json"))
	fmt.Fprintf(out, "From another terminal (bin/vigil after make demo):\n")
	fmt.Fprintf(out, "  vigil login --central %s --user operator --ca-fingerprint %s\n", info.Central, info.CAFingerprint)
	fmt.Fprintf(out, "  vigil recordings list --camera %s/cam2 --from -1h\n", demoDistrict)
	fmt.Fprintf(out, "  vigil agents list\n")
	fmt.Fprintf(out, "  vigil login --central %s --user auditor   # then: vigil audit log; vigil audit verify\n", info.Central)
	fmt.Fprintf(out, "  vigil agent status --agent-data %s\n", cfg.DataDir)
	if retention < config.MaxRetention {
		printHoldSuggestion(out, info, cfg, demoHoldCamera(sim))
	}
	fmt.Fprintln(out, "Press Ctrl-C to stop.")

	statusCtx, stopStatus := context.WithCancel(ctx)
	defer stopStatus()
	go printCameraChanges(statusCtx, a, printf)
	if retention < config.MaxRetention {
		go printRetentionChanges(statusCtx, a, retention, printf)
	}

	if err := a.Run(ctx); err != nil {
		return err
	}
	stopStatus()
	fmt.Fprintf(out, "demo stopped; footage and index are kept in %s\n", dataDir)
	return nil
}

// demoAgentConfig is the configuration of the demo's agent: one camera per
// simulated camera URL, footage under dataDir, the given retention.
func demoAgentConfig(dataDir string, urls []string, retention time.Duration) (*config.Config, error) {
	cfg := &config.Config{
		District:  demoDistrict,
		DataDir:   filepath.Join(dataDir, "agent"),
		Retention: config.Duration(retention),
		Storage:   config.Storage{FS: &config.FSStorage{Path: filepath.Join(dataDir, "footage")}},
	}
	for n, u := range urls {
		cfg.Cameras = append(cfg.Cameras, config.Camera{ID: fmt.Sprintf("cam%d", n+1), URL: u, Transport: config.TransportTCP})
	}
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// demoHoldCamera is the camera a hold is suggested on: the first whose clip
// has motion, so that it has footage to hold.
func demoHoldCamera(sim *camerasim.Server) string {
	for n := 1; n <= sim.Count(); n++ {
		if len(sim.Clip(n).Events) > 0 {
			return fmt.Sprintf("cam%d", n)
		}
	}
	return "cam1"
}

// printHoldSuggestion explains a shortened retention and shows, with the
// demo's real names, how the officer keeps footage past it.
func printHoldSuggestion(out io.Writer, info demoInfo, cfg *config.Config, camera string) {
	retention := shortDuration(time.Duration(cfg.Retention))
	fmt.Fprintf(out, "Retention shortened to %s (--retention; default and legal maximum 7d): each segment is deleted\n", retention)
	fmt.Fprintf(out, "at most 60 s after its start + %s (the agent sweeps every 10 s), unless a judicial hold covers it.\n", retention)
	fmt.Fprintf(out, "To keep the last 5 minutes of %s/%s past that, as the officer:\n", demoDistrict, camera)
	fmt.Fprintf(out, "  vigil login --central %s --user officer --ca-fingerprint %s\n", info.Central, info.CAFingerprint)
	fmt.Fprintf(out, "  vigil hold place --camera %s/%s --from -5m --to now --authority \"Demo court\" --case \"DEMO 1/2026\" --reason \"trying a hold\"\n",
		demoDistrict, camera)
	fmt.Fprintf(out, "  vigil recordings list --camera %s/%s --from -15m --agent-data %s   # the agent's index: held segments say so\n",
		demoDistrict, camera, cfg.DataDir)
	fmt.Fprintf(out, "  vigil hold list ; vigil hold release ID --reason \"demo over\"   # then what is past %s goes at the next sweep\n", retention)
	fmt.Fprintf(out, "  vigil retention report   # as officer or auditor: oldest unheld footage per camera, deletions, holds\n")
}

// printRetentionChanges prints the segments the agent deletes and the holds
// that start or stop keeping segments, so that a newcomer trying a short
// retention sees expiry and holds at work. It polls the index: cheap
// enough at the demo's scale.
func printRetentionChanges(ctx context.Context, a *agent.Agent, retention time.Duration, printf func(string, ...any)) {
	var known map[string]storage.Segment
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		seen := map[string]storage.Segment{}
		if err := a.Index().ForEach(func(s storage.Segment) error { seen[s.ID] = s; return nil }); err == nil {
			if known != nil {
				for _, line := range retentionChanges(known, seen, retention, time.Now()) {
					printf("%s  %s\n", time.Now().Format(time.TimeOnly), line)
				}
			}
			known = seen
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// retentionChanges describes what changed between two readings of the
// index: one line per deleted segment, one per hold that took or let go
// of segments. Segments added are the OnStored lines' business. A segment
// expires at the earlier of its indexed expiry and its start + retention
// (a retention shortened since the segment was indexed applies to it).
func retentionChanges(before, after map[string]storage.Segment, retention time.Duration, now time.Time) []string {
	var deleted []storage.Segment
	type holdKey struct{ hold, camera string }
	took, released := map[holdKey]int{}, map[holdKey]int{}
	for id, old := range before {
		s, ok := after[id]
		if !ok {
			deleted = append(deleted, old)
			continue
		}
		for _, h := range s.HeldBy {
			if !slices.Contains(old.HeldBy, h) {
				took[holdKey{h, s.District + "/" + s.Camera}]++
			}
		}
		for _, h := range old.HeldBy {
			if !slices.Contains(s.HeldBy, h) {
				released[holdKey{h, s.District + "/" + s.Camera}]++
			}
		}
	}
	// A segment recorded into a held span joins the hold as it is indexed.
	for id, s := range after {
		if _, ok := before[id]; !ok {
			for _, h := range s.HeldBy {
				took[holdKey{h, s.District + "/" + s.Camera}]++
			}
		}
	}
	sort.Slice(deleted, func(i, j int) bool { return deleted[i].Start.Before(deleted[j].Start) })
	var lines []string
	for _, s := range deleted {
		expires := s.Expires
		if e := s.Start.Add(retention); e.Before(expires) {
			expires = e
		}
		why := "expired " + expires.Local().Format(time.TimeOnly)
		if now.Before(expires) {
			why = "before its expiry at " + expires.Local().Format(time.TimeOnly) + " (disk pressure)"
		}
		lines = append(lines, fmt.Sprintf("deleted  %-10s %s → %s  %s", s.District+"/"+s.Camera,
			s.Start.Local().Format(time.TimeOnly), s.End.Local().Format(time.TimeOnly), why))
	}
	var holdLines []string
	for k, n := range took {
		holdLines = append(holdLines, fmt.Sprintf("hold     %s keeps %s of %s past their expiry, until released", k.hold, segmentCount(n, "more "), k.camera))
	}
	for k, n := range released {
		holdLines = append(holdLines, fmt.Sprintf("hold     %s released %s of %s: those past their expiry go at the next sweep", k.hold, segmentCount(n, ""), k.camera))
	}
	sort.Strings(holdLines)
	return append(lines, holdLines...)
}

// segmentCount is "1 segment", "3 segments" (with an adjective between).
func segmentCount(n int, adj string) string {
	if n == 1 {
		return fmt.Sprintf("1 %ssegment", adj)
	}
	return fmt.Sprintf("%d %ssegments", n, adj)
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
