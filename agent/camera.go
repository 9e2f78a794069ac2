package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-cctv/vigil/agent/config"
	"github.com/vigil-cctv/vigil/agent/ingest"
	"github.com/vigil-cctv/vigil/agent/media"
	"github.com/vigil-cctv/vigil/agent/motion"
	"github.com/vigil-cctv/vigil/agent/segmenter"
)

// unitQueueDepth is how many access units may wait between the RTSP reader
// and the segmenter: about 20 s at 25 fps, so an fsync stall on a busy disk
// does not cost frames.
const unitQueueDepth = 512

// detectorGrace is how long a broken detector is tolerated before the
// camera records as if it saw motion: missing an event is lost evidence.
const detectorGrace = 5 * time.Second

// detectorMaxLag is how far behind the stream the detector may judge frames
// before it counts as broken.
const detectorMaxLag = 10 * time.Second

// camera is the pipeline of one camera: RTSP source(s) → detector →
// segmenter → uploader. A panic or error in one camera never stops others.
type camera struct {
	a      *Agent
	cfg    *config.Camera
	log    *slog.Logger
	main   *ingest.Source
	detect *ingest.Source // nil when detection runs on the main stream
	det    motion.Detector
	seg    *segmenter.Segmenter
	events chan cameraEvent
	// live and liveSub feed central's live relays from the main stream
	// and from the detect stream (liveSub is unused without one).
	live, liveSub *liveFeed

	dropping atomic.Bool
	dropped  atomic.Uint64

	mu           sync.Mutex
	firstUnit    time.Time
	segments     int
	lastSegment  time.Time
	lastError    string
	unhealthyAt  time.Time
	detectorNote string
}

// cameraEvent is an access unit, or the end of a stream session (au nil).
type cameraEvent struct {
	au *media.AccessUnit
}

func newCamera(a *Agent, cc *config.Camera) (*camera, error) {
	c := &camera{
		a: a, cfg: cc,
		log:    a.opts.Logger.With("component", "camera", "camera", cc.ID),
		events: make(chan cameraEvent, unitQueueDepth),
		live:   newLiveFeed(), liveSub: newLiveFeed(),
	}
	dir := filepath.Join(a.spoolDir, cc.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("camera %s: spool: %w", cc.ID, err)
	}
	seg, err := segmenter.New(segmenter.Config{
		Camera: cc.ID, Mode: segmenter.Mode(cc.Mode),
		PreRoll: cc.PreRoll.Std(), PostRoll: cc.PostRoll.Std(), MaxLength: cc.MaxLength.Std(),
		SpoolDir: dir, OnSegment: c.onSegment, Logger: a.opts.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("camera %s: %w", cc.ID, err)
	}
	c.seg = seg
	c.main, err = ingest.New(ingest.Config{
		Name: cc.ID, URL: cc.URL, Transport: string(cc.Transport),
		OnAccessUnit: func(au *media.AccessUnit) { c.live.publish(au); c.enqueue(au) },
		OnStreamEnd:  func(error) { c.live.streamEnd(); c.events <- cameraEvent{} },
		StallTimeout: a.opts.StallTimeout,
		Logger:       a.opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	if cc.Mode == config.ModeMotion {
		mc := cc.MotionConfig()
		mc.OnFrame, mc.FFmpeg, mc.Logger = seg.Observe, a.opts.FFmpeg, a.opts.Logger
		c.det, err = motion.New(mc)
		if err != nil {
			return nil, fmt.Errorf("camera %s: %w", cc.ID, err)
		}
		if cc.DetectURL != "" {
			c.detect, err = ingest.New(ingest.Config{
				Name: cc.ID + "/detect", URL: cc.DetectURL, Transport: string(cc.Transport),
				OnAccessUnit: func(au *media.AccessUnit) { c.liveSub.publish(au); c.det.Feed(au) },
				OnStreamEnd:  func(error) { c.liveSub.streamEnd() },
				StallTimeout: a.opts.StallTimeout,
				Logger:       a.opts.Logger,
			})
			if err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// enqueue runs on the RTSP reader goroutine: it must not block. When the
// queue is full, units are dropped until the next keyframe so that what is
// written stays decodable.
func (c *camera) enqueue(au *media.AccessUnit) {
	if c.dropping.Load() {
		if !au.Keyframe {
			c.dropped.Add(1)
			return
		}
		c.dropping.Store(false)
	}
	select {
	case c.events <- cameraEvent{au: au}:
	default:
		c.dropping.Store(true)
		c.dropped.Add(1)
	}
}

func (c *camera) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, src := range []*ingest.Source{c.main, c.detect} {
		if src == nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); src.Run(ctx) }()
	}
	// The worker runs until the sources have stopped (they stop with ctx),
	// so a source never blocks on a queue nobody reads.
	sourcesDone := make(chan struct{})
	go func() { wg.Wait(); close(sourcesDone) }()
	for !c.process(sourcesDone) {
	}
	if c.det != nil {
		c.det.Close()
	}
	if err := c.seg.Close(); err != nil {
		c.noteError(err)
	}
}

// process runs the segmenter on queued events until the sources are done
// and the queue is empty. A panic is contained to this camera: it is
// logged and processing resumes with the next event.
func (c *camera) process(sourcesDone <-chan struct{}) (done bool) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic in camera pipeline; resuming", "panic", r)
			c.noteError(fmt.Errorf("internal error: %v", r))
			done = false
		}
	}()
	for {
		select {
		case ev := <-c.events:
			c.handle(ev)
		case <-sourcesDone:
			for {
				select {
				case ev := <-c.events:
					c.handle(ev)
				default:
					return true
				}
			}
		}
	}
}

func (c *camera) handle(ev cameraEvent) {
	if ev.au == nil {
		if err := c.seg.StreamEnd(); err != nil {
			c.noteError(err)
		}
		return
	}
	au := ev.au
	if c.det != nil {
		if c.detect == nil {
			c.det.Feed(au)
		}
		// Fail open: without a working detector, record everything.
		c.seg.ForceRecord(c.detectorDown(au.Received), au.Received)
	}
	if err := c.seg.WriteAccessUnit(au); err != nil {
		c.noteError(err)
	}
}

// detectorDown reports whether motion detection has not worked for longer
// than detectorGrace: its decoder is broken or its detect stream is down.
func (c *camera) detectorDown(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.firstUnit.IsZero() {
		c.firstUnit = now
	}
	analyzed := c.seg.Analyzed()
	if analyzed.IsZero() {
		analyzed = c.firstUnit
	}
	note := ""
	if err := c.det.Healthy(); err != nil {
		note = err.Error()
	} else if c.detect != nil && c.detect.Status().State != ingest.StateUp {
		note = "detect stream " + string(c.detect.Status().State)
	} else if lag := now.Sub(analyzed); lag > detectorMaxLag {
		note = fmt.Sprintf("detector is %s behind the stream", lag.Round(time.Second))
	}
	if note == "" {
		if c.detectorNote != "" {
			c.log.Info("motion detection restored")
		}
		c.unhealthyAt, c.detectorNote = time.Time{}, ""
		return false
	}
	if c.unhealthyAt.IsZero() {
		c.unhealthyAt = now
	}
	if c.detectorNote == "" && now.Sub(c.unhealthyAt) >= detectorGrace {
		c.log.Warn("motion detection not working; recording continuously", "reason", note)
	}
	down := now.Sub(c.unhealthyAt) >= detectorGrace
	if down {
		c.detectorNote = note
	}
	return down
}

func (c *camera) onSegment(f *segmenter.Finished) {
	c.mu.Lock()
	c.segments++
	c.lastSegment = f.End
	c.lastError = "" // recording works again
	c.mu.Unlock()
	c.a.uploads.enqueue(c.cfg.ID, f)
}

func (c *camera) noteError(err error) {
	c.log.Error("recording error", "error", err)
	c.mu.Lock()
	c.lastError = err.Error()
	c.mu.Unlock()
}

// CameraStatus is one camera as operators see it.
type CameraStatus struct {
	ID     string        `json:"id"`
	Mode   string        `json:"mode"`
	Stream ingest.Status `json:"stream"`
	// Detect is the detect stream's status, when the camera has one.
	Detect *ingest.Status `json:"detect,omitempty"`
	// Detector is empty while motion detection works, else why not.
	Detector    string    `json:"detector,omitempty"`
	Recording   bool      `json:"recording"`
	Segments    int       `json:"segments"`
	LastSegment time.Time `json:"last_segment,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	// QueueDropped counts access units dropped because the recorder could
	// not keep up.
	QueueDropped uint64 `json:"queue_dropped"`
}

func (c *camera) status() CameraStatus {
	st := CameraStatus{ID: c.cfg.ID, Mode: string(c.cfg.Mode), Stream: c.main.Status(), QueueDropped: c.dropped.Load()}
	if c.detect != nil {
		d := c.detect.Status()
		st.Detect = &d
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st.Segments, st.LastSegment, st.LastError, st.Detector = c.segments, c.lastSegment, c.lastError, c.detectorNote
	// Recording is read without the worker's cooperation; it is a hint.
	st.Recording = c.seg.Recording()
	return st
}
