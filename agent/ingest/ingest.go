// Package ingest reads one camera over RTSP (H.264 or H.265, TCP or UDP)
// and hands its access units to the recorder. A Source reconnects forever
// with capped, jittered backoff and keeps a status that operators read:
// connecting, up or down, with the last error and since when. Camera
// credentials ride in the URL and are never logged nor put in a status.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/pion/rtp"

	"github.com/vigil-cctv/vigil/agent/media"
)

// State is the connection state of a camera.
type State string

// Camera states.
const (
	StateConnecting State = "connecting"
	StateUp         State = "up"
	StateDown       State = "down"
)

// Status is what operators see of a camera's stream.
type Status struct {
	State State `json:"state"`
	// Since is when State was entered.
	Since time.Time `json:"since"`
	// LastError is the error that ended the last session or attempt,
	// without credentials.
	LastError   string      `json:"last_error,omitempty"`
	LastErrorAt time.Time   `json:"last_error_at,omitzero"`
	Codec       media.Codec `json:"codec,omitempty"`
	Width       int         `json:"width,omitempty"`
	Height      int         `json:"height,omitempty"`
	Transport   string      `json:"transport,omitempty"`
	// Sessions counts the sessions that delivered video.
	Sessions int `json:"sessions"`
	// LastFrame is when the last access unit arrived.
	LastFrame time.Time `json:"last_frame,omitzero"`
	// DroppedUnits counts access units dropped for bitstream errors.
	DroppedUnits uint64 `json:"dropped_units"`
}

// Config configures a Source.
type Config struct {
	// Name identifies the stream in logs, e.g. "gate" or "gate/detect".
	Name string
	// URL is rtsp:// or rtsps://, possibly with user:password.
	URL string
	// Transport is "tcp", "udp", or "" / "auto" (UDP first, then TCP).
	Transport string
	// OnAccessUnit receives every access unit, in order, from one goroutine
	// at a time. It should return quickly; the caller queues if it must.
	OnAccessUnit func(*media.AccessUnit)
	// OnStreamEnd is called once after each session that delivered video
	// ends, before reconnecting, so an open segment can be closed.
	OnStreamEnd func(err error)
	// StallTimeout ends a session that delivers no access unit for this long
	// (default 10s): a camera that sends nothing is down, not up.
	StallTimeout time.Duration
	// RequestTimeout bounds each RTSP request (default 5s).
	RequestTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts (defaults
	// 500ms and 4s: cameras sit on the district LAN and footage missed
	// while waiting is lost for good).
	MinBackoff, MaxBackoff time.Duration
	// StableAfter is how long a session must have delivered video for the
	// backoff to start again from MinBackoff (default 30s).
	StableAfter time.Duration
	Logger      *slog.Logger
	// Now is the clock; tests may replace it.
	Now func() time.Time
}

// CheckAndSetDefaults validates the configuration.
func (c *Config) CheckAndSetDefaults() error {
	if c.Name == "" {
		return errors.New("ingest: name is required")
	}
	u, err := base.ParseURL(c.URL)
	if err != nil {
		return fmt.Errorf("ingest %s: invalid URL", c.Name)
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		return fmt.Errorf("ingest %s: URL scheme must be rtsp or rtsps", c.Name)
	}
	switch c.Transport {
	case "", "auto", "tcp", "udp":
	default:
		return fmt.Errorf("ingest %s: unknown transport %q", c.Name, c.Transport)
	}
	if c.OnAccessUnit == nil {
		return fmt.Errorf("ingest %s: OnAccessUnit is required", c.Name)
	}
	if c.StallTimeout < 0 || c.RequestTimeout < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0 || c.StableAfter < 0 {
		return fmt.Errorf("ingest %s: timeouts and backoffs must not be negative", c.Name)
	}
	if c.StallTimeout == 0 {
		c.StallTimeout = 10 * time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 5 * time.Second
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 500 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 4 * time.Second
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.StableAfter == 0 {
		c.StableAfter = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// errStopped is the status error of a source whose agent is shutting down.
var errStopped = errors.New("stopped")

// Source is one camera stream, reconnecting until its context ends.
type Source struct {
	cfg    Config
	log    *slog.Logger
	secret []string // substrings to scrub from errors

	mu     sync.Mutex
	status Status
}

// New makes a Source. The URL's credentials never appear in its logs.
func New(cfg Config) (*Source, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	s := &Source{cfg: cfg, secret: secrets(cfg.URL)}
	s.log = cfg.Logger.With("component", "ingest", "stream", cfg.Name, "url", Redact(cfg.URL))
	s.status = Status{State: StateConnecting, Since: cfg.Now()}
	return s, nil
}

// Redact returns the URL with its password replaced, for logs and status.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Redacted()
}

func secrets(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return nil
	}
	var out []string
	if p, ok := u.User.Password(); ok && p != "" {
		out = append(out, p, url.QueryEscape(p), url.PathEscape(p))
	}
	return out
}

// scrub removes credentials from an error text: libraries may echo URLs.
func (s *Source) scrub(msg string) string {
	for _, p := range s.secret {
		msg = strings.ReplaceAll(msg, p, "xxxxx")
	}
	return msg
}

// Status returns a copy of the current status.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

func (s *Source) setState(st State, err error) {
	now := s.cfg.Now()
	s.mu.Lock()
	changed := s.status.State != st
	if changed {
		s.status.State = st
		s.status.Since = now
	}
	prevError := s.status.LastError
	if err != nil {
		s.status.LastError = s.scrub(err.Error())
		s.status.LastErrorAt = now
	}
	status := s.status
	s.mu.Unlock()
	switch {
	case st == StateDown && err == errStopped:
		if changed {
			s.log.Info("camera stopped")
		}
	case st == StateDown && changed:
		s.log.Warn("camera down", "error", status.LastError)
	case st == StateDown && status.LastError != prevError:
		s.log.Warn("camera still down", "error", status.LastError, "since", status.Since)
	case st == StateDown:
		s.log.Debug("camera still down", "error", status.LastError)
	case st == StateUp && changed:
		s.log.Info("camera up", "codec", status.Codec, "width", status.Width, "height", status.Height, "transport", status.Transport)
	}
}

// Run connects and reads until ctx is done. It returns nil on cancellation;
// every other failure is retried and shown in the status.
func (s *Source) Run(ctx context.Context) error {
	failures := 0
	for {
		// A camera that is down stays down, with the time of the first
		// failure, while retrying: operators need the outage's length.
		if s.Status().State != StateDown {
			s.setState(StateConnecting, nil)
		}
		started := s.cfg.Now()
		delivered, err := s.session(ctx)
		if ctx.Err() != nil {
			s.setState(StateDown, errStopped)
			return nil
		}
		if err == nil {
			err = errors.New("stream ended")
		}
		s.setState(StateDown, err)
		if delivered && s.cfg.Now().Sub(started) >= s.cfg.StableAfter {
			failures = 0
		}
		wait := backoff(s.cfg.MinBackoff, s.cfg.MaxBackoff, failures)
		failures++
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// backoff grows exponentially from lo to hi with jitter in [d/2, d], so that
// the cameras of a district that lost power together do not reconnect in
// lockstep.
func backoff(lo, hi time.Duration, failures int) time.Duration {
	d := lo
	for i := 0; i < failures && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

// session runs one RTSP session. delivered reports whether any access unit
// reached the recorder, in which case OnStreamEnd has been called.
func (s *Source) session(ctx context.Context) (delivered bool, err error) {
	var gotUnit atomic.Bool
	// packets counts RTP packets since the last access unit, so that a
	// stall tells a silent camera from one sending what cannot be used.
	var packets atomic.Int64
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error: %v", r)
			s.log.Error("panic in camera session", "panic", r)
		}
		delivered = gotUnit.Load()
		if delivered && s.cfg.OnStreamEnd != nil {
			s.cfg.OnStreamEnd(err)
		}
	}()
	u, err := base.ParseURL(s.cfg.URL)
	if err != nil {
		return false, errors.New("invalid URL")
	}
	var (
		mu         sync.Mutex
		lastUnit   = s.cfg.Now()
		lastIssue  error
		sessionErr = make(chan error, 1)
	)
	fail := func(err error) {
		select {
		case sessionErr <- err:
		default:
		}
	}
	// gortsplib tries UDP first in auto mode and reports a switch to TCP.
	usedTransport := "udp"
	if s.cfg.Transport == "tcp" {
		usedTransport = "tcp"
	}
	c := &gortsplib.Client{
		Scheme:       u.Scheme,
		Host:         u.Host,
		ReadTimeout:  s.cfg.RequestTimeout,
		WriteTimeout: s.cfg.RequestTimeout,
		Transport:    transport(s.cfg.Transport),
		UserAgent:    "vigil",
		OnTransportSwitch: func(error) {
			mu.Lock()
			usedTransport = "tcp"
			mu.Unlock()
		},
		OnDecodeError: func(err error) {
			mu.Lock()
			lastIssue = err
			mu.Unlock()
		},
	}
	if err := c.Start2(); err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer c.Close()
	// Close the client when the context ends, so blocking requests return.
	stop := context.AfterFunc(ctx, c.Close)
	defer stop()

	desc, _, err := c.Describe(u)
	if err != nil {
		return false, fmt.Errorf("describe: %w", err)
	}
	track, err := findVideo(desc)
	if err != nil {
		return false, err
	}
	asm, err := media.NewAssembler(track.codec, track.vps, track.sps, track.pps)
	if err != nil {
		return false, err
	}
	if _, err := c.Setup(desc.BaseURL, track.media, 0, 0); err != nil {
		return false, fmt.Errorf("setup: %w", err)
	}

	c.OnPacketRTP(track.media, track.format, func(pkt *rtp.Packet) {
		// A panic here would kill the process from gortsplib's goroutine:
		// contain it to this camera's session.
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("panic handling packet", "panic", r)
				fail(fmt.Errorf("internal error: %v", r))
			}
		}()
		packets.Add(1)
		pts, ok := c.PacketPTS2(track.media, pkt)
		if !ok {
			return
		}
		nalus, err := track.decode(pkt)
		if err != nil {
			if !errors.Is(err, rtph264.ErrMorePacketsNeeded) && !errors.Is(err, rtph265.ErrMorePacketsNeeded) &&
				!errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) && !errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious) {
				mu.Lock()
				lastIssue = fmt.Errorf("rtp: %w", err)
				mu.Unlock()
			}
			return
		}
		now := s.cfg.Now()
		au, err := asm.Push(nalus, pts, now)
		if err != nil {
			if !errors.Is(err, media.ErrWaitingKeyframe) {
				mu.Lock()
				lastIssue = err
				mu.Unlock()
				s.mu.Lock()
				s.status.DroppedUnits++
				s.mu.Unlock()
			}
			return
		}
		mu.Lock()
		lastUnit = now
		packets.Store(0)
		tr := usedTransport
		mu.Unlock()
		first := !gotUnit.Swap(true)
		if first {
			s.mu.Lock()
			s.status.Codec = track.codec
			s.status.Width, s.status.Height = au.Params.Width, au.Params.Height
			s.status.Transport = tr
			s.status.Sessions++
			s.mu.Unlock()
			s.setState(StateUp, nil)
		}
		s.mu.Lock()
		s.status.LastFrame = now
		s.mu.Unlock()
		s.cfg.OnAccessUnit(au)
	})
	if _, err := c.Play(nil); err != nil {
		return false, fmt.Errorf("play: %w", err)
	}

	waitErr := make(chan error, 1)
	go func() { waitErr <- c.Wait() }()
	tick := time.NewTicker(min(s.cfg.StallTimeout/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case err = <-waitErr:
			waitErr <- err // for the drain below
			if ctx.Err() != nil {
				err = ctx.Err()
			}
		case err = <-sessionErr:
		case <-tick.C:
			mu.Lock()
			idle := s.cfg.Now().Sub(lastUnit)
			issue := lastIssue
			mu.Unlock()
			if idle < s.cfg.StallTimeout {
				continue
			}
			what := "no video"
			if gotUnit.Load() {
				what = "video stopped"
			}
			err = fmt.Errorf("%s for %s", what, s.cfg.StallTimeout.Round(time.Millisecond))
			switch n := packets.Load(); {
			case issue != nil:
				err = fmt.Errorf("%w (last error: %v)", err, issue)
			case n == 0:
				err = fmt.Errorf("%w (no RTP packets received)", err)
			default:
				err = fmt.Errorf("%w (%d RTP packets received, none usable)", err, n)
			}
		}
		break
	}
	c.Close()
	<-waitErr
	return false, err // delivered is set by the deferred function
}

func transport(name string) *gortsplib.Transport {
	var t gortsplib.Transport
	switch name {
	case "tcp":
		t = gortsplib.TransportTCP
	case "udp":
		t = gortsplib.TransportUDP
	default:
		return nil
	}
	return &t
}

// videoTrack is the one video format a session records.
type videoTrack struct {
	codec         media.Codec
	media         *description.Media
	format        format.Format
	vps, sps, pps []byte
	decode        func(*rtp.Packet) ([][]byte, error)
}

// findVideo picks the first H.264 or H.265 format of the session.
func findVideo(desc *description.Session) (*videoTrack, error) {
	var seen []string
	for _, m := range desc.Medias {
		for _, f := range m.Formats {
			switch f := f.(type) {
			case *format.H264:
				dec, err := f.CreateDecoder()
				if err != nil {
					return nil, fmt.Errorf("h264 decoder: %w", err)
				}
				sps, pps := f.SafeParams()
				return &videoTrack{codec: media.H264, media: m, format: f, sps: sps, pps: pps, decode: dec.Decode}, nil
			case *format.H265:
				dec, err := f.CreateDecoder()
				if err != nil {
					return nil, fmt.Errorf("h265 decoder: %w", err)
				}
				vps, sps, pps := f.SafeParams()
				return &videoTrack{codec: media.H265, media: m, format: f, vps: vps, sps: sps, pps: pps, decode: dec.Decode}, nil
			default:
				seen = append(seen, f.Codec())
			}
		}
	}
	if len(seen) == 0 {
		return nil, errors.New("the camera offers no media")
	}
	return nil, fmt.Errorf("the camera offers no H.264 or H.265 video (found: %s)", strings.Join(seen, ", "))
}
