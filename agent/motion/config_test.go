package motion

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent/media"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{OnFrame: func(time.Time, float64, bool) {}}
	if err := c.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	if c.Detector != DefaultKind || c.Sensitivity != DefaultSensitivity || c.Threshold != 25 ||
		c.MinArea != DefaultMinArea || c.FFmpeg != "ffmpeg" || c.RestartDelay != 2*time.Second || c.Logger == nil {
		t.Fatalf("defaults %+v", c)
	}
	for s, want := range map[int]int{1: 97, 25: 50, 50: 25, 75: 13, 100: 6} {
		if got := ThresholdFor(s); got != want {
			t.Errorf("ThresholdFor(%d) = %d, want %d", s, got, want)
		}
	}
	// A threshold given wins over the sensitivity.
	c = Config{OnFrame: c.OnFrame, Sensitivity: 90, Threshold: 40}
	if err := c.CheckAndSetDefaults(); err != nil || c.Threshold != 40 {
		t.Fatalf("threshold %d, %v", c.Threshold, err)
	}
}

func TestConfigRejects(t *testing.T) {
	on := func(time.Time, float64, bool) {}
	square := []MaskPoint{{0, 0}, {10, 0}, {10, 10}, {0, 10}}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "OnFrame is required"},
		{Config{OnFrame: on, Detector: "magic"}, `unknown detector "magic" (known: hybrid, pixel, compressed)`},
		{Config{OnFrame: on, Sensitivity: 101}, "sensitivity 101 not within 1-100"},
		{Config{OnFrame: on, Sensitivity: -3}, "sensitivity -3"},
		{Config{OnFrame: on, Threshold: 256}, "threshold 256"},
		{Config{OnFrame: on, MinArea: 1.5}, "min area 1.5"},
		{Config{OnFrame: on, MinArea: math.NaN()}, "min area NaN"},
		{Config{OnFrame: on, MinBlob: -1}, "min blob -1"},
		{Config{OnFrame: on, FPS: -1}, "fps -1"},
		{Config{OnFrame: on, FPS: math.Inf(1)}, "fps +Inf"},
		{Config{OnFrame: on, MaskWidth: 640}, "mask picture 640x0"},
		{Config{OnFrame: on, Masks: [][]MaskPoint{square[:2]}}, "mask 0 has 2 points"},
		{Config{OnFrame: on, Masks: [][]MaskPoint{{{0, 0}, {10, 0}, {5, math.NaN()}}}}, "not within"},
		{Config{OnFrame: on, Masks: [][]MaskPoint{{{0, 0}, {1e9, 0}, {5, 5}}}}, "not within"},
		{Config{OnFrame: on, Masks: make([][]MaskPoint, MaxMasks+1)}, "at most 64"},
	} {
		err := tc.cfg.CheckAndSetDefaults()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "motion: ") {
			t.Errorf("%+v: got %v, want %q", tc.cfg, err, tc.want)
		}
		if _, err := New(tc.cfg); err == nil {
			t.Errorf("New accepted %+v", tc.cfg)
		}
	}
	// Masks covering the whole picture are refused once its size is known.
	whole := Config{OnFrame: on, Masks: [][]MaskPoint{{{0, 0}, {640, 0}, {640, 360}, {0, 360}}}}
	if _, err := NewPixel(whole); err != nil {
		t.Fatalf("size unknown yet: %v", err)
	}
	if err := whole.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	if _, err := whole.newAnalyzer(&media.Params{Width: 640, Height: 360}); err == nil || !strings.Contains(err.Error(), "whole picture") {
		t.Errorf("whole picture masked: %v", err)
	}
	whole.MaskWidth, whole.MaskHeight = 640, 360
	if _, err := NewHybrid(whole); err == nil {
		t.Error("hybrid accepted masks over the whole picture")
	}
}

func TestNewMakesTheKindNamed(t *testing.T) {
	on := func(time.Time, float64, bool) {}
	for kind, want := range map[Kind]string{"": "*motion.Hybrid", KindHybrid: "*motion.Hybrid", KindPixel: "*motion.Pixel", KindCompressed: "*motion.Compressed"} {
		d, err := New(Config{OnFrame: on, Detector: kind})
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%T", d); got != want {
			t.Errorf("%q made %s", kind, got)
		}
		d.Close()
	}
}

// The least blob is given in pixels of the picture and scaled to the
// analysis size.
func TestMinBlobScaled(t *testing.T) {
	c := Config{OnFrame: func(time.Time, float64, bool) {}, MinBlob: 400}
	if err := c.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	a, err := c.newAnalyzer(&media.Params{Width: 640, Height: 360})
	if err != nil {
		t.Fatal(err)
	}
	if a.MinBlob != 25 { // 400 px of 640x360 is 25 of 160x90
		t.Errorf("min blob %d", a.MinBlob)
	}
	c.MinBlob = 0
	if a, _ = c.newAnalyzer(&media.Params{Width: 1920, Height: 1080}); a.MinBlob != DefaultMinBlob(FrameWidth, FrameHeight) {
		t.Errorf("default min blob %d", a.MinBlob)
	}
}

func TestFrameClock(t *testing.T) {
	t0 := time.Now()
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * NominalInterval) }
	c := newFrameClock(5)
	var kept []int
	for i := range 26 {
		if _, ok := c.next(at(i), false); ok {
			kept = append(kept, i)
		}
	}
	if want := []int{0, 5, 10, 15, 20, 25}; len(kept) != len(want) || kept[1] != 5 || kept[5] != 25 {
		t.Errorf("25 fps capped at 5 kept frames %v, want %v", kept, want)
	}
	if dt, ok := c.next(at(26), true); !ok || dt != NominalInterval {
		t.Errorf("forced frame: %v %v", dt, ok)
	}
	all := newFrameClock(0)
	for i := range 10 {
		if dt, ok := all.next(at(i), false); !ok || dt != NominalInterval {
			t.Fatalf("frame %d: %v %v", i, dt, ok)
		}
	}
}

// At 5 fps a person is motion after two frames (the span of three at 25
// fps), never after one; a change of the whole picture is followed by a
// second of settling, in time, not frames.
func TestAnalyzerLowFrameRate(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	still := func() []byte { return frameWith(FrameWidth, FrameHeight, 100, 12, rng, nil, 0) }
	person := func() []byte { return frameWith(FrameWidth, FrameHeight, 100, 12, rng, box(60, 30, 12, 30), 200) }
	const dt = 200 * time.Millisecond
	a := newTestAnalyzer(t)
	for i := range 25 {
		if _, moving := a.AnalyzeAfter(still(), dt); moving {
			t.Fatalf("noise seen as motion at frame %d", i)
		}
	}
	if _, moving := a.AnalyzeAfter(person(), dt); moving || !a.Candidate() || !a.Hint() {
		t.Fatalf("first frame with the person: moving %v candidate %v", moving, a.Candidate())
	}
	if _, moving := a.AnalyzeAfter(person(), dt); !moving {
		t.Fatal("person not seen on the second frame at 5 fps")
	}
	// Lights on; at 5 fps five frames make the settling second.
	lit := func() []byte { return frameWith(FrameWidth, FrameHeight, 190, 12, rng, nil, 0) }
	x := 0
	litPerson := func() []byte {
		x += 10
		return frameWith(FrameWidth, FrameHeight, 190, 12, rng, box(x, 30, 12, 30), 60)
	}
	a.AnalyzeAfter(lit(), dt)
	for i := range 4 {
		if _, moving := a.AnalyzeAfter(litPerson(), dt); moving {
			t.Fatalf("motion %v after the lights switched", time.Duration(i+1)*dt)
		}
	}
	seen := false
	for range 4 {
		_, moving := a.AnalyzeAfter(litPerson(), dt)
		seen = seen || moving
	}
	if !seen {
		t.Error("person not seen after the settling second")
	}
}

// Hint reports a blob of half the least one, which is not a candidate.
func TestAnalyzerHint(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	a := newTestAnalyzer(t)
	feed(a, 30, func() []byte { return frameWith(FrameWidth, FrameHeight, 100, 4, rng, nil, 0) })
	a.Analyze(frameWith(FrameWidth, FrameHeight, 100, 4, rng, box(50, 50, 3, 2), 200)) // about 8 px changed once blurred
	if a.Candidate() || !a.Hint() {
		t.Errorf("8 px blob: candidate %v hint %v, want false, true", a.Candidate(), a.Hint())
	}
	a.Analyze(frameWith(FrameWidth, FrameHeight, 100, 4, rng, nil, 0))
	if a.Hint() {
		t.Error("hint on a still frame")
	}
}

// A background adopted from another analyzer is compared with at once;
// Background is a copy.
func TestAnalyzerAdopt(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	src, dst := newTestAnalyzer(t), newTestAnalyzer(t)
	if len(src.Background().bg) != 0 {
		t.Fatal("background before any frame")
	}
	feed(src, 20, func() []byte { return frameWith(FrameWidth, FrameHeight, 60, 4, rng, nil, 0) })
	feed(dst, 20, func() []byte { return frameWith(FrameWidth, FrameHeight, 60, 4, rng, box(0, 0, 160, 45), 120) })
	b := src.Background()
	dst.Adopt(b)
	feed(src, 5, func() []byte { return frameWith(FrameWidth, FrameHeight, 200, 4, rng, nil, 0) })
	if dst.bg[0] > 70 || b.bg[0] > 70 {
		t.Fatalf("adopted background %v, copy %v: not a copy of the source's", dst.bg[0], b.bg[0])
	}
	dst.Adopt(Background{})
	if dst.bg[0] > 70 {
		t.Fatal("an empty background was adopted")
	}
}
