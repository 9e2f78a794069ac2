package motion

import (
	"sync"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent/camerasim"
	"github.com/vigil-cctv/vigil/agent/internal/agenttest"
	"github.com/vigil-cctv/vigil/agent/media"
)

// feedClip plays a clip into a detector as fast as it takes it, stamping
// each unit as if it arrived at epoch + DTS, and returns the motion times
// as clip offsets.
func feedClip(t *testing.T, clip *camerasim.Clip, loops int) []time.Duration {
	t.Helper()
	var mu sync.Mutex
	var hits []time.Duration
	epoch := time.Now()
	det, err := NewPixel(Config{
		Name: clip.Name, Threshold: 25, MinArea: 0.005,
		OnFrame: func(at time.Time, _ float64, moving bool) {
			if !moving {
				return
			}
			mu.Lock()
			hits = append(hits, at.Sub(epoch))
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	params, err := media.NewParams(media.Codec(clip.Codec), clip.VPS, clip.SPS, clip.PPS)
	if err != nil {
		t.Fatal(err)
	}
	fed := 0
	for loop := range loops {
		base := time.Duration(loop) * clip.Duration
		for _, u := range clip.AccessUnits {
			nalus := u.NALUs
			if u.Key {
				nalus = append(params.ParamNALUs(), nalus...)
			}
			au := &media.AccessUnit{NALUs: nalus, Keyframe: u.Key, Params: params, Received: epoch.Add(base + u.DTS)}
			// Feed never blocks: pace it so the queue does not overflow.
			for det.proc != nil && det.proc.backlog() > queueDepth/2 {
				time.Sleep(time.Millisecond)
			}
			det.Feed(au)
			fed++
		}
	}
	// Wait for ffmpeg to return every frame (it holds a few back).
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		det.mu.Lock()
		p := det.proc
		det.mu.Unlock()
		if p != nil && p.backlog() == 0 && p.pending() <= 8 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := det.Healthy(); err != nil {
		t.Fatalf("detector unhealthy: %v", err)
	}
	det.Close()
	mu.Lock()
	defer mu.Unlock()
	return append([]time.Duration(nil), hits...)
}

func TestPixelDetectorOnClips(t *testing.T) {
	clips, err := camerasim.EmbeddedClips()
	if err != nil {
		t.Fatal(err)
	}
	for _, clip := range clips {
		t.Run(clip.Name, func(t *testing.T) {
			t.Parallel()
			hits := feedClip(t, clip, 1)
			// Every event is seen, within a second of its start.
			for _, ev := range clip.Events {
				seen := false
				for _, h := range hits {
					if h >= ev.Start && h <= ev.Start+time.Second {
						seen = true
						break
					}
				}
				if !seen {
					t.Errorf("event %v-%v not detected within 1s of its start (hits: %d)", ev.Start, ev.End, len(hits))
				}
			}
			// Nothing is seen away from events (noise, grain, compression).
			for _, h := range hits {
				inside := false
				for _, ev := range clip.Events {
					if h >= ev.Start-200*time.Millisecond && h <= ev.End+500*time.Millisecond {
						inside = true
					}
				}
				if !inside {
					t.Errorf("motion at %v outside every event %v", h, clip.Events)
					break
				}
			}
		})
	}
}

func TestPixelDetectorMissingFFmpeg(t *testing.T) {
	det, err := NewPixel(Config{Name: "x", Threshold: 25, MinArea: 0.01, OnFrame: func(time.Time, float64, bool) {}, FFmpeg: "/nonexistent/ffmpeg"})
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	clips, err := camerasim.EmbeddedClips()
	if err != nil {
		t.Fatal(err)
	}
	c := clips[0]
	params, err := media.NewParams(media.Codec(c.Codec), c.VPS, c.SPS, c.PPS)
	if err != nil {
		t.Fatal(err)
	}
	det.Feed(&media.AccessUnit{NALUs: c.AccessUnits[0].NALUs, Keyframe: true, Params: params, Received: time.Now()})
	if err := det.Healthy(); err == nil {
		t.Fatal("detector reports healthy without ffmpeg")
	}
}

func TestPixelDetectorRejectsBadSettings(t *testing.T) {
	for _, cfg := range []Config{
		{Threshold: -1, MinArea: 0.01, OnFrame: func(time.Time, float64, bool) {}},
		{Threshold: 300, MinArea: 0.01, OnFrame: func(time.Time, float64, bool) {}},
		{Threshold: 25, MinArea: -0.1, OnFrame: func(time.Time, float64, bool) {}},
		{Threshold: 25, MinArea: 1.5, OnFrame: func(time.Time, float64, bool) {}},
		{Threshold: 25, MinArea: 0.01},
	} {
		if _, err := NewPixel(cfg); err == nil {
			t.Errorf("accepted %+v", cfg)
		}
	}
}

// A decoder replaced on purpose (the stream's parameters changed) must not
// leave the detector marked broken once its successor works.
func TestPixelDetectorRestartStaysHealthy(t *testing.T) {
	det, err := NewPixel(Config{Name: "switch", Threshold: 25, MinArea: 0.005, OnFrame: func(time.Time, float64, bool) {}, RestartDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	feed := func(name string) {
		clip := agenttest.Clip(t, name)
		for _, au := range agenttest.Units(t, clip, 1, time.Now())[:100] {
			for {
				det.mu.Lock()
				busy := det.proc != nil && det.proc.backlog() > queueDepth/2
				det.mu.Unlock()
				if !busy {
					break
				}
				time.Sleep(time.Millisecond)
			}
			det.Feed(au)
		}
	}
	feed("walk")
	feed("walk-h265") // new parameters: Feed kills the H.264 decoder
	time.Sleep(500 * time.Millisecond)
	if err := det.Healthy(); err != nil {
		t.Fatalf("detector unhealthy after a planned restart: %v", err)
	}
}
