package relay

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
)

// A real 640x360 H.264 SPS and PPS (the simulated camera's walk clip).
var (
	testSPS, _ = hex.DecodeString("674d401ed900a02ff97011000003000100000300320f162e48")
	testPPS, _ = hex.DecodeString("68ebc24b20")
)

// fakeSource plays frames fed by the test; an in-memory stand-in for the
// agent's stream (the browser and system tests use the real one).
type fakeSource struct {
	frames chan *agentv1.RelayFrame
	once   sync.Once
	closed chan struct{}
}

func newFakeSource() *fakeSource {
	return &fakeSource{frames: make(chan *agentv1.RelayFrame, 64), closed: make(chan struct{})}
}

func (s *fakeSource) Recv() (*agentv1.RelayFrame, error) {
	select {
	case f, ok := <-s.frames:
		if !ok {
			return nil, io.EOF
		}
		return f, nil
	case <-s.closed:
		return nil, errors.New("closed")
	}
}

func (s *fakeSource) Close() { s.once.Do(func() { close(s.closed) }) }

func frame(n int, key bool) *agentv1.RelayFrame {
	f := &agentv1.RelayFrame{Dts: int64(n) * 3600, Pts: int64(n) * 3600, Keyframe: key, Payload: agentv1.AppendNALUs(nil, [][]byte{{0x65, byte(n)}}), ReceivedUs: int64(1000 + n)}
	if !key {
		f.Payload = agentv1.AppendNALUs(nil, [][]byte{{0x41, byte(n)}})
	}
	return f
}

func params() *agentv1.StreamParams {
	return &agentv1.StreamParams{Codec: "h264", Sps: testSPS, Pps: testPPS, Width: 640, Height: 360}
}

// testHub has one camera whose sources the test controls.
type testHub struct {
	*Hub
	opened  atomic.Int32
	sources chan *fakeSource
}

func newTestHub(t *testing.T) *testHub {
	th := &testHub{sources: make(chan *fakeSource, 8)}
	h, err := New(Config{
		Open: func(ctx context.Context, district, camera string, sub bool) (Source, error) {
			th.opened.Add(1)
			select {
			case s := <-th.sources:
				return s, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
		RetryMin: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	th.Hub = h
	return th
}

// next returns the viewer's next message of one of the kinds.
func next(t *testing.T, v *Viewer, kinds ...Kind) Message {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m := <-v.C:
			for _, k := range kinds {
				if m.Kind == k {
					return m
				}
			}
		case <-deadline:
			t.Fatalf("no message of kinds %v", kinds)
		}
	}
}

func TestRelaySharedStartsWithKeyframeAndStopsWithLastViewer(t *testing.T) {
	h := newTestHub(t)
	src := newFakeSource()
	h.sources <- src
	key := Key{District: "north", Camera: "cam1", Sub: true}
	a := h.Join(key, "alice")
	src.frames <- &agentv1.RelayFrame{RelayId: "x"} // the stream's first message: no picture
	src.frames <- &agentv1.RelayFrame{Params: params(), Dts: 0, Payload: agentv1.AppendNALUs(nil, [][]byte{{0x41}})}
	// Not a keyframe: nothing to decode from yet.
	src.frames <- frame(1, true)
	src.frames <- frame(2, false)

	if m := next(t, a, KindStatus); m.State != StateStarting {
		t.Fatalf("first status %q, want starting", m.State)
	}
	if m := next(t, a, KindStatus); m.State != StateLive {
		t.Fatalf("status %q, want live", m.State)
	}
	c := next(t, a, KindCodec)
	if c.Codec.MIME != `video/mp4; codecs="avc1.4d401e"` || c.Codec.Width != 640 {
		t.Fatalf("codec %+v", c.Codec)
	}
	init := next(t, a, KindInit)
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(init.Data)); err != nil {
		t.Fatalf("init segment does not parse: %v", err)
	}
	f1 := next(t, a, KindFragment)
	if !f1.Keyframe || f1.ReceivedUS != 1001 {
		t.Fatalf("first fragment keyframe=%v received=%d; the frame before the keyframe must be skipped", f1.Keyframe, f1.ReceivedUS)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(f1.Data); err != nil || len(parts) != 1 || parts[0].Tracks[0].BaseTime != 0 || parts[0].Tracks[0].Samples[0].IsNonSyncSample {
		t.Fatalf("first fragment: %v %+v", err, parts)
	}
	f2 := next(t, a, KindFragment)
	parts = nil
	if err := parts.Unmarshal(f2.Data); err != nil || parts[0].Tracks[0].BaseTime != 3600 || parts[0].Tracks[0].Samples[0].Duration != 3600 {
		t.Fatalf("second fragment: %v", err)
	}

	// A second viewer shares the relay and starts at the last keyframe.
	b := h.Join(key, "bob")
	if m := next(t, b, KindStatus); m.State != StateLive {
		t.Fatalf("late viewer status %q", m.State)
	}
	next(t, b, KindCodec)
	next(t, b, KindInit)
	if m := next(t, b, KindFragment); m.ReceivedUS != 1001 {
		t.Fatalf("late viewer starts at frame received %d, want the keyframe (1001)", m.ReceivedUS)
	}
	if m := next(t, b, KindFragment); m.ReceivedUS != 1002 {
		t.Fatalf("late viewer's second frame %d", m.ReceivedUS)
	}
	if n := h.opened.Load(); n != 1 {
		t.Fatalf("relay opened %d times for two viewers, want 1", n)
	}
	if users := h.Watching("north/cam1"); len(users) != 2 {
		t.Fatalf("watching %v", users)
	}
	if m := next(t, a, KindViewers); len(m.Users) != 2 || m.Users[0] != "alice" || m.Users[1] != "bob" {
		t.Fatalf("viewers message %v", m.Users)
	}

	a.Leave()
	if h.Relays() != 1 {
		t.Fatal("relay stopped with a viewer left")
	}
	b.Leave()
	b.Leave() // twice is harmless
	if h.Relays() != 0 {
		t.Fatal("relay still running without viewers")
	}
	select {
	case <-src.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the agent's stream was not closed when the last viewer left")
	}
}

func TestRelayReconnectsWhenTheAgentGoesAway(t *testing.T) {
	h := newTestHub(t)
	first := newFakeSource()
	h.sources <- first
	v := h.Join(Key{District: "north", Camera: "cam1"}, "alice")
	defer v.Leave()
	first.frames <- &agentv1.RelayFrame{Params: params()}
	first.frames <- frame(1, true)
	next(t, v, KindFragment)
	close(first.frames) // the agent's link dropped

	if m := next(t, v, KindStatus); m.State != StateReconnecting {
		t.Fatalf("status %q after the source ended, want reconnecting", m.State)
	}
	second := newFakeSource()
	h.sources <- second
	// The camera's clock started again: the new stream is a new decoder.
	second.frames <- &agentv1.RelayFrame{Params: params()}
	second.frames <- frame(0, true)
	if m := next(t, v, KindStatus); m.State != StateLive {
		t.Fatalf("status %q, want live again", m.State)
	}
	next(t, v, KindCodec)
	next(t, v, KindInit)
	if m := next(t, v, KindFragment); !m.Keyframe {
		t.Fatal("after reconnecting, the first fragment is not a keyframe")
	}
}

func TestMuxerRestartsOnClockJump(t *testing.T) {
	var m muxer
	msgs, err := m.frame(&agentv1.RelayFrame{Params: params(), Dts: 90000, Keyframe: true, Payload: agentv1.AppendNALUs(nil, [][]byte{{0x65}})})
	if err != nil || len(msgs) != 3 {
		t.Fatalf("first frame: %v, %d messages (want codec, init, fragment)", err, len(msgs))
	}
	msgs, err = m.frame(&agentv1.RelayFrame{Dts: 0, Payload: agentv1.AppendNALUs(nil, [][]byte{{0x41}})})
	if err != nil || len(msgs) != 2 || msgs[0].Kind != KindCodec || msgs[1].Kind != KindInit {
		t.Fatalf("DTS going back: %v %v; want a new init and nothing until a keyframe", err, msgs)
	}
	if _, err := (&muxer{}).frame(&agentv1.RelayFrame{Dts: 1, Payload: agentv1.AppendNALUs(nil, [][]byte{{0x41}})}); err == nil {
		t.Fatal("a frame before any parameters was accepted")
	}
	if _, err := (&muxer{}).frame(&agentv1.RelayFrame{Params: &agentv1.StreamParams{Codec: "mjpeg"}}); err == nil {
		t.Fatal("an unknown codec was accepted")
	}
	if _, err := (&muxer{}).frame(&agentv1.RelayFrame{Params: &agentv1.StreamParams{Codec: "h264", Sps: []byte{1}}}); err == nil {
		t.Fatal("a truncated SPS was accepted")
	}
}

func TestSlowViewerSkipsToNextKeyframe(t *testing.T) {
	v := &Viewer{ch: make(chan Message, viewerQueue)}
	for i := 0; i < viewerQueue; i++ {
		v.send(Message{Kind: KindFragment})
	}
	if !v.lagging {
		t.Fatal("a full queue did not make the viewer lag")
	}
	for len(v.ch) > 0 {
		<-v.ch
	}
	v.send(Message{Kind: KindFragment})
	if len(v.ch) != 0 {
		t.Fatal("a lagging viewer got a non-keyframe")
	}
	v.send(Message{Kind: KindFragment, Keyframe: true})
	if len(v.ch) != 1 || v.lagging {
		t.Fatal("a lagging viewer did not resume at the keyframe")
	}
}

// TestJoinWhileTheStreamStarts: viewers joining at every moment of a
// relay's start get a decodable stream (codec and init before fragments),
// and the hub stays usable.
func TestJoinWhileTheStreamStarts(t *testing.T) {
	for round := 0; round < 50; round++ {
		h := newTestHub(t)
		src := newFakeSource()
		h.sources <- src
		key := Key{District: "north", Camera: "cam1"}
		first := h.Join(key, "alice")
		done := make(chan struct{})
		go func() {
			defer close(done)
			src.frames <- &agentv1.RelayFrame{Params: params()}
			for n := 1; n < 20; n++ {
				src.frames <- frame(n, n%5 == 1)
			}
		}()
		var viewers []*Viewer
		for i := 0; i < 10; i++ {
			viewers = append(viewers, h.Join(key, fmt.Sprintf("v%d", i)))
		}
		<-done
		for _, v := range viewers {
			// Whatever a viewer got, a fragment never comes before an init.
			initSeen := false
			timeout := time.After(2 * time.Second)
		read:
			for {
				select {
				case m := <-v.C:
					switch m.Kind {
					case KindInit:
						initSeen = true
					case KindFragment:
						if !initSeen {
							t.Fatalf("round %d: a fragment before any init", round)
						}
						if m.ReceivedUS == 1019 {
							break read
						}
					}
				case <-timeout:
					break read
				}
			}
			v.Leave()
		}
		first.Leave()
		if h.Relays() != 0 {
			t.Fatal("relay left running")
		}
	}
}

func TestStalledSourceIsReported(t *testing.T) {
	h := newTestHub(t)
	src := newFakeSource()
	h.sources <- src
	v := h.Join(Key{District: "north", Camera: "cam1"}, "alice")
	defer v.Leave()
	src.frames <- &agentv1.RelayFrame{Params: params()}
	src.frames <- frame(1, true)
	next(t, v, KindFragment)
	deadline := time.After(3 * stallAfter)
	for {
		select {
		case m := <-v.C:
			if m.Kind == KindStatus && m.State == StateStalled {
				src.frames <- frame(2, false)
				if m := next(t, v, KindStatus); m.State != StateLive {
					t.Fatalf("after the stall: %q", m.State)
				}
				return
			}
		case <-deadline:
			t.Fatal("a source sending nothing was never reported stalled")
		}
	}
}
