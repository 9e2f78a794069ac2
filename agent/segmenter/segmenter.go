// Package segmenter cuts a camera's access units into segments: one
// self-contained fragmented MP4 file per motion episode (or slice of one),
// written with mediacommon's fmp4 package into a spool directory and handed
// over complete for upload.
//
// In motion mode a GOP-aligned pre-roll buffer is kept; a segment starts on
// motion with the buffer's contents, ends after the post-roll without
// motion, and is split at the maximum length on a keyframe. In continuous
// mode segments follow each other, split at the maximum length.
//
// Times: a segment's start is the wall clock at which its first access unit
// arrived; its end is the start plus the span of the stream timestamps. One
// monotonic source (the stream's own clock) times each segment, and a step
// of the wall clock or a jump of the stream timestamps starts a new segment
// at the next keyframe rather than corrupting the current one.
package segmenter

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-cctv/vigil/agent/media"
	"github.com/vigil-cctv/vigil/storage"
)

// Mode is the recording mode.
type Mode string

// Recording modes.
const (
	Motion     Mode = "motion"
	Continuous Mode = "continuous"
)

// Thresholds for discontinuities between the stream clock and the agent's
// clocks.
const (
	// wallStepLimit is how far the wall clock may move apart from the
	// monotonic clock within a segment before the segment is split.
	wallStepLimit = time.Second
	// streamDriftLimit is how far the stream timestamps may move apart from
	// the monotonic arrival times within a segment.
	streamDriftLimit = 3 * time.Second
	// maxGap is the longest silence inside a segment; a longer one means
	// the stream stalled and the segment is closed.
	maxGap = 5 * time.Second
	// maxDetectorLag bounds how far behind the stream the pre-roll buffer
	// follows a slow detector (memory: a GOP-aligned buffer of this length
	// plus the pre-roll).
	maxDetectorLag = 10 * time.Second
	// maxGOP is the longest keyframe interval the pre-roll buffer waits
	// through.
	maxGOP = 30 * time.Second
)

// Finished describes a complete segment file waiting in the spool.
type Finished struct {
	Path        string
	ID          string
	Start, End  time.Time
	Bytes       int64
	SHA256      string
	Codec       string
	Samples     int
	MotionScore float64
	Recovered   bool
}

// Segment converts the spool description into index metadata.
func (f *Finished) Segment(district, camera string) storage.Segment {
	return storage.Segment{
		ID: f.ID, District: district, Camera: camera,
		Start: f.Start.UTC(), End: f.End.UTC(),
		Bytes: f.Bytes, SHA256: f.SHA256, Codec: f.Codec,
		MotionScore: f.MotionScore, Recovered: f.Recovered,
		Key: storage.SegmentKey(district, camera, f.Start, f.ID),
	}
}

// Config configures a Segmenter.
type Config struct {
	// Camera names the camera in logs.
	Camera string
	Mode   Mode
	// PreRoll is kept before the first motion; PostRoll is recorded after
	// the last; MaxLength splits long episodes.
	PreRoll, PostRoll, MaxLength time.Duration
	// SpoolDir receives the files being written; it must exist.
	SpoolDir string
	// OnSegment receives each finished segment, from the goroutine that
	// called WriteAccessUnit, StreamEnd or Close.
	OnSegment func(*Finished)
	Logger    *slog.Logger
}

// Segmenter is the recording state machine of one camera. WriteAccessUnit,
// StreamEnd and Close must be called from one goroutine; Motion from any.
type Segmenter struct {
	cfg Config
	log *slog.Logger

	motionMu   sync.Mutex
	lastMotion time.Time // monotonic; zero when none
	analyzed   time.Time // arrival time of the latest frame the detector judged
	peakScore  float64
	forced     bool // record as if there were motion (detector not working)

	preroll   []*media.AccessUnit
	cur       *segmentFile
	recording atomic.Bool // mirrors cur != nil for other goroutines
	// splitAtKeyframe asks for a new segment at the next keyframe.
	splitAtKeyframe string
}

// New makes a Segmenter.
func New(cfg Config) (*Segmenter, error) {
	switch {
	case cfg.Mode != Motion && cfg.Mode != Continuous:
		return nil, fmt.Errorf("segmenter: unknown mode %q", cfg.Mode)
	case cfg.MaxLength <= 0:
		return nil, errors.New("segmenter: max length must be positive")
	case cfg.PreRoll < 0 || cfg.PostRoll < 0:
		return nil, errors.New("segmenter: negative pre- or post-roll")
	case cfg.OnSegment == nil:
		return nil, errors.New("segmenter: OnSegment is required")
	}
	if st, err := os.Stat(cfg.SpoolDir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("segmenter: spool directory %q is not usable", cfg.SpoolDir)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Segmenter{cfg: cfg, log: cfg.Logger.With("component", "segmenter", "camera", cfg.Camera)}, nil
}

// Observe records the detector's verdict on the frame that arrived at `at`
// (a time with a monotonic reading, from this process). Safe for concurrent
// use. Frames without motion count too: the segmenter ends a segment only
// once the detector has judged the whole post-roll still, so a detector
// running late never cuts a segment short.
func (s *Segmenter) Observe(at time.Time, score float64, moving bool) {
	s.motionMu.Lock()
	defer s.motionMu.Unlock()
	if at.After(s.analyzed) {
		s.analyzed = at
	}
	if !moving {
		return
	}
	if at.After(s.lastMotion) {
		s.lastMotion = at
	}
	s.peakScore = max(s.peakScore, score)
}

// Motion records motion in the frame that arrived at `at`.
func (s *Segmenter) Motion(at time.Time, score float64) { s.Observe(at, score, true) }

// Analyzed returns the arrival time of the latest frame judged by the
// detector, zero before the first.
func (s *Segmenter) Analyzed() time.Time {
	s.motionMu.Lock()
	defer s.motionMu.Unlock()
	return s.analyzed
}

// ForceRecord makes the segmenter record as if it saw motion, for as long
// as the detector does not work (fail open: a missed event is lost
// evidence). When forcing ends, the post-roll runs from `at`. It does not
// count as the detector's progress.
func (s *Segmenter) ForceRecord(on bool, at time.Time) {
	s.motionMu.Lock()
	defer s.motionMu.Unlock()
	if s.forced && !on && at.After(s.lastMotion) {
		s.lastMotion = at
	}
	s.forced = on
}

// motionActive reports whether recording is forced, or the detector saw
// motion within the post-roll before the last frame it judged.
func (s *Segmenter) motionActive() bool {
	s.motionMu.Lock()
	defer s.motionMu.Unlock()
	return s.forced || (!s.lastMotion.IsZero() && s.analyzed.Sub(s.lastMotion) <= s.cfg.PostRoll)
}

// prerollReference is the instant the pre-roll is counted back from: the
// last frame the detector judged, so that motion it reports late still gets
// its full pre-roll; never more than maxDetectorLag behind the stream, which
// bounds the buffer when a detector stalls.
func (s *Segmenter) prerollReference(now time.Time) time.Time {
	s.motionMu.Lock()
	analyzed := s.analyzed
	s.motionMu.Unlock()
	ref := now
	if !analyzed.IsZero() && analyzed.Before(now) {
		ref = analyzed
	}
	if now.Sub(ref) > maxDetectorLag {
		ref = now.Add(-maxDetectorLag)
	}
	return ref
}

// takePeak returns and resets the peak motion score.
func (s *Segmenter) takePeak() float64 {
	s.motionMu.Lock()
	defer s.motionMu.Unlock()
	p := s.peakScore
	s.peakScore = 0
	return p
}

// Recording reports whether a segment is open. Safe for concurrent use.
func (s *Segmenter) Recording() bool { return s.recording.Load() }

func (s *Segmenter) setCurrent(sf *segmentFile) {
	s.cur = sf
	s.recording.Store(sf != nil)
}

// WriteAccessUnit feeds the next access unit of the stream. An error means
// the segment being written was lost or salvaged; recording goes on with
// the next keyframe.
func (s *Segmenter) WriteAccessUnit(au *media.AccessUnit) error {
	if s.cfg.Mode == Motion {
		s.pushPreroll(au)
	}
	if s.cur != nil {
		if reason := s.discontinuity(au); reason != "" {
			s.log.Info("stream discontinuity, closing segment", "reason", reason)
			s.preroll = s.preroll[:0]
			if s.cfg.Mode == Motion && au.Keyframe {
				s.pushPreroll(au)
			}
			if err := s.closeCurrent(); err != nil {
				return err
			}
		}
	}
	if s.cur != nil {
		return s.continueSegment(au)
	}
	return s.maybeOpen(au)
}

func (s *Segmenter) continueSegment(au *media.AccessUnit) error {
	if s.cfg.Mode == Motion && !s.motionActive() {
		return s.closeCurrent()
	}
	if s.cur.elapsed() >= s.cfg.MaxLength+maxGOP {
		// No keyframe to split on for far too long: close rather than grow
		// one segment without bound; the next starts at a keyframe.
		s.log.Warn("no keyframe to split on; segment closed", "length", s.cur.elapsed().Round(time.Second))
		clear(s.preroll) // its frames are in the segment; wait for a keyframe
		s.preroll = s.preroll[:0]
		return s.closeCurrent()
	}
	if au.Keyframe {
		reason := s.splitAtKeyframe
		switch {
		case s.cur.elapsed() >= s.cfg.MaxLength:
			reason = "max length"
		case !au.Params.Equal(s.cur.params):
			reason = "parameters changed"
		}
		if reason != "" {
			if err := s.closeCurrent(); err != nil {
				return err
			}
			return s.open([]*media.AccessUnit{au})
		}
	}
	if err := s.cur.write(au); err != nil {
		return s.failCurrent(err)
	}
	s.checkClocks(au)
	return nil
}

func (s *Segmenter) maybeOpen(au *media.AccessUnit) error {
	switch s.cfg.Mode {
	case Continuous:
		if !au.Keyframe {
			return nil
		}
		return s.open([]*media.AccessUnit{au})
	default:
		if !s.motionActive() {
			return nil
		}
		// The pre-roll buffer starts at a keyframe and ends with au.
		if len(s.preroll) == 0 || !s.preroll[0].Keyframe {
			return nil
		}
		return s.open(s.preroll)
	}
}

// open starts a segment with the given units, the first a keyframe.
func (s *Segmenter) open(units []*media.AccessUnit) error {
	sf, err := createSegmentFile(s.cfg.SpoolDir, storage.NewSegmentID(), units[0])
	if err != nil {
		return err
	}
	s.setCurrent(sf)
	s.splitAtKeyframe = ""
	for _, au := range units[1:] {
		if err := s.cur.write(au); err != nil {
			return s.failCurrent(err)
		}
	}
	return nil
}

// closeCurrent finishes the open segment and hands it over.
func (s *Segmenter) closeCurrent() error {
	sf := s.cur
	s.setCurrent(nil)
	if sf == nil {
		return nil
	}
	fin, err := sf.finish()
	if err != nil {
		return s.salvage(sf.path, err)
	}
	fin.MotionScore = s.takePeak()
	s.cfg.OnSegment(fin)
	return nil
}

// failCurrent handles a write error on the open segment: what was fsynced
// is salvaged, the rest is reported lost.
func (s *Segmenter) failCurrent(err error) error {
	sf := s.cur
	s.setCurrent(nil)
	sf.f.Close()
	return s.salvage(sf.path, err)
}

func (s *Segmenter) salvage(path string, cause error) error {
	fin, err := RecoverFile(path)
	if err != nil {
		return fmt.Errorf("segment lost: %w (salvage failed: %v)", cause, err)
	}
	if fin != nil {
		s.cfg.OnSegment(fin)
	}
	return fmt.Errorf("segment cut short: %w", cause)
}

// discontinuity tells whether au cannot continue the open segment at all.
func (s *Segmenter) discontinuity(au *media.AccessUnit) string {
	held := s.cur.held
	switch {
	case au.DTS <= held.DTS:
		return "timestamps went backwards"
	case au.DTS-held.DTS > media.Ticks(maxGap):
		return "gap in timestamps"
	case au.Received.Sub(held.Received) > maxGap:
		return "gap in arrival"
	}
	return ""
}

// checkClocks asks for a split at the next keyframe when the wall clock was
// stepped (NTP, operator) or the stream clock drifts from real time.
func (s *Segmenter) checkClocks(au *media.AccessUnit) {
	if s.splitAtKeyframe != "" {
		return
	}
	mono := au.Received.Sub(s.cur.startMono)
	wall := au.Received.Round(0).Sub(s.cur.start)
	if d := wall - mono; d > wallStepLimit || d < -wallStepLimit {
		s.splitAtKeyframe = "wall clock step"
		s.log.Warn("wall clock stepped during a segment", "step", d.Round(time.Millisecond))
		return
	}
	stream := media.TicksDuration(au.DTS - s.cur.firstDTS)
	if d := stream - mono; d > streamDriftLimit || d < -streamDriftLimit {
		s.splitAtKeyframe = "stream clock drift"
		s.log.Warn("camera timestamps drift from real time", "drift", d.Round(time.Millisecond))
	}
}

// pushPreroll appends au and drops whole GOPs that are older than the
// pre-roll, so the buffer always starts with a keyframe.
func (s *Segmenter) pushPreroll(au *media.AccessUnit) {
	if len(s.preroll) == 0 && !au.Keyframe {
		return
	}
	s.preroll = append(s.preroll, au)
	ref := s.prerollReference(au.Received)
	cut := 0
	for i, u := range s.preroll {
		if ref.Sub(u.Received) < s.cfg.PreRoll {
			break
		}
		if u.Keyframe {
			cut = i
		}
	}
	if cut > 0 {
		n := copy(s.preroll, s.preroll[cut:])
		clear(s.preroll[n:])
		s.preroll = s.preroll[:n]
	}
	// A stream without keyframes for this long (intra refresh, a broken
	// camera) cannot be trimmed by GOP: start again at the next keyframe
	// rather than buffer without bound.
	if au.Received.Sub(s.preroll[0].Received) > s.cfg.PreRoll+maxDetectorLag+maxGOP {
		clear(s.preroll)
		s.preroll = s.preroll[:0]
		s.log.Warn("no keyframe for too long; pre-roll buffer dropped", "limit", s.cfg.PreRoll+maxDetectorLag+maxGOP)
	}
}

// StreamEnd closes the open segment: the camera's session ended and the next
// one restarts its timestamps.
func (s *Segmenter) StreamEnd() error {
	clear(s.preroll)
	s.preroll = s.preroll[:0]
	return s.closeCurrent()
}

// Close finishes the open segment, if any.
func (s *Segmenter) Close() error { return s.StreamEnd() }
