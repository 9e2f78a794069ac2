package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/storage"
)

// StreamTimeout bounds the wait for an agent to open the stream it was
// asked for, after it acknowledged the command.
const StreamTimeout = 10 * time.Second

// ErrTampered means the agent found a segment whose bytes differ from the
// SHA-256 of its index: it was not served.
var ErrTampered = errors.New("segment does not match its recorded SHA-256")

// streamWaiter is a Relay or Fetch stream central asked for and waits on.
// The stream is handed over unbuffered: either the asker takes it, or it
// has gone (closed gone) and the agent's stream is ended at once, never
// left open with nobody reading.
type streamWaiter struct {
	district string
	relay    chan *RelayStream
	fetch    chan *FetchStream
	gone     chan struct{}
}

// streams are the rendezvous of central's requests with the streams the
// agents open in answer: central cannot dial an agent, so it asks over the
// link and the agent calls back on the same connection.
type streams struct {
	mu      sync.Mutex
	waiting map[string]*streamWaiter
}

func (s *streams) expect(id string, w *streamWaiter) {
	s.mu.Lock()
	if s.waiting == nil {
		s.waiting = map[string]*streamWaiter{}
	}
	s.waiting[id] = w
	s.mu.Unlock()
}

// take removes and returns the waiter of id, if the district matches.
func (s *streams) take(id, district string) (*streamWaiter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.waiting[id]
	if w == nil {
		return nil, status.Error(codes.NotFound, "no such stream was asked for (or it was given up)")
	}
	if w.district != district {
		return nil, status.Errorf(codes.PermissionDenied, "this stream was asked of another district")
	}
	delete(s.waiting, id)
	return w, nil
}

// giveUp forgets id and tells a stream arriving now that nobody waits.
func (s *streams) giveUp(id string, w *streamWaiter) {
	s.mu.Lock()
	delete(s.waiting, id)
	s.mu.Unlock()
	close(w.gone)
}

// errGivenUp ends a stream whose asker stopped waiting.
var errGivenUp = status.Error(codes.Canceled, "central no longer waits for this stream")

// ask sends a command that makes the agent open a stream, and returns the
// acknowledgement; the caller then waits on w.
func (r *Registry) ask(ctx context.Context, district string, cmd *agentv1.Command) error {
	ack, err := r.Command(ctx, district, cmd)
	if err != nil {
		return err
	}
	if !ack.GetOk() {
		return fmt.Errorf("agent of %s: %s", district, ack.GetError())
	}
	return nil
}

// RelayStream is one live relay from an agent: the frames of one camera.
type RelayStream struct {
	stream agentv1.Link_RelayServer
	once   sync.Once
	done   chan struct{}
}

// Recv returns the next access unit, its parts joined into Payload (More
// is false).
func (s *RelayStream) Recv() (*agentv1.RelayFrame, error) {
	select {
	case <-s.done:
		return nil, io.EOF
	default:
	}
	var frame *agentv1.RelayFrame
	for {
		part, err := s.stream.Recv()
		if err != nil {
			return nil, err
		}
		if frame == nil {
			frame = part
		} else {
			if len(frame.Payload)+len(part.GetPayload()) > agentv1.MaxRelayFrame {
				return nil, fmt.Errorf("relay: a frame larger than %d bytes", agentv1.MaxRelayFrame)
			}
			frame.Payload = append(frame.Payload, part.GetPayload()...)
		}
		if !part.GetMore() {
			frame.More = false
			return frame, nil
		}
	}
}

// Close ends the relay: the agent stops sending.
func (s *RelayStream) Close() { s.once.Do(func() { close(s.done) }) }

// OpenRelay asks a district's agent for the live video of one of its
// cameras (sub: its secondary stream if it has one) and waits for the
// stream. The caller must Close it.
func (r *Registry) OpenRelay(ctx context.Context, district, camera string, sub bool) (*RelayStream, error) {
	w := &streamWaiter{district: district, relay: make(chan *RelayStream), gone: make(chan struct{})}
	return awaitStream(ctx, r, w, w.relay, "live view", func(id string) *agentv1.Command {
		return &agentv1.Command{Body: &agentv1.Command_LiveStart{LiveStart: &agentv1.LiveStart{RelayId: id, Camera: camera, Sub: sub}}}
	})
}

// awaitStream asks a district's agent, with the command cmd makes for a
// new stream id, to open a stream, and waits for it on ch.
func awaitStream[S any](ctx context.Context, r *Registry, w *streamWaiter, ch chan S, what string, cmd func(id string) *agentv1.Command) (S, error) {
	var none S
	id := storage.NewSegmentID()
	r.streams.expect(id, w)
	defer r.streams.giveUp(id, w)
	if err := r.ask(ctx, w.district, cmd(id)); err != nil {
		return none, err
	}
	select {
	case s := <-ch:
		return s, nil
	case <-ctx.Done():
		return none, ctx.Err()
	case <-time.After(StreamTimeout):
		return none, fmt.Errorf("agent of %s accepted the %s but opened no stream", w.district, what)
	}
}

// handOver gives the stream an agent opened to whoever waits for it, or
// says nobody does any more.
func handOver[S any](w *streamWaiter, ch chan S, s S) error {
	select {
	case ch <- s:
		return nil
	case <-w.gone:
		return errGivenUp
	}
}

// Relay serves the stream an agent opens for OpenRelay.
func (r *Registry) Relay(stream agentv1.Link_RelayServer) error {
	return r.accept(stream.Context(),
		func() (string, error) { f, err := stream.Recv(); return f.GetRelayId(), err },
		func(w *streamWaiter) (<-chan struct{}, error) {
			s := &RelayStream{stream: stream, done: make(chan struct{})}
			return s.done, handOver(w, w.relay, s)
		})
}

// accept serves a stream an agent opened on request: it checks the agent's
// district, finds what central waits for by the id of the stream's first
// message, hands the stream over, and keeps the call open until the taker
// closes it (done), the agent goes or central stops.
func (r *Registry) accept(ctx context.Context, firstID func() (string, error), give func(*streamWaiter) (<-chan struct{}, error)) error {
	district, err := r.cfg.District(ctx)
	if err != nil {
		return status.Errorf(codes.Unauthenticated, "agent certificate: %v", err)
	}
	id, err := firstID()
	if err != nil {
		return err
	}
	w, err := r.streams.take(id, district)
	if err != nil {
		return err
	}
	done, err := give(w)
	if err != nil {
		return err
	}
	select {
	case <-done:
	case <-ctx.Done():
	case <-r.closing:
	}
	return nil
}

// FetchStream is one segment (or a range of it) coming from an agent.
type FetchStream struct {
	stream agentv1.Link_FetchServer
	buf    []byte
	err    error
	once   sync.Once
	done   chan struct{}

	headOnce sync.Once
	head     *agentv1.FetchChunk
	headErr  error
}

// Head waits for the agent's verdict on the object: its size and SHA-256,
// or why it is not sent (ErrTampered among the reasons). Close the stream
// to stop waiting.
func (s *FetchStream) Head() (total int64, sha string, err error) {
	s.headOnce.Do(func() {
		h, err := s.stream.Recv()
		switch {
		case err != nil:
			s.headErr = fmt.Errorf("the district's stream ended: %w", err)
		case h.GetTampered():
			s.headErr = fmt.Errorf("%w: %s", ErrTampered, h.GetError())
		case h.GetError() != "":
			s.headErr = errors.New(h.GetError())
		default:
			s.head = h
			s.buf = h.GetData()
		}
		if s.headErr != nil {
			s.err = s.headErr
		}
	})
	if s.headErr != nil {
		return 0, "", s.headErr
	}
	return s.head.GetTotalBytes(), s.head.GetSha256(), nil
}

// Read implements io.Reader over the fetched bytes, after Head.
func (s *FetchStream) Read(p []byte) (int, error) {
	if _, _, err := s.Head(); err != nil {
		return 0, err
	}
	for len(s.buf) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		chunk, err := s.stream.Recv()
		if err != nil {
			s.err = err
			continue
		}
		s.buf = chunk.GetData()
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// Close ends the fetch, whether or not everything was read.
func (s *FetchStream) Close() { s.once.Do(func() { close(s.done) }) }

// OpenFetch asks a district's agent for the bytes [offset, offset+length)
// of a segment (length 0: to the end) and waits for the stream, whose Head
// then says whether the agent found the object intact. The caller must
// Close the stream.
func (r *Registry) OpenFetch(ctx context.Context, district, segment string, offset, length int64) (*FetchStream, error) {
	w := &streamWaiter{district: district, fetch: make(chan *FetchStream), gone: make(chan struct{})}
	return awaitStream(ctx, r, w, w.fetch, "fetch", func(id string) *agentv1.Command {
		return &agentv1.Command{Body: &agentv1.Command_FetchSegment{FetchSegment: &agentv1.FetchSegment{
			FetchId: id, SegmentId: segment, Offset: offset, Length: length,
		}}}
	})
}

// Fetch serves the stream an agent opens for OpenFetch.
func (r *Registry) Fetch(stream agentv1.Link_FetchServer) error {
	return r.accept(stream.Context(),
		func() (string, error) { f, err := stream.Recv(); return f.GetFetchId(), err },
		func(w *streamWaiter) (<-chan struct{}, error) {
			s := &FetchStream{stream: stream, done: make(chan struct{})}
			return s.done, handOver(w, w.fetch, s)
		})
}
