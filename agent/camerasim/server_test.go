package camerasim

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"
)

// Paths of the embedded set with Count = 4 (clips sorted by name).
const (
	pathStill   = 1
	pathWalk    = 2
	pathBFrames = 3
	pathH265    = 4
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// tWriter sends logs to t.Log so they show only for failing tests.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func mustEmbedded(t *testing.T) []*Clip {
	t.Helper()
	clips, err := EmbeddedClips()
	if err != nil {
		t.Fatal(err)
	}
	return clips
}

// mustStart starts a simulator on a free loopback port, closed at cleanup.
func mustStart(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// gotAU is an access unit as a client received it.
type gotAU struct {
	nalus [][]byte
	ts    uint32    // RTP timestamp
	at    time.Time // arrival
}

// play reads url for d with a real gortsplib client and returns the codec
// and the access units received.
func play(t *testing.T, url string, transport gortsplib.Transport, d time.Duration) (string, []gotAU) {
	t.Helper()
	u, err := base.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &transport}
	if err := c.Start2(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatalf("describe %s: %v", url, err)
	}

	var (
		mu    sync.Mutex
		aus   []gotAU
		codec string
		medi  *description.Media
		forma format.Format
		dec   interface {
			Decode(*rtp.Packet) ([][]byte, error)
		}
	)
	var f264 *format.H264
	var f265 *format.H265
	if medi = desc.FindFormat(&f264); medi != nil {
		codec, forma = CodecH264, f264
		dec, err = f264.CreateDecoder()
	} else if medi = desc.FindFormat(&f265); medi != nil {
		codec, forma = CodecH265, f265
		dec, err = f265.CreateDecoder()
	} else {
		t.Fatalf("%s: no H.264 or H.265 media in %v", url, desc.Medias)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Setup(desc.BaseURL, medi, 0, 0); err != nil {
		t.Fatalf("setup %s: %v", url, err)
	}
	c.OnPacketRTP(medi, forma, func(pkt *rtp.Packet) {
		nalus, err := dec.Decode(pkt)
		if err != nil {
			if !errors.Is(err, rtph264.ErrMorePacketsNeeded) && !errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) &&
				!errors.Is(err, rtph265.ErrMorePacketsNeeded) && !errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious) {
				t.Errorf("rtp decode: %v", err)
			}
			return
		}
		mu.Lock()
		aus = append(aus, gotAU{nalus: nalus, ts: pkt.Timestamp, at: time.Now()})
		mu.Unlock()
	})
	if _, err := c.Play(nil); err != nil {
		t.Fatalf("play %s: %v", url, err)
	}
	time.Sleep(d)
	c.Close()
	mu.Lock()
	defer mu.Unlock()
	return codec, slices.Clone(aus)
}

// mustDecode feeds the access units, from the first keyframe on, to ffmpeg
// as Annex-B and checks every picture decodes without a complaint.
func mustDecode(t *testing.T, codec string, aus []gotAU) {
	t.Helper()
	needFFmpeg(t)
	var annexB bytes.Buffer
	fed := 0
	for _, au := range aus {
		key := false
		if codec == CodecH264 {
			key = h264.IsRandomAccess(au.nalus)
		} else {
			key = h265.IsRandomAccess(au.nalus)
		}
		if fed == 0 && !key {
			continue
		}
		b, err := h264.AnnexB(au.nalus).Marshal() // same framing for H.265
		if err != nil {
			t.Fatal(err)
		}
		annexB.Write(b)
		fed++
	}
	if fed < 25 {
		t.Fatalf("only %d access units from the first keyframe on", fed)
	}
	demuxer := "h264"
	if codec == CodecH265 {
		demuxer = "hevc"
	}
	cmd := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-v", "error",
		"-f", demuxer, "-i", "pipe:0", "-f", "framemd5", "pipe:1")
	cmd.Stdin = &annexB
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("ffmpeg decode: %v\n%s", err, stderr.String())
	}
	frames := 0
	for line := range strings.Lines(stdout.String()) {
		if !strings.HasPrefix(line, "#") {
			frames++
		}
	}
	if frames != fed {
		t.Errorf("ffmpeg decoded %d pictures of %d access units", frames, fed)
	}
}

// checkRealTime compares the media time carried by the RTP timestamps with
// the wall time of arrival, and the frame rate with 25 fps.
func checkRealTime(t *testing.T, aus []gotAU, d time.Duration) {
	t.Helper()
	if want := int(d / (40 * time.Millisecond)); len(aus) < want*9/10 || len(aus) > want*11/10 {
		t.Errorf("%d access units in %v, want %d ±10%%", len(aus), d, want)
	}
	first, last := aus[0], aus[len(aus)-1]
	wall := last.at.Sub(first.at)
	media := time.Duration(last.ts-first.ts) * time.Second / rtpClock
	if wall < media*9/10 || wall > media*11/10 {
		t.Errorf("%v of media arrived in %v of wall time", media, wall)
	}
}

func TestPlayTransports(t *testing.T) {
	s := mustStart(t, Config{Clips: mustEmbedded(t)})
	for _, tr := range []gortsplib.Transport{gortsplib.TransportTCP, gortsplib.TransportUDP} {
		t.Run(tr.String(), func(t *testing.T) {
			t.Parallel()
			const d = 3 * time.Second
			codec, aus := play(t, s.URL(pathWalk), tr, d)
			if codec != CodecH264 {
				t.Fatalf("codec %s", codec)
			}
			checkRealTime(t, aus, d)
			mustDecode(t, codec, aus)
		})
	}
}

func TestPlayH265AndBFrames(t *testing.T) {
	s := mustStart(t, Config{Clips: mustEmbedded(t)})
	for _, tc := range []struct {
		name  string
		n     int
		codec string
	}{{"h265", pathH265, CodecH265}, {"bframes", pathBFrames, CodecH264}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const d = 3 * time.Second
			codec, aus := play(t, s.URL(tc.n), gortsplib.TransportTCP, d)
			if codec != tc.codec {
				t.Fatalf("codec %s, want %s", codec, tc.codec)
			}
			mustDecode(t, codec, aus)
			// Whatever the send order, presentation times are one frame apart.
			ts := make([]uint32, len(aus))
			for i, au := range aus {
				ts[i] = au.ts
			}
			reordered := !slices.IsSorted(ts)
			if reordered != (tc.name == "bframes") {
				t.Errorf("timestamps reordered: %v", reordered)
			}
			slices.Sort(ts)
			// The first and last few may miss neighbours still in flight.
			for i := 3; i < len(ts)-3; i++ {
				if ts[i]-ts[i-1] != 3600 {
					t.Fatalf("presentation step %d at %d", ts[i]-ts[i-1], i)
				}
			}
		})
	}
}

// shortClip is the first n access units of c, a whole number of GOPs.
func shortClip(t *testing.T, c *Clip, n int) *Clip {
	t.Helper()
	if !c.AccessUnits[n%len(c.AccessUnits)].Key {
		t.Fatalf("%s: access unit %d is not a keyframe", c.Name, n)
	}
	short := *c
	short.Name += "-short"
	short.AccessUnits = c.AccessUnits[:n]
	short.Duration = time.Duration(n) * 40 * time.Millisecond
	short.Events = nil
	return &short
}

func TestLoopContinuity(t *testing.T) {
	clips := mustEmbedded(t)
	walk := shortClip(t, clips[pathWalk-1], 25)
	bframes := shortClip(t, clips[pathBFrames-1], 25)
	s := mustStart(t, Config{Clips: []*Clip{walk, bframes}})
	for n, name := range []string{"walk", "bframes"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// 1 s clips for 3.5 s: at least two loop boundaries.
			codec, aus := play(t, s.URL(n+1), gortsplib.TransportTCP, 3500*time.Millisecond)
			mustDecode(t, codec, aus)
			var ts []uint32
			for i, au := range aus {
				if name == "walk" && i > 0 && au.ts-aus[i-1].ts != 3600 {
					t.Fatalf("access unit %d: timestamp step %d", i, int32(au.ts-aus[i-1].ts))
				}
				ts = append(ts, au.ts)
			}
			slices.Sort(ts)
			for i := 3; i < len(ts)-3; i++ {
				if ts[i]-ts[i-1] != 3600 {
					t.Fatalf("presentation step %d at %d", ts[i]-ts[i-1], i)
				}
			}
			if len(ts) < 75 {
				t.Fatalf("only %d access units", len(ts))
			}
		})
	}
}

func TestUnknownPaths(t *testing.T) {
	s := mustStart(t, Config{Clips: mustEmbedded(t)})
	u, err := base.ParseURL(s.URL(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/cam99", "/cam0", "/cam01", "/cam-1", "/cam", "/other", "/cam1x"} {
		c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host}
		if err := c.Start2(); err != nil {
			t.Fatal(err)
		}
		pu := *u
		pu.Path = p
		_, _, err := c.Describe(&pu)
		c.Close()
		var bad liberrors.ErrClientBadStatusCode
		if !errors.As(err, &bad) || bad.Code != base.StatusNotFound {
			t.Errorf("%s: got %v, want 404", p, err)
		}
	}
	if s.URL(4) == "" || !strings.HasSuffix(s.URL(4), "/cam4") {
		t.Errorf("URL(4) = %q", s.URL(4))
	}
}

// TestEpoch checks the published epochs against what a client receives: an
// access unit with RTP time T arrives at or after Epoch + T (no B-frames,
// so DTS = PTS), and paths sharing a clip are staggered.
func TestEpoch(t *testing.T) {
	clips := mustEmbedded(t)
	s := mustStart(t, Config{Clips: clips, Count: 2 * len(clips)})
	if !s.Epoch(0).IsZero() || !s.Epoch(len(clips)*2+1).IsZero() {
		t.Error("epoch of a path out of range should be zero")
	}
	e1, e2 := s.Epoch(pathWalk), s.Epoch(pathWalk+len(clips))
	if d := e1.Sub(e2); d != stagger {
		t.Errorf("second walk path starts %v later in the clip, want %v", d, stagger)
	}
	if e := s.Epoch(pathBFrames); e.Sub(s.Epoch(pathStill)) != 40*time.Millisecond {
		// The B-frame clip decodes its first picture one frame before it
		// shows it, so its clip time 0 is sent one frame after Start.
		t.Errorf("b-frames epoch %v after the others, want 40ms", e.Sub(s.Epoch(pathStill)))
	}
	for _, n := range []int{pathWalk, pathWalk + len(clips)} {
		_, aus := play(t, s.URL(n), gortsplib.TransportTCP, 2*time.Second)
		if len(aus) < 20 {
			t.Fatalf("path %d: %d access units", n, len(aus))
		}
		// Scheduling only ever delays: no unit may arrive before its send
		// time, and the least delayed must be on time to well within a
		// frame, or the epoch is wrong.
		least := time.Hour
		for _, au := range aus {
			clipTime := time.Duration(au.ts) * time.Second / rtpClock // loop*Duration + PTS
			late := au.at.Sub(s.Epoch(n).Add(clipTime))
			if late < 0 {
				t.Fatalf("path %d: access unit at clip time %v arrived %v before its send time", n, clipTime, -late)
			}
			least = min(least, late)
		}
		if least > 30*time.Millisecond {
			t.Errorf("path %d: every access unit arrived at least %v after its send time", n, least)
		}
	}
}

// TestRestartSameAddress simulates a camera reboot: a server is closed while
// a client reads, and a new one binds the same address.
func TestRestartSameAddress(t *testing.T) {
	clips := mustEmbedded(t)
	s1 := mustStart(t, Config{Clips: clips})
	addr := s1.Addr()
	_, aus := play(t, s1.URL(1), gortsplib.TransportTCP, 500*time.Millisecond)
	if len(aus) == 0 {
		t.Fatal("nothing from the first server")
	}

	u, err := base.ParseURL(s1.URL(1))
	if err != nil {
		t.Fatal(err)
	}
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host}
	if err := c.Start2(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Play(nil); err != nil {
		t.Fatal(err)
	}
	s1.Close()
	select {
	case <-waitErr(&c):
	case <-time.After(5 * time.Second):
		t.Fatal("client still connected after Close")
	}

	for range 3 {
		s2 := mustStart(t, Config{Listen: addr, Clips: clips})
		if s2.Addr() != addr {
			t.Fatalf("restarted on %s, want %s", s2.Addr(), addr)
		}
		for _, tr := range []gortsplib.Transport{gortsplib.TransportTCP, gortsplib.TransportUDP} {
			if _, aus := play(t, s2.URL(2), tr, time.Second); len(aus) < 5 {
				t.Fatalf("%s: %d access units after restart", tr, len(aus))
			}
		}
		s2.Close()
	}
}

func waitErr(c *gortsplib.Client) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- c.Wait() }()
	return ch
}

func TestIdlePathsWriteNothing(t *testing.T) {
	s := mustStart(t, Config{Clips: mustEmbedded(t)})
	play(t, s.URL(pathWalk), gortsplib.TransportTCP, time.Second)
	if sent := s.paths[pathWalk-1].stream.Load().Stats().BytesSent; sent == 0 {
		t.Error("played path sent nothing")
	}
	if sent := s.paths[pathStill-1].stream.Load().Stats().BytesSent; sent != 0 {
		t.Errorf("unwatched path sent %d bytes", sent)
	}
}

func TestConfigAndLifecycleErrors(t *testing.T) {
	clips := mustEmbedded(t)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no clips", Config{Listen: "127.0.0.1:0"}, "no clips"},
		{"no listen", Config{Clips: clips}, "listen address is required"},
		{"bad listen", Config{Listen: "localhost", Clips: clips}, "listen address"},
		{"negative count", Config{Listen: "127.0.0.1:0", Clips: clips, Count: -1}, "negative"},
		{"empty clip", Config{Listen: "127.0.0.1:0", Clips: []*Clip{{Name: "x"}}}, "empty"},
		{"unknown codec", Config{Listen: "127.0.0.1:0", Clips: []*Clip{{Name: "x", Codec: "vp9", AccessUnits: clips[0].AccessUnits, Duration: time.Second}}}, "vp9"},
		{"no parameter sets", Config{Listen: "127.0.0.1:0", Clips: []*Clip{{Name: "x", Codec: CodecH264, AccessUnits: clips[0].AccessUnits, Duration: time.Second}}}, "parameter sets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}

	s := mustStart(t, Config{Clips: clips, Count: 6})
	if s.Count() != 6 || s.Clip(5) != clips[0] || s.Clip(7) != nil {
		t.Errorf("count %d, clip(5) %v", s.Count(), s.Clip(5))
	}
	if err := s.Start(); err == nil {
		t.Error("second Start should fail")
	}
	busy, err := New(Config{Listen: s.Addr(), Clips: clips})
	if err != nil {
		t.Fatal(err)
	}
	if err := busy.Start(); err == nil {
		busy.Close()
		t.Error("Start on a busy port should fail")
	}
	busy.Close() // after a failed Start: must not hang or panic
	s.Close()
	s.Close()
	if err := s.Start(); err == nil {
		t.Error("Start after Close should fail")
	}
	// The UDP pair of a wildcard listener is free and consecutive.
	w := mustStart(t, Config{Listen: "0.0.0.0:0", Clips: clips[:1]})
	if !strings.HasPrefix(w.URL(1), "rtsp://127.0.0.1:") {
		t.Errorf("wildcard URL %q", w.URL(1))
	}
	if _, port, _ := net.SplitHostPort(w.Addr()); port == "0" {
		t.Errorf("addr %q", w.Addr())
	}
	// A host name: UDP must be bound on the same IP as TCP.
	l := mustStart(t, Config{Listen: "localhost:0", Clips: clips[:1]})
	if _, aus := play(t, l.URL(1), gortsplib.TransportUDP, 500*time.Millisecond); len(aus) < 5 {
		t.Errorf("localhost over UDP: %d access units", len(aus))
	}
}
