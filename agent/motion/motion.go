// Package motion decides when a camera sees motion. A Detector is fed the
// access units of the camera's (detect) stream and reports frames with
// motion. The pixel detector decodes through an ffmpeg subprocess (Annex-B
// on stdin, small gray frames on stdout): no cgo, and a decoder crash costs
// a restart of the subprocess, not the agent.
package motion

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
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

// OnFrame receives, for every analysed frame, its arrival time, its score
// (the fraction of the picture that changed) and whether that is motion.
// Frames without motion matter too: they tell how far the detector got, so
// a recorder never takes a detector that lags behind for a still scene.
type OnFrame func(at time.Time, score float64, moving bool)

// PixelConfig configures the ffmpeg pixel detector.
type PixelConfig struct {
	Name      string
	Threshold int
	MinArea   float64
	// Masks are polygons, in pixels of a MaskWidth×MaskHeight picture (the
	// camera's), inside which nothing counts as motion.
	Masks                 [][]MaskPoint
	MaskWidth, MaskHeight int
	OnFrame               OnFrame
	// FFmpeg is the ffmpeg binary (default "ffmpeg" on PATH).
	FFmpeg string
	// RestartDelay is the least time between two ffmpeg starts (default 2s).
	RestartDelay time.Duration
	Logger       *slog.Logger
}

// queueDepth is how many access units may wait for ffmpeg: about 4 s at
// 25 fps, enough to ride over a scheduling hiccup.
const queueDepth = 100

// Pixel is the pixel detector: PixelAnalyzer (normalised running-average
// background, shake compensation, connected blobs confirmed over a few
// frames, masks) on FrameWidth×FrameHeight gray frames decoded by ffmpeg.
type Pixel struct {
	cfg PixelConfig
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

// NewPixel makes a pixel detector. ffmpeg is started at the first keyframe.
func NewPixel(cfg PixelConfig) (*Pixel, error) {
	if cfg.OnFrame == nil {
		return nil, errors.New("motion: OnFrame is required")
	}
	if _, err := cfg.newAnalyzer(); err != nil {
		return nil, err
	}
	if cfg.FFmpeg == "" {
		cfg.FFmpeg = "ffmpeg"
	}
	if cfg.RestartDelay == 0 {
		cfg.RestartDelay = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Pixel{
		cfg: cfg, ctx: ctx, cancel: cancel,
		log: cfg.Logger.With("component", "motion", "camera", cfg.Name),
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
	p.dropping = !p.proc.enqueue(au)
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

// newAnalyzer makes the frame analyzer the configuration describes.
func (cfg *PixelConfig) newAnalyzer() (*PixelAnalyzer, error) {
	a, err := NewPixelAnalyzer(FrameWidth, FrameHeight, cfg.Threshold, cfg.MinArea)
	if err != nil {
		return nil, err
	}
	if err := a.SetMasks(cfg.Masks, cfg.MaskWidth, cfg.MaskHeight); err != nil {
		return nil, err
	}
	return a, nil
}

// decoder is one ffmpeg process.
type decoder struct {
	cmd   *exec.Cmd
	queue chan *media.AccessUnit
	done  chan struct{}

	mu    sync.Mutex
	times []time.Time // arrival times of units fed, not yet matched to a frame
}

// startDecoder is called with p.mu held.
func (p *Pixel) startDecoder(params *media.Params) (*decoder, error) {
	demuxer := "h264"
	if params.Codec == media.H265 {
		demuxer = "hevc"
	}
	analyzer, err := p.cfg.newAnalyzer()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(p.ctx, p.cfg.FFmpeg,
		"-hide_banner", "-loglevel", "error", "-threads", "1",
		// No -fflags nobuffer: it makes ffmpeg drop the first GOP, which
		// would shift every frame's time by a GOP.
		"-probesize", "32", "-analyzeduration", "0",
		"-f", demuxer, "-i", "pipe:0",
		"-an", "-vf", fmt.Sprintf("scale=%d:%d:flags=area,format=gray", FrameWidth, FrameHeight),
		"-fps_mode", "passthrough", "-flush_packets", "1", "-f", "rawvideo", "pipe:1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("motion: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("motion: %w", err)
	}
	var stderr tailBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("motion: start ffmpeg: %w", err)
	}
	d := &decoder{cmd: cmd, queue: make(chan *media.AccessUnit, queueDepth), done: make(chan struct{})}

	// Writer: units to ffmpeg's stdin, so Feed never waits on the pipe.
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		defer stdin.Close()
		var buf []byte
		for {
			select {
			case <-d.done:
				return
			case au := <-d.queue:
				d.pushTime(au.Received)
				buf = au.AppendAnnexB(buf[:0])
				if _, err := stdin.Write(buf); err != nil {
					return
				}
			}
		}
	}()
	// Reader: gray frames out of ffmpeg, each matched to the arrival time of
	// the unit it came from (ffmpeg emits one frame per unit, in order).
	go func() {
		defer p.wg.Done()
		r := bufio.NewReaderSize(stdout, FrameWidth*FrameHeight*2)
		frame := make([]byte, FrameWidth*FrameHeight)
		for {
			if _, err := io.ReadFull(r, frame); err != nil {
				break
			}
			at := d.popTime()
			score, moving := analyzer.Analyze(frame)
			p.cfg.OnFrame(at, score, moving)
		}
		err := cmd.Wait()
		msg := strings.TrimSpace(stderr.String())
		if msg == "" && err != nil {
			msg = err.Error()
		}
		// Only the current decoder speaks for the detector's health: one
		// that Feed replaced (new parameters, or after a crash) was killed
		// on purpose and must not mark its successor broken.
		p.mu.Lock()
		current := p.proc == d && p.ctx.Err() == nil
		if current {
			p.health = fmt.Errorf("motion: ffmpeg exited: %s", msg)
		}
		p.mu.Unlock()
		d.stop()
		if current {
			p.log.Warn("ffmpeg exited; restarting at the next keyframe", "stderr", msg, "error", err)
		}
	}()
	return d, nil
}

// enqueue hands au to the writer; false if the queue is full.
func (d *decoder) enqueue(au *media.AccessUnit) bool {
	select {
	case d.queue <- au:
		return true
	default:
		return false
	}
}

// maxPendingTimes bounds the arrival times kept for frames ffmpeg has not
// returned: a decoder that swallows units must not grow memory forever.
const maxPendingTimes = 4 * queueDepth

func (d *decoder) pushTime(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.times) >= maxPendingTimes {
		d.times = append(d.times[:0], d.times[1:]...)
	}
	d.times = append(d.times, t)
}

func (d *decoder) popTime() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.times) == 0 {
		return time.Now()
	}
	t := d.times[0]
	d.times = d.times[1:]
	return t
}

func (d *decoder) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

func (d *decoder) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	select {
	case <-d.done:
	default:
		close(d.done)
		if d.cmd.Process != nil {
			d.cmd.Process.Kill()
		}
	}
}

// tailBuffer keeps the last few hundred bytes written to it: ffmpeg's last
// words when it dies.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 512 {
		t.buf = t.buf[len(t.buf)-512:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
