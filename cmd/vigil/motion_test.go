package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-cctv/vigil/agent/motion/eval"
)

// motionClipDir copies clips of the simulated cameras, with their ground
// truth, into a temporary directory.
func motionClipDir(t *testing.T, names ...string) string {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	dir := t.TempDir()
	for _, n := range names {
		for _, ext := range []string{".mp4", ".json"} {
			data, err := os.ReadFile(filepath.Join("..", "..", "agent", "camerasim", "clips", n+ext))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, n+ext), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func TestMotionEvalJSON(t *testing.T) {
	dir := motionClipDir(t, "walk-h265")
	out, errOut, err := runCLI(t, context.Background(), "motion", "eval", dir, "-o", "json")
	if err != nil {
		t.Fatalf("%v (stderr %q)", err, errOut)
	}
	if !strings.Contains(errOut, "evaluated walk-h265") {
		t.Errorf("no progress on stderr: %q", errOut)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"recall", "precision", "false_alarms_per_hour", "cpu_seconds_per_camera_hour", "clips"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("no top-level key %q", k)
		}
	}
	if rep["recall"] != 1.0 || rep["precision"] != 1.0 || rep["detector"] != eval.DefaultDetector {
		t.Errorf("walk-h265: recall %v precision %v detector %v", rep["recall"], rep["precision"], rep["detector"])
	}
	if cpu, _ := rep["cpu_seconds_per_camera_hour"].(float64); cpu <= 0 {
		t.Errorf("cpu_seconds_per_camera_hour %v", rep["cpu_seconds_per_camera_hour"])
	}
	clips, _ := rep["clips"].([]any)
	if len(clips) != 1 {
		t.Fatalf("clips: %v", rep["clips"])
	}
	clip := clips[0].(map[string]any)
	for _, k := range []string{"name", "width", "height", "duration_seconds", "events", "detected", "recall", "precision",
		"false_alarms", "false_alarms_per_hour", "median_time_to_detect_seconds", "cpu_seconds", "intervals", "masks_applied"} {
		if _, ok := clip[k]; !ok {
			t.Errorf("no clip key %q", k)
		}
	}
	if clip["name"] != "walk-h265" || clip["width"] != 640.0 || clip["height"] != 360.0 || clip["duration_seconds"] != 20.0 || clip["events"] != 1.0 {
		t.Errorf("clip %v", clip)
	}
	ivs, _ := clip["intervals"].([]any)
	if len(ivs) != 1 {
		t.Fatalf("intervals %v, want the one crossing (8-12 s)", clip["intervals"])
	}
	iv := ivs[0].(map[string]any)
	if start, end := iv["start"].(float64), iv["end"].(float64); start < 8 || start > 8.5 || end < 11.5 || end > 12.5 {
		t.Errorf("interval %v, want about 8-12 s", iv)
	}
}

func TestMotionEvalTable(t *testing.T) {
	one, half := 1.0, 0.5
	fa, ttd := 3.6, 0.12
	rep := &eval.Report{
		Detector: "pixel", MergeGapSeconds: 1, Recall: &half, Precision: &one, FalseAlarmsPerHour: &fa,
		MedianTimeToDetectSeconds: &ttd, CPUSecondsPerCameraHour: 30, Events: 2, Detected: 1, IntervalCount: 1, Hits: 1,
		DurationSeconds: 1060, CPUSeconds: 8.83, CPUSecondsMeasured: 9.2,
		DetectorStarts: []eval.DetectorStart{{Codec: "h264", Width: 640, Height: 360, CPUSeconds: 0.2}},
		CPUBySize:      []eval.SizeCPU{{Width: 640, Height: 360, CPUSecondsPerCameraHour: 24.25}, {Width: 1920, Height: 1080, CPUSecondsPerCameraHour: 150}},
		Clips: []eval.ClipResult{
			{Name: "still", Width: 640, Height: 360, DurationSeconds: 1000, FalseAlarmsPerHour: &fa, FalseAlarms: 1, Masks: 2, CPUSeconds: 8.33, CPUSecondsPerCameraHour: 30},
			{Name: "walk", Width: 640, Height: 360, DurationSeconds: 60, Events: 2, Detected: 1, Recall: &half, Precision: &one,
				MedianTimeToDetectSeconds: &ttd, Intervals: []eval.Span{{Start: 6.1, End: 9.9}}, MasksApplied: true, CPUSeconds: 0.5, CPUSecondsPerCameraHour: 30},
		},
	}
	var out strings.Builder
	if err := printMotionEval(&out, rep); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines) < 8 || !strings.HasPrefix(lines[0], "CLIP") || !strings.HasPrefix(lines[1], "still") ||
		!strings.HasPrefix(lines[2], "walk") || !strings.HasPrefix(lines[3], "TOTAL") {
		t.Fatalf("want a header, a line per clip and a total:\n%s", out.String())
	}
	// CLIP SIZE LENGTH EVENTS DETECTED RECALL INTERVALS PRECISION FALSE-ALARMS FA/HOUR TTD CPU-S CPU-S/CAM-HOUR MASKS
	for i, want := range []string{
		"still 640x360 16m40s 0 0 - 0 - 1 3.6 - 8.33 30.0 2 (not applied)",
		"walk 640x360 1m0s 2 1 0.500 1 1.000 0 - 0.12s 0.50 30.0 -",
		"TOTAL 17m40s 2 1 0.500 1 1.000 0 3.6 0.12s 8.83 30.0",
	} {
		if got := strings.Join(strings.Fields(lines[i+1]), " "); got != want {
			t.Errorf("line %d:\n got %q\nwant %q", i+1, got, want)
		}
	}
	for _, want := range []string{"detector pixel", "9.20 CPU-s measured", "h264 640x360 0.20", "masks not applied",
		"CPU-s per camera-hour by picture size: 640x360 24.2, 1920x1080 150.0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in\n%s", want, out.String())
		}
	}
}

func TestMotionEvalErrors(t *testing.T) {
	good := motionClipDir(t, "walk-h265")
	video, err := os.ReadFile(filepath.Join(good, "walk-h265.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	dirWith := func(files map[string]string) string {
		dir := t.TempDir()
		for name, content := range files {
			data := []byte(content)
			if content == "@video" {
				data = video
			}
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no directory", nil, "want one argument"},
		{"two directories", []string{good, good}, "want one argument"},
		{"missing directory", []string{missing}, missing},
		{"empty directory", []string{dirWith(nil)}, "no clips"},
		{"clip without ground truth", []string{dirWith(map[string]string{"cam.mp4": "@video"})}, "cam.mp4: no ground truth cam.json"},
		{"malformed ground truth", []string{dirWith(map[string]string{"cam.mp4": "@video", "cam.json": `{"events":[{"start":1,"end":`})}, "cam.json: not a ground truth object"},
		{"event outside the clip", []string{dirWith(map[string]string{"cam.mp4": "@video", "cam.json": `{"events":[{"start":15,"end":25}]}`})}, "cam.json"},
		{"unknown detector", []string{good, "--detector", "magic"}, `--detector: unknown detector "magic" (known: compressed, hybrid, pixel)`},
		{"bad output", []string{good, "-o", "xml"}, "want table or json"},
		{"negative merge gap", []string{good, "--merge-gap", "-1s"}, "--merge-gap -1s is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := runCLI(t, context.Background(), append([]string{"motion", "eval"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want one line with %q", err, tc.want)
			}
			if out != "" {
				t.Errorf("nothing should be printed, got %q", out)
			}
		})
	}
}
