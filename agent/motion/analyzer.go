package motion

import (
	"fmt"
	"math"
	"time"
)

// Analysis frame size: small gray frames are enough to see a person move and
// cost little to compare.
const (
	FrameWidth  = 160
	FrameHeight = 90
)

// Tuning of the analyzer. These are physical rather than per-clip choices:
// they say what a lighting change, a settling exposure and a shaking camera
// look like at the analysis size.
const (
	// globalChange is the fraction of changed pixels (after brightness and
	// contrast are normalised) above which a change is taken for lighting
	// (lights switched, IR cut filter, auto exposure), not for something
	// moving: the background is re-learnt instead.
	globalChange = 0.3
	// A jump of the picture's mean brightness (gray levels) or contrast
	// (ratio) against the background beyond these is a lighting change
	// too, even when normalisation explains most pixels: lights and IR
	// switches move the mean by 30-60 levels and the contrast by 15-30%,
	// a passing person by about one level and a few percent, slow drift
	// (which the background follows) by under 10 levels.
	lightingJump = 20
	contrastJump = 1.25
	// settleTime is how long after a global change the background is
	// re-learnt fast and nothing is reported, while the exposure recovers.
	settleTime = time.Second
	// Learning rates per frame at the nominal frame interval (see
	// rateFor): while settling, of still pixels, of changed pixels. 0.05
	// forgets the old background within about a second; 0.01 keeps a
	// person who stands still for a few seconds.
	settleRate   = 0.3
	stillRate    = 0.05
	changedRate  = 0.01
	maxStillRate = 0.5
	// DefaultPersist is how many consecutive analysed frames must show a
	// moving blob before motion is reported (3 frames = 0.12 s at 25 fps).
	// At lower frame rates the same span of time is required, and at
	// least two frames (see PixelAnalyzer.Persist).
	DefaultPersist = 3
	// maxShift is the largest camera shake, in analysis pixels, that is
	// compensated by shifting the background.
	maxShift = 2
	// shiftStride subsamples the shake search: it needs the whole
	// picture's texture, not every pixel of it.
	shiftStride = 4
)

// NominalInterval is the frame interval the per-frame constants above are
// stated for (25 fps). Frames further apart learn more per frame, so that
// the background and the confirmation of motion follow time, not frame
// counts: a 5 fps detect stream or keyframes alone behave like 25 fps.
const NominalInterval = 40 * time.Millisecond

// maxInterval caps the time one frame accounts for: after a longer gap
// (a decoder restart) the background is simply re-learnt.
const maxInterval = time.Minute

// DefaultMinBlob returns the default least connected-component area, in
// pixels of a w×h analysis frame, of a moving object: about a distant
// person (3×9 px at 160×90), not sensor noise.
func DefaultMinBlob(w, h int) int {
	return max(4, int(math.Round(float64(w*h)*12.0/(160*90))))
}

// PixelAnalyzer compares gray frames with a running-average background:
// brightness and contrast normalised, thresholded, corrected for camera
// shake, split into connected components, and confirmed over a few frames.
// It is not safe for concurrent use.
type PixelAnalyzer struct {
	// Threshold is the difference (0-255) from the background that marks a
	// pixel as changed.
	Threshold int
	// MinArea is the fraction of (unmasked) pixels (0-1) whose change is
	// motion however it is broken up into blobs.
	MinArea float64
	// MinBlob is the least area, in analysis pixels, of one connected blob
	// of changed pixels that is motion on its own; smaller blobs are noise.
	MinBlob int
	// Sparse says the frames are samples seconds apart (keyframes alone),
	// each standing for the time since the last: changed pixels too learn
	// in proportion to that time, so that a car parked since the last
	// sample is absorbed as quickly (in time) as at the full frame rate.
	Sparse bool
	// Persist is how many consecutive frames, NominalInterval apart, must
	// show motion before it is reported. Frames further apart need to span
	// the same time ((Persist-1) intervals), and at least two of them: one
	// changed frame alone is a flash or a decoding glitch.
	Persist int

	w, h    int
	bg      []float32
	blurred []uint8
	ignore  []bool // masked pixels, nil when none
	active  int    // pixels not masked

	changed []bool
	label   []int32
	stack   []int32

	streak int
	span   time.Duration // from the first frame of the streak
	settle time.Duration // settling time left
	// candidate is whether the last frame showed a moving blob, confirmed
	// or not; largest is the area of its largest blob.
	candidate bool
	largest   int
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
	return &PixelAnalyzer{
		Threshold: threshold, MinArea: minArea, MinBlob: DefaultMinBlob(w, h), Persist: DefaultPersist,
		w: w, h: h, active: w * h,
		blurred: make([]uint8, w*h), changed: make([]bool, w*h), label: make([]int32, w*h),
	}, nil
}

// SetMasks makes the analyzer ignore every pixel whose centre lies inside
// one of polys, polygons in pixels of a frameW×frameH picture (the camera's
// picture, scaled to the analysis size here).
func (a *PixelAnalyzer) SetMasks(polys [][]MaskPoint, frameW, frameH int) error {
	if len(polys) == 0 {
		a.ignore, a.active = nil, a.w*a.h
		return nil
	}
	if frameW <= 0 || frameH <= 0 {
		return fmt.Errorf("motion: mask frame %dx%d invalid", frameW, frameH)
	}
	for i, p := range polys {
		if len(p) < 3 {
			return fmt.Errorf("motion: mask %d has %d points, need at least 3", i, len(p))
		}
	}
	sx, sy := float64(frameW)/float64(a.w), float64(frameH)/float64(a.h)
	ignore := make([]bool, a.w*a.h)
	active := 0
	for y := range a.h {
		for x := range a.w {
			px, py := (float64(x)+0.5)*sx, (float64(y)+0.5)*sy
			for _, p := range polys {
				if insidePolygon(p, px, py) {
					ignore[y*a.w+x] = true
					break
				}
			}
			if !ignore[y*a.w+x] {
				active++
			}
		}
	}
	if active == 0 {
		return fmt.Errorf("motion: masks cover the whole picture")
	}
	a.ignore, a.active = ignore, active
	return nil
}

// MaskPoint is a polygon vertex in pixels of the camera's picture.
type MaskPoint struct{ X, Y float64 }

// insidePolygon is the even-odd rule.
func insidePolygon(p []MaskPoint, x, y float64) bool {
	in := false
	for i, j := 0, len(p)-1; i < len(p); j, i = i, i+1 {
		if (p[i].Y > y) != (p[j].Y > y) &&
			x < (p[j].X-p[i].X)*(y-p[i].Y)/(p[j].Y-p[i].Y)+p[i].X {
			in = !in
		}
	}
	return in
}

// Analyze takes the next frame (w×h bytes, row-major), NominalInterval
// after the previous one, and returns the fraction of changed pixels and
// whether that is motion.
func (a *PixelAnalyzer) Analyze(frame []byte) (score float64, moving bool) {
	return a.AnalyzeAfter(frame, NominalInterval)
}

// Candidate reports whether the last frame analysed showed a moving blob,
// whether or not it has persisted long enough to be motion: a reason to
// look at the frames that follow.
func (a *PixelAnalyzer) Candidate() bool { return a.candidate }

// Hint reports whether the last frame analysed showed a candidate, or a
// blob of at least half the least blob: a frame compared with a background
// learnt from frames seconds apart (keyframes alone) is noisier, and a
// small object may show only in part.
func (a *PixelAnalyzer) Hint() bool {
	return a.candidate || a.largest >= max(1, max(1, a.MinBlob)/2)
}

// rateFor turns a learning rate per NominalInterval into the rate for a
// frame dt after the previous one.
func rateFor(rate float64, dt time.Duration) float32 {
	if dt == NominalInterval {
		return float32(rate)
	}
	return float32(1 - math.Pow(1-rate, float64(dt)/float64(NominalInterval)))
}

// AnalyzeAfter is Analyze for a frame dt after the previous one analysed.
func (a *PixelAnalyzer) AnalyzeAfter(frame []byte, dt time.Duration) (score float64, moving bool) {
	a.candidate, a.largest = false, 0
	if len(frame) != a.w*a.h {
		return 0, false
	}
	dt = min(max(dt, 0), maxInterval)
	boxBlur(a.blurred, frame, a.w, a.h)
	if a.bg == nil {
		a.bg = make([]float32, len(frame))
		a.learn(1)
		return 0, false
	}
	lut, jump := a.normalise()
	thr := float32(a.Threshold)
	count := 0
	for i, v := range a.blurred {
		d := lut[v] - a.bg[i]
		c := (d > thr || d < -thr) && (a.ignore == nil || !a.ignore[i])
		a.changed[i] = c
		if c {
			count++
		}
	}
	score = float64(count) / float64(a.active)
	if score > globalChange || jump {
		// Lighting changed: adopt the new picture as background at once and
		// keep re-learning fast while the exposure settles.
		a.learn(1)
		a.settle, a.streak = settleTime, 0
		return score, false
	}
	if a.settle > 0 {
		a.settle -= dt
		a.learn(rateFor(settleRate, dt))
		a.streak = 0
		return score, false
	}
	minBlob := max(1, a.MinBlob)
	hintBlob := max(1, minBlob/2)
	dx, dy := 0, 0
	if count >= hintBlob {
		// Something changed: take camera shake and sub-pixel jitter out
		// before deciding, by comparing each pixel with the best-matching
		// background pixel near its (shake-corrected) place.
		dx, dy = a.bestShift(lut, thr)
		count = a.tolerantMask(lut, thr, dx, dy)
	}
	largest := 0
	if count >= hintBlob {
		largest = a.blobs()
	}
	// Motion is one compact object of MinBlob pixels, or (rain, snow or
	// anything else broken into specks) MinArea of the picture changed.
	score = float64(count) / float64(a.active)
	a.largest = largest
	a.candidate = largest >= minBlob || score >= a.MinArea
	switch {
	case !a.candidate:
		a.streak, a.span = 0, 0
	case a.streak == 0:
		a.streak, a.span = 1, 0
	default:
		a.streak++
		a.span += dt
	}
	if dx == 0 && dy == 0 {
		a.update(dt)
	}
	return score, a.persisted()
}

// persisted reports whether the current streak of candidate frames is
// motion: Persist frames, or fewer (at least two) spanning as long as
// Persist frames at the nominal rate.
func (a *PixelAnalyzer) persisted() bool {
	need := max(1, a.Persist)
	if a.streak >= need {
		return true
	}
	return a.streak >= min(2, need) && a.span >= time.Duration(need-1)*NominalInterval
}

// normalise returns a table mapping the blurred frame's gray levels to the
// background's brightness and contrast, so that exposure and lighting
// changes of the whole picture are not differences, and whether brightness
// or contrast jumped as when lights switch. Brightness is the median and
// contrast the interquartile range over the unmasked pixels: a person
// covering a few percent of the picture hardly moves either, even on a
// flat night scene, where the mean and standard deviation would.
func (a *PixelAnalyzer) normalise() (lut *[256]float32, jump bool) {
	var hc, hb [256]int
	n := 0
	for i := 0; i < len(a.blurred); i += 3 {
		if a.ignore != nil && a.ignore[i] {
			continue
		}
		hc[a.blurred[i]]++
		hb[min(255, max(0, int(a.bg[i]+0.5)))]++
		n++
	}
	lut = new([256]float32)
	gain, off := 1.0, 0.0
	if n > 0 {
		c25, c50, c75 := quantiles(&hc, n)
		b25, b50, b75 := quantiles(&hb, n)
		// Contrast is only measured on a picture with some: on a flat one
		// the quartiles are a few levels of noise apart.
		if iqrC, iqrB := c75-c25, b75-b25; iqrC >= minContrast && iqrB >= minContrast {
			gain = iqrB / iqrC
			jump = gain > contrastJump || gain < 1/contrastJump
		}
		jump = jump || math.Abs(c50-b50) > lightingJump
		gain = min(2.5, max(0.4, gain))
		off = b50 - c50*gain
	}
	for v := range lut {
		lut[v] = float32(float64(v)*gain + off)
	}
	return lut, jump
}

// minContrast is the least interquartile range (gray levels) on which a
// contrast change is measured.
const minContrast = 8

// quantiles returns the 25th, 50th and 75th percentiles of a histogram of
// n values.
func quantiles(h *[256]int, n int) (q25, q50, q75 float64) {
	targets := [3]int{n / 4, n / 2, 3 * n / 4}
	var q [3]float64
	k, seen := 0, 0
	for v, c := range h {
		seen += c
		for k < 3 && seen > targets[k] {
			q[k] = float64(v)
			k++
		}
	}
	return q[0], q[1], q[2]
}

// bestShift finds the integer shift of the background (±maxShift) that
// best explains the frame, on every shiftStride-th pixel of every
// shiftStride-th row: camera shake moves the whole picture, a moving
// object does not.
func (a *PixelAnalyzer) bestShift(lut *[256]float32, thr float32) (int, int) {
	best, bx, by, n0 := -1, 0, 0, 0
	for dy := -maxShift; dy <= maxShift; dy++ {
		for dx := -maxShift; dx <= maxShift; dx++ {
			n := 0
			for y := maxShift; y < a.h-maxShift; y += shiftStride {
				row, srow := y*a.w, (y+dy)*a.w
				for x := maxShift; x < a.w-maxShift; x += shiftStride {
					d := lut[a.blurred[row+x]] - a.bg[srow+x+dx]
					if d > thr || d < -thr {
						n++
					}
				}
			}
			if dx == 0 && dy == 0 {
				n0 = n
			}
			if best < 0 || n < best || (n == best && dx*dx+dy*dy < bx*bx+by*by) {
				best, bx, by = n, dx, dy
			}
		}
	}
	// A shift must explain clearly more than standing still does: on a
	// flat picture every shift looks alike, and a chance winner would stop
	// the background learning.
	if 3*(n0-best) < n0 || n0-best < 4 {
		return 0, 0
	}
	return bx, by
}

// tolerantMask marks a pixel changed only when it differs from every
// background pixel within one pixel of its place shifted by (dx, dy), and
// returns how many are. An object differs from all the background around
// it; an edge that moved by a pixel does not.
func (a *PixelAnalyzer) tolerantMask(lut *[256]float32, thr float32, dx, dy int) int {
	count := 0
	for y := range a.h {
		for x := range a.w {
			i := y*a.w + x
			if !a.changed[i] && dx == 0 && dy == 0 {
				continue
			}
			c := a.ignore == nil || !a.ignore[i]
			v := lut[a.blurred[i]]
			compared := false
			for sy := y + dy - 1; c && sy <= y+dy+1; sy++ {
				if sy < 0 || sy >= a.h {
					continue
				}
				for sx := x + dx - 1; sx <= x+dx+1; sx++ {
					if sx < 0 || sx >= a.w {
						continue
					}
					compared = true
					d := v - a.bg[sy*a.w+sx]
					if d <= thr && d >= -thr {
						c = false
						break
					}
				}
			}
			// Picture shaken in from outside the background is unknown,
			// not changed.
			c = c && compared
			a.changed[i] = c
			if c {
				count++
			}
		}
	}
	return count
}

// blobs labels the 8-connected components of the changed mask and returns
// the area of the largest.
func (a *PixelAnalyzer) blobs() (largest int) {
	clear(a.label)
	next := int32(0)
	for start, c := range a.changed {
		if !c || a.label[start] != 0 {
			continue
		}
		next++
		a.label[start] = next
		a.stack = append(a.stack[:0], int32(start))
		area := 0
		for len(a.stack) > 0 {
			i := int(a.stack[len(a.stack)-1])
			a.stack = a.stack[:len(a.stack)-1]
			area++
			x, y := i%a.w, i/a.w
			for ny := max(0, y-1); ny <= min(a.h-1, y+1); ny++ {
				for nx := max(0, x-1); nx <= min(a.w-1, x+1); nx++ {
					j := ny*a.w + nx
					if a.changed[j] && a.label[j] == 0 {
						a.label[j] = next
						a.stack = append(a.stack, int32(j))
					}
				}
			}
		}
		largest = max(largest, area)
	}
	return largest
}

// update learns the background slowly, more slowly where something
// changed, so a person standing still is not absorbed within a second.
//
// Only still pixels learn in proportion to the time since the last frame
// (up to maxStillRate, so that the background keeps averaging a few frames'
// noise when frames are seconds apart). A changed pixel learns at most one
// nominal frame's worth: the frame says something is there now, not that
// it was there all the time since the last one, and an object that has just
// appeared must not be half absorbed before the next frame is compared.
func (a *PixelAnalyzer) update(dt time.Duration) {
	still, changed := min(maxStillRate, rateFor(stillRate, dt)), rateFor(changedRate, min(dt, NominalInterval))
	if a.Sparse {
		changed = rateFor(changedRate, dt)
	}
	for i, v := range a.blurred {
		d := float32(v) - a.bg[i]
		rate := still
		if a.changed[i] {
			rate = changed
		}
		a.bg[i] += d * rate
	}
}

// Background is a copy of an analyzer's background, to be adopted by
// another one of the same size.
type Background struct {
	bg     []float32
	settle time.Duration
}

// Background returns a copy of the background (empty before the first
// frame).
func (a *PixelAnalyzer) Background() Background {
	if a.bg == nil {
		return Background{}
	}
	return Background{bg: append([]float32(nil), a.bg...), settle: a.settle}
}

// Adopt takes a background (one that kept learning while this analyzer
// did not look) and forgets any streak. An empty one is ignored.
func (a *PixelAnalyzer) Adopt(b Background) {
	if len(b.bg) != a.w*a.h {
		return
	}
	a.bg = append(a.bg[:0], b.bg...)
	a.streak, a.span, a.settle, a.candidate, a.largest = 0, 0, b.settle, false, 0
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
