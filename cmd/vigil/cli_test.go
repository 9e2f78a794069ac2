package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent"
	"github.com/vigil-cctv/vigil/agent/config"
	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/index"
)

// runCLI runs the command line in process and returns its output.
func runCLI(t *testing.T, ctx context.Context, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRootCommand()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	good := map[string]time.Time{
		"now":                       now,
		"-2h":                       now.Add(-2 * time.Hour),
		"+30m":                      now.Add(30 * time.Minute),
		"2026-11-27T10:00:00Z":      time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
		"2026-11-27T10:00:00+01:00": time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC),
	}
	for in, want := range good {
		got, err := parseTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "yesterday", "-2", "2h", "2026-11-27", "+-1h", "2026-13-01T00:00:00Z"} {
		if _, err := parseTime(in, now); err == nil {
			t.Errorf("parseTime(%q) accepted", in)
		}
	}
}

func TestRecordingsListBadArguments(t *testing.T) {
	t.Setenv("VIGIL_HOME", t.TempDir())
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--agent-data", dir}, "--camera DISTRICT/CAMERA is required"},
		{[]string{"--agent-data", dir, "--camera", "gate"}, "want DISTRICT/CAMERA"},
		{[]string{"--agent-data", dir, "--camera", "North/gate"}, "district id"},
		{[]string{"--agent-data", dir, "--camera", "north/../x"}, "camera id"},
		{[]string{"--agent-data", dir, "--camera", "north/gate", "--from", "yesterday"}, "--from"},
		{[]string{"--agent-data", dir, "--camera", "north/gate", "--from", "now", "--to", "-1h"}, "from must be before to"},
		{[]string{"--camera", "north/gate"}, "not logged in"},
		{[]string{"--agent-data", dir, "--camera", "north/gate"}, "no agent index"},
		{[]string{"--agent-data", dir, "--camera", "north/gate", "-o", "xml"}, "want table or json"},
		{[]string{"--agent-data", dir, "--camera", "north/gate", "extra"}, "unknown command"},
	} {
		_, _, err := runCLI(t, context.Background(), append([]string{"recordings", "list"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: got %v, want one line with %q", c.args, err, c.want)
		}
	}
}

func putSegments(t *testing.T, dataDir string, start time.Time, n int) []storage.Segment {
	t.Helper()
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		t.Fatal(err)
	}
	ix, err := index.Open(filepath.Join(dataDir, "index.db"), index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	var segs []storage.Segment
	for i := range n {
		s := storage.Segment{
			ID: storage.NewSegmentID(), District: "north", Camera: "gate",
			Start: start.Add(time.Duration(i) * time.Minute), Bytes: 1000 + int64(i),
			SHA256: strings.Repeat("ab", 32), Codec: "h264",
		}
		s.End = s.Start.Add(30 * time.Second)
		s.Expires = s.Start.Add(7 * 24 * time.Hour)
		s.Key = storage.SegmentKey(s.District, s.Camera, s.Start, s.ID)
		if err := ix.Put(context.Background(), &s); err != nil {
			t.Fatal(err)
		}
		segs = append(segs, s)
	}
	return segs
}

// The JSON keys are a user contract (DESIGN.md).
func checkRecordingsJSON(t *testing.T, out string, want []storage.Segment) {
	t.Helper()
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(rows), len(want))
	}
	for i, row := range rows {
		for _, k := range []string{"id", "district", "camera", "start", "end", "bytes", "sha256", "key", "held"} {
			if _, ok := row[k]; !ok {
				t.Errorf("row %d lacks key %q", i, k)
			}
		}
		if row["id"] != want[i].ID || row["key"] != want[i].Key || row["held"] != false {
			t.Errorf("row %d = %v, want segment %s", i, row, want[i].ID)
		}
	}
}

func TestRecordingsListFromStoppedAgentIndex(t *testing.T) {
	dir := t.TempDir()
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	segs := putSegments(t, dir, start, 5)
	// Minutes 1-3 overlap [start+1m, start+3m+10s).
	out, _, err := runCLI(t, context.Background(), "recordings", "list", "--agent-data", dir, "--camera", "north/gate",
		"--from", start.Add(time.Minute).Format(time.RFC3339), "--to", start.Add(3*time.Minute+10*time.Second).Format(time.RFC3339), "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	checkRecordingsJSON(t, out, segs[1:4])

	out, _, err = runCLI(t, context.Background(), "recordings", "list", "--agent-data", dir, "--camera", "north/gate", "--from", "-2h")
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 6 || !strings.HasPrefix(lines[0], "START") {
		t.Fatalf("table:\n%s", out)
	}
	out, _, err = runCLI(t, context.Background(), "recordings", "list", "--agent-data", dir, "--camera", "north/other")
	if err != nil || !strings.Contains(out, "no recordings") {
		t.Fatalf("empty listing: %q %v", out, err)
	}
	out, _, err = runCLI(t, context.Background(), "recordings", "list", "--agent-data", dir, "--camera", "north/other", "-o", "json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("empty JSON listing: %q %v", out, err)
	}
}

// While the agent runs it holds the index; the CLI asks it over its socket.
func TestRecordingsListFromRunningAgent(t *testing.T) {
	dir := t.TempDir()
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	segs := putSegments(t, filepath.Join(dir, "data"), start, 3)
	cfg := &config.Config{
		District: "north", DataDir: filepath.Join(dir, "data"),
		Cameras: []config.Camera{{ID: "gate", URL: "rtsp://127.0.0.1:1/none"}},
		Storage: config.Storage{FS: &config.FSStorage{Path: filepath.Join(dir, "footage")}},
	}
	if err := cfg.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, agent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, agent.SocketName)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("agent socket never appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, _, err := runCLI(t, context.Background(), "recordings", "list", "--agent-data", cfg.DataDir, "--camera", "north/gate", "--from", "-2h", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	checkRecordingsJSON(t, out, segs)

	out, _, err = runCLI(t, context.Background(), "agent", "status", "--agent-data", cfg.DataDir)
	if err != nil || !strings.Contains(out, "district north") || !strings.Contains(out, "gate") {
		t.Fatalf("agent status: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, context.Background(), "agent", "status", "--agent-data", cfg.DataDir, "-o", "json")
	var st agent.Status
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || len(st.Cameras) != 1 || st.Cameras[0].ID != "gate" {
		t.Fatalf("agent status json: %v\n%s", err, out)
	}
	if st, err := os.Stat(filepath.Join(cfg.DataDir, agent.SocketName)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v", st.Mode(), err)
	}
}

func TestAgentCommandErrors(t *testing.T) {
	_, _, err0 := runCLI(t, context.Background(), "agent", "status", "--agent-data", t.TempDir())
	if err0 == nil || !strings.Contains(err0.Error(), "no agent running") {
		t.Fatalf("status without an agent: %v", err0)
	}
	_, _, err := runCLI(t, context.Background(), "agent")
	if err == nil || !strings.Contains(err.Error(), "--config is required") {
		t.Fatalf("got %v", err)
	}
	path := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(path, []byte("district: north\ndata_dir: /tmp/x\nretention: 8d\n"), 0o600)
	_, _, err = runCLI(t, context.Background(), "agent", "--config", path)
	if err == nil || !strings.Contains(err.Error(), "above the legal maximum") || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v", err)
	}
}

// TestDemoSmoke runs the demo briefly as a newcomer would and checks that
// the cameras come up, segments are stored, and its files are written.
func TestDemoSmoke(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, _, err := runCLI(t, context.Background(), "demo", "--data", dir, "--duration", "15s")
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{"demo/cam2 up (h264 640x360 over tcp)", "demo/cam4 up (h265", "stored   demo/cam2", "demo stopped", "Console: https://127.0.0.1:"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	st, err := os.Stat(filepath.Join(dir, "demo.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("demo.json: %v %v", st, err)
	}
	var info struct {
		Central       string `json:"central"`
		Console       string `json:"console"`
		CAFingerprint string `json:"ca_fingerprint"`
		Users         map[string]struct{ User, Password string }
	}
	data, _ := os.ReadFile(filepath.Join(dir, "demo.json"))
	if err := json.Unmarshal(data, &info); err != nil || info.Central == "" || len(info.CAFingerprint) != 64 || !strings.HasPrefix(info.Console, "https://") {
		t.Fatalf("demo.json: %v %s", err, data)
	}
	for _, role := range []string{"operator", "officer", "auditor", "admin"} {
		if u := info.Users[role]; u.User == "" || len(u.Password) < 12 {
			t.Errorf("demo.json has no usable %s: %+v", role, u)
		}
	}
	if _, err := config.Load(filepath.Join(dir, "agent.yaml")); err != nil {
		t.Fatalf("the demo's agent.yaml does not load: %v", err)
	}
	out, _, err = runCLI(t, context.Background(), "recordings", "list", "--agent-data", filepath.Join(dir, "agent"), "--camera", "demo/cam2", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) == 0 {
		t.Fatalf("no recordings after the demo: %v %s", err, out)
	}
}
