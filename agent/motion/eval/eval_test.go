package eval

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent/motion"
)

// Scene of the test clips: a still, noisy street-grey picture with sensor
// grain, 640x360 at 25 fps.
const (
	clipW, clipH = 640, 360
	clipFPS      = 25
)

// background is the still scene as a filtergraph labelled [bg]: static
// texture (noise without the t flag does not change between frames).
func background(d int) string {
	return fmt.Sprintf("color=c=0x707868:s=%dx%d:r=%d:d=%d,format=yuv420p,noise=alls=24:allf=u,gblur=sigma=0.8[bg]", clipW, clipH, clipFPS, d)
}

// grain adds temporal noise on luma, as a real sensor's, to [in] → [v].
const grain = "noise=c0s=5:c0f=t[v]"

// boxCrossing is a person-sized box (80x120) crossing the picture left to
// right: its leading edge enters at start, it has fully left at end.
func boxCrossing(in, out string, start, end float64) string {
	return fmt.Sprintf("color=c=0x283040:s=80x120:r=%d,format=yuv420p[%[2]sb];[%[3]s][%[2]sb]overlay=x='-80+(t-%[4]g)/(%[5]g-%[4]g)*720':y=200:shortest=1:enable='between(t,%[4]g,%[5]g)'[%[2]s]",
		clipFPS, out, in, start, end)
}

// makeClip encodes a filtergraph ending in [v] to DIR/NAME.mp4 with x264
// (bframes B-frames) and writes truth as DIR/NAME.json.
func makeClip(dir, name string, seconds, bframes int, graph, truth string) error {
	cmd := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
		"-filter_complex", graph, "-map", "[v]", "-t", fmt.Sprint(seconds), "-r", fmt.Sprint(clipFPS),
		"-c:v", "libx264", "-preset", "veryfast", "-threads", "1", "-g", fmt.Sprint(clipFPS), "-sc_threshold", "0",
		"-bf", fmt.Sprint(bframes), "-crf", "30", "-pix_fmt", "yuv420p",
		"-movflags", "frag_keyframe+empty_moov+default_base_moof+negative_cts_offsets", "-f", "mp4",
		filepath.Join(dir, name+".mp4"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ffmpeg %s: %v: %s", name, err, out)
	}
	return os.WriteFile(filepath.Join(dir, name+".json"), []byte(truth), 0o600)
}

// clipSet makes, once per test binary, a directory with the test clips:
//
//   - box: 8 s, a box crossing from 3 s to 6 s, no B-frames;
//   - box-bframes: the same crossing from 2 s to 5 s with 2 B-frames, so
//     the presentation-time stamping is exercised;
//   - still: 8 s where nothing moves, with a mask (the pixel detector
//     applies masks: the result must say so).
var clipSet = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "motion-eval-")
	if err != nil {
		return "", err
	}
	clipSetDir.Store(dir)
	for _, c := range []struct {
		name         string
		bframes      int
		graph, truth string
	}{
		{"box", 0, background(8) + ";" + boxCrossing("bg", "b1", 3, 6) + ";[b1]" + grain, `{"events":[{"start":3,"end":6}]}`},
		{"box-bframes", 2, background(8) + ";" + boxCrossing("bg", "b1", 2, 5) + ";[b1]" + grain, `{"events":[{"start":2,"end":5}]}`},
		{"still", 0, background(8) + ";[bg]" + grain, `{"events":[],"masks":[[[0,0],[200,0],[200,100],[0,100]]]}`},
	} {
		if err := makeClip(dir, c.name, 8, c.bframes, c.graph, c.truth); err != nil {
			return dir, err
		}
	}
	return dir, nil
})

// clipSetDir is the directory clipSet made, if it ran: TestMain removes it.
var clipSetDir atomic.Value

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, ok := clipSetDir.Load().(string); ok {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// testClips returns a fresh copy of the named test clips in a temporary
// directory.
func testClips(t *testing.T, names ...string) string {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	src, err := clipSet()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, n := range names {
		for _, ext := range []string{".mp4", ".json"} {
			data, err := os.ReadFile(filepath.Join(src, n+ext))
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

func TestEvaluateFindsTheCrossing(t *testing.T) {
	dir := testClips(t, "box", "box-bframes", "still")
	rep, err := Run(context.Background(), Config{Dir: dir, MergeGap: DefaultMergeGap})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Clips) != 3 {
		t.Fatalf("want 3 clips, got %d", len(rep.Clips))
	}
	for _, c := range rep.Clips {
		t.Logf("%s: %dx%d %.1fs frames %d/%d intervals %v recall %v precision %v FA %d TTD %v CPU %.3fs (%.1f s/camera-hour, wall %.2fs)",
			c.Name, c.Width, c.Height, c.DurationSeconds, c.FramesJudged, c.Frames, c.Intervals,
			deref(c.Recall), deref(c.Precision), c.FalseAlarms, deref(c.MedianTimeToDetectSeconds),
			c.CPUSeconds, c.CPUSecondsPerCameraHour, c.WallSeconds)
		if c.FramesJudged != c.Frames || c.Frames != 8*clipFPS {
			t.Errorf("%s: judged %d of %d frames, want %d", c.Name, c.FramesJudged, c.Frames, 8*clipFPS)
		}
		if c.Width != clipW || c.Height != clipH || c.DurationSeconds != 8 {
			t.Errorf("%s: %dx%d %gs", c.Name, c.Width, c.Height, c.DurationSeconds)
		}
		// The hybrid detector decodes only keyframes of a still clip: its
		// steady cost may be lost in the noise of the start's (clamped to 0).
		if c.CPUSecondsMeasured <= 0 || c.CPUSeconds < 0 || c.CPUSecondsMeasured < c.CPUSeconds || c.DetectorStartCPUSeconds <= 0 {
			t.Errorf("%s: CPU %gs, measured %gs, start %gs", c.Name, c.CPUSeconds, c.CPUSecondsMeasured, c.DetectorStartCPUSeconds)
		}
	}
	for _, name := range []string{"box", "box-bframes"} {
		c := clipNamed(t, rep, name)
		if c.Recall == nil || *c.Recall != 1 || c.Precision == nil || *c.Precision != 1 || c.FalseAlarms != 0 {
			t.Errorf("%s: recall %v precision %v false alarms %d, want 1, 1, 0", name, deref(c.Recall), deref(c.Precision), c.FalseAlarms)
		}
		// The box is person-sized within a few frames of entering.
		if c.MedianTimeToDetectSeconds == nil || *c.MedianTimeToDetectSeconds > 0.3 {
			t.Errorf("%s: time to detect %v, want under 0.3 s", name, deref(c.MedianTimeToDetectSeconds))
		}
		// And the interval follows it: it starts and ends within half a
		// second of the event (clip time, not arrival time).
		truth := c.Truth[0]
		if len(c.Intervals) == 1 {
			iv := c.Intervals[0]
			if iv.Start < truth.Start-0.1 || iv.Start > truth.Start+0.5 || iv.End < truth.End-0.5 || iv.End > truth.End+0.5 {
				t.Errorf("%s: interval %v, event %v", name, iv, truth)
			}
		}
		if !c.MasksApplied || c.Masks != 0 {
			t.Errorf("%s: masks %d applied %v", name, c.Masks, c.MasksApplied)
		}
	}
	still := clipNamed(t, rep, "still")
	if still.Recall != nil || still.Events != 0 {
		t.Errorf("still: recall %v without events", *still.Recall)
	}
	if still.FalseAlarmsPerHour == nil || still.StillSeconds != 8 {
		t.Errorf("still: false alarms per hour undefined or still time %gs", still.StillSeconds)
	}
	if still.Masks != 1 || !still.MasksApplied || !rep.MasksApplied {
		t.Errorf("still: masks %d applied %v (report %v): the default detector applies masks", still.Masks, still.MasksApplied, rep.MasksApplied)
	}
	// Totals.
	if rep.Events != 2 || rep.Detected != 2 || rep.Recall == nil || *rep.Recall != 1 {
		t.Errorf("total: %d/%d events, recall %v", rep.Detected, rep.Events, deref(rep.Recall))
	}
	if rep.DurationSeconds != 24 || rep.StillSeconds != 18 {
		t.Errorf("total: %gs of video, %gs still; want 24, 18", rep.DurationSeconds, rep.StillSeconds)
	}
	t.Logf("total: recall %v precision %v false alarms/h %v TTD %v CPU %.3fs = %.1f s/camera-hour",
		deref(rep.Recall), deref(rep.Precision), deref(rep.FalseAlarmsPerHour), deref(rep.MedianTimeToDetectSeconds),
		rep.CPUSeconds, rep.CPUSecondsPerCameraHour)
	if rep.CPUSecondsPerCameraHour <= 0 {
		t.Error("no CPU per camera-hour")
	}
	if len(rep.CPUBySize) != 1 || rep.CPUBySize[0].Width != clipW || rep.CPUBySize[0].DurationSeconds != 24 ||
		rep.CPUBySize[0].CPUSeconds != rep.CPUSeconds || rep.CPUBySize[0].CPUSecondsPerCameraHour != rep.CPUSecondsPerCameraHour {
		t.Errorf("CPU by size %+v, total %g s, %g per hour", rep.CPUBySize, rep.CPUSeconds, rep.CPUSecondsPerCameraHour)
	}
	// One format, so one detector start measured; ffmpeg's start is most
	// of it, so a zero would mean its children's CPU time went uncounted.
	if len(rep.DetectorStarts) != 1 || rep.DetectorStarts[0] != (DetectorStart{"h264", clipW, clipH, rep.DetectorStarts[0].CPUSeconds}) ||
		rep.DetectorStarts[0].CPUSeconds <= 0 {
		t.Errorf("detector starts %+v", rep.DetectorStarts)
	}
	t.Logf("detector start %.3f CPU-s; measured %.3f CPU-s in all", rep.DetectorStarts[0].CPUSeconds, rep.CPUSecondsMeasured)
}

func TestEvaluateBadDirectories(t *testing.T) {
	src := testClips(t, "box")
	video, err := os.ReadFile(filepath.Join(src, "box.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		files map[string]string // name → content; "@box" is the box clip
		want  string            // in the error, with the file named
	}{
		{"empty", map[string]string{"notes.txt": "x"}, "no clips"},
		{"no ground truth", map[string]string{"a.mp4": "@box"}, "a.mp4: no ground truth a.json"},
		{"malformed json", map[string]string{"a.mp4": "@box", "a.json": `{"events":[{"start":1,`}, "a.json: not a ground truth object"},
		{"no events key", map[string]string{"a.mp4": "@box", "a.json": `{"evnets":[]}`}, `a.json: "events" is required`},
		{"event after the end", map[string]string{"a.mp4": "@box", "a.json": `{"events":[{"start":7,"end":9}]}`}, "a.json"},
		{"mask outside", map[string]string{"a.mp4": "@box", "a.json": `{"events":[],"masks":[[[0,0],[700,0],[0,10]]]}`}, "a.json: mask 0 point 1"},
		{"not a video", map[string]string{"a.mp4": "hello", "a.json": `{"events":[]}`}, "a.mp4"},
		// A bad file after good ones still fails before any clip runs.
		{"bad last", map[string]string{"a.mp4": "@box", "a.json": `{"events":[]}`, "z.mp4": "@box", "z.json": `[]`}, "z.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				data := []byte(content)
				if content == "@box" {
					data = video
				}
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ran := 0
			_, err := Run(context.Background(), Config{Dir: dir, OnClip: func(ClipResult) { ran++ }})
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want one line with %q", err, tc.want)
			}
			if ran != 0 {
				t.Errorf("%d clips ran before the error", ran)
			}
		})
	}
	if _, err := Run(context.Background(), Config{Dir: filepath.Join(t.TempDir(), "missing")}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing directory: %v", err)
	}
	if _, err := Run(context.Background(), Config{Dir: src, Detector: "magic"}); err == nil ||
		!strings.Contains(err.Error(), `unknown detector "magic" (known: compressed, hybrid, pixel)`) {
		t.Errorf("unknown detector: %v", err)
	}
	if _, err := Run(context.Background(), Config{Dir: src, MergeGap: -time.Second}); err == nil {
		t.Error("negative merge gap accepted")
	}
}

func TestEvaluateDetectorFailure(t *testing.T) {
	dir := testClips(t, "box")
	_, err := Run(context.Background(), Config{Dir: dir, FFmpeg: "/nonexistent/ffmpeg"})
	if err == nil || !strings.Contains(err.Error(), "box.mp4") || !strings.Contains(err.Error(), "ffmpeg") {
		t.Fatalf("got %v, want the clip and ffmpeg named", err)
	}
}

func TestEvaluateCancelled(t *testing.T) {
	dir := testClips(t, "box")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Config{Dir: dir}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func clipNamed(t *testing.T, rep *Report, name string) ClipResult {
	t.Helper()
	for _, c := range rep.Clips {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no clip %q in the report", name)
	return ClipResult{}
}

func deref(p *float64) any {
	if p == nil {
		return "-"
	}
	return *p
}

// Every registered detector runs as the agent runs it: each judges every
// frame; the decoding ones find the crossing without a false alarm and
// apply the still clip's mask; the compressed one says it applies none.
func TestEveryDetector(t *testing.T) {
	dir := testClips(t, "box", "still")
	for _, spec := range Detectors() {
		t.Run(spec.Name, func(t *testing.T) {
			rep, err := Run(context.Background(), Config{Dir: dir, Detector: spec.Name, MergeGap: DefaultMergeGap, StartRuns: 1})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range rep.Clips {
				if c.FramesJudged != c.Frames {
					t.Errorf("%s: judged %d of %d frames", c.Name, c.FramesJudged, c.Frames)
				}
			}
			still := clipNamed(t, rep, "still")
			if still.MasksApplied != spec.Masks || rep.MasksApplied != spec.Masks {
				t.Errorf("masks applied %v (report %v), detector applies masks: %v", still.MasksApplied, rep.MasksApplied, spec.Masks)
			}
			if spec.Name == string(motion.KindCompressed) {
				return // it cannot see a box the encoder predicts well: scored, not asserted
			}
			box := clipNamed(t, rep, "box")
			if box.Detected != 1 || box.FalseAlarms != 0 || still.FalseAlarms != 0 {
				t.Errorf("box %d/1 detected, %d false alarms; still %d false alarms", box.Detected, box.FalseAlarms, still.FalseAlarms)
			}
		})
	}
}
