// Package registry is central's side of the agent link: it accepts the
// stream each district's agent opens, checks that the agent's certificate
// is for the district it claims, applies the agent's reports to the catalog
// in batches (one transaction, one acknowledgement per batch), keeps the
// agents' live state for `vigil agents list`, and sends them commands.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-cctv/vigil/central/catalog"
	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/storage"
)

// Tuning.
const (
	// maxApplyBatch bounds the reports applied in one transaction.
	maxApplyBatch = 2048
	// ClockWarning is the clock offset above which an agent is flagged.
	ClockWarning = 2 * time.Second
	// maxReportSize bounds one report or heartbeat: a segment's metadata
	// is a few hundred bytes; more is garbage or an attack on memory.
	maxReportSize = 16 << 10
	// CommandTimeout bounds the wait for an agent's acknowledgement when
	// the caller sets no deadline.
	CommandTimeout = 30 * time.Second
)

var bucketAgents = []byte("registry.agents") // district → agentRecord (JSON)

// Config configures a Registry.
type Config struct {
	DB      *bolt.DB
	Catalog *catalog.Catalog
	// District returns the district of the verified client certificate of
	// a stream's context (pki.AgentDistrict).
	District func(context.Context) (string, error)
	// LinkJournal records entries of a district's chained log in central's
	// audit log, each with how the chain is broken there ("" when it is
	// intact), in one durable append: the reports are applied (and
	// acknowledged) only after it returns.
	LinkJournal func(ctx context.Context, district string, links []JournalLink) error
	// OnNewOutbox, if set, is called when a district's agent comes with
	// another outbox than before (it lost or restored its index, and with
	// it what central had sent it), before the catalog starts over. An
	// error refuses the connection, so that the agent comes back and it is
	// called again.
	OnNewOutbox func(district string) error
	// OnAttach, if set, is called once an agent's link is up (after the
	// Welcome is sent) with the holds the agent says it keeps, to send it
	// what waits for it. It must not block: the agent's messages,
	// acknowledgements included, are read after it returns.
	OnAttach func(district string, agentHolds []string)
	Now      func() time.Time
	Logger   *slog.Logger
}

// Registry implements agentv1.LinkServer.
type Registry struct {
	agentv1.UnimplementedLinkServer
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	live   map[string]*conn
	closed bool
	// applied counts reports applied since start (benchmarks, status).
	applied atomic.Uint64

	// streams are the relays and fetches asked of agents (streams.go);
	// closing ends those under way when central stops.
	streams   streams
	closing   chan struct{}
	closeOnce sync.Once
}

// agentRecord is what central keeps of an agent between its connections.
type agentRecord struct {
	Version     string    `json:"version"`
	FirstSeen   time.Time `json:"first_seen"`
	LastSeen    time.Time `json:"last_seen"`
	ClockOffset int64     `json:"clock_offset_ms"`
	// Cameras are the camera ids the agent announced in its last hello.
	Cameras []string `json:"cameras,omitempty"`
}

// conn is one live agent stream.
type conn struct {
	district string
	outboxID string
	cancel   context.CancelFunc
	done     chan struct{} // closed when the connection's handler has ended
	sendMu   sync.Mutex
	stream   agentv1.Link_ConnectServer

	mu          sync.Mutex
	heartbeat   *agentv1.Heartbeat
	clockOffset time.Duration
	lastSeen    time.Time
	rejected    int
	pending     map[string]chan *agentv1.CommandAck
}

func (c *conn) send(m *agentv1.CentralMessage) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.stream.Send(m)
}

// New makes a registry.
func New(cfg Config) (*Registry, error) {
	if cfg.DB == nil || cfg.Catalog == nil || cfg.District == nil {
		return nil, errors.New("registry: DB, Catalog and District are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	err := cfg.DB.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketAgents)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return &Registry{cfg: cfg, log: cfg.Logger.With("component", "registry"), live: map[string]*conn{}, closing: make(chan struct{})}, nil
}

// Applied counts the reports applied since the registry started.
func (r *Registry) Applied() uint64 { return r.applied.Load() }

// Connect serves one agent's stream.
func (r *Registry) Connect(stream agentv1.Link_ConnectServer) error {
	ctx := stream.Context()
	district, err := r.cfg.District(ctx)
	if err != nil {
		return status.Errorf(codes.Unauthenticated, "agent certificate: %v", err)
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	switch {
	case hello == nil:
		return status.Error(codes.InvalidArgument, "the first message must be a hello")
	case hello.GetDistrict() != district:
		r.log.Warn("agent refused: district differs from its certificate", "certificate", district, "claimed", clip(hello.GetDistrict()))
		return status.Errorf(codes.PermissionDenied, "this certificate is for district %q, not %q", district, clip(hello.GetDistrict()))
	case hello.GetOutboxId() == "" || len(hello.GetOutboxId()) > 64:
		return status.Error(codes.InvalidArgument, "hello without a valid outbox id")
	case len(hello.GetCameras()) > 10000:
		return status.Error(codes.InvalidArgument, "too many cameras")
	case len(hello.GetHolds()) > 100000:
		return status.Error(codes.InvalidArgument, "too many holds")
	}
	for _, h := range hello.GetHolds() {
		if h == "" || len(h) > 64 {
			return status.Error(codes.InvalidArgument, "hello: bad hold id")
		}
	}
	for _, cam := range hello.GetCameras() {
		if err := storage.ValidateName("camera", cam); err != nil {
			return status.Errorf(codes.InvalidArgument, "hello: %v", err)
		}
	}
	now := r.cfg.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := &conn{
		district: district, outboxID: hello.GetOutboxId(), cancel: cancel, done: make(chan struct{}),
		stream: stream, lastSeen: now, clockOffset: hello.GetClock().AsTime().Sub(now),
		pending: map[string]chan *agentv1.CommandAck{},
	}
	defer close(c.done)
	// Take over the district's link, waiting for the previous connection
	// to stop applying, so that reports are applied in order.
	if err := r.attach(ctx, c); err != nil {
		return err
	}
	defer r.detach(c)
	if r.cfg.OnNewOutbox != nil {
		// Before Begin records the new outbox: if this fails, the next
		// connection still sees the outbox change and tries again.
		prev, _, err := r.cfg.Catalog.Applied(district)
		if err != nil {
			return status.Errorf(codes.Internal, "%v", err)
		}
		if prev != "" && prev != hello.GetOutboxId() {
			if err := r.cfg.OnNewOutbox(district); err != nil {
				r.log.Error("new outbox: central could not prepare; the agent will retry", "district", district, "error", err)
				return status.Errorf(codes.Unavailable, "central could not take the new outbox: %v", err)
			}
		}
	}
	applied, reset, err := r.cfg.Catalog.Begin(district, hello.GetOutboxId())
	if err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	if reset {
		r.log.Warn("agent started a new outbox (index lost or restored?); its catalog is rebuilt from its reports", "district", district)
	}
	if err := r.saveRecord(district, func(rec *agentRecord) {
		rec.Version = clip(hello.GetAgentVersion())
		rec.LastSeen = now
		rec.ClockOffset = c.clockOffset.Milliseconds()
		rec.Cameras = hello.GetCameras()
	}); err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	r.log.Info("agent connected", "district", district, "version", clip(hello.GetAgentVersion()),
		"applied_seq", applied, "clock_offset", c.clockOffset.Round(time.Millisecond))
	if err := c.send(&agentv1.CentralMessage{Body: &agentv1.CentralMessage_Welcome{Welcome: &agentv1.Welcome{
		CentralClock: timestamppb.New(now), AppliedSeq: applied,
	}}}); err != nil {
		return err
	}
	if r.cfg.OnAttach != nil {
		r.cfg.OnAttach(district, hello.GetHolds())
	}

	reports := make(chan *agentv1.Report, maxApplyBatch)
	applyErr := make(chan error, 1)
	recvErr := make(chan error, 1)
	go func() { applyErr <- r.applyLoop(ctx, c, reports) }()
	go func() { recvErr <- r.receiveLoop(ctx, c, reports) }()
	select {
	case err = <-applyErr:
		cancel()
	case err = <-recvErr:
		cancel()
		// Nothing is applied once this returns: the next connection of
		// the district waits on done before it begins.
		<-applyErr
	case <-ctx.Done():
		<-applyErr
	}
	if err != nil && ctx.Err() == nil {
		r.log.Warn("agent link closed", "district", district, "error", err)
	}
	return err
}

// receiveLoop reads the agent's messages; reports go to the applier.
func (r *Registry) receiveLoop(ctx context.Context, c *conn, reports chan<- *agentv1.Report) error {
	for {
		msg, err := c.stream.Recv()
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.lastSeen = r.cfg.Now()
		c.mu.Unlock()
		switch body := msg.Body.(type) {
		case *agentv1.AgentMessage_Report:
			if proto.Size(body.Report) > maxReportSize {
				return status.Errorf(codes.InvalidArgument, "report %d is larger than %d bytes", body.Report.GetSeq(), maxReportSize)
			}
			select {
			case reports <- body.Report:
			case <-ctx.Done():
				return nil
			}
		case *agentv1.AgentMessage_Heartbeat:
			hb := body.Heartbeat
			if err := hb.GetClock().CheckValid(); err != nil {
				return status.Errorf(codes.InvalidArgument, "heartbeat clock: %v", err)
			}
			if len(hb.GetAlarms()) > 100 || proto.Size(hb) > maxReportSize {
				return status.Error(codes.InvalidArgument, "heartbeat too large")
			}
			c.mu.Lock()
			c.heartbeat = hb
			c.clockOffset = hb.GetClock().AsTime().Sub(c.lastSeen)
			c.mu.Unlock()
		case *agentv1.AgentMessage_CommandAck:
			// Under the lock, so detach cannot close ch in between; ch has
			// room for this one answer.
			c.mu.Lock()
			if ch := c.pending[body.CommandAck.GetRequestId()]; ch != nil {
				delete(c.pending, body.CommandAck.GetRequestId())
				ch <- body.CommandAck
			}
			c.mu.Unlock()
		default:
			return status.Errorf(codes.InvalidArgument, "unexpected message %T", msg.Body)
		}
	}
}

// applyLoop applies reports in batches: whatever arrived while the previous
// batch was being committed goes into the next transaction, and one
// acknowledgement covers it.
func (r *Registry) applyLoop(ctx context.Context, c *conn, reports <-chan *agentv1.Report) error {
	batch := make([]*agentv1.Report, 0, maxApplyBatch)
	for {
		select {
		case <-ctx.Done():
			return nil
		case rep := <-reports:
			batch = append(batch[:0], rep)
		}
	fill:
		for len(batch) < maxApplyBatch {
			select {
			case rep := <-reports:
				batch = append(batch, rep)
			default:
				break fill
			}
		}
		if err := r.linkJournal(ctx, c, batch); err != nil {
			return status.Errorf(codes.Unavailable, "audit log: %v", err)
		}
		applied, rejected, err := r.cfg.Catalog.Apply(c.district, c.outboxID, batch, r.cfg.Now())
		if errors.Is(err, catalog.ErrOutboxChanged) {
			return status.Errorf(codes.FailedPrecondition, "%v", err)
		}
		if errors.Is(err, catalog.ErrGap) {
			return status.Errorf(codes.FailedPrecondition, "%v; resend from %d", err, applied+1)
		}
		if err != nil {
			return status.Errorf(codes.Internal, "%v", err)
		}
		r.applied.Add(uint64(len(batch)))
		for _, rej := range rejected {
			r.log.Error("agent report rejected", "district", c.district, "seq", rej.Seq, "error", rej.Error)
		}
		if len(rejected) > 0 {
			c.mu.Lock()
			c.rejected += len(rejected)
			c.mu.Unlock()
		}
		if err := c.send(&agentv1.CentralMessage{Body: &agentv1.CentralMessage_Ack{Ack: &agentv1.Ack{Seq: applied}}}); err != nil {
			return err
		}
	}
}

// linkJournal links the batch's new journal entries into the audit log, in
// one append, checking the district's chain: an entry must follow the last
// one linked and its hash must match its content. A broken chain is
// recorded, not refused: what the agent says happened is evidence either
// way. Only reports Apply will apply are linked (the current outbox,
// contiguous from the last applied). Entries are linked at least once: a
// crash between linking and applying links them again at the resend (the
// copies carry the same agent hash).
func (r *Registry) linkJournal(ctx context.Context, c *conn, batch []*agentv1.Report) error {
	if r.cfg.LinkJournal == nil {
		return nil
	}
	outbox, applied, err := r.cfg.Catalog.Applied(c.district)
	if err != nil {
		return err
	}
	if outbox != c.outboxID {
		return nil // Apply refuses the batch; nothing to link
	}
	tip, err := r.cfg.Catalog.JournalTip(c.district)
	if err != nil {
		return err
	}
	var fresh []*agentv1.Report
	next := applied + 1
	for _, rep := range batch {
		if rep.GetSeq() < next {
			continue // applied already
		}
		if rep.GetSeq() != next {
			break // a gap: Apply stops here too; the rest is resent
		}
		next++
		fresh = append(fresh, rep)
	}
	links := chainLinks(c.district, tip, fresh)
	for _, l := range links {
		if l.Problem != "" {
			r.log.Error("district log chain broken", "district", c.district, "problem", l.Problem)
		}
	}
	if len(links) == 0 {
		return nil
	}
	// Durable even if the stream ends now: what was linked stays linked.
	return r.cfg.LinkJournal(context.WithoutCancel(ctx), c.district, links)
}

func (r *Registry) attach(ctx context.Context, c *conn) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return status.Error(codes.Unavailable, "central is shutting down")
	}
	old := r.live[c.district]
	r.live[c.district] = c
	r.mu.Unlock()
	if old != nil {
		// The newest connection wins: only the district's current
		// certificate gets here, so it is the same agent, and the old
		// connection is most likely dead without TCP having noticed yet.
		r.log.Warn("agent reconnected while its previous link was open; closing the old one", "district", c.district)
		old.cancel()
		select {
		case <-old.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Close ends every agent link, so that the server can stop: agent streams
// never end by themselves.
func (r *Registry) Close() {
	r.closeOnce.Do(func() { close(r.closing) })
	r.mu.Lock()
	r.closed = true
	conns := make([]*conn, 0, len(r.live))
	for _, c := range r.live {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	for _, c := range conns {
		c.cancel()
		<-c.done
	}
}

func (r *Registry) detach(c *conn) {
	r.mu.Lock()
	if r.live[c.district] == c {
		delete(r.live, c.district)
	}
	r.mu.Unlock()
	c.mu.Lock()
	lastSeen := c.lastSeen
	for id, ch := range c.pending {
		close(ch)
		delete(c.pending, id)
	}
	c.mu.Unlock()
	if err := r.saveRecord(c.district, func(rec *agentRecord) { rec.LastSeen = lastSeen }); err != nil {
		r.log.Error("save agent record", "district", c.district, "error", err)
	}
	r.log.Info("agent disconnected", "district", c.district)
}

func (r *Registry) saveRecord(district string, edit func(*agentRecord)) error {
	return r.cfg.DB.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAgents)
		var rec agentRecord
		if v := b.Get([]byte(district)); v != nil {
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
		}
		if rec.FirstSeen.IsZero() {
			rec.FirstSeen = r.cfg.Now()
		}
		edit(&rec)
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return b.Put([]byte(district), v)
	})
}

// JournalLink is an entry of a district's chained log to record, with what
// is wrong with the chain there; Entry is nil for a problem alone.
type JournalLink struct {
	Entry   *agentv1.JournalEntry
	Problem string
}

// Agent is what central knows of one district's agent.
type Agent struct {
	District    string
	Connected   bool
	LastSeen    time.Time
	Version     string
	Cameras     []*agentv1.CameraStatus
	Heartbeat   *agentv1.Heartbeat // nil when not connected
	ClockOffset time.Duration
	AppliedSeq  uint64
	Rejected    int
}

// Agents lists every agent central has heard of, by district.
func (r *Registry) Agents() ([]Agent, error) {
	recs := map[string]agentRecord{}
	err := r.cfg.DB.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAgents).ForEach(func(k, v []byte) error {
			var rec agentRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			recs[string(k)] = rec
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	var out []Agent
	for district, rec := range recs {
		a := Agent{District: district, LastSeen: rec.LastSeen, Version: rec.Version, ClockOffset: time.Duration(rec.ClockOffset) * time.Millisecond}
		r.mu.Lock()
		c := r.live[district]
		r.mu.Unlock()
		if c != nil {
			c.mu.Lock()
			a.Connected, a.LastSeen, a.Heartbeat, a.ClockOffset, a.Rejected = true, c.lastSeen, c.heartbeat, c.clockOffset, c.rejected
			c.mu.Unlock()
		}
		if a.Cameras, err = r.cfg.Catalog.Cameras(district); err != nil {
			return nil, err
		}
		if _, a.AppliedSeq, err = r.cfg.Catalog.Applied(district); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].District < out[j].District })
	return out, nil
}

// Connected reports whether the district's agent has a live link.
func (r *Registry) Connected(district string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.live[district] != nil
}

// KnownCameras returns the camera ids central knows of in a district: those
// its agent announced when it last connected and those it reported a status
// of (a camera removed from the agent's configuration may still have
// footage). Sorted, without duplicates.
func (r *Registry) KnownCameras(district string) ([]string, error) {
	var out []string
	err := r.cfg.DB.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAgents).Get([]byte(district))
		if v == nil {
			return nil
		}
		var rec agentRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		out = append(out, rec.Cameras...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("registry: agent %s: %w", district, err)
	}
	statuses, err := r.cfg.Catalog.Cameras(district)
	if err != nil {
		return nil, err
	}
	for _, st := range statuses {
		out = append(out, st.GetCamera())
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}

// ErrNotConnected means the district's agent has no live link.
var ErrNotConnected = errors.New("agent not connected")

// Command sends a command to a district's agent and waits for its
// acknowledgement.
func (r *Registry) Command(ctx context.Context, district string, cmd *agentv1.Command) (*agentv1.CommandAck, error) {
	r.mu.Lock()
	c := r.live[district]
	r.mu.Unlock()
	if c == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotConnected, district)
	}
	if cmd.RequestId == "" {
		cmd.RequestId = storage.NewSegmentID()
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, CommandTimeout)
		defer cancel()
	}
	ch := make(chan *agentv1.CommandAck, 1)
	c.mu.Lock()
	c.pending[cmd.RequestId] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, cmd.RequestId)
		c.mu.Unlock()
	}
	if err := c.send(&agentv1.CentralMessage{Body: &agentv1.CentralMessage_Command{Command: cmd}}); err != nil {
		forget()
		return nil, err
	}
	select {
	case ack, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("%w: %s disconnected", ErrNotConnected, district)
		}
		return ack, nil
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	}
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
