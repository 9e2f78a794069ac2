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
type streamWaiter struct {
	district string
	relay    chan *RelayStream
	fetch    chan *FetchStream
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

func (s *streams) forget(id string) {
	s.mu.Lock()
	delete(s.waiting, id)
	s.mu.Unlock()
}

// RelayStream is one live relay from an agent: the frames of one camera.
type RelayStream struct {
	first  *agentv1.RelayFrame
	stream agentv1.Link_RelayServer
	once   sync.Once
	done   chan struct{}
}

// Recv returns the next frame; the first one carries the stream's
// parameters.
func (s *RelayStream) Recv() (*agentv1.RelayFrame, error) {
	if f := s.first; f != nil {
		s.first = nil
		return f, nil
	}
	select {
	case <-s.done:
		return nil, io.EOF
	default:
	}
	return s.stream.Recv()
}

// Close ends the relay: the agent stops sending.
func (s *RelayStream) Close() { s.once.Do(func() { close(s.done) }) }

// OpenRelay asks a district's agent for the live video of one of its
// cameras (sub: its secondary stream if it has one) and waits for the
// stream. The caller must Close it.
func (r *Registry) OpenRelay(ctx context.Context, district, camera string, sub bool) (*RelayStream, error) {
	id := storage.NewSegmentID()
	w := &streamWaiter{district: district, relay: make(chan *RelayStream, 1)}
	r.streams.expect(id, w)
	defer r.streams.forget(id)
	ack, err := r.Command(ctx, district, &agentv1.Command{Body: &agentv1.Command_LiveStart{LiveStart: &agentv1.LiveStart{
		RelayId: id, Camera: camera, Sub: sub,
	}}})
	if err != nil {
		return nil, err
	}
	if !ack.GetOk() {
		return nil, fmt.Errorf("agent of %s refused the live view: %s", district, ack.GetError())
	}
	select {
	case s := <-w.relay:
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(StreamTimeout):
		return nil, fmt.Errorf("agent of %s accepted the live view but opened no stream", district)
	}
}

// Relay serves the stream an agent opens for OpenRelay.
func (r *Registry) Relay(stream agentv1.Link_RelayServer) error {
	district, err := r.cfg.District(stream.Context())
	if err != nil {
		return status.Errorf(codes.Unauthenticated, "agent certificate: %v", err)
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	w, err := r.streams.take(first.GetRelayId(), district)
	if err != nil {
		return err
	}
	s := &RelayStream{first: first, stream: stream, done: make(chan struct{})}
	w.relay <- s // buffered: OpenRelay may have given up already
	select {
	case <-s.done:
	case <-stream.Context().Done():
	case <-r.closing:
	}
	return nil
}

// FetchStream is one segment (or a range of it) coming from an agent.
type FetchStream struct {
	// Total and SHA256 describe the whole object.
	Total  int64
	SHA256 string

	stream agentv1.Link_FetchServer
	buf    []byte
	err    error
	once   sync.Once
	done   chan struct{}
}

// Read implements io.Reader over the fetched bytes.
func (s *FetchStream) Read(p []byte) (int, error) {
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
// of a segment (length 0: to the end) and waits for the stream. The agent
// checks the whole object against its index first: a mismatch is
// ErrTampered. The caller must Close the stream.
func (r *Registry) OpenFetch(ctx context.Context, district, segment string, offset, length int64) (*FetchStream, error) {
	id := storage.NewSegmentID()
	w := &streamWaiter{district: district, fetch: make(chan *FetchStream, 1)}
	r.streams.expect(id, w)
	defer r.streams.forget(id)
	ack, err := r.Command(ctx, district, &agentv1.Command{Body: &agentv1.Command_FetchSegment{FetchSegment: &agentv1.FetchSegment{
		FetchId: id, SegmentId: segment, Offset: offset, Length: length,
	}}})
	if err != nil {
		return nil, err
	}
	if !ack.GetOk() {
		return nil, fmt.Errorf("agent of %s: %s", district, ack.GetError())
	}
	var s *FetchStream
	select {
	case s = <-w.fetch:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(StreamTimeout):
		return nil, fmt.Errorf("agent of %s accepted the fetch but opened no stream", district)
	}
	return s, nil
}

// Fetch serves the stream an agent opens for OpenFetch.
func (r *Registry) Fetch(stream agentv1.Link_FetchServer) error {
	district, err := r.cfg.District(stream.Context())
	if err != nil {
		return status.Errorf(codes.Unauthenticated, "agent certificate: %v", err)
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	w, err := r.streams.take(first.GetFetchId(), district)
	if err != nil {
		return err
	}
	s := &FetchStream{Total: first.GetTotalBytes(), SHA256: first.GetSha256(), stream: stream, buf: first.GetData(), done: make(chan struct{})}
	switch {
	case first.GetTampered():
		s.err = fmt.Errorf("%w: %s", ErrTampered, first.GetError())
	case first.GetError() != "":
		s.err = errors.New(first.GetError())
	}
	w.fetch <- s
	select {
	case <-s.done:
		return stream.SendAndClose(&agentv1.FetchDone{})
	case <-stream.Context().Done():
	case <-r.closing:
	}
	return nil
}

// FetchError returns the error the agent gave instead of the segment, if
// any (ErrTampered among them), before anything is read.
func (s *FetchStream) FetchError() error {
	if len(s.buf) == 0 && s.err != nil && !errors.Is(s.err, io.EOF) {
		return s.err
	}
	return nil
}
