package camerasim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// DefaultListen is the address of `vigil camera-sim` when none is given.
const DefaultListen = "127.0.0.1:8554"

// stagger is how far apart, in clip time, paths sharing a clip start, so a
// fleet of cameras looping the same clip do not all see the same event at
// the same instant.
const stagger = 7 * time.Second

// writeQueueSize is the per-reader packet queue of gortsplib. The default
// (256) holds less than one 1080p keyframe at high bitrate plus the frames
// around it; a slow reader would lose packets of every keyframe.
const writeQueueSize = 1024

// Config configures a Server.
type Config struct {
	// Listen is the RTSP TCP address; port 0 picks a free port. The UDP
	// RTP/RTCP pair is derived from it (see Start).
	Listen string
	// Clips are looped on the paths: /camN plays Clips[(N-1) % len(Clips)].
	Clips []*Clip
	// Count is the number of paths, /cam1 … /camCount; 0 means len(Clips).
	Count int
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// checkAndSetDefaults validates the configuration and fills what is optional.
func (c *Config) checkAndSetDefaults() error {
	if c.Listen == "" {
		return errors.New("camerasim: listen address is required")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("camerasim: listen address: %w", err)
	}
	if len(c.Clips) == 0 {
		return errors.New("camerasim: no clips")
	}
	for i, clip := range c.Clips {
		switch {
		case clip == nil || len(clip.AccessUnits) == 0 || clip.Duration <= 0:
			return fmt.Errorf("camerasim: clip %d is empty", i)
		case clip.Codec != CodecH264 && clip.Codec != CodecH265:
			return fmt.Errorf("camerasim: clip %s: codec %q is neither %s nor %s", clip.Name, clip.Codec, CodecH264, CodecH265)
		case len(clip.SPS) == 0 || len(clip.PPS) == 0 || clip.Codec == CodecH265 && len(clip.VPS) == 0:
			return fmt.Errorf("camerasim: clip %s: parameter sets missing", clip.Name)
		}
	}
	if c.Count < 0 {
		return fmt.Errorf("camerasim: count %d is negative", c.Count)
	}
	if c.Count == 0 {
		c.Count = len(c.Clips)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Server is a fleet of simulated cameras behind one RTSP server.
type Server struct {
	cfg   Config
	log   *slog.Logger
	paths []*camera // paths[n-1] is /camN

	rtsp *gortsplib.Server
	addr string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	started  bool
	closed   bool
	sessions map[*gortsplib.ServerSession]*camera // sessions that sent PLAY
}

// New prepares a server: it checks the configuration and packetises every
// clip once, so that streaming costs no encoding. Nothing listens until
// Start.
func New(cfg Config) (*Server, error) {
	if err := cfg.checkAndSetDefaults(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "camerasim"),
		sessions: make(map[*gortsplib.ServerSession]*camera),
	}
	packed := make(map[*Clip]*packetizedClip)
	for n := 1; n <= cfg.Count; n++ {
		clip := cfg.Clips[(n-1)%len(cfg.Clips)]
		pc, ok := packed[clip]
		if !ok {
			var err error
			if pc, err = packetize(clip); err != nil {
				return nil, fmt.Errorf("camerasim: clip %s: %w", clip.Name, err)
			}
			packed[clip] = pc
		}
		round := (n - 1) / len(cfg.Clips)
		s.paths = append(s.paths, newCamera(n, pc, time.Duration(round)*stagger))
	}
	return s, nil
}

// Start listens (RTSP over TCP, RTP/RTCP over UDP) and starts every path.
//
// The UDP pair is chosen so that it does not depend on luck: with port 0 in
// Listen, a free even/odd pair is bound first and handed to gortsplib; with
// a fixed port P, the pair P+2/P+3 (rounded to even) is tried first, so a
// restarted simulator offers the same ports, then any free pair.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("camerasim: server closed")
	}
	if s.started {
		return errors.New("camerasim: server already started")
	}

	host, port, err := net.SplitHostPort(s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("camerasim: listen address: %w", err)
	}
	tcpNet := "tcp"
	if host == "0.0.0.0" { // as gortsplib does: no IPv6 for an IPv4 wildcard
		tcpNet = "tcp4"
	}
	ln, err := net.Listen(tcpNet, s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("camerasim: listen: %w", err)
	}
	tcpAddr := ln.Addr().(*net.TCPAddr)
	preferred := 0
	if port != "0" {
		preferred = (tcpAddr.Port + 2) &^ 1
	}
	// UDP on the very IP the TCP listener got: a name such as "localhost"
	// could otherwise resolve to 127.0.0.1 for one and ::1 for the other.
	udpHost := tcpAddr.IP.String()
	if host == "" {
		udpHost = ""
	}
	rtpConn, rtcpConn, err := listenUDPPair(udpHost, preferred)
	if err != nil {
		ln.Close()
		return fmt.Errorf("camerasim: listen udp: %w", err)
	}
	rtpAddr := net.JoinHostPort(udpHost, strconv.Itoa(rtpConn.LocalAddr().(*net.UDPAddr).Port))
	rtcpAddr := net.JoinHostPort(udpHost, strconv.Itoa(rtcpConn.LocalAddr().(*net.UDPAddr).Port))

	// gortsplib opens its sockets through these hooks: give it the ones
	// already bound, so their ports are known and cannot be stolen meanwhile.
	handedOver := map[string]net.PacketConn{rtpAddr: rtpConn, rtcpAddr: rtcpConn}
	s.rtsp = &gortsplib.Server{
		Handler:        &handler{s: s},
		RTSPAddress:    s.cfg.Listen,
		UDPRTPAddress:  rtpAddr,
		UDPRTCPAddress: rtcpAddr,
		WriteQueueSize: writeQueueSize,
		Listen: func(string, string) (net.Listener, error) {
			return ln, nil
		},
		ListenPacket: func(network, address string) (net.PacketConn, error) {
			if pc, ok := handedOver[address]; ok {
				delete(handedOver, address)
				return pc, nil
			}
			return net.ListenPacket(network, address)
		},
	}
	if err := s.rtsp.Start(); err != nil {
		ln.Close()
		for _, pc := range handedOver {
			pc.Close()
		}
		return fmt.Errorf("camerasim: start rtsp server: %w", err)
	}
	for _, pc := range handedOver { // not taken by gortsplib: should not happen
		pc.Close()
	}

	s.addr = ln.Addr().String()
	for _, p := range s.paths {
		if err := p.initStream(s.rtsp); err != nil {
			for _, q := range s.paths {
				q.closeStream()
			}
			s.rtsp.Close()
			return fmt.Errorf("camerasim: %w", err)
		}
	}

	// One instant for all paths, so their epochs differ exactly by their
	// offsets.
	now := time.Now()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, p := range s.paths {
		p.setEpoch(now)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			p.run(s.ctx, s.log)
		}()
	}
	s.started = true
	s.log.Info("camera simulator listening", "addr", s.addr, "udp_rtp", rtpAddr, "udp_rtcp", rtcpAddr, "paths", len(s.paths))
	return nil
}

// Close stops every path, disconnects the readers and releases the TCP and
// UDP ports (so a new Server can bind the same address, as a rebooted
// camera would). It waits for all goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	started := s.started
	s.mu.Unlock()
	if !started {
		return
	}
	s.cancel()
	s.wg.Wait()
	for _, p := range s.paths {
		p.closeStream()
	}
	s.rtsp.Close()
	s.log.Info("camera simulator stopped", "addr", s.addr)
}

// Addr is the RTSP address actually listened on ("" before Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Count is the number of paths.
func (s *Server) Count() int { return len(s.paths) }

// URL is the RTSP URL of path n (1-based). A wildcard listen host becomes
// loopback, so the URL can be dialled as printed.
func (s *Server) URL(n int) string {
	host, port, err := net.SplitHostPort(s.Addr())
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	return "rtsp://" + net.JoinHostPort(host, port) + "/" + pathName(n)
}

// Clip is the clip path n loops, nil when n is out of range.
func (s *Server) Clip(n int) *Clip {
	if n < 1 || n > len(s.paths) {
		return nil
	}
	return s.paths[n-1].pc.clip
}

// Epoch is the wall-clock instant at which clip time 0 (DTS) was, or would
// have been, sent on path n in loop 0: access unit au of loop k is sent at
// Epoch + k*Duration + au.DTS, and its RTCP NTP time is Epoch + k*Duration +
// au.PTS. Paths sharing a clip start at different clip times, so their
// epochs differ. The zero time before Start or for n out of range.
func (s *Server) Epoch(n int) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started || n < 1 || n > len(s.paths) {
		return time.Time{}
	}
	return s.paths[n-1].epoch
}

func pathName(n int) string { return "cam" + strconv.Itoa(n) }

// pathByName maps "/camN" to its path, nil for anything else ("/cam01"
// included, so each camera has exactly one URL).
func (s *Server) pathByName(name string) *camera {
	num, ok := strings.CutPrefix(name, "/cam")
	if !ok {
		return nil
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > len(s.paths) || strconv.Itoa(n) != num {
		return nil
	}
	return s.paths[n-1]
}

// listenUDPPair binds an even RTP port and the next odd one for RTCP, as
// RTSP requires, preferring the given port when not 0.
func listenUDPPair(host string, preferred int) (*net.UDPConn, *net.UDPConn, error) {
	udpNet := "udp"
	if host == "0.0.0.0" {
		udpNet = "udp4"
	}
	bind := func(port int) (*net.UDPConn, error) {
		pc, err := net.ListenPacket(udpNet, net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return nil, err
		}
		return pc.(*net.UDPConn), nil
	}
	if preferred > 0 && preferred < 65535 {
		if rtp, err := bind(preferred); err == nil {
			if rtcp, err := bind(preferred + 1); err == nil {
				return rtp, rtcp, nil
			}
			rtp.Close()
		}
	}
	var lastErr error
	for range 100 {
		rtp, err := bind(0)
		if err != nil {
			return nil, nil, err
		}
		port := rtp.LocalAddr().(*net.UDPAddr).Port
		if port%2 != 0 || port == 65534 {
			rtp.Close()
			continue
		}
		rtcp, err := bind(port + 1)
		if err != nil {
			lastErr = err
			rtp.Close()
			continue
		}
		return rtp, rtcp, nil
	}
	return nil, nil, fmt.Errorf("no free even/odd port pair: %v", lastErr)
}

// handler answers gortsplib's callbacks. It is a separate type so Server
// does not export the On* methods.
type handler struct {
	s *Server
}

// streamFor finds the stream of a request's path: 404 for a path that is
// not a camera, 503 while the server starts or stops.
func (h *handler) streamFor(name string) (*base.Response, *gortsplib.ServerStream) {
	p := h.s.pathByName(name)
	if p == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil
	}
	st := p.stream.Load()
	if st == nil {
		return &base.Response{StatusCode: base.StatusServiceUnavailable}, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, st
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	res, st := h.streamFor(ctx.Path)
	return res, st, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	res, st := h.streamFor(ctx.Path)
	return res, st, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay: the path starts writing
// packets when it has its first reader.
func (h *handler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	p := h.s.pathByName(ctx.Path)
	if p == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil
	}
	h.s.mu.Lock()
	if _, ok := h.s.sessions[ctx.Session]; !ok {
		h.s.sessions[ctx.Session] = p
		p.readers.Add(1)
	}
	h.s.mu.Unlock()
	h.s.log.Debug("reader playing", "path", ctx.Path, "remote", ctx.Conn.NetConn().RemoteAddr().String())
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose.
func (h *handler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	h.s.mu.Lock()
	p, ok := h.s.sessions[ctx.Session]
	delete(h.s.sessions, ctx.Session)
	h.s.mu.Unlock()
	if ok {
		p.readers.Add(-1)
		h.s.log.Debug("reader gone", "path", "/"+pathName(p.n), "err", ctx.Error)
	}
}
