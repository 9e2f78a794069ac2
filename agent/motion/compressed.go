package motion

import (
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/vigil-cctv/vigil/agent/media"
	"github.com/vigil-cctv/vigil/agent/motion/bitstream"
)

// Tuning of the frame-size tracker. Sizes are compared in log2 of bytes,
// plus the quantiser over 6 when the stream says it (H.264): an encoder
// that raises the quantiser by 6 halves the bits of the same picture, so a
// rate control that moves the quantiser does not look like activity.
const (
	// sizeBuckets splits the GOP: encoders spend more on the frames just
	// after a keyframe (they feed more of the GOP), so each part of the GOP
	// has its own baseline.
	sizeBuckets = 8
	// sizeWindow is how many predicted frames the short-term excess is
	// averaged over (0.32 s at 25 fps): one frame's size is mostly noise.
	sizeWindow = 8
	// sizeLearn is the time constant of the baseline, which follows slow
	// changes (dusk, weather) and not a passing person; sizeSettleLearn
	// the one while settling after a jump.
	sizeLearn       = 20 * time.Second
	sizeSettleLearn = 200 * time.Millisecond
	// sizeTrigger is the short-term excess (log2: 0.4 is 32% more bits)
	// that counts as activity at the default sensitivity; it halves with
	// each 25 of sensitivity above 50.
	sizeTrigger = 0.4
	// sizeJump is the excess of one frame (log2: 4 times the bits) that is
	// taken for a change of the whole picture (lights, IR switch, a
	// camera moved): the baseline is re-learnt for sizeSettle.
	sizeJump   = 2.0
	sizeSettle = 2 * time.Second
	// sizePersist is how many predicted frames in a row must show the
	// excess.
	sizePersist = 3
	// sizeSpread scales the trigger and the jump to how much the sizes of
	// quiet frames vary: some encoders alternate large and tiny frames on
	// a noisy night picture (the quantiser does not explain it), and what
	// is normal there is a jump elsewhere. The trigger is at least
	// sizeSpread deviations of the short-term mean, the jump sizeJumpSpread
	// deviations of one frame.
	sizeSpread     = 3.0
	sizeJumpSpread = 4.0
	// sizeDevStart is the deviation assumed before it is measured.
	sizeDevStart = 0.25
	// sizeWarmup is how many frames of a GOP bucket are averaged (as a
	// plain mean) before the bucket's baseline judges anything.
	sizeWarmup = 8
	// sizeActiveLearn slows the baseline while the excess is above the
	// trigger: a long event must not become the norm, but a stream whose
	// sizes changed for good (a new bitrate) must not stay active forever.
	sizeActiveLearn = 0.1
	// defaultGOP is assumed until two keyframes have been seen.
	defaultGOP = 2 * time.Second
)

// sizeTracker follows the coded size of a stream's predicted frames
// against their usual size. Not safe for concurrent use.
type sizeTracker struct {
	trigger float64
	params  *media.Params
	parser  *bitstream.Parser
	err     error // the parser could not be made for params

	base    [sizeBuckets]float64
	count   [sizeBuckets]int // samples learnt, up to sizeWarmup
	lastKey time.Time
	gop     time.Duration
	last    time.Time // arrival of the last predicted frame

	recent [sizeWindow]float64
	n, i   int
	dev    float64   // running mean absolute excess (learnt slower while active)
	settle time.Time // re-learning until then
	streak int
}

// newSizeTracker makes a tracker whose trigger is trigger (log2) at the
// default sensitivity, halved by each 25 of sensitivity above it.
func newSizeTracker(sensitivity int, trigger float64) *sizeTracker {
	return &sizeTracker{trigger: trigger * math.Pow(2, float64(DefaultSensitivity-sensitivity)/25), dev: sizeDevStart}
}

// sizeVerdict is what the sizes say about one frame.
type sizeVerdict struct {
	// excess is the short-term mean excess over the baseline (log2).
	excess float64
	// jump is true for a frame far above its baseline: a change of the
	// whole picture, or something large and sudden.
	jump bool
	// active is true when the excess has been above the trigger for
	// sizePersist predicted frames.
	active bool
	// measured is false for frames that say nothing (keyframes, frames
	// before the baseline is known).
	measured bool
	// typ is the frame's slice type.
	typ bitstream.SliceType
}

// observe reads one access unit.
func (s *sizeTracker) observe(au *media.AccessUnit) sizeVerdict {
	if !au.Params.Equal(s.params) {
		*s = sizeTracker{trigger: s.trigger, params: au.Params, dev: sizeDevStart}
		s.parser, s.err = bitstream.NewParser(au.Params)
	}
	if s.parser == nil {
		return sizeVerdict{}
	}
	f := s.parser.Frame(au.NALUs)
	at := au.Received
	if f.Key {
		if !s.lastKey.IsZero() {
			if gap := at.Sub(s.lastKey); gap > 0 && gap < time.Minute {
				if s.gop == 0 {
					s.gop = gap
				} else {
					s.gop += (gap - s.gop) / 4
				}
			}
		}
		s.lastKey = at
		return sizeVerdict{}
	}
	if f.Bytes == 0 || (f.Type != bitstream.SliceP && f.Type != bitstream.SliceB) || s.lastKey.IsZero() {
		return sizeVerdict{typ: f.Type}
	}
	x := math.Log2(float64(f.Bytes))
	if f.QP != bitstream.UnknownQP {
		x += float64(f.QP) / 6
	}
	gop := s.gop
	if gop == 0 {
		gop = defaultGOP
	}
	b := min(sizeBuckets-1, max(0, int(float64(at.Sub(s.lastKey))/float64(gop)*sizeBuckets)))
	dt := NominalInterval
	if !s.last.IsZero() {
		dt = min(max(at.Sub(s.last), 0), time.Minute)
	}
	s.last = at
	e := x - s.base[b]
	if s.count[b] < sizeWarmup {
		s.count[b]++
		s.base[b] += (x - s.base[b]) / float64(s.count[b])
		if s.count[b] > 1 {
			s.dev += (math.Abs(e) - s.dev) / float64(s.count[b])
		}
		return sizeVerdict{typ: f.Type}
	}
	v := sizeVerdict{measured: true, typ: f.Type}
	trigger := max(s.trigger, sizeSpread*s.dev/math.Sqrt(sizeWindow))
	if e > max(sizeJump, sizeJumpSpread*s.dev) {
		v.jump = true
		s.settle = at.Add(sizeSettle)
		s.n, s.i, s.streak = 0, 0, 0
	}
	s.recent[s.i] = e
	s.i = (s.i + 1) % sizeWindow
	s.n = min(s.n+1, sizeWindow)
	sum := 0.0
	for k := range s.n {
		sum += s.recent[k]
	}
	v.excess = sum / float64(s.n)
	if at.Before(s.settle) {
		s.base[b] += (x - s.base[b]) * learnRate(sizeSettleLearn, dt)
		s.streak = 0
		return v
	}
	r := learnRate(sizeLearn, dt)
	if v.excess > trigger {
		s.streak++
		r *= sizeActiveLearn
	} else {
		s.streak = 0
	}
	s.base[b] += (x - s.base[b]) * r
	s.dev += (math.Abs(e) - s.dev) * r
	v.active = s.streak >= sizePersist
	return v
}

// learnRate is the share of the distance to the new value covered in dt by
// a running average of time constant tau.
func learnRate(tau, dt time.Duration) float64 {
	return 1 - math.Exp(-float64(dt)/float64(tau))
}

// Compressed is the compressed-domain detector: motion is predicted frames
// persistently larger than usual (see sizeTracker). It decodes nothing and
// cannot apply masks; a jump of the frame size (lights switched) is not
// motion, and what follows it is not judged until the baseline has
// settled.
type Compressed struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	sizes  *sizeTracker
	moving bool
	closed bool
	health error
}

var _ Detector = (*Compressed)(nil)

// NewCompressed makes a compressed-domain detector (cfg.Detector is
// ignored). Masks are refused: it cannot tell where the picture changed.
func NewCompressed(cfg Config) (*Compressed, error) {
	cfg.Detector = KindCompressed
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	if len(cfg.Masks) > 0 {
		return nil, fmt.Errorf("motion: the %s detector cannot apply masks; use %s or %s", KindCompressed, KindHybrid, KindPixel)
	}
	return &Compressed{
		cfg: cfg, sizes: newSizeTracker(cfg.Sensitivity, sizeTrigger),
		log: cfg.Logger.With("component", "motion", "camera", cfg.Name, "detector", string(KindCompressed)),
	}, nil
}

// Feed implements Detector.
func (c *Compressed) Feed(au *media.AccessUnit) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	v := c.sizes.observe(au)
	if err := c.sizes.err; err != nil {
		if c.health == nil {
			c.log.Warn("motion detector unavailable", "error", err)
		}
		c.health = fmt.Errorf("motion: %w", err)
		c.mu.Unlock()
		return
	}
	c.health = nil
	if v.measured {
		c.moving = v.active
	}
	moving := c.moving
	c.mu.Unlock()
	c.cfg.OnFrame(au.Received, v.excess, moving)
}

// Healthy implements Detector.
func (c *Compressed) Healthy() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.health
}

// Close implements Detector.
func (c *Compressed) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}
