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

// feed gives a the same kind of frame n times and reports whether the last
// one was motion.
func feed(a *PixelAnalyzer, n int, frame func() []byte) (score float64, moving bool) {
	for range n {
		score, moving = a.Analyze(frame())
	}
	return score, moving
}

func box(x0, y0, w, h int) func(x, y int) bool {
	return func(x, y int) bool { return x >= x0 && x < x0+w && y >= y0 && y < y0+h }
}

func newTestAnalyzer(t *testing.T) *PixelAnalyzer {
	t.Helper()
	a, err := NewPixelAnalyzer(FrameWidth, FrameHeight, 25, 0.005)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAnalyzer(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	noisy := func(fill byte, b func(x, y int) bool, v byte) func() []byte {
		return func() []byte { return frameWith(FrameWidth, FrameHeight, fill, 12, rng, b, v) }
	}
	a := newTestAnalyzer(t)
	// A noisy still scene: no motion, ever.
	for i := range 100 {
		if _, moving := a.Analyze(noisy(100, nil, 0)()); moving {
			t.Fatalf("noise frame %d seen as motion", i)
		}
	}
	// A person-sized box (20x40 px of 160x90, ~5%) at a new place: motion
	// once it has been there for Persist frames, not before.
	if _, moving := feed(a, a.Persist-1, noisy(100, box(30, 40, 20, 40), 200)); moving {
		t.Fatal("motion reported before it persisted")
	}
	score, moving := a.Analyze(noisy(100, box(30, 40, 20, 40), 200)())
	if !moving || score < 0.04 {
		t.Fatalf("person not seen: score %.3f moving %v", score, moving)
	}
	// Lights on: the whole picture brightens. Not motion, nor while the
	// background settles.
	for i := range int(settleTime/NominalInterval) + 5 {
		if _, moving := a.Analyze(noisy(200, nil, 0)()); moving {
			t.Fatalf("illumination change seen as motion (frame %d after)", i)
		}
	}
	// A tiny change (a 2x2 px bird, a 4 px blob once blurred) is below the
	// minimum blob.
	if _, moving := feed(a, 10, noisy(200, box(100, 10, 2, 2), 120)); moving {
		t.Fatal("a change below the minimum blob seen as motion")
	}
	// Frames of the wrong size are ignored, not a panic.
	if _, moving := a.Analyze(make([]byte, 10)); moving {
		t.Fatal("short frame seen as motion")
	}
}

// A distant person, 3x9 px at 160x90 (0.2% of the picture, below the
// minimum area), is one blob: motion.
func TestAnalyzerDistantObject(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	a := newTestAnalyzer(t)
	feed(a, 50, func() []byte { return frameWith(FrameWidth, FrameHeight, 100, 12, rng, nil, 0) })
	x := 60
	_, moving := feed(a, 5, func() []byte {
		x++
		return frameWith(FrameWidth, FrameHeight, 100, 12, rng, box(x, 30, 3, 9), 160)
	})
	if !moving {
		t.Fatal("distant person not seen")
	}
}

// A change in one frame only (a flash, a frame of a switching exposure) is
// not motion.
func TestAnalyzerOneFrameChange(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	a := newTestAnalyzer(t)
	still := func() []byte { return frameWith(FrameWidth, FrameHeight, 100, 12, rng, nil, 0) }
	feed(a, 50, still)
	for i := range 20 {
		f := still
		if i%5 == 0 {
			f = func() []byte { return frameWith(FrameWidth, FrameHeight, 100, 12, rng, box(40, 20, 30, 30), 200) }
		}
		if _, moving := a.Analyze(f()); moving {
			t.Fatalf("one-frame change seen as motion at frame %d", i)
		}
	}
}

// Brightness and contrast of the whole picture jump (an IR switch) while a
// small part of it changes differently: a lighting change, not motion.
func TestAnalyzerLightingJump(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	a := newTestAnalyzer(t)
	feed(a, 50, func() []byte { return frameWith(FrameWidth, FrameHeight, 80, 6, rng, box(10, 10, 8, 8), 120) })
	for i := range 40 {
		if _, moving := a.Analyze(frameWith(FrameWidth, FrameHeight, 140, 6, rng, box(10, 10, 8, 8), 60)); moving {
			t.Fatalf("IR switch seen as motion at frame %d", i)
		}
	}
}

// A textured picture shifted by a couple of pixels (camera shake) is not
// motion; a person appearing while it shakes still is.
func TestAnalyzerShake(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	tex := make([]byte, (FrameWidth+8)*(FrameHeight+8))
	for i := range tex {
		tex[i] = byte(60 + rng.IntN(120))
	}
	view := func(dx, dy int, person bool) []byte {
		f := make([]byte, FrameWidth*FrameHeight)
		for y := range FrameHeight {
			for x := range FrameWidth {
				v := tex[(y+4+dy)*(FrameWidth+8)+x+4+dx]
				if person && x >= 70 && x < 85 && y >= 40 && y < 75 {
					v = 20
				}
				f[y*FrameWidth+x] = v
			}
		}
		return f
	}
	a := newTestAnalyzer(t)
	feed(a, 50, func() []byte { return view(0, 0, false) })
	shifts := [][2]int{{2, 0}, {-2, 1}, {1, -2}, {0, 2}, {-1, -1}, {2, 2}}
	for i := range 30 {
		s := shifts[i%len(shifts)]
		if _, moving := a.Analyze(view(s[0], s[1], false)); moving {
			t.Fatalf("shake %v seen as motion at frame %d", s, i)
		}
	}
	var moving bool
	for i := range 5 {
		s := shifts[i%len(shifts)]
		_, moving = a.Analyze(view(s[0], s[1], true))
	}
	if !moving {
		t.Fatal("person not seen while the camera shakes")
	}
}

// Changes inside a mask, given in pixels of the camera's picture, are not
// motion; the same change outside is.
func TestAnalyzerMasks(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	a := newTestAnalyzer(t)
	// The left half of a 640x360 picture.
	if err := a.SetMasks([][]MaskPoint{{{0, 0}, {320, 0}, {320, 360}, {0, 360}}}, 640, 360); err != nil {
		t.Fatal(err)
	}
	feed(a, 50, func() []byte { return frameWith(FrameWidth, FrameHeight, 100, 12, rng, nil, 0) })
	if _, moving := feed(a, 10, func() []byte {
		return frameWith(FrameWidth, FrameHeight, 100, 12, rng, box(20, 20, 30, 30), 200)
	}); moving {
		t.Fatal("change inside the mask seen as motion")
	}
	if _, moving := feed(a, 10, func() []byte {
		return frameWith(FrameWidth, FrameHeight, 100, 12, rng, box(110, 20, 30, 30), 200)
	}); !moving {
		t.Fatal("change outside the mask not seen")
	}
	for _, bad := range [][][]MaskPoint{{{{0, 0}, {1, 1}}}, {{{-1, -1}, {700, -1}, {700, 400}, {-1, 400}}}} {
		if err := a.SetMasks(bad, 640, 360); err == nil {
			t.Errorf("mask %v accepted", bad)
		}
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
