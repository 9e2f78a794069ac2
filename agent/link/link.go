// Package link is the agent's side of the connection to central: one
// bidirectional gRPC stream over mutual TLS, opened by the agent (districts
// sit behind NAT), carrying the reports of the agent's durable outbox up and
// central's commands down.
//
// Delivery is at least once: reports stay in the outbox (stored in the
// index file, storage/index) until central acknowledges having applied them;
// after a reconnection the agent resends everything after the sequence
// number central says it applied. Central applies each report exactly once.
package link

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/storage/index"
)

// Tuning of the link.
const (
	// sendBatch is how many reports are read from the outbox at a time.
	sendBatch = 512
	// defaultHeartbeat is how often the agent's state is sent.
	defaultHeartbeat = 5 * time.Second
)

// Config configures a Link.
type Config struct {
	District string
	// Central is host:port of central's agent listener.
	Central string
	// TLS is the agent's client configuration: its certificate and
	// central's pinned CA.
	TLS *tls.Config
	// Index holds the outbox.
	Index   *index.Index
	Version string
	// Cameras lists the district's camera ids for the Hello.
	Cameras []string
	// Heartbeat returns the agent's state now (clock is filled in here).
	Heartbeat func() *agentv1.Heartbeat
	// HeartbeatEvery defaults to 5s.
	HeartbeatEvery time.Duration
	// Resync replaces the outbox with a new one holding the agent's whole
	// state (index.RestartOutbox). The link calls it when central's picture
	// of the district cannot be completed by resending: central lost or
	// rolled back its state, or the agent's index was restored from a copy.
	Resync func(context.Context) error
	// Holds returns the ids of the holds the agent keeps, for the Hello.
	Holds func() ([]string, error)
	// Commands carries out central's commands other than Ping (holds), one
	// at a time in arrival order, beside the receive loop, so that a long
	// command (a hold over thousands of objects) does not hold up
	// acknowledgements. It must be safe to run again for the same command
	// (central resends until it hears back).
	Commands func(context.Context, *agentv1.Command) *agentv1.CommandAck
	// Streams answers the commands served on a stream of their own (live
	// relay, segment fetch), each in its own goroutine at once: a viewer
	// must not wait behind a hold over thousands of objects. It checks the
	// command and returns its acknowledgement; the stream itself, opened
	// with client, it serves in a goroutine of its own until ctx (the
	// link's life) ends or central ends the stream.
	Streams func(ctx context.Context, client agentv1.LinkClient, cmd *agentv1.Command) *agentv1.CommandAck
	// MinBackoff and MaxBackoff bound the wait between connection attempts
	// (defaults 1s and 10s).
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
}

// Status is the state of the link.
type Status struct {
	Connected bool      `json:"connected"`
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error,omitempty"`
	// Acked is the highest report central has confirmed.
	Acked uint64 `json:"acked"`
	// ClockOffset is the agent's clock minus central's, measured at Hello.
	ClockOffset time.Duration `json:"clock_offset"`
}

// Link keeps the connection to central.
type Link struct {
	cfg      Config
	log      *slog.Logger
	commands chan queuedCommand
	// runCtx and client are Run's, for the streams of Config.Streams.
	runCtx context.Context
	client agentv1.LinkClient

	mu     sync.Mutex
	status Status
	// centralAt is central's clock at the last Welcome, centralSeenAt when
	// it arrived (with its monotonic reading).
	centralAt, centralSeenAt time.Time
}

// CentralNow estimates central's clock now: its clock at the last Welcome
// plus the time elapsed since on this process's monotonic clock. ok is
// false before the first Welcome.
func (l *Link) CentralNow() (now time.Time, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.centralSeenAt.IsZero() {
		return time.Time{}, false
	}
	return l.centralAt.Add(time.Since(l.centralSeenAt)), true
}

// New checks the configuration.
func New(cfg Config) (*Link, error) {
	switch {
	case cfg.District == "" || cfg.Central == "":
		return nil, errors.New("link: district and central address are required")
	case cfg.TLS == nil:
		return nil, errors.New("link: TLS configuration is required")
	case cfg.Index == nil:
		return nil, errors.New("link: index is required")
	}
	if cfg.Heartbeat == nil {
		cfg.Heartbeat = func() *agentv1.Heartbeat { return &agentv1.Heartbeat{} }
	}
	if cfg.HeartbeatEvery == 0 {
		cfg.HeartbeatEvery = defaultHeartbeat
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Link{cfg: cfg, log: cfg.Logger.With("component", "link", "central", cfg.Central), commands: make(chan queuedCommand, 64)}, nil
}

// Status returns a snapshot.
func (l *Link) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status
}

func (l *Link) setConnected(on bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.status.Connected != on {
		l.status.Connected = on
		l.status.Since = time.Now()
		if on {
			l.log.Info("connected to central")
		} else if err != nil {
			l.log.Warn("disconnected from central", "error", err)
		}
	}
	if err != nil {
		l.status.LastError = err.Error()
	}
}

// Run connects and reconnects until ctx ends.
func (l *Link) Run(ctx context.Context) error {
	conn, err := grpc.NewClient(l.cfg.Central,
		grpc.WithTransportCredentials(credentials.NewTLS(l.cfg.TLS)),
		// Find a dead connection (a district whose uplink dropped) within
		// a minute rather than at the next TCP timeout.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 15 * time.Second, PermitWithoutStream: true}),
	)
	if err != nil {
		return fmt.Errorf("link: %w", err)
	}
	defer conn.Close()
	if l.cfg.Commands != nil {
		go l.runCommands(ctx)
	}
	client := agentv1.NewLinkClient(conn)
	l.runCtx, l.client = ctx, client
	failures := 0
	for ctx.Err() == nil {
		started := time.Now()
		err := l.session(ctx, client)
		if ctx.Err() != nil {
			l.setConnected(false, nil) // stopping: nothing went wrong
			return nil
		}
		l.setConnected(false, err)
		if errors.Is(err, errResynced) {
			continue
		}
		if time.Since(started) > time.Minute {
			failures = 0
		}
		wait := backoff(l.cfg.MinBackoff, l.cfg.MaxBackoff, failures)
		failures++
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	return nil
}

// errResynced ends a session whose outbox was just replaced: the agent
// reconnects at once to announce the new outbox.
var errResynced = errors.New("outbox restarted to resync with central; reconnecting")

func backoff(lo, hi time.Duration, failures int) time.Duration {
	d := lo
	for i := 0; i < failures && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

// session runs one stream until it fails or ctx ends.
func (l *Link) session(ctx context.Context, client agentv1.LinkClient) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Connect(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	outboxID, err := l.cfg.Index.OutboxID()
	if err != nil {
		return err
	}
	helloAt := time.Now()
	if err := stream.Send(&agentv1.AgentMessage{Body: &agentv1.AgentMessage_Hello{Hello: &agentv1.Hello{
		District: l.cfg.District, AgentVersion: l.cfg.Version, Clock: timestamppb.New(helloAt),
		Cameras: l.cfg.Cameras, OutboxId: outboxID, Holds: l.holds(),
	}}}); err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	msg, err := stream.Recv()
	if err != nil {
		return fmt.Errorf("welcome: %w", err)
	}
	welcome := msg.GetWelcome()
	if welcome == nil {
		return errors.New("central did not answer the hello with a welcome")
	}
	// Central's clock at the midpoint of the exchange.
	rtt := time.Since(helloAt)
	offset := helloAt.Add(rtt / 2).Sub(welcome.GetCentralClock().AsTime())
	applied := welcome.GetAppliedSeq()
	first, last, err := l.cfg.Index.OutboxRange()
	if err != nil {
		return err
	}
	// Resending can bring central up to date only if it applied everything
	// before the first report still queued, and nothing after the last one.
	if applied > last || (first == 0 && applied != last) || (first > 0 && applied+1 < first) {
		l.log.Warn("central's state does not match this agent's outbox; sending the whole state again",
			"central_applied", applied, "outbox_first", first, "outbox_last", last)
		if l.cfg.Resync == nil {
			return errors.New("outbox out of step with central and no way to resync")
		}
		if err := l.cfg.Resync(ctx); err != nil {
			return fmt.Errorf("resync: %w", err)
		}
		return errResynced
	}
	if err := l.cfg.Index.AckReports(applied); err != nil {
		return err
	}
	l.mu.Lock()
	l.status.Acked = welcome.GetAppliedSeq()
	l.status.ClockOffset = offset
	// Central's clock then, against this process's monotonic clock: what
	// CentralNow extrapolates, unaffected by later steps of the wall clock.
	l.centralAt, l.centralSeenAt = welcome.GetCentralClock().AsTime().Add(rtt/2), time.Now()
	l.mu.Unlock()
	l.setConnected(true, nil)
	if offset > 2*time.Second || offset < -2*time.Second {
		l.log.Warn("agent clock differs from central's", "offset", offset.Round(time.Millisecond))
	}

	var sendMu sync.Mutex
	send := func(m *agentv1.AgentMessage) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(m)
	}
	var sent atomic.Uint64 // highest report sent this session
	sent.Store(applied)
	errs := make(chan error, 2)
	go func() { errs <- l.receive(ctx, stream, send, &sent) }()
	go func() { errs <- l.sendReports(ctx, applied, send, &sent) }()
	err = <-errs
	cancel()
	return err
}

// receive handles central's messages: acknowledgements and commands.
func (l *Link) receive(ctx context.Context, stream agentv1.Link_ConnectClient, send func(*agentv1.AgentMessage) error, sent *atomic.Uint64) error {
	for {
		msg, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		switch body := msg.Body.(type) {
		case *agentv1.CentralMessage_Ack:
			// Never forget a report central cannot have seen.
			seq := min(body.Ack.GetSeq(), sent.Load())
			if err := l.cfg.Index.AckReports(seq); err != nil {
				return err
			}
			l.mu.Lock()
			l.status.Acked = max(l.status.Acked, seq)
			l.mu.Unlock()
		case *agentv1.CentralMessage_Command:
			cmd := body.Command
			switch cmd.Body.(type) {
			case *agentv1.Command_LiveStart, *agentv1.Command_FetchSegment:
				if l.cfg.Streams != nil {
					go func() {
						ack := l.cfg.Streams(l.runCtx, l.client, cmd)
						ack.RequestId = cmd.GetRequestId()
						if err := send(&agentv1.AgentMessage{Body: &agentv1.AgentMessage_CommandAck{CommandAck: ack}}); err != nil && ctx.Err() == nil {
							l.log.Warn("stream command acknowledgement not sent", "error", err)
						}
					}()
					continue
				}
			}
			if _, ping := cmd.Body.(*agentv1.Command_Ping); ping || l.cfg.Commands == nil {
				ack := l.handleCommand(ctx, cmd)
				if err := send(&agentv1.AgentMessage{Body: &agentv1.AgentMessage_CommandAck{CommandAck: ack}}); err != nil {
					return fmt.Errorf("send: %w", err)
				}
				continue
			}
			select {
			case l.commands <- queuedCommand{cmd: cmd, send: send}:
			default:
				ack := &agentv1.CommandAck{RequestId: cmd.GetRequestId(), Error: "agent busy: too many commands queued; resend later"}
				if err := send(&agentv1.AgentMessage{Body: &agentv1.AgentMessage_CommandAck{CommandAck: ack}}); err != nil {
					return fmt.Errorf("send: %w", err)
				}
			}
		default:
			return fmt.Errorf("unexpected message %T from central", msg.Body)
		}
	}
}

// holds lists the agent's holds for the Hello; on error none are listed
// (central then resends what it has as applied, which is harmless).
func (l *Link) holds() []string {
	if l.cfg.Holds == nil {
		return nil
	}
	ids, err := l.cfg.Holds()
	if err != nil {
		l.log.Error("list holds for central", "error", err)
		return nil
	}
	return ids
}

// queuedCommand is a command waiting for the command worker, with the
// send function of the connection it came on (its ack goes back there).
type queuedCommand struct {
	cmd  *agentv1.Command
	send func(*agentv1.AgentMessage) error
}

// runCommands carries out queued commands one at a time, in the order they
// arrived across connections: a hold's release is never handled before its
// apply. The work finishes even if its connection dropped (what is done
// stays done, and the resent command finds it so).
func (l *Link) runCommands(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case q := <-l.commands:
			ack := l.cfg.Commands(context.WithoutCancel(ctx), q.cmd)
			ack.RequestId = q.cmd.GetRequestId()
			if err := q.send(&agentv1.AgentMessage{Body: &agentv1.AgentMessage_CommandAck{CommandAck: ack}}); err != nil && ctx.Err() == nil {
				l.log.Warn("command acknowledgement not sent; central resends the command", "error", err)
			}
		}
	}
}

func (l *Link) handleCommand(_ context.Context, cmd *agentv1.Command) *agentv1.CommandAck {
	ack := &agentv1.CommandAck{RequestId: cmd.GetRequestId()}
	switch cmd.Body.(type) {
	case *agentv1.Command_Ping:
		ack.Ok = true
	default:
		ack.Error = fmt.Sprintf("command %T not supported by this agent", cmd.Body)
	}
	return ack
}

// sendReports streams the outbox from after `from`, then waits for new
// reports, sending a heartbeat every HeartbeatEvery.
func (l *Link) sendReports(ctx context.Context, from uint64, send func(*agentv1.AgentMessage) error, sent *atomic.Uint64) error {
	cursor := from
	beat := time.NewTicker(l.cfg.HeartbeatEvery)
	defer beat.Stop()
	if err := l.sendHeartbeat(send); err != nil {
		return err
	}
	for {
		reports, err := l.cfg.Index.Reports(cursor, sendBatch)
		if err != nil {
			return err
		}
		for _, r := range reports {
			var rep agentv1.Report
			if err := proto.Unmarshal(r.Payload, &rep); err != nil {
				return fmt.Errorf("outbox report %d: %w", r.Seq, err)
			}
			rep.Seq = r.Seq
			if err := send(&agentv1.AgentMessage{Body: &agentv1.AgentMessage_Report{Report: &rep}}); err != nil {
				return fmt.Errorf("send: %w", err)
			}
			cursor = r.Seq
			sent.Store(cursor)
		}
		if len(reports) == sendBatch {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.cfg.Index.ReportsAdded():
		case <-beat.C:
			if err := l.sendHeartbeat(send); err != nil {
				return err
			}
		}
	}
}

func (l *Link) sendHeartbeat(send func(*agentv1.AgentMessage) error) error {
	hb := l.cfg.Heartbeat()
	hb.Clock = timestamppb.Now()
	if err := send(&agentv1.AgentMessage{Body: &agentv1.AgentMessage_Heartbeat{Heartbeat: hb}}); err != nil {
		return fmt.Errorf("send heartbeat: %w", err)
	}
	return nil
}
