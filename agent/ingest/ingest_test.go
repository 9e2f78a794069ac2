package ingest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/conn"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/pion/rtp"

	"github.com/vigil-cctv/vigil/agent/camerasim"
	"github.com/vigil-cctv/vigil/agent/internal/agenttest"
	"github.com/vigil-cctv/vigil/agent/media"
)

// secret is the camera password of the tests: it must show nowhere.
const secret = "secretpw"

// recorder is what the recorder side of a Source sees.
type recorder struct {
	mu   sync.Mutex
	aus  []*media.AccessUnit
	ends []error
}

func (r *recorder) onAccessUnit(au *media.AccessUnit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.aus = append(r.aus, au)
}

func (r *recorder) onStreamEnd(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ends = append(r.ends, err)
}

func (r *recorder) units() []*media.AccessUnit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*media.AccessUnit(nil), r.aus...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.aus)
}

func (r *recorder) keyframes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, au := range r.aus {
		if au.Keyframe {
			n++
		}
	}
	return n
}

func (r *recorder) streamEnds() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.ends...)
}

// running is a Source running in the background.
type running struct {
	src  *Source
	rec  *recorder
	logs *agenttest.LogBuffer
	stop func() error // cancels and returns what Run returned
}

// startSource runs a Source until stop or the end of the test.
func startSource(t *testing.T, cfg Config) *running {
	t.Helper()
	rec := &recorder{}
	logger, logs := agenttest.NewLogger(t)
	if cfg.Name == "" {
		cfg.Name = "cam"
	}
	cfg.Logger = logger
	cfg.OnAccessUnit = rec.onAccessUnit
	cfg.OnStreamEnd = rec.onStreamEnd
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st := src.Status(); st.State != StateConnecting {
		t.Fatalf("state before Run is %q, want connecting", st.State)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(10 * time.Second):
				runErr = errors.New("Run did not return within 10s of cancellation")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &running{src: src, rec: rec, logs: logs, stop: stop}
}

// simURL is the URL of the path looping the named clip.
func simURL(t *testing.T, sim *camerasim.Server, clip string) string {
	t.Helper()
	for n := 1; n <= sim.Count(); n++ {
		if sim.Clip(n).Name == clip {
			return sim.URL(n)
		}
	}
	t.Fatalf("simulator has no clip %q", clip)
	return ""
}

// checkUnits verifies what a recorder received: it starts on a keyframe,
// keyframes carry their parameter sets, DTS grow strictly and stay ≤ PTS.
func checkUnits(t *testing.T, aus []*media.AccessUnit, codec media.Codec, w, h int) {
	t.Helper()
	if len(aus) == 0 {
		t.Fatal("no access unit")
	}
	if !aus[0].Keyframe {
		t.Fatal("the first access unit is not a keyframe")
	}
	for i, au := range aus {
		if au.Params == nil || au.Params.Codec != codec || au.Params.Width != w || au.Params.Height != h {
			t.Fatalf("unit %d: params %+v, want %s %dx%d", i, au.Params, codec, w, h)
		}
		if au.Keyframe {
			for j, p := range au.Params.ParamNALUs() {
				if !bytes.Equal(au.NALUs[j], p) {
					t.Fatalf("keyframe %d: parameter set %d not in front", i, j)
				}
			}
		}
		if au.DTS > au.PTS {
			t.Fatalf("unit %d: DTS %d > PTS %d", i, au.DTS, au.PTS)
		}
		if i > 0 {
			if au.DTS <= aus[i-1].DTS {
				t.Fatalf("unit %d: DTS %d not after %d", i, au.DTS, aus[i-1].DTS)
			}
			if au.Received.Before(aus[i-1].Received) {
				t.Fatalf("unit %d received before unit %d", i, i-1)
			}
		}
	}
}

func TestGoodCamera(t *testing.T) {
	t.Parallel()
	sim := agenttest.StartSim(t, "127.0.0.1:0")
	for _, tc := range []struct {
		name, clip, transport, wantTransport string
		codec                                media.Codec
	}{
		{"h264 tcp", "walk", "tcp", "tcp", media.H264},
		{"h264 udp", "walk", "udp", "udp", media.H264},
		{"h264 auto", "still", "auto", "udp", media.H264},
		{"h264 b-frames tcp", "walk-bframes", "tcp", "tcp", media.H264},
		{"h265 tcp", "walk-h265", "tcp", "tcp", media.H265},
		{"h265 udp", "walk-h265", "udp", "udp", media.H265},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			r := startSource(t, Config{URL: simURL(t, sim, tc.clip), Transport: tc.transport})
			agenttest.WaitFor(t, 10*time.Second, "camera up", func() bool { return r.src.Status().State == StateUp })
			st := r.src.Status()
			if st.Codec != tc.codec || st.Width != 640 || st.Height != 360 || st.Transport != tc.wantTransport {
				t.Fatalf("status %+v, want %s 640x360 over %s", st, tc.codec, tc.wantTransport)
			}
			if st.Sessions != 1 || st.LastError != "" || st.Since.Before(start) {
				t.Fatalf("status %+v: want one session, no error, up since the start", st)
			}
			// Two GOPs: keyframes after the first carry their params too.
			agenttest.WaitFor(t, 10*time.Second, "two keyframes", func() bool { return r.rec.keyframes() >= 2 })
			st = r.src.Status()
			if st.DroppedUnits != 0 {
				t.Fatalf("%d access units dropped from a clean stream", st.DroppedUnits)
			}
			if time.Since(st.LastFrame) > 2*time.Second {
				t.Fatalf("LastFrame %v is stale", st.LastFrame)
			}

			if err := r.stop(); err != nil {
				t.Fatalf("Run returned %v on cancellation, want nil", err)
			}
			checkUnits(t, r.rec.units(), tc.codec, 640, 360)
			st = r.src.Status()
			if st.State != StateDown {
				t.Fatalf("state after Run returned: %q, want down", st.State)
			}
			if ends := r.rec.streamEnds(); len(ends) != 1 {
				t.Fatalf("OnStreamEnd called %d times, want once", len(ends))
			}
			if !strings.Contains(r.logs.String(), "camera up") {
				t.Fatal("no \"camera up\" log")
			}
		})
	}
}

// TestReconnect restarts the camera on the same address after an outage.
func TestReconnect(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			sim := agenttest.StartSim(t, "127.0.0.1:0")
			addr := sim.Addr()
			url := simURL(t, sim, "walk")
			r := startSource(t, Config{URL: url, Transport: transport})
			agenttest.WaitFor(t, 10*time.Second, "camera up", func() bool { return r.src.Status().State == StateUp })
			agenttest.WaitFor(t, 5*time.Second, "video", func() bool { return r.rec.count() >= 10 })

			sim.Close()
			closed := time.Now()
			agenttest.WaitFor(t, 5*time.Second, "camera down", func() bool { return r.src.Status().State == StateDown })
			agenttest.WaitFor(t, 5*time.Second, "OnStreamEnd", func() bool { return len(r.rec.streamEnds()) == 1 })
			before := r.rec.count()

			// The outage: the source retries and shows why it fails.
			for time.Since(closed) < 2*time.Second {
				st := r.src.Status()
				if st.State == StateUp {
					t.Fatal("state up while the camera is off")
				}
				if st.LastError == "" {
					t.Fatal("no LastError during the outage")
				}
				time.Sleep(20 * time.Millisecond)
			}
			st := r.src.Status()
			if !strings.Contains(st.LastError, "connection refused") {
				t.Errorf("LastError during the outage %q does not say the connection is refused", st.LastError)
			}
			if n := strings.Count(r.logs.String(), "connection refused"); n < 2 {
				t.Errorf("%d refused attempts logged in 2s of outage: the source does not retry", n)
			}

			sim2 := agenttest.StartSim(t, addr)
			if u := simURL(t, sim2, "walk"); u != url {
				t.Fatalf("restarted camera at %s, want %s", u, url)
			}
			back := time.Now()
			agenttest.WaitFor(t, 5*time.Second, "camera up again", func() bool {
				st := r.src.Status()
				return st.State == StateUp && st.Sessions == 2
			})
			t.Logf("up again %v after the camera came back", time.Since(back).Round(time.Millisecond))
			agenttest.WaitFor(t, 5*time.Second, "video again", func() bool { return r.rec.count() >= before+10 })
			if n := len(r.rec.streamEnds()); n != 1 {
				t.Fatalf("OnStreamEnd called %d times for one outage", n)
			}
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			aus := r.rec.units()
			checkUnits(t, aus[:before], media.H264, 640, 360)
			checkUnits(t, aus[before:], media.H264, 640, 360)
			if n := len(r.rec.streamEnds()); n != 2 {
				t.Fatalf("OnStreamEnd called %d times for two sessions", n)
			}
		})
	}
}

// rawServer is a hand-scripted RTSP server: each connection is served by
// the handler, which may misbehave at will.
type rawServer struct {
	ln       net.Listener
	accepted atomic.Int32
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func startRaw(t *testing.T, handle func(nc net.Conn)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.mu.Lock()
			s.conns = append(s.conns, nc)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer nc.Close()
				handle(nc)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// url is rtsp://user:secretpw@addr/cam.
func (s *rawServer) url() string {
	return "rtsp://user:" + secret + "@" + s.ln.Addr().String() + "/cam"
}

// script is the behaviour of a scripted RTSP camera.
type script struct {
	// describe answers DESCRIBE; nil means 200 with sdp.
	describe func(req *base.Request) *base.Response
	sdp      []byte
	// afterPlay runs, concurrently with the request loop, once PLAY is
	// answered; write sends an interleaved frame on the RTP channel.
	afterPlay func(ctx context.Context, write func(payload []byte) error)
}

// serve plays the script on one connection, over TCP interleaved only.
func (sc script) serve(nc net.Conn) {
	c := conn.NewConn(nc)
	var wmu sync.Mutex
	respond := func(res *base.Response, req *base.Request) error {
		if res.Header == nil {
			res.Header = base.Header{}
		}
		res.Header["CSeq"] = req.Header["CSeq"]
		wmu.Lock()
		defer wmu.Unlock()
		return c.WriteResponse(res)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	channel := 0
	session := base.HeaderValue{"12345678;timeout=60"}
	for {
		req, err := c.ReadRequest()
		if err != nil {
			return
		}
		var res *base.Response
		switch req.Method {
		case base.Options:
			res = &base.Response{StatusCode: base.StatusOK, Header: base.Header{
				"Public": base.HeaderValue{"DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"},
			}}
		case base.Describe:
			if sc.describe != nil {
				res = sc.describe(req)
			} else {
				res = &base.Response{StatusCode: base.StatusOK, Header: base.Header{
					"Content-Type": base.HeaderValue{"application/sdp"},
					"Content-Base": base.HeaderValue{"rtsp://" + nc.LocalAddr().String() + "/cam/"},
				}, Body: sc.sdp}
			}
		case base.Setup:
			var th headers.Transport
			if err := th.Unmarshal(req.Header["Transport"]); err != nil || th.Protocol != headers.TransportProtocolTCP || th.InterleavedIDs == nil {
				res = &base.Response{StatusCode: base.StatusUnsupportedTransport}
				break
			}
			channel = th.InterleavedIDs[0]
			res = &base.Response{StatusCode: base.StatusOK, Header: base.Header{
				"Transport": headers.Transport{
					Protocol:       headers.TransportProtocolTCP,
					Delivery:       ptr(headers.TransportDeliveryUnicast),
					InterleavedIDs: th.InterleavedIDs,
				}.Marshal(),
				"Session": session,
			}}
		case base.Play:
			res = &base.Response{StatusCode: base.StatusOK, Header: base.Header{"Session": session}}
			if err := respond(res, req); err != nil {
				return
			}
			if sc.afterPlay != nil {
				ch := channel
				buf := make([]byte, 70000)
				write := func(payload []byte) error {
					wmu.Lock()
					defer wmu.Unlock()
					return c.WriteInterleavedFrame(&base.InterleavedFrame{Channel: ch, Payload: payload}, buf)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					sc.afterPlay(ctx, write)
				}()
			}
			continue
		case base.Teardown:
			respond(&base.Response{StatusCode: base.StatusOK}, req)
			return
		default:
			res = &base.Response{StatusCode: base.StatusOK, Header: base.Header{"Session": session}}
		}
		if err := respond(res, req); err != nil {
			return
		}
	}
}

func ptr[T any](v T) *T { return &v }

func walkClip(t *testing.T) *camerasim.Clip {
	t.Helper()
	clips, err := camerasim.EmbeddedClips()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clips {
		if c.Name == "walk" {
			return c
		}
	}
	t.Fatal("no walk clip")
	return nil
}

// h264SDP is a valid SDP of one H.264 track with the walk clip's params.
func h264SDP(t *testing.T) []byte {
	t.Helper()
	walk := walkClip(t)
	desc := description.Session{Medias: []*description.Media{{
		Type:    description.MediaTypeVideo,
		Control: "trackID=0",
		Formats: []format.Format{&format.H264{PayloadTyp: 96, SPS: walk.SPS, PPS: walk.PPS, PacketizationMode: 1}},
	}}}
	b, err := desc.Marshal(false)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sendRTP writes RTP packets with the payloads make returns, 50 a second,
// numbered from first.
func sendRTP(ctx context.Context, write func([]byte) error, first int, payload func(i int) []byte) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := first; ; i++ {
		pkt := rtp.Packet{
			Header: rtp.Header{
				Version: 2, PayloadType: 96, SequenceNumber: uint16(i), Timestamp: uint32(i * 1800),
				SSRC: 0x1234, Marker: true,
			},
			Payload: payload(i),
		}
		b, err := pkt.Marshal()
		if err != nil {
			panic(err)
		}
		if write(b) != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// containsAll reports whether s holds every one of want, where "a|b"
// accepts either a or b.
func containsAll(s string, want []string) bool {
	for _, w := range want {
		found := false
		for _, alt := range strings.Split(w, "|") {
			found = found || strings.Contains(s, alt)
		}
		if !found {
			return false
		}
	}
	return true
}

type badCase struct {
	name     string
	handle   func(nc net.Conn)
	want     []string // words LastError must contain (see containsAll)
	delivers bool     // whether a good keyframe comes before the garbage
}

// garbagePayload makes RTP payloads a H.264 depacketiser cannot take:
// aggregation packets with nonsense inside, packet types it does not
// support, fragments without a start.
func garbagePayload(rng *rand.Rand) func(i int) []byte {
	return func(i int) []byte {
		b := make([]byte, 3+rng.IntN(1400))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		switch i % 4 {
		case 0: // STAP-A whose first NALU is longer than the packet
			b[0], b[1], b[2] = 24, 0xff, 0xff
		case 1: // STAP-B, MTAP16, MTAP24 or FU-B
			b[0] = []byte{25, 26, 27, 29}[rng.IntN(4)]
		case 2: // FU-A continuation with no start
			b[0], b[1] = 28, b[1]&0x3f
		default: // FU-A cut after its indicator
			b = []byte{28}
		}
		return b
	}
}

// keyframePayloads is the first keyframe of the walk clip, parameter sets
// in front, as RTP payloads at timestamp 0, the marker on the last.
func keyframePayloads(t *testing.T) [][]byte {
	t.Helper()
	walk := walkClip(t)
	enc, err := (&format.H264{PayloadTyp: 96, PacketizationMode: 1}).CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	pkts, err := enc.Encode(append([][]byte{walk.SPS, walk.PPS}, walk.AccessUnits[0].NALUs...))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for i, p := range pkts {
		p.SequenceNumber = uint16(i) - uint16(len(pkts))
		p.Timestamp = 0
		p.SSRC = 0x1234
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func badCases(t *testing.T) []badCase {
	goodSDP := h264SDP(t)
	keyframe := keyframePayloads(t)
	return []badCase{
		{
			name: "garbage instead of RTSP",
			handle: func(nc net.Conn) {
				rng := rand.New(rand.NewPCG(1, 2))
				junk := make([]byte, 4096)
				for i := range junk {
					junk[i] = byte(rng.Uint32())
				}
				nc.SetDeadline(time.Now().Add(10 * time.Second))
				for {
					if _, err := nc.Write(junk); err != nil {
						return
					}
					if _, err := nc.Read(junk[:1]); err != nil {
						return
					}
				}
			},
			want: []string{"describe"},
		},
		{
			name: "malformed SDP",
			handle: script{sdp: []byte("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\n" +
				"m=video notaport RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nthis is not sdp\r\n")}.serve,
			want: []string{"describe", "SDP"},
		},
		{
			// Payloads a H.264 depacketiser cannot take: aggregation and
			// fragmentation packets with nonsense inside, types it does
			// not support, fragments without a start.
			name: "garbage RTP payload",
			handle: script{sdp: goodSDP, afterPlay: func(ctx context.Context, write func([]byte) error) {
				sendRTP(ctx, write, 0, garbagePayload(rand.New(rand.NewPCG(3, 4))))
			}}.serve,
			want: []string{"no video for 2s", "RTP packets received, none usable"},
		},
		{
			// One good keyframe, then garbage: the camera was up, and the
			// error of the depacketiser is shown.
			name: "garbage after a keyframe",
			handle: script{sdp: goodSDP, afterPlay: func(ctx context.Context, write func([]byte) error) {
				for _, p := range keyframe {
					if write(p) != nil {
						return
					}
				}
				sendRTP(ctx, write, 1, garbagePayload(rand.New(rand.NewPCG(5, 6))))
			}}.serve,
			want:     []string{"video stopped for 2s", "last error: rtp:"},
			delivers: true,
		},
		{
			name: "silent after PLAY",
			handle: script{sdp: goodSDP, afterPlay: func(ctx context.Context, _ func([]byte) error) {
				<-ctx.Done()
			}}.serve,
			want: []string{"no video for 2s", "no RTP packets received"},
		},
		{
			name: "audio only",
			handle: script{sdp: []byte("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n" +
				"m=audio 0 RTP/AVP 0\r\na=control:trackID=0\r\na=rtpmap:0 PCMU/8000\r\n")}.serve,
			want: []string{"no H.264 or H.265 video", "G711"},
		},
		{
			name: "unsupported video codec",
			handle: script{sdp: []byte("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n" +
				"m=video 0 RTP/AVP 26\r\na=control:trackID=0\r\na=rtpmap:26 JPEG/90000\r\n")}.serve,
			want: []string{"no H.264 or H.265 video", "M-JPEG"},
		},
		{
			name: "not found",
			handle: script{describe: func(*base.Request) *base.Response {
				return &base.Response{StatusCode: base.StatusNotFound}
			}}.serve,
			want: []string{"describe", "404"},
		},
		{
			name: "connection closed at once",
			handle: func(nc net.Conn) {
				nc.Close()
			},
			want: []string{"describe", "EOF|connection reset"},
		},
	}
}

// TestBadInput runs misbehaving cameras next to a good one: each bad one is
// shown down with a clear error and retried, the good one never notices.
func TestBadInput(t *testing.T) {
	t.Parallel()
	sim := agenttest.StartSim(t, "127.0.0.1:0")
	good := startSource(t, Config{Name: "good", URL: simURL(t, sim, "walk"), Transport: "tcp"})
	agenttest.WaitFor(t, 10*time.Second, "good camera up", func() bool { return good.src.Status().State == StateUp })
	from := good.rec.count()
	began := time.Now()

	t.Run("cases", func(t *testing.T) {
		for _, tc := range badCases(t) {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				srv := startRaw(t, tc.handle)
				r := startSource(t, Config{
					Name: "bad", URL: srv.url(), Transport: "tcp",
					StallTimeout: 2 * time.Second, RequestTimeout: 2 * time.Second,
				})
				var last Status
				agenttest.WaitFor(t, 15*time.Second, "camera down with "+strings.Join(tc.want, ", "), func() bool {
					last = r.src.Status()
					if last.State != StateDown {
						return false
					}
					return containsAll(last.LastError, tc.want)
				})
				t.Logf("LastError: %s", last.LastError)
				if last.LastErrorAt.IsZero() {
					t.Error("LastErrorAt not set")
				}
				// It keeps trying.
				agenttest.WaitFor(t, 10*time.Second, "a second attempt", func() bool { return srv.accepted.Load() >= 2 })
				if err := r.stop(); err != nil {
					t.Fatal(err)
				}
				st := r.src.Status()
				if tc.delivers {
					// Each session: one keyframe, then garbage, then its end.
					aus, ends := r.rec.units(), r.rec.streamEnds()
					if len(aus) == 0 || len(aus) != len(ends) || st.Sessions != len(aus) {
						t.Fatalf("%d units, %d stream ends, %d sessions: want one of each per session",
							len(aus), len(ends), st.Sessions)
					}
					for _, au := range aus {
						if !au.Keyframe {
							t.Fatal("garbage delivered as an access unit")
						}
					}
				} else if r.rec.count() != 0 || len(r.rec.streamEnds()) != 0 || st.Sessions != 0 {
					t.Fatalf("bad camera delivered %d units, %d stream ends, %d sessions",
						r.rec.count(), len(r.rec.streamEnds()), st.Sessions)
				}
				checkNoSecret(t, r)
			})
		}
	})

	st := good.src.Status()
	if st.State != StateUp || st.Sessions != 1 || st.DroppedUnits != 0 {
		t.Fatalf("good camera status %+v, want up in its first session, nothing dropped", st)
	}
	if ends := good.rec.streamEnds(); len(ends) != 0 {
		t.Fatalf("good camera stream ended: %v", ends)
	}
	aus := good.rec.units()[from:]
	elapsed := time.Since(began)
	// 25 pictures a second; allow for a slow machine under -race.
	if want := int(elapsed.Seconds() * 25 / 2); len(aus) < want {
		t.Fatalf("good camera delivered %d units in %v, want at least %d", len(aus), elapsed, want)
	}
	prev := began
	for i, au := range aus {
		if gap := au.Received.Sub(prev); gap > time.Second {
			t.Fatalf("good camera: no video for %v before unit %d", gap, i)
		}
		prev = au.Received
	}
	if gap := time.Since(prev); gap > time.Second {
		t.Fatalf("good camera: no video for the last %v", gap)
	}
	checkUnits(t, good.rec.units(), media.H264, 640, 360)
	t.Logf("good camera: %d units during %v of bad cameras", len(aus), elapsed.Round(time.Millisecond))
}

// checkNoSecret fails if the password shows in the logs or the status.
func checkNoSecret(t *testing.T, r *running) {
	t.Helper()
	if logs := r.logs.String(); strings.Contains(logs, secret) {
		t.Fatalf("password in the logs:\n%s", logs)
	}
	if !strings.Contains(r.logs.String(), "user:xxxxx@") {
		t.Fatalf("logs do not name the redacted URL:\n%s", r.logs.String())
	}
	b, err := json.Marshal(r.src.Status())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(secret)) {
		t.Fatalf("password in the status: %s", b)
	}
}

// authScript answers DESCRIBE with 401 until it gets Basic credentials,
// then with what onAuth returns; it records the credentials received.
func authScript(got *atomic.Value, onAuth func(creds string) *base.Response) script {
	return script{describe: func(req *base.Request) *base.Response {
		h := req.Header["Authorization"]
		if len(h) == 1 && strings.HasPrefix(h[0], "Basic ") {
			creds, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(h[0], "Basic "))
			got.Store(string(creds))
			return onAuth(string(creds))
		}
		return &base.Response{StatusCode: base.StatusUnauthorized, Header: base.Header{
			"WWW-Authenticate": base.HeaderValue{`Basic realm="camera"`},
		}}
	}}
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		onAuth func(creds string) *base.Response
		want   string
	}{
		{"wrong password", func(string) *base.Response {
			return &base.Response{StatusCode: base.StatusUnauthorized, Header: base.Header{
				"WWW-Authenticate": base.HeaderValue{`Basic realm="camera"`},
			}}
		}, "401"},
		// A camera that echoes what it was sent: the library's error then
		// holds the password, which the status must not.
		{"echoing camera", func(creds string) *base.Response {
			return &base.Response{StatusCode: base.StatusForbidden, StatusMessage: "Forbidden for " + creds}
		}, "xxxxx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got atomic.Value
			srv := startRaw(t, authScript(&got, tc.onAuth).serve)
			r := startSource(t, Config{URL: srv.url(), Transport: "tcp", RequestTimeout: 2 * time.Second})
			agenttest.WaitFor(t, 10*time.Second, "camera down", func() bool {
				st := r.src.Status()
				return st.State == StateDown && strings.Contains(st.LastError, tc.want)
			})
			if creds, _ := got.Load().(string); creds != "user:"+secret {
				t.Fatalf("camera received credentials %q, want the URL's", creds)
			}
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			t.Logf("LastError: %s", r.src.Status().LastError)
			checkNoSecret(t, r)
		})
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"rtsp://user:secretpw@10.0.0.7:554/Streaming/101", "rtsp://user:xxxxx@10.0.0.7:554/Streaming/101"},
		{"rtsps://admin:p%40ss%2Fsecretpw@cam.local/live", "rtsps://admin:xxxxx@cam.local/live"},
		{"rtsp://user@10.0.0.7/live", "rtsp://user@10.0.0.7/live"},
		{"rtsp://10.0.0.7/live", "rtsp://10.0.0.7/live"},
		{"rtsp://user:secretpw@[::1", "(invalid URL)"},
	} {
		got := Redact(tc.in)
		if got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(got, secret) {
			t.Errorf("Redact(%q) = %q shows the password", tc.in, got)
		}
	}
}

// TestScrub: a password a library echoes in whatever escaping is removed.
func TestScrub(t *testing.T) {
	t.Parallel()
	s, err := New(Config{Name: "c", URL: "rtsp://u:se%2Fcret%20pw@h/x", OnAccessUnit: func(*media.AccessUnit) {}})
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"se/cret pw", "se%2Fcret%20pw", "se%2Fcret+pw"} {
		if got := s.scrub("error with " + msg + " in it"); got != "error with xxxxx in it" {
			t.Errorf("scrub left %q", got)
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ lo, hi time.Duration }{
		{500 * time.Millisecond, 5 * time.Second},
		{time.Second, time.Second},
		{100 * time.Millisecond, 150 * time.Millisecond},
		{time.Nanosecond, time.Hour},
		{time.Millisecond, 100 * 365 * 24 * time.Hour},
	} {
		for failures := 0; failures <= 100; failures++ {
			d := tc.lo
			for range failures {
				if d >= tc.hi || d > tc.hi/2 {
					d = tc.hi
					break
				}
				d *= 2
			}
			d = min(d, tc.hi)
			lo, hi := time.Duration(1<<63-1), time.Duration(0)
			for range 200 {
				got := backoff(tc.lo, tc.hi, failures)
				if got < d/2 || got > d {
					t.Fatalf("backoff(%v, %v, %d) = %v, want in [%v, %v]", tc.lo, tc.hi, failures, got, d/2, d)
				}
				lo, hi = min(lo, got), max(hi, got)
			}
			if d >= time.Millisecond && (lo > d/10*6 || hi < d/10*9) {
				t.Fatalf("backoff(%v, %v, %d) in [%v, %v] over 200 draws: no jitter across [%v, %v]",
					tc.lo, tc.hi, failures, lo, hi, d/2, d)
			}
		}
	}
	// Defaults: the tenth failure in a row waits at most 5s.
	if got := backoff(500*time.Millisecond, 5*time.Second, 10); got > 5*time.Second {
		t.Fatalf("backoff not capped: %v", got)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	onAU := func(*media.AccessUnit) {}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no name", Config{URL: "rtsp://h/x", OnAccessUnit: onAU}, "name is required"},
		{"bad URL", Config{Name: "c", URL: "::", OnAccessUnit: onAU}, "invalid URL"},
		{"http", Config{Name: "c", URL: "http://h/x", OnAccessUnit: onAU}, "URL"},
		{"transport", Config{Name: "c", URL: "rtsp://h/x", Transport: "sctp", OnAccessUnit: onAU}, "unknown transport"},
		{"no callback", Config{Name: "c", URL: "rtsp://h/x"}, "OnAccessUnit"},
		{"negative backoff", Config{Name: "c", URL: "rtsp://h/x", OnAccessUnit: onAU, MinBackoff: -time.Second}, "negative"},
		{"negative stall", Config{Name: "c", URL: "rtsp://h/x", OnAccessUnit: onAU, StallTimeout: -time.Second}, "negative"},
		{"bad URL with password", Config{Name: "c", URL: "rtsp://u:" + secret + "@[::1", OnAccessUnit: onAU}, "invalid URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}

	cfg := Config{Name: "c", URL: "rtsp://h/x", OnAccessUnit: onAU}
	if err := cfg.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	if cfg.StallTimeout != 10*time.Second || cfg.RequestTimeout != 5*time.Second ||
		cfg.MinBackoff != 500*time.Millisecond || cfg.MaxBackoff != 4*time.Second ||
		cfg.StableAfter != 30*time.Second || cfg.Logger == nil || cfg.Now == nil {
		t.Fatalf("defaults not set: %+v", cfg)
	}
}

// TestRunStopsWhileDown: cancellation ends Run at once during a backoff
// wait, with state down.
func TestRunStopsWhileDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every attempt is refused
	r := startSource(t, Config{URL: "rtsp://" + addr + "/x", MinBackoff: time.Hour, MaxBackoff: time.Hour})
	agenttest.WaitFor(t, 5*time.Second, "camera down", func() bool { return r.src.Status().State == StateDown })
	start := time.Now()
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Run took %v to return from a backoff wait", d)
	}
	if st := r.src.Status(); st.State != StateDown {
		t.Fatalf("state %q after stop", st.State)
	}
}
