package motion

import "fmt"

// Analysis frame size: small gray frames are enough to see a person move and
// cost little to compare.
const (
	FrameWidth  = 160
	FrameHeight = 90
)

// globalChange is the fraction of changed pixels above which a change is
// taken for lighting (lights switched, IR cut filter, auto exposure), not
// for something moving: the background is re-learnt instead.
const globalChange = 0.6

// PixelAnalyzer compares gray frames with a running-average background.
// It is not safe for concurrent use.
type PixelAnalyzer struct {
	// Threshold is the difference (0-255) from the background that marks a
	// pixel as changed.
	Threshold int
	// MinArea is the fraction of pixels (0-1) that must change for motion.
	MinArea float64

	w, h    int
	bg      []float32
	blurred []uint8
}

// NewPixelAnalyzer makes an analyzer for frames of w×h gray pixels.
func NewPixelAnalyzer(w, h, threshold int, minArea float64) (*PixelAnalyzer, error) {
	if w < 3 || h < 3 {
		return nil, fmt.Errorf("motion: frame %dx%d too small", w, h)
	}
	if threshold < 1 || threshold > 255 {
		return nil, fmt.Errorf("motion: threshold %d not within 1-255", threshold)
	}
	if !(minArea > 0 && minArea <= 1) {
		return nil, fmt.Errorf("motion: min area %g not within (0, 1]", minArea)
	}
	return &PixelAnalyzer{Threshold: threshold, MinArea: minArea, w: w, h: h, blurred: make([]uint8, w*h)}, nil
}

// Analyze takes the next frame (w×h bytes, row-major) and returns the
// fraction of changed pixels and whether that is motion.
func (a *PixelAnalyzer) Analyze(frame []byte) (score float64, moving bool) {
	if len(frame) != a.w*a.h {
		return 0, false
	}
	boxBlur(a.blurred, frame, a.w, a.h)
	if a.bg == nil {
		a.bg = make([]float32, len(frame))
		a.learn(1)
		return 0, false
	}
	thr := float32(a.Threshold)
	changed := 0
	for i, v := range a.blurred {
		d := float32(v) - a.bg[i]
		if d > thr || d < -thr {
			changed++
		}
	}
	score = float64(changed) / float64(len(frame))
	if score > globalChange {
		// Lighting changed: adopt the new picture as background at once.
		a.learn(1)
		return score, false
	}
	// Learn slowly where something changed, so a person standing still is
	// not absorbed into the background within a second.
	for i, v := range a.blurred {
		d := float32(v) - a.bg[i]
		rate := float32(0.05)
		if d > thr || d < -thr {
			rate = 0.01
		}
		a.bg[i] += d * rate
	}
	return score, score >= a.MinArea
}

func (a *PixelAnalyzer) learn(rate float32) {
	for i, v := range a.blurred {
		a.bg[i] += (float32(v) - a.bg[i]) * rate
	}
}

// boxBlur is a 3×3 mean filter; it removes sensor noise that would
// otherwise count as change. Border pixels are copied.
func boxBlur(dst, src []byte, w, h int) {
	copy(dst, src)
	for y := 1; y < h-1; y++ {
		r0, r1, r2 := (y-1)*w, y*w, (y+1)*w
		for x := 1; x < w-1; x++ {
			s := int(src[r0+x-1]) + int(src[r0+x]) + int(src[r0+x+1]) +
				int(src[r1+x-1]) + int(src[r1+x]) + int(src[r1+x+1]) +
				int(src[r2+x-1]) + int(src[r2+x]) + int(src[r2+x+1])
			dst[r1+x] = uint8(s / 9)
		}
	}
}
