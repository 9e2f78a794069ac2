package segmenter

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent/camerasim"
	"github.com/vigil-cctv/vigil/agent/internal/agenttest"
	"github.com/vigil-cctv/vigil/agent/internal/fftest"
	"github.com/vigil-cctv/vigil/agent/media"
)

func mustClip(t testing.TB, name string) *camerasim.Clip { return agenttest.Clip(t, name) }

func clipUnits(t testing.TB, clip *camerasim.Clip, loops int, epoch time.Time) []*media.AccessUnit {
	return agenttest.Units(t, clip, loops, epoch)
}

type collector struct{ segs []*Finished }

func (c *collector) add(f *Finished) { c.segs = append(c.segs, f) }

func newTestSegmenter(t *testing.T, mode Mode, pre, post, maxLen time.Duration) (*Segmenter, *collector) {
	t.Helper()
	col := &collector{}
	s, err := New(Config{
		Camera: "test", Mode: mode, PreRoll: pre, PostRoll: post, MaxLength: maxLen,
		SpoolDir: t.TempDir(), OnSegment: col.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, col
}

// checkPlayable proves a finished segment is a valid file whose duration
// agrees with its metadata.
func checkPlayable(t *testing.T, f *Finished, codec string) fftest.Result {
	t.Helper()
	r, err := fftest.Check(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Codec != codec {
		t.Errorf("%s: codec %s, want %s", filepath.Base(f.Path), r.Codec, codec)
	}
	if d := r.Duration - f.End.Sub(f.Start); d > 500*time.Millisecond || d < -500*time.Millisecond {
		t.Errorf("%s: ffprobe duration %v, metadata %v", filepath.Base(f.Path), r.Duration, f.End.Sub(f.Start))
	}
	if r.DecodeErrors != "" {
		t.Errorf("%s: decode errors: %s", filepath.Base(f.Path), r.DecodeErrors)
	}
	if r.Frames != f.Samples {
		t.Errorf("%s: %d frames decoded, %d written", filepath.Base(f.Path), r.Frames, f.Samples)
	}
	return r
}

func TestContinuousSplitsAtMaxLengthOnKeyframes(t *testing.T) {
	clip := mustClip(t, "walk")
	s, col := newTestSegmenter(t, Continuous, 0, 0, 20*time.Second)
	epoch := time.Now()
	units := clipUnits(t, clip, 2, epoch) // 60 s
	for _, au := range units {
		if err := s.WriteAccessUnit(au); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(col.segs) != 3 {
		t.Fatalf("got %d segments, want 3", len(col.segs))
	}
	total := 0
	for i, f := range col.segs {
		checkPlayable(t, f, "h264")
		total += f.Samples
		if i > 0 && !f.Start.Equal(col.segs[i-1].End) {
			// Consecutive continuous segments must leave no gap.
			if gap := f.Start.Sub(col.segs[i-1].End); gap > 50*time.Millisecond || gap < -50*time.Millisecond {
				t.Errorf("segment %d starts %v after the previous end", i, gap)
			}
		}
		if d := f.End.Sub(f.Start); d > 21*time.Second {
			t.Errorf("segment %d lasts %v, above max length + a GOP", i, d)
		}
	}
	if total != len(units) {
		t.Errorf("%d samples written, %d fed", total, len(units))
	}
}

func TestMotionSegmentCoversEventWithRolls(t *testing.T) {
	clip := mustClip(t, "walk")
	pre, post := 3*time.Second, 4*time.Second
	s, col := newTestSegmenter(t, Motion, pre, post, time.Minute)
	epoch := time.Now()
	units := clipUnits(t, clip, 1, epoch)
	motionFrom, motionTo := 10*time.Second, 12*time.Second
	for _, au := range units {
		at := au.Received.Sub(epoch)
		if at >= motionFrom && at <= motionTo {
			s.Motion(au.Received, 0.1)
		} else {
			s.Observe(au.Received, 0, false)
		}
		if err := s.WriteAccessUnit(au); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(col.segs) != 1 {
		t.Fatalf("got %d segments, want 1", len(col.segs))
	}
	f := col.segs[0]
	checkPlayable(t, f, "h264")
	start, end := f.Start.Sub(epoch), f.End.Sub(epoch)
	// Pre-roll is GOP-aligned: at least pre before the motion, at most one
	// GOP (1 s in this clip) more.
	if start > motionFrom-pre+time.Millisecond || start < motionFrom-pre-time.Second-time.Millisecond {
		t.Errorf("segment starts at %v, want within a GOP before %v", start, motionFrom-pre)
	}
	if end < motionTo+post-5*time.Millisecond || end > motionTo+post+100*time.Millisecond {
		t.Errorf("segment ends at %v, want %v (+1 frame)", end, motionTo+post)
	}
	if f.MotionScore != 0.1 {
		t.Errorf("motion score %v", f.MotionScore)
	}
}

func TestMotionDuringPostRollExtendsSegment(t *testing.T) {
	clip := mustClip(t, "walk")
	s, col := newTestSegmenter(t, Motion, time.Second, 3*time.Second, time.Minute)
	epoch := time.Now()
	for _, au := range clipUnits(t, clip, 1, epoch) {
		at := au.Received.Sub(epoch)
		// Two bursts 2 s apart: within the 3 s post-roll, so one segment.
		switch {
		case (at >= 5*time.Second && at < 6*time.Second) || (at >= 8*time.Second && at < 9*time.Second):
			s.Motion(au.Received, 0.05)
		case at >= 20*time.Second && at < 21*time.Second:
			// A third burst after a long still period: a second segment.
			s.Motion(au.Received, 0.2)
		default:
			s.Observe(au.Received, 0, false)
		}
		if err := s.WriteAccessUnit(au); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if len(col.segs) != 2 {
		t.Fatalf("got %d segments, want 2", len(col.segs))
	}
	if e := col.segs[0].End.Sub(epoch); e < 12*time.Second-5*time.Millisecond || e > 12*time.Second+100*time.Millisecond {
		t.Errorf("first segment ends at %v, want 12s", e)
	}
	if col.segs[1].MotionScore != 0.2 {
		t.Errorf("second segment score %v, want 0.2", col.segs[1].MotionScore)
	}
	for _, f := range col.segs {
		checkPlayable(t, f, "h264")
	}
}

// A detector that judges frames 3 s after they arrive (a loaded machine)
// still gets the full pre-roll and post-roll: the segment is not cut when
// the detector has not yet judged the post-roll.
func TestSlowDetector(t *testing.T) {
	clip := mustClip(t, "walk")
	pre, post, lag := 2*time.Second, 2*time.Second, 3*time.Second
	s, col := newTestSegmenter(t, Motion, pre, post, time.Minute)
	epoch := time.Now()
	units := clipUnits(t, clip, 1, epoch)
	motionFrom, motionTo := 10*time.Second, 12*time.Second
	for i, au := range units {
		// The detector's verdict on the frame that arrived lag ago.
		for j := i; j >= 0; j-- {
			if au.Received.Sub(units[j].Received) <= lag {
				continue
			}
			at := units[j].Received.Sub(epoch)
			s.Observe(units[j].Received, 0.1, at >= motionFrom && at <= motionTo)
			break
		}
		if err := s.WriteAccessUnit(au); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if len(col.segs) != 1 {
		t.Fatalf("got %d segments, want 1", len(col.segs))
	}
	f := col.segs[0]
	if start := f.Start.Sub(epoch); start > motionFrom-pre+time.Millisecond {
		t.Errorf("segment starts at %v, after the pre-roll %v", start, motionFrom-pre)
	}
	if end := f.End.Sub(epoch); end < motionTo+post-5*time.Millisecond {
		t.Errorf("segment ends at %v, before the post-roll end %v", end, motionTo+post)
	}
	checkPlayable(t, f, "h264")
}

func TestNoMotionRecordsNothing(t *testing.T) {
	s, col := newTestSegmenter(t, Motion, 5*time.Second, 10*time.Second, time.Minute)
	for _, au := range clipUnits(t, mustClip(t, "still"), 2, time.Now()) {
		if err := s.WriteAccessUnit(au); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if len(col.segs) != 0 {
		t.Fatalf("recorded %d segments without motion", len(col.segs))
	}
	entries, _ := os.ReadDir(s.cfg.SpoolDir)
	if len(entries) != 0 {
		t.Fatalf("spool holds %d files", len(entries))
	}
}

func TestCodecsAndBFrames(t *testing.T) {
	for _, c := range []struct{ clip, codec string }{{"walk-bframes", "h264"}, {"walk-h265", "hevc"}} {
		t.Run(c.clip, func(t *testing.T) {
			s, col := newTestSegmenter(t, Continuous, 0, 0, 7*time.Second)
			units := clipUnits(t, mustClip(t, c.clip), 1, time.Now())
			for _, au := range units {
				if err := s.WriteAccessUnit(au); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			if len(col.segs) < 2 {
				t.Fatalf("got %d segments", len(col.segs))
			}
			total := 0
			for _, f := range col.segs {
				if f.Codec != string(mustClip(t, c.clip).Codec) {
					t.Errorf("codec %s", f.Codec)
				}
				checkPlayable(t, f, c.codec)
				total += f.Samples
			}
			if total != len(units) {
				t.Errorf("%d samples written, %d fed", total, len(units))
			}
		})
	}
}

func TestStreamEndClosesSegment(t *testing.T) {
	s, col := newTestSegmenter(t, Continuous, 0, 0, time.Minute)
	units := clipUnits(t, mustClip(t, "walk"), 1, time.Now())
	for _, au := range units[:200] {
		s.WriteAccessUnit(au)
	}
	if !s.Recording() {
		t.Fatal("not recording")
	}
	if err := s.StreamEnd(); err != nil {
		t.Fatal(err)
	}
	if s.Recording() || len(col.segs) != 1 {
		t.Fatalf("recording=%v segments=%d", s.Recording(), len(col.segs))
	}
	r := checkPlayable(t, col.segs[0], "h264")
	if r.Frames != 200 {
		t.Errorf("%d frames, want 200", r.Frames)
	}
}

func TestDiscontinuitiesSplit(t *testing.T) {
	clip := mustClip(t, "walk")
	cases := []struct {
		name string
		edit func(units []*media.AccessUnit)
	}{
		{"timestamps backwards", func(units []*media.AccessUnit) {
			for _, au := range units[300:] {
				au.PTS -= media.Ticks(20 * time.Second)
				au.DTS -= media.Ticks(20 * time.Second)
			}
		}},
		{"timestamp gap", func(units []*media.AccessUnit) {
			for _, au := range units[300:] {
				au.PTS += media.Ticks(time.Hour)
				au.DTS += media.Ticks(time.Hour)
			}
		}},
		{"arrival gap", func(units []*media.AccessUnit) {
			for _, au := range units[300:] {
				au.Received = au.Received.Add(time.Minute)
			}
		}},
		{"stream clock drift", func(units []*media.AccessUnit) {
			// The camera's clock runs 20% fast.
			for _, au := range units {
				au.PTS += au.PTS / 5
				au.DTS += au.DTS / 5
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, col := newTestSegmenter(t, Continuous, 0, 0, time.Minute)
			units := clipUnits(t, clip, 1, time.Now())
			c.edit(units)
			for _, au := range units {
				s.WriteAccessUnit(au)
			}
			s.Close()
			if len(col.segs) < 2 {
				t.Fatalf("got %d segments, want a split", len(col.segs))
			}
			for _, f := range col.segs {
				checkPlayable(t, f, "h264")
			}
		})
	}
}

func TestPreRollBufferIsGOPAligned(t *testing.T) {
	s, _ := newTestSegmenter(t, Motion, 2*time.Second, time.Second, time.Minute)
	epoch := time.Now()
	for _, au := range clipUnits(t, mustClip(t, "still"), 1, epoch) {
		s.WriteAccessUnit(au)
		if len(s.preroll) == 0 {
			continue
		}
		if !s.preroll[0].Keyframe {
			t.Fatal("pre-roll buffer does not start with a keyframe")
		}
		span := au.Received.Sub(s.preroll[0].Received)
		if au.Received.Sub(epoch) > 3*time.Second && (span < 2*time.Second || span > 3*time.Second) {
			t.Fatalf("pre-roll spans %v, want 2-3 s", span)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	ok := func(*Finished) {}
	for _, c := range []Config{
		{Mode: "sometimes", MaxLength: time.Minute, SpoolDir: dir, OnSegment: ok},
		{Mode: Motion, MaxLength: 0, SpoolDir: dir, OnSegment: ok},
		{Mode: Motion, MaxLength: time.Minute, PreRoll: -1, SpoolDir: dir, OnSegment: ok},
		{Mode: Motion, MaxLength: time.Minute, SpoolDir: dir},
		{Mode: Motion, MaxLength: time.Minute, SpoolDir: filepath.Join(dir, "nope"), OnSegment: ok},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("accepted %+v", c)
		}
	}
}

// sortedSpool lists the spool's files.
func sortedSpool(t *testing.T, dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// While the detector does not work the segmenter records (fail open); when
// it works again, the post-roll runs from that moment.
func TestForceRecord(t *testing.T) {
	s, col := newTestSegmenter(t, Motion, time.Second, 2*time.Second, time.Minute)
	epoch := time.Now()
	for _, au := range clipUnits(t, mustClip(t, "still"), 1, epoch) {
		at := au.Received.Sub(epoch)
		forced := at >= 5*time.Second && at < 9*time.Second
		s.ForceRecord(forced, au.Received)
		if !forced && at >= 9*time.Second {
			// The detector works again and sees a still scene.
			s.Observe(au.Received, 0, false)
		}
		if err := s.WriteAccessUnit(au); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if len(col.segs) != 1 {
		t.Fatalf("got %d segments, want 1", len(col.segs))
	}
	f := col.segs[0]
	if start := f.Start.Sub(epoch); start > 4*time.Second+time.Millisecond || start < 3*time.Second-time.Millisecond {
		t.Errorf("forced segment starts at %v, want its pre-roll before 5s", start)
	}
	if end := f.End.Sub(epoch); end < 11*time.Second-5*time.Millisecond || end > 11*time.Second+100*time.Millisecond {
		t.Errorf("forced segment ends at %v, want 9s + 2s post-roll", end)
	}
	if a := s.Analyzed().Sub(epoch); a < 29*time.Second {
		t.Errorf("detector progress %v", a)
	}
}

// A camera that stops sending keyframes cannot make the agent buffer or
// write without bound.
func TestNoKeyframesIsBounded(t *testing.T) {
	for _, mode := range []Mode{Motion, Continuous} {
		t.Run(string(mode), func(t *testing.T) {
			s, col := newTestSegmenter(t, mode, 2*time.Second, 2*time.Second, 5*time.Second)
			epoch := time.Now()
			units := clipUnits(t, mustClip(t, "walk"), 3, epoch) // 90 s
			for i, au := range units {
				if i > 0 {
					au.Keyframe = false
				}
				if mode == Motion {
					s.Motion(au.Received, 0.1)
				}
				if err := s.WriteAccessUnit(au); err != nil {
					t.Fatal(err)
				}
				if span := au.Received.Sub(epoch); len(s.preroll) > 0 && au.Received.Sub(s.preroll[0].Received) > 2*time.Second+maxDetectorLag+maxGOP+time.Second {
					t.Fatalf("pre-roll spans %v at %v", au.Received.Sub(s.preroll[0].Received), span)
				}
			}
			s.Close()
			if len(col.segs) != 1 {
				t.Fatalf("got %d segments, want the one that started at the only keyframe", len(col.segs))
			}
			if d := col.segs[0].End.Sub(col.segs[0].Start); d > 5*time.Second+maxGOP+time.Second {
				t.Fatalf("segment without keyframes lasts %v", d)
			}
		})
	}
}
