package motion

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/vigil-cctv/vigil/agent/media"
	"github.com/vigil-cctv/vigil/agent/motion/bitstream"
)

// Tuning of the hybrid detector.
const (
	// hybridHold is how long after the last sign of activity (motion
	// confirmed, or the frame sizes) a new GOP is decoded in full whatever
	// its keyframe shows.
	hybridHold = time.Second
	// hybridSizeTrigger is the sizes' trigger (see sizeTrigger) that wakes
	// the analysis: twice the usual bits, persistently. The probes find
	// what the evaluation set holds without it; lower, it mostly woke on
	// noise and slow drift, which cost decoding and found nothing more.
	// Single jumps do not wake it: they are lighting changes, which the
	// probes handle as the analysis would (not motion).
	hybridSizeTrigger = 1.0
	// maxGOPUnits bounds the units of one GOP kept until it is decided (12
	// s at 25 fps); the rest of a longer one is judged quiet.
	maxGOPUnits = 300
	// maxKeptUnits bounds the units of all GOPs kept undecided: about two
	// GOPs normally (the last one and the current), more while the decoder
	// lags (ffmpeg takes a fifth of a second to start). Beyond it the
	// oldest GOP is judged quiet. It is well above MaxLag, so that an
	// evaluation feeding as fast as it may never comes near.
	maxKeptUnits = 4 * maxGOPUnits
	// hybridQueue is the decoder's queue: two GOPs caught up at once, and
	// the pixel detector's margin.
	hybridQueue = 2*maxGOPUnits + queueDepth
	// maxSnapshots is how many of the latest keyframes' backgrounds are
	// kept (57 kB each): more GOPs than are ever undecided at once.
	maxSnapshots = 16
	// maxVerdicts bounds the verdicts kept to be given in order.
	maxVerdicts = maxKeptUnits + hybridQueue + pendingTagsSlack
)

// Hybrid is the pixel detector made cheap. While nothing happens it
// decodes only keyframes ("probes") and compares each with a background
// learnt from the keyframes before it. A GOP (the frames from a keyframe to
// the next) is decoded and analysed in full, exactly as by the pixel
// detector, when
//
//   - the probe of its keyframe shows a blob, even half the least one;
//   - the probe of the next keyframe shows one: the object may have come
//     in during this GOP (look-back);
//   - its predicted frames persistently take twice their usual bits (see
//     sizeTracker): something large moved (a single jump, as when a light
//     switches, does not count); or
//   - motion was confirmed, or the sizes moved, less than hybridHold
//     before its keyframe.
//
// Otherwise its frames are judged quiet. So an object seen at any keyframe
// is analysed at the full frame rate for a GOP before and after it, motion
// is confirmed over consecutive frames, and lighting changes are judged
// and suppressed, by the pixel detector's own analysis. An object in the
// picture for less than a GOP between two keyframes, too small to move the
// frame sizes, is missed.
//
// GOPs are decided in order; an idle GOP is decided when the next
// keyframe's probe comes back, so verdicts come up to a GOP (plus the
// decoding) late, in order: the recorder's pre-roll must be longer than a
// GOP to hold an event's start. Streams with B-frames are decoded in full:
// their decoder holds frames back, so a probe would come back a GOP late.
type Hybrid struct {
	cfg Config
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// emitMu orders the calls of OnFrame from Feed and from the decoder.
	emitMu sync.Mutex
	out    []verdict

	mu        sync.Mutex
	proc      *decoder
	gen       uint64 // counts decoders started: a stopped one's frames are ignored
	params    *media.Params
	lastStart time.Time
	health    error
	sizes     *sizeTracker
	bframes   bool

	seq      uint64    // the next unit's number
	seq0     uint64    // number of verdicts[0]
	verdicts []verdict // of units seq0..seq-1 not yet given

	nextGOP    uint64
	cur        *gopState   // the GOP units arrive in
	pending    []*gopState // GOPs not decided, oldest first
	lastActive uint64      // the last GOP decided active
	decGOP     uint64      // the GOP whose keyframe was fed last to the decoder
	decTail    bool        // frames after that keyframe were fed too
	dropping   bool        // the decoder's queue overflowed: nothing fed until a keyframe
	lastSign   time.Time
	// inflight counts the frames fed to be analysed and not judged yet:
	// a GOP is not decided quiet while the analysis of earlier frames may
	// still confirm motion that would hold it.
	inflight int

	decoded, skipped uint64
}

var (
	_ Detector = (*Hybrid)(nil)
	_ Lagging  = (*Hybrid)(nil)
)

type verdictState uint8

const (
	verdictWaiting verdictState = iota
	verdictReady
	verdictSkip // never judged (the decoder died or was replaced): not given
)

type verdict struct {
	at     time.Time
	state  verdictState
	score  float64
	moving bool
}

// gopState is a GOP of the stream.
type gopState struct {
	id     uint64
	key    *media.AccessUnit
	keySeq uint64
	units  []keptUnit // its other units, kept while undecided
	whole  bool       // units holds every unit since the keyframe
	// want is true when it is to be decoded in full whatever the probes
	// say: activity at its keyframe, or in its frames' sizes.
	want bool
	// probed is true when its keyframe's probe came back; hint says
	// whether it showed a blob.
	probed, hint bool
	active       bool // decided active (else, once decided, quiet)
}

type keptUnit struct {
	au  *media.AccessUnit
	seq uint64
}

// NewHybrid makes a hybrid detector (cfg.Detector is ignored). ffmpeg is
// started at the first keyframe.
func NewHybrid(cfg Config) (*Hybrid, error) {
	cfg.Detector = KindHybrid
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	if _, err := cfg.newAnalyzer(nil); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Hybrid{
		cfg: cfg, ctx: ctx, cancel: cancel, sizes: newSizeTracker(cfg.Sensitivity, hybridSizeTrigger),
		log: cfg.Logger.With("component", "motion", "camera", cfg.Name, "detector", string(KindHybrid)),
	}, nil
}

// MaxLag implements Lagging: an undecided GOP's verdicts wait for the next
// keyframe's probe, and two GOPs may be decoded at once.
func (h *Hybrid) MaxLag() int { return 2 * maxGOPUnits }

// Healthy implements Detector.
func (h *Hybrid) Healthy() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.health
}

// Decoded returns how many units were fed to the decoder (keyframes
// decoded twice count twice) and how many were judged without decoding.
func (h *Hybrid) Decoded() (decoded, skipped uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.decoded, h.skipped
}

// Close implements Detector.
func (h *Hybrid) Close() error {
	h.cancel()
	h.mu.Lock()
	h.stopDecoderLocked()
	h.mu.Unlock()
	h.wg.Wait()
	return nil
}

// Feed implements Detector.
func (h *Hybrid) Feed(au *media.AccessUnit) {
	h.mu.Lock()
	ok := h.feedLocked(au)
	h.mu.Unlock()
	if ok {
		h.emit()
	}
}

// feedLocked takes one unit; false when it gets no verdict.
func (h *Hybrid) feedLocked(au *media.AccessUnit) bool {
	if h.ctx.Err() != nil {
		return false
	}
	if h.proc != nil && (h.proc.exited() || !au.Params.Equal(h.params)) && au.Keyframe {
		// The decoder died or the stream changed: start afresh.
		h.stopDecoderLocked()
	}
	if h.proc == nil {
		if !au.Keyframe || time.Since(h.lastStart) < h.cfg.RestartDelay {
			return false
		}
		h.lastStart = time.Now()
		if err := h.startDecoderLocked(au.Params); err != nil {
			h.health = err
			h.log.Warn("motion detector unavailable", "error", err)
			return false
		}
		h.health = nil
	}
	if h.proc.exited() {
		return false // restarted at the next keyframe
	}
	sv := h.sizes.observe(au)
	if sv.typ == bitstream.SliceB && !h.bframes {
		h.bframes = true
		h.log.Info("stream has B-frames: decoding every frame")
	}
	sign := sv.active
	if sign && au.Received.After(h.lastSign) {
		h.lastSign = au.Received
	}
	seq := h.seq
	h.seq++
	h.addVerdictLocked(au.Received)
	if au.Keyframe {
		h.keyframeLocked(au, seq)
		return true
	}
	g := h.cur
	switch {
	case g == nil:
		h.setVerdictLocked(seq, verdictReady, 0, false)
	case g.active:
		h.decodeLocked(au, frameTag{at: au.Received, seq: seq, gop: g.id, report: true})
		h.decTail = true
	case !g.whole || len(g.units) >= maxGOPUnits || !slices.Contains(h.pending, g):
		// Too long a GOP to keep, or one decided quiet already (kept too
		// long): judged quiet as it comes.
		h.skipped++
		if g.whole {
			g.whole = false
			h.quietLocked(g)
		}
		h.setVerdictLocked(seq, verdictReady, 0, false)
	default:
		h.skipped++
		g.units = append(g.units, keptUnit{au: au, seq: seq})
		if sign || h.bframes {
			g.want = true
			h.advanceLocked(0)
		}
		h.boundKeptLocked()
	}
	return true
}

// keyframeLocked starts a GOP: its keyframe is decoded at once, as a
// probe, except on a stream with B-frames.
func (h *Hybrid) keyframeLocked(au *media.AccessUnit, seq uint64) {
	h.nextGOP++
	g := &gopState{id: h.nextGOP, key: au, keySeq: seq, whole: true}
	g.want = !h.lastSign.IsZero() && au.Received.Sub(h.lastSign) < hybridHold
	h.cur = g
	h.dropping = false
	if h.bframes {
		// Everything is decoded: what is undecided is decided now, by
		// what is known.
		for _, p := range slices.Clone(h.pending) {
			if p.want || p.hint {
				h.activateLocked(p, true)
			} else {
				h.quietLocked(p)
			}
		}
		h.pending = append(h.pending, g)
		h.activateLocked(g, true)
		return
	}
	h.pending = append(h.pending, g)
	h.decodeLocked(au, frameTag{at: au.Received, seq: seq, gop: g.id, key: true, probe: true})
	h.decGOP, h.decTail = g.id, false
	h.boundKeptLocked()
}

// advanceLocked decides the undecided GOPs, oldest first, as far as what is
// known allows. probe is the GOP whose probe frame the caller holds (0:
// none); when that GOP is decided active with the decoder still at its
// keyframe, the frame is its keyframe's verdict: now says so, and fresh
// whether the GOP before it was not decoded.
func (h *Hybrid) advanceLocked(probe uint64) (now, fresh bool) {
	for len(h.pending) > 0 {
		g := h.pending[0]
		var next *gopState
		if len(h.pending) > 1 {
			next = h.pending[1]
		}
		switch {
		case !g.probed:
			return now, fresh
		case g.want || g.hint:
			if g.id == probe && h.decGOP == g.id && !h.decTail {
				now, fresh = true, h.activateLocked(g, false)
			} else {
				h.activateLocked(g, true)
			}
		case next == nil || !next.probed:
			return now, fresh // waits for the next keyframe's probe
		case next.hint:
			h.activateLocked(g, true) // look back
		case h.analysingLocked():
			return now, fresh // decided (see judged) once the analysis is done
		default:
			h.quietLocked(g)
		}
	}
	return now, fresh
}

// analysingLocked reports whether frames fed to be analysed are not judged
// yet. A decoder that swallowed some (ffmpeg may drop a corrupt frame)
// holds nothing back: with nothing left in it, none are.
func (h *Hybrid) analysingLocked() bool {
	if h.inflight > 0 && (h.proc == nil || h.proc.backlog()+h.proc.pending() == 0) {
		h.inflight = 0
	}
	return h.inflight > 0
}

// activateLocked decides GOP g active: it is decoded from its keyframe on,
// the keyframe again when redo. It returns whether the GOP before was not
// decoded (the analysis must catch up).
func (h *Hybrid) activateLocked(g *gopState, redo bool) (fresh bool) {
	h.removeLocked(g)
	g.active = true
	fresh = h.lastActive+1 != g.id
	h.lastActive = g.id
	if redo {
		h.decodeLocked(g.key, frameTag{at: g.key.Received, seq: g.keySeq, gop: g.id, key: true, report: true, fresh: fresh})
		h.decGOP, h.decTail = g.id, false
	}
	for _, u := range g.units {
		h.skipped--
		h.decodeLocked(u.au, frameTag{at: u.au.Received, seq: u.seq, gop: g.id, report: true})
		h.decTail = true
	}
	g.units = nil
	return fresh
}

// quietLocked decides GOP g quiet: its frames are judged so.
func (h *Hybrid) quietLocked(g *gopState) {
	h.removeLocked(g)
	h.setVerdictLocked(g.keySeq, verdictReady, 0, false)
	for _, u := range g.units {
		h.setVerdictLocked(u.seq, verdictReady, 0, false)
	}
	g.units = nil
}

// boundKeptLocked judges the oldest undecided GOPs quiet while more than
// maxKeptUnits units are kept.
func (h *Hybrid) boundKeptLocked() {
	n := 0
	for _, g := range h.pending {
		n += 1 + len(g.units)
	}
	for n > maxKeptUnits && len(h.pending) > 1 {
		n -= 1 + len(h.pending[0].units)
		h.quietLocked(h.pending[0])
	}
}

func (h *Hybrid) removeLocked(g *gopState) {
	h.pending = slices.DeleteFunc(h.pending, func(p *gopState) bool { return p == g })
}

// decodeLocked hands a unit to ffmpeg. A unit that does not fit in the
// queue is lost to the decoder, and so is the rest of its GOP: their
// verdicts are not given.
func (h *Hybrid) decodeLocked(au *media.AccessUnit, tag frameTag) {
	if !h.dropping && h.proc.enqueue(au, tag) {
		h.decoded++
		if tag.report {
			h.inflight++
		}
		return
	}
	h.dropping = true
	if tag.report {
		h.setVerdictLocked(tag.seq, verdictSkip, 0, false)
	}
}

func (h *Hybrid) addVerdictLocked(at time.Time) {
	if len(h.verdicts) >= maxVerdicts && h.verdicts[0].state == verdictWaiting {
		// A verdict that never comes must not hold back the others.
		h.verdicts[0].state = verdictSkip
	}
	h.verdicts = append(h.verdicts, verdict{at: at, state: verdictWaiting})
}

// setVerdictLocked gives unit seq's verdict, unless it was given up on.
func (h *Hybrid) setVerdictLocked(seq uint64, state verdictState, score float64, moving bool) {
	if seq < h.seq0 || seq-h.seq0 >= uint64(len(h.verdicts)) {
		return
	}
	v := &h.verdicts[seq-h.seq0]
	if v.state != verdictWaiting {
		return
	}
	v.state, v.score, v.moving = state, score, moving
}

// emit gives the verdicts known, in order.
func (h *Hybrid) emit() {
	h.emitMu.Lock()
	defer h.emitMu.Unlock()
	h.mu.Lock()
	n := 0
	for n < len(h.verdicts) && h.verdicts[n].state != verdictWaiting {
		n++
	}
	h.out = append(h.out[:0], h.verdicts[:n]...)
	h.verdicts = h.verdicts[n:]
	h.seq0 += uint64(n)
	if len(h.verdicts) == 0 {
		h.verdicts = h.verdicts[:0:0] // let the old array go
	}
	h.mu.Unlock()
	for _, v := range h.out {
		if v.state == verdictReady {
			h.cfg.OnFrame(v.at, v.score, v.moving)
		}
	}
}

// stopDecoderLocked stops the decoder; the verdicts it owed are not given.
func (h *Hybrid) stopDecoderLocked() {
	if h.proc != nil {
		h.proc.stop()
		h.proc = nil
	}
	h.gen++
	h.resetLocked()
}

// resetLocked forgets every GOP: what waits is never judged.
func (h *Hybrid) resetLocked() {
	for i := range h.verdicts {
		if h.verdicts[i].state == verdictWaiting {
			h.verdicts[i].state = verdictSkip
		}
	}
	h.cur, h.pending = nil, nil
	h.lastActive, h.decGOP, h.decTail, h.dropping, h.inflight = 0, 0, false, false, 0
}

// startDecoderLocked starts ffmpeg and fresh analyses for a stream.
func (h *Hybrid) startDecoderLocked(params *media.Params) error {
	analyzer, err := h.cfg.newAnalyzer(params)
	if err != nil {
		return err
	}
	probe, err := h.cfg.newAnalyzer(params)
	if err != nil {
		return err
	}
	probe.Sparse = true
	h.gen++
	gen := h.gen
	clock, probeClock := newFrameClock(h.cfg.FPS), newFrameClock(0)
	var score float64
	var moving bool
	// The probes' background just before each recent keyframe: a GOP
	// decoded after GOPs that were not starts from it, not from the
	// probes' background of the moment, which may have learnt later
	// keyframes (the look-back decodes a GOP after the next probe).
	snapshots := map[uint64]Background{}
	d, err := startDecoder(h.ctx, &h.wg, decoderConfig{
		ffmpeg: h.cfg.FFmpeg, params: params, depth: hybridQueue,
		onFrame: func(frame []byte, tag frameTag) {
			report, fresh := tag.report, tag.fresh
			if tag.probe {
				snapshots[tag.gop] = probe.Background()
				delete(snapshots, tag.gop-maxSnapshots)
				dt, _ := probeClock.next(tag.at, true)
				_, m := probe.AnalyzeAfter(frame, dt)
				report, fresh = h.probed(gen, tag.gop, m || probe.Hint())
			}
			if !report {
				h.emit() // the probe may have decided frames quiet
				return
			}
			if fresh {
				// The analysis looked at nothing since an earlier GOP: it
				// starts again from the probes' background before this
				// GOP's keyframe.
				b, ok := snapshots[tag.gop]
				if !ok {
					b = probe.Background()
				}
				analyzer.Adopt(b)
				clock = newFrameClock(h.cfg.FPS)
			}
			// Keyframes are always analysed; a frame skipped by the FPS
			// cap keeps the last verdict.
			if dt, ok := clock.next(tag.at, tag.key); ok {
				score, moving = analyzer.AnalyzeAfter(frame, dt)
			}
			h.judged(gen, tag, score, moving)
		},
		onExit: func(_ *decoder, msg string, err error) {
			h.mu.Lock()
			current := h.gen == gen && h.ctx.Err() == nil
			if current {
				h.health = fmt.Errorf("motion: ffmpeg exited: %s", msg)
				h.resetLocked()
			}
			h.mu.Unlock()
			if current {
				h.log.Warn("ffmpeg exited; restarting at the next keyframe", "stderr", msg, "error", err)
				h.emit()
			}
		},
	})
	if err != nil {
		return err
	}
	h.proc, h.params = d, params
	h.resetLocked()
	return nil
}

// probed takes a probe's outcome from the decoder's reader and returns
// whether the probe frame is to be analysed now as its keyframe's verdict,
// and whether that analysis starts afresh.
func (h *Hybrid) probed(gen, gop uint64, hint bool) (now, fresh bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if gen != h.gen {
		return false, false
	}
	i := slices.IndexFunc(h.pending, func(g *gopState) bool { return g.id == gop })
	if i < 0 {
		return false, false // decided quiet without it (kept too long)
	}
	h.pending[i].probed, h.pending[i].hint = true, hint
	return h.advanceLocked(gop)
}

// judged takes the analysis of a decoded frame.
func (h *Hybrid) judged(gen uint64, tag frameTag, score float64, moving bool) {
	h.mu.Lock()
	if gen != h.gen {
		h.mu.Unlock()
		return
	}
	h.setVerdictLocked(tag.seq, verdictReady, score, moving)
	if tag.report {
		h.inflight--
	}
	if moving && tag.at.After(h.lastSign) {
		h.lastSign = tag.at
		// A GOP decoded late (looked back at) may confirm motion after
		// the next keyframe came: that GOP is held as if it had been known.
		for _, g := range h.pending {
			if d := g.key.Received.Sub(tag.at); !g.want && d >= 0 && d < hybridHold {
				g.want = true
			}
		}
	}
	if moving || !h.analysingLocked() {
		h.advanceLocked(0)
	}
	h.mu.Unlock()
	h.emit()
}
