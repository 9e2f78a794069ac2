package server

import (
	"bytes"
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
)

// streamAgent is a scripted agent over the real link: it acknowledges
// LiveStart and FetchSegment, waits delay, then opens the stream and runs
// the script on it.
type streamAgent struct {
	client agentv1.LinkClient
	delay  time.Duration
	relay  func(agentv1.Link_RelayClient, string)
	fetch  func(agentv1.Link_FetchClient, *agentv1.FetchSegment)
	opened atomic.Int32
	ended  atomic.Int32 // streams central ended (the agent's receive failed)
}

func startStreamAgent(t *testing.T, c *testCentral, a *streamAgent) {
	t.Helper()
	conn, err := grpc.NewClient(c.AgentAddr(), grpc.WithTransportCredentials(credentials.NewTLS(c.agentTLS(t, "north"))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	a.client = agentv1.NewLinkClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	link, err := a.client.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := link.Send(hello("north")); err != nil {
		t.Fatal(err)
	}
	if _, err := link.Recv(); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			m, err := link.Recv()
			if err != nil {
				return
			}
			cmd := m.GetCommand()
			if cmd == nil {
				continue
			}
			link.Send(&agentv1.AgentMessage{Body: &agentv1.AgentMessage_CommandAck{CommandAck: &agentv1.CommandAck{RequestId: cmd.GetRequestId(), Ok: true}}})
			go func() {
				time.Sleep(a.delay)
				sctx, scancel := context.WithCancel(ctx)
				defer scancel()
				watch := func(recv func() error) {
					for recv() == nil {
					}
					a.ended.Add(1)
					scancel()
				}
				switch {
				case cmd.GetLiveStart() != nil:
					st, err := a.client.Relay(sctx)
					if err != nil {
						return
					}
					a.opened.Add(1)
					go watch(func() error { _, err := st.Recv(); return err })
					st.Send(&agentv1.RelayFrame{RelayId: cmd.GetLiveStart().GetRelayId()})
					a.relay(st, cmd.GetLiveStart().GetRelayId())
				case cmd.GetFetchSegment() != nil:
					st, err := a.client.Fetch(sctx)
					if err != nil {
						return
					}
					a.opened.Add(1)
					go watch(func() error { _, err := st.Recv(); return err })
					st.Send(&agentv1.FetchChunk{FetchId: cmd.GetFetchSegment().GetFetchId()})
					a.fetch(st, cmd.GetFetchSegment())
				}
				<-sctx.Done()
			}()
		}
	}()
}

// TestStreamsGivenUpAreEnded: a stream the agent opens after central
// stopped waiting is ended at once, never left open with nobody reading.
func TestStreamsGivenUpAreEnded(t *testing.T) {
	c := startCentral(t)
	a := &streamAgent{delay: 80 * time.Millisecond,
		relay: func(agentv1.Link_RelayClient, string) {},
		fetch: func(agentv1.Link_FetchClient, *agentv1.FetchSegment) {},
	}
	startStreamAgent(t, c, a)
	const n = 20
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Millisecond)
		if i%2 == 0 {
			if _, err := c.registry.OpenRelay(ctx, "north", "cam1", true); err == nil {
				t.Fatal("OpenRelay succeeded past its deadline")
			}
		} else if _, err := c.registry.OpenFetch(ctx, "north", "seg", 0, 0); err == nil {
			t.Fatal("OpenFetch succeeded past its deadline")
		}
		cancel()
	}
	poll(t, "every late stream to be ended", func() bool { return a.opened.Load() == n && a.ended.Load() == n })
}

// TestStreamsCarryLargeFramesAndRanges: a frame larger than a message
// comes in parts and is joined; a fetch gives its verdict, then the bytes.
func TestStreamsCarryLargeFramesAndRanges(t *testing.T) {
	c := startCentral(t)
	big := bytes.Repeat([]byte{0x42}, 3*agentv1.RelayPartSize+17)
	data := bytes.Repeat([]byte("vigil"), 30000)
	a := &streamAgent{
		relay: func(st agentv1.Link_RelayClient, _ string) {
			payload := agentv1.AppendNALUs(nil, [][]byte{{0x65, 1}, big})
			first := true
			for len(payload) > 0 {
				k := min(len(payload), agentv1.RelayPartSize)
				f := &agentv1.RelayFrame{Payload: payload[:k], More: k < len(payload)}
				if first {
					f.Dts, f.Keyframe, first = 9000, true, false
				}
				if err := st.Send(f); err != nil {
					return
				}
				payload = payload[k:]
			}
		},
		fetch: func(st agentv1.Link_FetchClient, req *agentv1.FetchSegment) {
			st.Send(&agentv1.FetchChunk{TotalBytes: int64(len(data)), Sha256: "x"})
			part := data[req.GetOffset() : req.GetOffset()+req.GetLength()]
			for len(part) > 0 {
				k := min(len(part), agentv1.FetchChunkSize)
				st.Send(&agentv1.FetchChunk{Data: part[:k]})
				part = part[k:]
			}
			st.CloseSend()
		},
	}
	startStreamAgent(t, c, a)
	ctx := context.Background()
	rs, err := c.registry.OpenRelay(ctx, "north", "cam1", false)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	// The message naming the relay is the registry's; frames follow.
	f, err := rs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	nalus, err := agentv1.SplitNALUs(f.GetPayload())
	if err != nil || f.GetDts() != 9000 || !f.GetKeyframe() || len(nalus) != 2 || !bytes.Equal(nalus[1], big) {
		t.Fatalf("joined frame: dts %d key %v, %d NAL units, %v", f.GetDts(), f.GetKeyframe(), len(nalus), err)
	}

	fs, err := c.registry.OpenFetch(ctx, "north", "seg", 1000, 70000)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	if total, _, err := fs.Head(); err != nil || total != int64(len(data)) {
		t.Fatalf("head: %d %v", total, err)
	}
	got, err := io.ReadAll(fs)
	if err != nil || !bytes.Equal(got, data[1000:71000]) {
		t.Fatalf("range: %d bytes, %v", len(got), err)
	}
}
