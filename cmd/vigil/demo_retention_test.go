package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent/config"
	"github.com/vigil-cctv/vigil/storage"
)

// TestDemoRetentionBadArguments: a retention the agent would refuse, or
// that does not parse, gets one clear line before anything starts.
func TestDemoRetentionBadArguments(t *testing.T) {
	for _, c := range []struct {
		value, want string
	}{
		{"30s", "--retention: 30s is below the minimum of 1m"},
		{"59s", "below the minimum of 1m"},
		{"7d1s", "--retention: 7d1s is above the legal maximum of 7d"},
		{"8d", "above the legal maximum of 7d"},
		{"-3m", "below the minimum of 1m"},
		{"0s", "below the minimum of 1m"},
		{"3", `invalid argument "3" for "--retention" flag`},
		{"three minutes", `invalid argument "three minutes" for "--retention" flag`},
		{"", `invalid argument "" for "--retention" flag`},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		_, _, err := runCLI(t, context.Background(), "demo", "--data", dir, "--retention", c.value)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("--retention %q: got %v, want one line with %q", c.value, err, c.want)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("--retention %q: refused, yet %s was created", c.value, dir)
		}
	}
}

func TestDemoRetentionValues(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Minute: "1m", 90 * time.Second: "1m30s", 3 * time.Minute: "3m", time.Hour: "1h", 90 * time.Minute: "1h30m",
		36 * time.Hour: "1d12h", config.MaxRetention: "7d", 59 * time.Second: "59s", 0: "0s", -3 * time.Minute: "-3m",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
	for in, want := range map[string]time.Duration{
		"1m": time.Minute, "3m": 3 * time.Minute, "90s": 90 * time.Second, "36h": 36 * time.Hour,
		"1d12h": 36 * time.Hour, "7d": config.MaxRetention,
	} {
		var v retentionValue
		if err := v.Set(in); err != nil || time.Duration(v) != want || checkDemoRetention(want) != nil {
			t.Errorf("--retention %s: %v %v", in, time.Duration(v), err)
		}
	}
	cmd := newDemoCommand()
	if f := cmd.Flags().Lookup("retention"); f == nil || f.DefValue != "7d" {
		t.Fatalf("--retention default: %+v", f)
	}
	cfg, err := demoAgentConfig(t.TempDir(), []string{"rtsp://127.0.0.1:1/a", "rtsp://127.0.0.1:1/b"}, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Retention != config.Duration(3*time.Minute) || len(cfg.Cameras) != 2 {
		t.Fatalf("demo agent config: retention %s, %d cameras", cfg.Retention, len(cfg.Cameras))
	}
	for _, c := range cfg.Cameras {
		if c.Retention != config.Duration(3*time.Minute) {
			t.Errorf("camera %s: retention %s", c.ID, c.Retention)
		}
	}
	if cfg, err := demoAgentConfig(t.TempDir(), []string{"rtsp://127.0.0.1:1/a"}, config.MaxRetention); err != nil || cfg.Retention != config.Duration(config.MaxRetention) {
		t.Fatalf("default retention: %v %v", cfg, err)
	}
}

// TestDemoShortRetention runs the demo briefly with --retention 3m: it
// says what the retention means, suggests the officer's hold command with
// its real names, and its agent runs with that retention.
//
// Not parallel: two demos at once under -race slow each other down enough
// that TestDemoSmoke's 15 s may end before a motion segment is stored.
func TestDemoShortRetention(t *testing.T) {
	dir := t.TempDir()
	out, _, err := runCLI(t, context.Background(), "demo", "--data", dir, "--duration", "8s", "--retention", "3m")
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{
		"retention 3m)",
		"Retention shortened to 3m (--retention; default and legal maximum 7d)",
		"vigil login --central 127.0.0.1:",
		"--user officer --ca-fingerprint ",
		`vigil hold place --camera demo/cam2 --from -5m --to now --authority "Demo court" --case "DEMO 1/2026" --reason "trying a hold"`,
		"vigil recordings list --camera demo/cam2 --from -15m --agent-data " + filepath.Join(dir, "agent"),
		"demo stopped",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	cfg, err := config.Load(filepath.Join(dir, "agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Retention != config.Duration(3*time.Minute) || cfg.Cameras[1].Retention != config.Duration(3*time.Minute) {
		t.Fatalf("the demo's agent.yaml: retention %s, cam2 %s", cfg.Retention, cfg.Cameras[1].Retention)
	}
}

// The demo prints deletions and holds taking and letting go of footage.
func TestDemoRetentionChanges(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.Local)
	seg := func(id string, start time.Time, held ...string) storage.Segment {
		return storage.Segment{ID: id, District: "demo", Camera: "cam2", Start: start, End: start.Add(15 * time.Second),
			Expires: start.Add(3 * time.Minute), HeldBy: held}
	}
	a, b, c, d := seg("a", t0), seg("b", t0.Add(20*time.Second)), seg("c", t0.Add(40*time.Second)), seg("d", t0.Add(time.Minute), "h-1")
	before := map[string]storage.Segment{"a": a, "b": b, "c": c, "d": d}
	after := map[string]storage.Segment{
		"c": seg("c", c.Start, "h-1"), "d": seg("d", d.Start),
		"e": seg("e", t0.Add(80*time.Second), "h-2"), // recorded into a held span
		"f": seg("f", t0.Add(100*time.Second)),       // new: the stored line says so
	}
	got := retentionChanges(before, after, 3*time.Minute, t0.Add(3*time.Minute+10*time.Second))
	want := []string{
		"deleted  demo/cam2  10:00:00 → 10:00:15  expired 10:03:00",
		"deleted  demo/cam2  10:00:20 → 10:00:35  before its expiry at 10:03:20 (disk pressure)",
		"hold     h-1 keeps 1 more segment of demo/cam2 past their expiry, until released",
		"hold     h-1 released 1 segment of demo/cam2: those past their expiry go at the next sweep",
		"hold     h-2 keeps 1 more segment of demo/cam2 past their expiry, until released",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := retentionChanges(after, after, 3*time.Minute, t0); len(got) != 0 {
		t.Fatalf("no change: %v", got)
	}
	// Indexed under a longer retention, then shortened: expired by the
	// shorter one, not pressure.
	old := seg("a", t0)
	old.Expires = t0.Add(7 * 24 * time.Hour)
	got = retentionChanges(map[string]storage.Segment{"a": old}, nil, 3*time.Minute, t0.Add(4*time.Minute))
	if len(got) != 1 || !strings.HasSuffix(got[0], "expired 10:03:00") {
		t.Fatalf("shortened retention: %v", got)
	}
}
