package motion

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent/camerasim"
	"github.com/vigil-cctv/vigil/agent/internal/agenttest"
	"github.com/vigil-cctv/vigil/agent/media"
)

// judgedFrame is one verdict as a detector gave it.
type judgedFrame struct {
	at     time.Time
	score  float64
	moving bool
}

// recorder collects a detector's verdicts.
type recorder struct {
	mu     sync.Mutex
	frames []judgedFrame
}

func (r *recorder) onFrame(at time.Time, score float64, moving bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frames = append(r.frames, judgedFrame{at, score, moving})
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.frames)
}

func (r *recorder) last() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.frames) == 0 {
		return time.Time{}
	}
	return r.frames[len(r.frames)-1].at
}

func (r *recorder) all() []judgedFrame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]judgedFrame(nil), r.frames...)
}

// play feeds the units of a clip to det as fast as it judges them (at most
// window units ahead of its verdicts), then units of the clip's next loop
// until the clip's last unit is judged, and returns the verdicts on the
// clip's units.
func play(t *testing.T, det Detector, rec *recorder, units, flush []*media.AccessUnit) []judgedFrame {
	t.Helper()
	window := 32
	if l, ok := det.(Lagging); ok {
		window = l.MaxLag()
	}
	for i, au := range units {
		agenttest.WaitFor(t, 20*time.Second, "verdicts", func() bool { return i-rec.count() < window })
		det.Feed(au)
	}
	end := units[len(units)-1].Received
	for _, au := range flush {
		if !rec.last().Before(end) {
			break
		}
		det.Feed(au)
		deadline := time.Now().Add(200 * time.Millisecond)
		for rec.last().Before(end) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	agenttest.WaitFor(t, 20*time.Second, "the last verdict", func() bool { return !rec.last().Before(end) })
	if err := det.Healthy(); err != nil {
		t.Fatalf("detector unhealthy: %v", err)
	}
	var out []judgedFrame
	for _, f := range rec.all() {
		if !f.at.After(end) {
			out = append(out, f)
		}
	}
	return out
}

// clipUnits returns a clip's units and, to flush with, those of its next
// loop.
func clipUnits(t *testing.T, clip *camerasim.Clip) (units, flush []*media.AccessUnit) {
	all := agenttest.Units(t, clip, 2, time.Now())
	return all[:len(clip.AccessUnits)], all[len(clip.AccessUnits):]
}

// checkVerdicts checks that every unit got one verdict, in order, and that
// motion is seen within a second of each event's start and not away from
// events.
func checkVerdicts(t *testing.T, clip *camerasim.Clip, units []*media.AccessUnit, got []judgedFrame, wantEvents bool) {
	t.Helper()
	if len(got) != len(units) {
		t.Fatalf("%d verdicts for %d units", len(got), len(units))
	}
	epoch := units[0].Received
	for i, f := range got {
		if !f.at.Equal(units[i].Received) {
			t.Fatalf("verdict %d at %v, unit at %v: out of order", i, f.at.Sub(epoch), units[i].Received.Sub(epoch))
		}
	}
	for _, ev := range clip.Events {
		seen := false
		for _, f := range got {
			off := f.at.Sub(epoch)
			if f.moving && off >= ev.Start && off <= ev.Start+time.Second {
				seen = true
				break
			}
		}
		if seen != wantEvents {
			t.Errorf("event %v-%v seen within 1s of its start: %v, want %v", ev.Start, ev.End, seen, wantEvents)
		}
	}
	for _, f := range got {
		off := f.at.Sub(epoch)
		inside := false
		for _, ev := range clip.Events {
			if off >= ev.Start-200*time.Millisecond && off <= ev.End+500*time.Millisecond {
				inside = true
			}
		}
		if f.moving && !inside {
			t.Errorf("motion at %v outside every event %v", off, clip.Events)
			break
		}
	}
}

func TestHybridOnClips(t *testing.T) {
	clips, err := camerasim.EmbeddedClips()
	if err != nil {
		t.Fatal(err)
	}
	for _, clip := range clips {
		t.Run(clip.Name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{}
			det, err := NewHybrid(Config{Name: clip.Name, OnFrame: rec.onFrame})
			if err != nil {
				t.Fatal(err)
			}
			defer det.Close()
			units, flush := clipUnits(t, clip)
			got := play(t, det, rec, units, flush)
			checkVerdicts(t, clip, units, got, true)
			decoded, skipped := det.Decoded()
			keys := 0
			for _, u := range clip.AccessUnits {
				if u.Key {
					keys++
				}
			}
			t.Logf("%s: %d units, %d keyframes; decoded %d, not %d", clip.Name, len(units), keys, decoded, skipped)
			switch {
			case strings.Contains(clip.Name, "bframes"):
				// Decoded in full once B-frames show (the first GOP is
				// decided before).
				if skipped > uint64(len(units)/5) {
					t.Errorf("B-frame stream: %d of %d units not decoded", skipped, len(units))
				}
			case len(clip.Events) == 0:
				// A still picture: keyframes only, bar a GOP or two woken by
				// noise.
				if decoded > uint64(keys)+uint64(len(units))/10 {
					t.Errorf("still picture: %d units decoded for %d keyframes", decoded, keys)
				}
			default:
				if skipped == 0 {
					t.Error("every unit decoded")
				}
			}
		})
	}
}

// Masks apply to the probes too: with the pavement masked (the walkers are
// at y 210-330), the walkers are not seen, and the probes wake nothing. The
// frame sizes, which masks cannot apply to, are made deaf (sensitivity 1
// with the pixel threshold at its default) so that only the probes could
// wake the decoding; without the mask they do.
func TestHybridMasks(t *testing.T) {
	clip := agenttest.Clip(t, "walk")
	run := func(masks [][]MaskPoint) (got []judgedFrame, units []*media.AccessUnit, decoded uint64) {
		rec := &recorder{}
		det, err := NewHybrid(Config{Name: clip.Name, OnFrame: rec.onFrame, Sensitivity: 1, Threshold: 25, Masks: masks})
		if err != nil {
			t.Fatal(err)
		}
		defer det.Close()
		units, flush := clipUnits(t, clip)
		got = play(t, det, rec, units, flush)
		decoded, _ = det.Decoded()
		return got, units, decoded
	}
	got, units, decoded := run([][]MaskPoint{{{0, 200}, {640, 200}, {640, 360}, {0, 360}}})
	checkVerdicts(t, clip, units, got, false)
	keys := len(units) / 25
	if decoded > uint64(keys+keys/5) {
		t.Errorf("%d units decoded for %d keyframes with the walkers masked", decoded, keys)
	}
	got, units, decoded = run(nil)
	checkVerdicts(t, clip, units, got, true)
	if decoded < uint64(4*keys) {
		t.Errorf("only %d units decoded without masks", decoded)
	}
}

func TestHybridMissingFFmpeg(t *testing.T) {
	det, err := NewHybrid(Config{Name: "x", OnFrame: func(time.Time, float64, bool) {}, FFmpeg: "/nonexistent/ffmpeg"})
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	units, _ := clipUnits(t, agenttest.Clip(t, "walk"))
	det.Feed(units[0])
	if err := det.Healthy(); err == nil || !strings.Contains(err.Error(), "ffmpeg") {
		t.Fatalf("healthy without ffmpeg: %v", err)
	}
}

// A change of stream (new parameters) restarts the decoder; the detector
// stays healthy and judges the new stream's frames.
func TestHybridRestart(t *testing.T) {
	rec := &recorder{}
	det, err := NewHybrid(Config{Name: "switch", OnFrame: rec.onFrame, RestartDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	a, _ := clipUnits(t, agenttest.Clip(t, "walk"))
	for _, au := range a[:60] {
		det.Feed(au)
	}
	time.Sleep(50 * time.Millisecond) // the first decoder at work
	h265 := agenttest.Clip(t, "walk-h265")
	b := agenttest.Units(t, h265, 2, a[59].Received.Add(time.Second))
	got := play(t, det, rec, b[:100], b[100:])
	if err := det.Healthy(); err != nil {
		t.Fatalf("unhealthy after a planned restart: %v", err)
	}
	n := 0
	for _, f := range got {
		if !f.at.Before(b[0].Received) {
			n++
		}
	}
	if n != 100 {
		t.Errorf("%d verdicts on the new stream's 100 units", n)
	}
}

// padded returns a copy of au whose slices are grown by factor: more bits
// for the same quantiser, as when something large moves.
func padded(au *media.AccessUnit, factor int) *media.AccessUnit {
	c := *au
	c.NALUs = nil
	for _, n := range au.NALUs {
		if typ := n[0] & 0x1f; typ == 1 || typ == 5 {
			n = append(bytes.Clone(n), make([]byte, len(n)*(factor-1))...)
		}
		c.NALUs = append(c.NALUs, n)
	}
	return &c
}

func TestCompressedFrameSizes(t *testing.T) {
	clip := agenttest.Clip(t, "still")
	all := agenttest.Units(t, clip, 1, time.Now())
	epoch := all[0].Received
	second := func(au *media.AccessUnit) time.Duration { return au.Received.Sub(epoch) }
	// From 8 s to 11 s every predicted frame takes three times its bits;
	// at 15 s one frame takes twenty times (a light switched).
	var units []*media.AccessUnit
	for _, au := range all {
		switch s := second(au); {
		case !au.Keyframe && s >= 8*time.Second && s < 11*time.Second:
			au = padded(au, 3)
		case !au.Keyframe && s >= 15*time.Second && s < 15*time.Second+40*time.Millisecond:
			au = padded(au, 20)
		}
		units = append(units, au)
	}
	rec := &recorder{}
	det, err := NewCompressed(Config{Name: clip.Name, OnFrame: rec.onFrame})
	if err != nil {
		t.Fatal(err)
	}
	for _, au := range units {
		det.Feed(au)
	}
	if err := det.Close(); err != nil {
		t.Fatal(err)
	}
	got := rec.all()
	if len(got) != len(units) {
		t.Fatalf("%d verdicts for %d units", len(got), len(units))
	}
	var first time.Duration = -1
	for i, f := range got {
		s := second(units[i])
		inside := s >= 8*time.Second && s < 11*time.Second+500*time.Millisecond
		if f.moving && !inside {
			t.Errorf("motion at %v", s)
		}
		if f.moving && first < 0 {
			first = s
		}
	}
	if first < 8*time.Second || first > 8*time.Second+500*time.Millisecond {
		t.Errorf("the larger frames seen from %v, want within half a second of 8s", first)
	}
	if err := det.Healthy(); err != nil {
		t.Errorf("unhealthy: %v", err)
	}
	if _, err := NewCompressed(Config{OnFrame: rec.onFrame, Masks: [][]MaskPoint{{{0, 0}, {1, 0}, {1, 1}}}}); err == nil || !strings.Contains(err.Error(), "cannot apply masks") {
		t.Errorf("masks: %v", err)
	}
}
