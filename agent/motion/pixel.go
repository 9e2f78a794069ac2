package motion

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vigil-cctv/vigil/agent/media"
)

// Pixel is the pixel detector: PixelAnalyzer (normalised running-average
// background, shake compensation, connected blobs confirmed over a few
// frames, masks) on every frame, decoded by ffmpeg to FrameWidth×FrameHeight
// gray.
type Pixel struct {
	cfg Config
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	proc      *decoder
	params    *media.Params
	dropping  bool
	lastStart time.Time
	health    error
}

var _ Detector = (*Pixel)(nil)

// NewPixel makes a pixel detector (cfg.Detector is ignored). ffmpeg is
// started at the first keyframe.
func NewPixel(cfg Config) (*Pixel, error) {
	cfg.Detector = KindPixel
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	if _, err := cfg.newAnalyzer(nil); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Pixel{
		cfg: cfg, ctx: ctx, cancel: cancel,
		log: cfg.Logger.With("component", "motion", "camera", cfg.Name, "detector", string(KindPixel)),
	}, nil
}

// Healthy implements Detector.
func (p *Pixel) Healthy() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.health
}

// Feed implements Detector.
func (p *Pixel) Feed(au *media.AccessUnit) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		return
	}
	if p.proc != nil && (p.proc.exited() || !au.Params.Equal(p.params)) && au.Keyframe {
		// The decoder died or the stream changed: start afresh.
		p.proc.stop()
		p.proc = nil
	}
	if p.proc == nil {
		if !au.Keyframe || time.Since(p.lastStart) < p.cfg.RestartDelay {
			return
		}
		p.lastStart = time.Now()
		proc, err := p.startDecoder(au.Params)
		if err != nil {
			p.health = err
			p.log.Warn("motion detector unavailable", "error", err)
			return
		}
		p.proc, p.params, p.dropping, p.health = proc, au.Params, false, nil
	}
	if p.dropping && !au.Keyframe {
		return
	}
	p.dropping = !p.proc.enqueue(au, frameTag{at: au.Received, key: au.Keyframe, report: true})
}

// Close implements Detector.
func (p *Pixel) Close() error {
	p.cancel()
	p.mu.Lock()
	if p.proc != nil {
		p.proc.stop()
		p.proc = nil
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// startDecoder is called with p.mu held.
func (p *Pixel) startDecoder(params *media.Params) (*decoder, error) {
	analyzer, err := p.cfg.newAnalyzer(params)
	if err != nil {
		return nil, err
	}
	clock := newFrameClock(p.cfg.FPS)
	var score float64
	var moving bool
	return startDecoder(p.ctx, &p.wg, decoderConfig{
		ffmpeg: p.cfg.FFmpeg, params: params, depth: queueDepth,
		onFrame: func(frame []byte, tag frameTag) {
			// A frame skipped by the FPS cap keeps the last verdict: the
			// detector got that far, and motion does not stop between
			// two frames analysed.
			if dt, ok := clock.next(tag.at, false); ok {
				score, moving = analyzer.AnalyzeAfter(frame, dt)
			}
			p.cfg.OnFrame(tag.at, score, moving)
		},
		onExit: func(d *decoder, msg string, err error) {
			// Only the current decoder speaks for the detector's health:
			// one that Feed replaced (new parameters, or after a crash) was
			// killed on purpose and must not mark its successor broken.
			p.mu.Lock()
			current := p.proc == d && p.ctx.Err() == nil
			if current {
				p.health = fmt.Errorf("motion: ffmpeg exited: %s", msg)
			}
			p.mu.Unlock()
			if current {
				p.log.Warn("ffmpeg exited; restarting at the next keyframe", "stderr", msg, "error", err)
			}
		},
	})
}
