package agent

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent/config"
	"github.com/vigil-cctv/vigil/agent/internal/agenttest"
	"github.com/vigil-cctv/vigil/storage"
	storefs "github.com/vigil-cctv/vigil/storage/fs"
	"github.com/vigil-cctv/vigil/storage/index"
)

// childConfigEnv makes the test binary run an agent instead of the tests, so
// a test can kill -9 a real agent process.
const childConfigEnv = "VIGIL_TEST_AGENT_CONFIG"

func TestMain(m *testing.M) {
	if path := os.Getenv(childConfigEnv); path != "" {
		os.Exit(runChildAgent(path))
	}
	os.Exit(m.Run())
}

func runChildAgent(path string) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	a, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func writeYAML(t testing.TB, cfg *config.Config) string {
	t.Helper()
	data, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startChild(t *testing.T, configPath string, logs *agenttest.LogBuffer) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childConfigEnv+"="+configPath)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// countObjects counts segment objects in the fs store.
func countObjects(root string) int {
	n := 0
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".mp4") && !strings.Contains(path, "/.") {
			n++
		}
		return nil
	})
	return n
}

// TestKill9WhileRecording kills the agent process with SIGKILL twice while
// it writes, restarts it, and checks afterwards that index and store agree
// and that nothing empty or unplayable is indexed.
func TestKill9WhileRecording(t *testing.T) {
	t.Parallel()
	clips := clipsNamed(t, "walk", "walk-bframes")
	sim := agenttest.StartSim(t, "127.0.0.1:0", clips...)
	cfg := testConfig(t,
		config.Camera{ID: "a", URL: sim.URL(1), Mode: config.ModeContinuous, Transport: config.TransportTCP, MaxLength: config.Duration(3 * time.Second)},
		config.Camera{ID: "b", URL: sim.URL(2), Mode: config.ModeContinuous, Transport: config.TransportTCP, MaxLength: config.Duration(3 * time.Second)},
	)
	path := writeYAML(t, cfg)
	logs := &agenttest.LogBuffer{}
	defer func() {
		if t.Failed() {
			t.Logf("agent logs:\n%s", logs.String())
		}
	}()

	// Each run of the agent, from its start to its kill or stop.
	var runs []span
	for round, kill := range []time.Duration{1500 * time.Millisecond, 2200 * time.Millisecond} {
		before := countObjects(cfg.Storage.FS.Path)
		started := time.Now()
		child := startChild(t, path, logs)
		agenttest.WaitFor(t, 30*time.Second, "segments stored", func() bool { return countObjects(cfg.Storage.FS.Path) >= before+3 })
		time.Sleep(kill) // mid-segment: fragments are on disk, the segment is not finished
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, span{started, time.Now()})
		child.Wait()
		parts, _ := filepath.Glob(filepath.Join(cfg.DataDir, "spool", "*", "*.part"))
		t.Logf("round %d: killed with %d objects stored and %d segments being written", round, countObjects(cfg.Storage.FS.Path), len(parts))
	}
	// Last run: it recovers the spool, reconciles, records a little, stops.
	started := time.Now()
	child := startChild(t, path, logs)
	time.Sleep(5 * time.Second)
	if err := child.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	runs = append(runs, span{started, time.Now()})
	if err := child.Wait(); err != nil {
		t.Fatalf("agent exited with %v", err)
	}

	ix, err := index.Open(filepath.Join(cfg.DataDir, "index.db"), index.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	store, err := storefs.Open(cfg.Storage.FS.Path)
	if err != nil {
		t.Fatal(err)
	}
	indexed := map[string]storage.Segment{}
	ix.ForEach(func(s storage.Segment) error { indexed[s.Key] = s; return nil })
	objects := map[string]bool{}
	store.List(context.Background(), "", func(o storage.ObjectInfo) error { objects[o.Key] = true; return nil })
	for key := range objects {
		if _, ok := indexed[key]; !ok {
			t.Errorf("object %s is not indexed", key)
		}
	}
	recovered := 0
	for key, seg := range indexed {
		if !objects[key] {
			t.Errorf("index entry %s has no object", key)
			continue
		}
		if seg.Missing {
			t.Errorf("index entry %s marked missing", key)
		}
		if seg.Recovered {
			recovered++
		}
		codec := "h264"
		checkStoredSegment(t, cfg, seg, codec)
	}
	// Invariant 5: nothing is lost beyond the last second or so before each
	// kill. Each run records from when its cameras are up (allow 3 s) to its
	// end, minus the unfinished fragment (allow 1.5 s).
	for _, cam := range cfg.Cameras {
		var segs []storage.Segment
		for _, s := range indexed {
			if s.Camera == cam.ID {
				segs = append(segs, s)
			}
		}
		sort.Slice(segs, func(i, j int) bool { return segs[i].Start.Before(segs[j].Start) })
		for i, r := range runs {
			from, to := r.from.Add(3*time.Second), r.to.Add(-1500*time.Millisecond)
			if !covered(segs, from, to) {
				t.Errorf("camera %s, run %d: %s-%s not covered by %s", cam.ID, i,
					from.Format("15:04:05.0"), to.Format("15:04:05.0"), describe(segs))
			}
		}
	}
	if recovered == 0 {
		t.Error("no segment was recovered from the spool after the kills")
	}
	leftovers, _ := filepath.Glob(filepath.Join(cfg.DataDir, "spool", "*", "*"))
	if len(leftovers) != 0 {
		t.Errorf("spool not empty after a clean stop: %v", leftovers)
	}
	t.Logf("%d segments indexed, %d recovered after kill -9", len(indexed), recovered)
}
