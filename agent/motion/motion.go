// Package motion decides when a camera sees motion. A Detector is fed the
// access units of the camera's (detect) stream and reports, frame by frame,
// whether there is motion. There are three (see Kind):
//
//   - pixel decodes every frame through an ffmpeg subprocess (Annex-B on
//     stdin, 160×90 gray frames on stdout) and compares it with a
//     background (PixelAnalyzer). No cgo, and a decoder crash costs a
//     restart of the subprocess, not the agent. Accurate, and the most
//     expensive: decoding is nearly all of its cost.
//   - compressed decodes nothing: it follows the coded size of predicted
//     frames (normalised by their quantiser) against a running baseline
//     (see package bitstream). Nearly free, but it cannot tell where the
//     picture changed, so lighting changes and noise fool it, and an object
//     the encoder predicts well (a rigid shape sliding across) barely
//     changes the sizes.
//   - hybrid is the pixel detector that decodes only keyframes while
//     nothing happens, and a GOP in full when its keyframe or the next one
//     shows a blob, or its frame sizes double (see Hybrid). Its verdicts
//     come up to a GOP late.
//
// Constants of the analysis are stated per frame at 25 fps and scaled to
// the time between the frames analysed, so a detect stream at a lower rate
// (or keyframes alone) behaves the same in time.
package motion

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/vigil-cctv/vigil/agent/media"
)

// Detector is fed one stream's access units in order.
type Detector interface {
	// Feed gives the detector the next access unit. It never blocks for
	// long: a detector that cannot keep up drops units until a keyframe.
	Feed(au *media.AccessUnit)
	// Healthy returns nil while the detector works, else why it does not.
	Healthy() error
	// Close stops the detector and waits for it.
	Close() error
}

// Lagging is implemented by a detector whose verdicts may trail the units
// fed by more than a few frames (the hybrid's, by up to two GOPs): whoever
// waits for verdicts before feeding more must allow MaxLag units.
type Lagging interface {
	MaxLag() int
}

// OnFrame receives, for every frame judged, its arrival time, its score
// (the fraction of the picture that changed, or for the compressed
// detector how far the frame's size is above its baseline) and whether
// that is motion. Frames without motion matter too: they tell how far the
// detector got, so a recorder never takes a detector that lags behind for
// a still scene. Calls come in the order of the frames.
type OnFrame func(at time.Time, score float64, moving bool)

// Kind names a detector.
type Kind string

// The detectors.
const (
	KindPixel      Kind = "pixel"
	KindCompressed Kind = "compressed"
	KindHybrid     Kind = "hybrid"
)

// Kinds lists the detectors.
var Kinds = []Kind{KindHybrid, KindPixel, KindCompressed}

// DefaultKind is the detector a camera uses unless told otherwise, chosen
// by `vigil motion eval` on the generated evaluation set (README, "Motion
// detection"): the hybrid keeps the pixel detector's recall and precision
// at a fraction of its CPU.
const DefaultKind = KindHybrid

// ParseKind returns the kind named s.
func ParseKind(s string) (Kind, error) {
	k := Kind(s)
	if slices.Contains(Kinds, k) {
		return k, nil
	}
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return "", fmt.Errorf("unknown detector %q (known: %s)", s, strings.Join(names, ", "))
}

// Defaults of Config.
const (
	DefaultSensitivity = 50
	DefaultMinArea     = 0.005
	// MaxFPS bounds Config.FPS: no camera sends more.
	MaxFPS = 120
	// Bounds on masks, so a configuration cannot make the analyzer's
	// set-up arbitrarily slow.
	MaxMasks       = 64
	MaxMaskPoints  = 256
	MaxMaskCoord   = 1 << 16
	maxSensitivity = 100
)

// ThresholdFor returns the pixel threshold (gray levels from the
// background) of a sensitivity of 1-100: 50 gives 25, each 25 more halves
// it (75: 13, 100: 6), each 25 less doubles it.
func ThresholdFor(sensitivity int) int {
	t := 25 * math.Pow(2, float64(DefaultSensitivity-sensitivity)/25)
	return min(255, max(1, int(math.Round(t))))
}

// Config configures a detector.
type Config struct {
	// Name names the camera in logs.
	Name string
	// Detector is the kind (default DefaultKind).
	Detector Kind
	// Sensitivity, 1-100 (default 50), sets Threshold when it is zero and
	// the compressed detector's trigger: higher sees smaller changes.
	Sensitivity int
	// Threshold is the difference (1-255) from the background that marks
	// a pixel as changed (default from Sensitivity).
	Threshold int
	// MinArea is the fraction of the picture (0-1) whose change is motion
	// however it is broken up (default DefaultMinArea).
	MinArea float64
	// MinBlob is the least area of one connected moving blob, in pixels of
	// the picture (MaskWidth×MaskHeight, or the stream's own size): smaller
	// ones are noise. Zero: about a distant person (see DefaultMinBlob).
	MinBlob int
	// Masks are polygons, in pixels of a MaskWidth×MaskHeight picture (the
	// stream's own size when zero), inside which nothing counts as motion.
	Masks                 [][]MaskPoint
	MaskWidth, MaskHeight int
	// FPS caps the frames analysed per second (0: every frame decoded).
	// It saves the analysis, not the decoding: predicted frames need the
	// frames before them.
	FPS     float64
	OnFrame OnFrame
	// FFmpeg is the ffmpeg binary (default "ffmpeg" on PATH).
	FFmpeg string
	// RestartDelay is the least time between two ffmpeg starts (default 2s).
	RestartDelay time.Duration
	Logger       *slog.Logger
}

// CheckAndSetDefaults validates the configuration and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.OnFrame == nil {
		return errors.New("motion: OnFrame is required")
	}
	if c.Detector == "" {
		c.Detector = DefaultKind
	}
	if _, err := ParseKind(string(c.Detector)); err != nil {
		return fmt.Errorf("motion: %w", err)
	}
	if c.Sensitivity == 0 {
		c.Sensitivity = DefaultSensitivity
	}
	if c.Sensitivity < 1 || c.Sensitivity > maxSensitivity {
		return fmt.Errorf("motion: sensitivity %d not within 1-%d", c.Sensitivity, maxSensitivity)
	}
	if c.Threshold == 0 {
		c.Threshold = ThresholdFor(c.Sensitivity)
	}
	if c.Threshold < 1 || c.Threshold > 255 {
		return fmt.Errorf("motion: threshold %d not within 1-255", c.Threshold)
	}
	if c.MinArea == 0 {
		c.MinArea = DefaultMinArea
	}
	if !(c.MinArea > 0 && c.MinArea <= 1) {
		return fmt.Errorf("motion: min area %g not within (0, 1]", c.MinArea)
	}
	if c.MinBlob < 0 {
		return fmt.Errorf("motion: min blob %d is negative", c.MinBlob)
	}
	if !(c.FPS >= 0 && c.FPS <= MaxFPS) {
		return fmt.Errorf("motion: fps %g not within 0-%d", c.FPS, MaxFPS)
	}
	if c.MaskWidth < 0 || c.MaskHeight < 0 || (c.MaskWidth == 0) != (c.MaskHeight == 0) {
		return fmt.Errorf("motion: mask picture %dx%d invalid", c.MaskWidth, c.MaskHeight)
	}
	if err := CheckMasks(c.Masks); err != nil {
		return fmt.Errorf("motion: %w", err)
	}
	if c.FFmpeg == "" {
		c.FFmpeg = "ffmpeg"
	}
	if c.RestartDelay == 0 {
		c.RestartDelay = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// CheckMasks validates mask polygons without knowing the picture: at most
// MaxMasks of 3 to MaxMaskPoints points, coordinates within
// 0-MaxMaskCoord.
func CheckMasks(masks [][]MaskPoint) error {
	if len(masks) > MaxMasks {
		return fmt.Errorf("%d masks, at most %d", len(masks), MaxMasks)
	}
	for i, p := range masks {
		if len(p) < 3 || len(p) > MaxMaskPoints {
			return fmt.Errorf("mask %d has %d points, want 3-%d", i, len(p), MaxMaskPoints)
		}
		for _, pt := range p {
			if !(pt.X >= 0 && pt.X <= MaxMaskCoord && pt.Y >= 0 && pt.Y <= MaxMaskCoord) {
				return fmt.Errorf("mask %d: point (%g, %g) not within 0-%d", i, pt.X, pt.Y, MaxMaskCoord)
			}
		}
	}
	return nil
}

// New makes the detector cfg.Detector names.
func New(cfg Config) (Detector, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	switch cfg.Detector {
	case KindPixel:
		return NewPixel(cfg)
	case KindCompressed:
		return NewCompressed(cfg)
	default:
		return NewHybrid(cfg)
	}
}

// newAnalyzer makes the frame analyzer the configuration describes, for a
// stream with the given parameters.
func (cfg *Config) newAnalyzer(params *media.Params) (*PixelAnalyzer, error) {
	a, err := NewPixelAnalyzer(FrameWidth, FrameHeight, cfg.Threshold, cfg.MinArea)
	if err != nil {
		return nil, err
	}
	w, h := cfg.MaskWidth, cfg.MaskHeight
	if w == 0 {
		if params == nil {
			// The picture's size comes with the stream: masks and the
			// least blob are scaled when it starts.
			return a, nil
		}
		w, h = params.Width, params.Height
	}
	if cfg.MinBlob > 0 && w > 0 && h > 0 {
		a.MinBlob = max(1, int(math.Round(float64(cfg.MinBlob)*FrameWidth*FrameHeight/float64(w*h))))
	}
	if err := a.SetMasks(cfg.Masks, w, h); err != nil {
		return nil, err
	}
	return a, nil
}

// frameClock turns the arrival times of the frames decoded into the time
// between frames analysed, and applies the FPS cap.
type frameClock struct {
	minGap time.Duration // 0: every frame
	last   time.Time
}

func newFrameClock(fps float64) frameClock {
	if fps <= 0 {
		return frameClock{}
	}
	// A little under the period, so that 25 fps capped at 5 keeps every
	// fifth frame despite jitter.
	return frameClock{minGap: time.Duration(0.9 * float64(time.Second) / fps)}
}

// next returns whether the frame at `at` is analysed and, if so, the time
// since the last frame analysed (NominalInterval for the first).
func (c *frameClock) next(at time.Time, force bool) (time.Duration, bool) {
	if c.last.IsZero() {
		c.last = at
		return NominalInterval, true
	}
	dt := at.Sub(c.last)
	if !force && c.minGap > 0 && dt < c.minGap && dt >= 0 {
		return 0, false
	}
	c.last = at
	return max(dt, 0), true
}
