package motion

import (
	"math/rand/v2"
	"testing"
)

func frameWith(w, h int, fill byte, noise int, rng *rand.Rand, box func(x, y int) bool, boxValue byte) []byte {
	f := make([]byte, w*h)
	for y := range h {
		for x := range w {
			v := int(fill)
			if box != nil && box(x, y) {
				v = int(boxValue)
			}
			if noise > 0 {
				v += rng.IntN(2*noise+1) - noise
			}
			f[y*w+x] = byte(min(255, max(0, v)))
		}
	}
	return f
}

func TestAnalyzer(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	a, err := NewPixelAnalyzer(FrameWidth, FrameHeight, 25, 0.005)
	if err != nil {
		t.Fatal(err)
	}
	// A noisy still scene: no motion, ever.
	for i := range 50 {
		if _, moving := a.Analyze(frameWith(FrameWidth, FrameHeight, 100, 12, rng, nil, 0)); moving {
			t.Fatalf("noise frame %d seen as motion", i)
		}
	}
	// A person-sized box (20x40 px of 160x90, ~5%) at a new place: motion.
	person := func(x0 int) func(x, y int) bool {
		return func(x, y int) bool { return x >= x0 && x < x0+20 && y >= 40 && y < 80 }
	}
	score, moving := a.Analyze(frameWith(FrameWidth, FrameHeight, 100, 12, rng, person(30), 200))
	if !moving || score < 0.04 {
		t.Fatalf("person not seen: score %.3f", score)
	}
	// Lights on: the whole picture brightens. Not motion.
	if _, moving := a.Analyze(frameWith(FrameWidth, FrameHeight, 200, 12, rng, nil, 0)); moving {
		t.Fatal("illumination change seen as motion")
	}
	// And the new lighting is the background right away.
	if _, moving := a.Analyze(frameWith(FrameWidth, FrameHeight, 200, 12, rng, nil, 0)); moving {
		t.Fatal("background not re-learnt after the illumination change")
	}
	// A tiny change (a 2x2 px bird) is below the minimum area.
	bird := func(x, y int) bool { return x >= 100 && x < 102 && y >= 10 && y < 12 }
	if _, moving := a.Analyze(frameWith(FrameWidth, FrameHeight, 200, 12, rng, bird, 0)); moving {
		t.Fatal("a change below the minimum area seen as motion")
	}
	// Frames of the wrong size are ignored, not a panic.
	if _, moving := a.Analyze(make([]byte, 10)); moving {
		t.Fatal("short frame seen as motion")
	}
}

func TestAnalyzerRejectsBadSettings(t *testing.T) {
	for _, c := range []struct {
		w, h, thr int
		area      float64
	}{{2, 90, 25, 0.01}, {160, 90, 0, 0.01}, {160, 90, 256, 0.01}, {160, 90, 25, 0}, {160, 90, 25, 2}} {
		if _, err := NewPixelAnalyzer(c.w, c.h, c.thr, c.area); err == nil {
			t.Errorf("accepted %+v", c)
		}
	}
}
