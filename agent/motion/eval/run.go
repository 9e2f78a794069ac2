package eval

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/vigil-cctv/vigil/agent/camerasim"
	"github.com/vigil-cctv/vigil/agent/media"
	"github.com/vigil-cctv/vigil/agent/motion"
)

// feedWindow is how many units may be fed ahead of the last frame the
// detector judged: enough to keep ffmpeg busy, well under the pixel
// detector's queue (100), which drops units when full. A detector whose
// verdicts trail by more (motion.Lagging) gets its own allowance.
const feedWindow = 32

// flushUnits bounds the units fed after the clip's last one, taken from its
// start: decoders hold a few frames back (five for x264 with B-frames) until
// more input comes, and a detector has no end of stream. They are fed one
// at a time until the clip's last frame is judged; verdicts on them are
// discarded.
const flushUnits = 32

// quietPeriod is how long without a verdict means the detector has judged
// all it can before more input: when flushing, and when measuring its
// start.
const quietPeriod = 50 * time.Millisecond

// epoch is the arrival time of clip time 0. Far in the past, so a frame the
// detector could not match to a unit (stamped with the current time) falls
// outside every clip and is ignored.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// session is one detector fed the units of one clip.
type session struct {
	ctx    context.Context
	cfg    Config
	det    motion.Detector
	units  []*media.AccessUnit
	stamps []time.Duration // per unit, increasing
	nClip  int             // units of the clip; the rest flush the decoder
	clip   *camerasim.Clip

	mu       sync.Mutex
	frames   []Frame       // verdicts on the clip's frames
	judged   int           // units whose stamp is at most lastAt
	lastAt   time.Duration // clip time of the latest verdict, -1 before
	progress chan struct{}
}

func startSession(ctx context.Context, cfg Config, spec DetectorSpec, f clipFile, clip *camerasim.Clip) (*session, error) {
	units, stamps, err := clipUnits(clip)
	if err != nil {
		return nil, fmt.Errorf("eval: %s: %w", f.video, err)
	}
	s := &session{
		ctx: ctx, cfg: cfg, units: units, stamps: stamps, nClip: len(clip.AccessUnits), clip: clip,
		lastAt: -1, progress: make(chan struct{}, 1),
	}
	s.det, err = spec.New(DetectorConfig{
		Clip: f.name, Width: clip.Width, Height: clip.Height, Masks: f.truth.Masks,
		OnFrame: s.onFrame, FFmpeg: cfg.FFmpeg, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("eval: %s: detector %s: %w", f.video, spec.Name, err)
	}
	return s, nil
}

// onFrame is the detector's OnFrame.
func (s *session) onFrame(at time.Time, _ float64, moving bool) {
	off := at.Sub(epoch)
	s.mu.Lock()
	defer s.mu.Unlock()
	if off < 0 || off > s.stamps[len(s.stamps)-1] || off < s.lastAt {
		return // not matched to a unit fed
	}
	s.lastAt = off
	s.judged += sort.Search(len(s.stamps)-s.judged, func(i int) bool { return s.stamps[s.judged+i] > off })
	if off < s.clip.Duration && len(s.frames) < s.nClip {
		s.frames = append(s.frames, Frame{At: off, Moving: moving})
	}
	select {
	case s.progress <- struct{}{}:
	default:
	}
}

// finished reports whether the clip's last frame is judged; s.mu held.
func (s *session) finished() bool { return s.lastAt >= s.stamps[s.nClip-1] }

// wait blocks until cond (called with s.mu held) holds and returns true. It
// returns false when no verdict comes for `quiet`, an error instead if
// mustHold, and an error when the detector fails or the context ends.
func (s *session) wait(cond func() bool, quiet time.Duration, mustHold bool) (bool, error) {
	timer := time.NewTimer(quiet)
	defer timer.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		ok, at := cond(), s.lastAt
		s.mu.Unlock()
		if ok {
			return true, nil
		}
		if err := s.det.Healthy(); err != nil {
			return false, err
		}
		select {
		case <-s.ctx.Done():
			return false, s.ctx.Err()
		case <-s.progress:
			timer.Reset(quiet)
		case <-tick.C:
		case <-timer.C:
			if mustHold {
				return false, fmt.Errorf("judged no frame for %v (last at %v of the clip)", quiet, max(at, 0))
			}
			return false, nil
		}
	}
}

// run feeds the whole clip, as fast as the detector judges it, then flushes
// the decoder until the clip's last frame is judged.
func (s *session) run() error {
	window := feedWindow
	if l, ok := s.det.(motion.Lagging); ok {
		window = max(window, l.MaxLag())
	}
	for i := range s.nClip {
		if _, err := s.wait(func() bool { return i-s.judged < window }, s.cfg.StallTimeout, true); err != nil {
			return err
		}
		s.det.Feed(s.units[i])
	}
	// Let the detector judge what it can, then feed one unit at a time, so
	// that no more frames than needed are decoded past the clip's end.
	if _, err := s.wait(s.finished, quietPeriod, false); err != nil {
		return err
	}
	for _, au := range s.units[s.nClip:] {
		s.mu.Lock()
		before, done := s.judged, s.finished()
		s.mu.Unlock()
		if done {
			break
		}
		s.det.Feed(au)
		if _, err := s.wait(func() bool { return s.judged > before || s.finished() }, quietPeriod, false); err != nil {
			return err
		}
	}
	if _, err := s.wait(s.finished, s.cfg.StallTimeout, true); err != nil {
		return err
	}
	return s.det.Healthy()
}

// verdicts returns the verdicts on the clip's frames, in order.
func (s *session) verdicts() []Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.frames)
}

// measure runs fn and returns the CPU time it took, this process and the
// children it reaped.
func measure(fn func() error) (time.Duration, error) {
	runtime.GC() // earlier garbage is not fn's work
	cpu0, err := processCPU()
	if err != nil {
		return 0, fmt.Errorf("eval: %w", err)
	}
	if err := fn(); err != nil {
		return 0, err
	}
	cpu1, err := processCPU()
	if err != nil {
		return 0, fmt.Errorf("eval: %w", err)
	}
	return cpu1 - cpu0, nil
}

// runClip feeds one clip to a new detector and scores its verdicts.
// startCost is subtracted from the CPU measured (see Run).
func runClip(ctx context.Context, cfg Config, spec DetectorSpec, f clipFile, startCost time.Duration) (ClipResult, error) {
	clip, err := loadClip(f)
	if err != nil {
		return ClipResult{}, err
	}
	var s *session
	wall0 := time.Now()
	cpu, err := measure(func() error {
		var err error
		if s, err = startSession(ctx, cfg, spec, f, clip); err != nil {
			return err
		}
		err = s.run()
		// Close reaps ffmpeg: its CPU time is counted.
		if cerr := s.det.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close: %w", cerr)
		}
		if err != nil {
			return fmt.Errorf("eval: %s: detector %s: %w", f.video, spec.Name, err)
		}
		return nil
	})
	if err != nil {
		return ClipResult{}, err
	}
	wall := time.Since(wall0)
	verdicts := s.verdicts()
	intervals := Intervals(verdicts, clip.Duration, cfg.MergeGap)
	score := ScoreClip(f.truth.Events, intervals, clip.Duration)
	steady := max(0, cpu-startCost)
	res := ClipResult{
		Name: f.name, File: f.video, Codec: clip.Codec, Width: clip.Width, Height: clip.Height,
		DurationSeconds: secs(clip.Duration), Frames: len(clip.AccessUnits), FramesJudged: len(verdicts),
		Events: score.Events, Detected: score.Detected, Hits: score.Hits, FalseAlarms: score.FalseAlarms,
		StillSeconds: secs(score.Still),
		CPUSeconds:   secs(steady), CPUSecondsPerCameraHour: perHour(steady, clip.Duration),
		CPUSecondsMeasured: secs(cpu), DetectorStartCPUSeconds: secs(startCost),
		WallSeconds: secs(wall),
		Masks:       len(f.truth.Masks), MasksApplied: len(f.truth.Masks) == 0 || spec.Masks,
		Intervals: spans(intervals), Truth: spans(f.truth.Events), Missed: spans(score.Missed),
		Score: score, cpu: steady, cpuMeasured: cpu,
	}
	res.Recall, res.Precision, res.FalseAlarmsPerHour, res.MedianTimeToDetectSeconds = ratios(score)
	return res, nil
}

// startCost measures the CPU time of starting and stopping the detector on
// the clip: made, fed the clip's first units one at a time until it judges
// a frame, closed. For the pixel detector that is an ffmpeg process start
// (loading its libraries alone takes about 0.2 CPU-s with Debian's ffmpeg)
// and the decoding of a few frames. The median of runs measurements.
func startCost(ctx context.Context, cfg Config, spec DetectorSpec, f clipFile, runs int) (time.Duration, error) {
	clip, err := loadClip(f)
	if err != nil {
		return 0, err
	}
	costs := make([]time.Duration, 0, runs)
	for range runs {
		cpu, err := measure(func() error {
			s, err := startSession(ctx, cfg, spec, f, clip)
			if err != nil {
				return err
			}
			defer s.det.Close()
			judgedOne := func() bool { return s.judged > 0 }
			for _, au := range s.units {
				s.det.Feed(au)
				ok, err := s.wait(judgedOne, quietPeriod, false)
				if err != nil {
					return fmt.Errorf("eval: %s: detector %s: %w", f.video, spec.Name, err)
				}
				if ok {
					return nil
				}
			}
			_, err = s.wait(judgedOne, cfg.StallTimeout, true)
			if err != nil {
				return fmt.Errorf("eval: %s: detector %s: %w", f.video, spec.Name, err)
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		costs = append(costs, cpu)
	}
	slices.Sort(costs)
	return costs[len(costs)/2], nil
}

// clipUnits turns a clip into the access units the agent would receive,
// followed by flushUnits more from the clip's start, and the clip time each
// is stamped with (see the package doc): the presentation times in
// increasing order, then one frame apart past the end.
func clipUnits(clip *camerasim.Clip) ([]*media.AccessUnit, []time.Duration, error) {
	params, err := media.NewParams(media.Codec(clip.Codec), clip.VPS, clip.SPS, clip.PPS)
	if err != nil {
		return nil, nil, err
	}
	n := len(clip.AccessUnits)
	stamps := make([]time.Duration, 0, n+flushUnits)
	for _, u := range clip.AccessUnits {
		stamps = append(stamps, u.PTS)
	}
	slices.Sort(stamps)
	frame := max(clip.Duration/time.Duration(n), time.Millisecond)
	for k := range flushUnits {
		stamps = append(stamps, clip.Duration+time.Duration(k)*frame)
	}
	// Stream timestamps as the agent's assembler gives them: ticks from the
	// start of the connection, never negative (B-frame clips start with a
	// negative DTS).
	lead := max(0, -clip.AccessUnits[0].DTS)
	units := make([]*media.AccessUnit, 0, len(stamps))
	for i := range stamps {
		loop, u := i/n, clip.AccessUnits[i%n]
		base := lead + time.Duration(loop)*clip.Duration
		nalus := u.NALUs
		if u.Key {
			nalus = append(params.ParamNALUs(), nalus...)
		}
		units = append(units, &media.AccessUnit{
			NALUs: nalus, Keyframe: u.Key, Params: params,
			PTS: media.Ticks(base + u.PTS), DTS: media.Ticks(base + u.DTS),
			Received: epoch.Add(stamps[i]),
		})
	}
	return units, stamps, nil
}
