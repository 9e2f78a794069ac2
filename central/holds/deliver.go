package holds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
)

// Sender sends a command to a district's agent and waits for its
// acknowledgement (central/registry.Registry).
type Sender interface {
	Command(ctx context.Context, district string, cmd *agentv1.Command) (*agentv1.CommandAck, error)
	Connected(district string) bool
}

// Delivery defaults.
const (
	// DefaultRetryInterval is how often deliveries still waiting are tried
	// again on connected agents (an agent that refused, or a command that
	// timed out).
	DefaultRetryInterval = 30 * time.Second
	// DefaultCommandTimeout bounds the wait for one acknowledgement. It is
	// generous: on S3 the agent sets an object legal hold per segment, and a
	// hold may cover tens of thousands.
	DefaultCommandTimeout = 10 * time.Minute
)

// DelivererConfig configures a Deliverer.
type DelivererConfig struct {
	Store          *Store
	Sender         Sender
	RetryInterval  time.Duration
	CommandTimeout time.Duration
	Logger         *slog.Logger
}

// CheckAndSetDefaults checks the configuration and fills in defaults.
func (c *DelivererConfig) CheckAndSetDefaults() error {
	if c.Store == nil || c.Sender == nil {
		return errors.New("holds: deliverer: Store and Sender are required")
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = DefaultRetryInterval
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = DefaultCommandTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Deliverer takes holds and releases to the districts' agents. Each
// district has at most one delivery under way, so that an agent receives a
// hold and its release in that order; a district is worked on when Kick
// names it (a hold placed or released, its agent attached) and, while
// something waits for it and its agent is connected, every RetryInterval.
type Deliverer struct {
	cfg    DelivererConfig
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	running map[string]bool // a worker is on the district
	again   map[string]bool // kicked while its worker was running
}

// NewDeliverer makes a deliverer; Start begins its periodic retries.
func NewDeliverer(cfg DelivererConfig) (*Deliverer, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Deliverer{
		cfg: cfg, log: cfg.Logger.With("component", "hold-delivery"), ctx: ctx, cancel: cancel,
		running: map[string]bool{}, again: map[string]bool{},
	}, nil
}

// Start begins retrying, every RetryInterval, what waits for connected
// agents, until Close.
func (d *Deliverer) Start() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.wg.Add(1)
	go d.retryLoop()
}

func (d *Deliverer) retryLoop() {
	defer d.wg.Done()
	tick := time.NewTicker(d.cfg.RetryInterval)
	defer tick.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-tick.C:
		}
		districts, err := d.cfg.Store.WaitingDistricts()
		if err != nil {
			d.log.Error("list holds waiting for agents", "error", err)
			continue
		}
		for _, district := range districts {
			if d.cfg.Sender.Connected(district) {
				d.Kick(district)
			}
		}
	}
}

// Kick has what waits for district delivered now (in the background). It
// never blocks: the registry calls it when an agent attaches.
func (d *Deliverer) Kick(district string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	if d.running[district] {
		d.again[district] = true
		return
	}
	d.running[district] = true
	d.wg.Add(1)
	go d.work(district)
}

// work delivers for district until nothing new was asked meanwhile.
func (d *Deliverer) work(district string) {
	defer d.wg.Done()
	for {
		d.deliverDistrict(district)
		d.mu.Lock()
		if !d.again[district] || d.closed {
			delete(d.running, district)
			delete(d.again, district)
			d.mu.Unlock()
			return
		}
		delete(d.again, district)
		d.mu.Unlock()
	}
}

// deliverDistrict sends what waits for district, oldest hold first. A
// refusal of one hold does not hold up the others; an agent that is gone or
// does not answer ends the round (the rest would fail the same way).
func (d *Deliverer) deliverDistrict(district string) {
	waiting, err := d.cfg.Store.Waiting(district)
	if err != nil {
		d.log.Error("list holds waiting for an agent", "district", district, "error", err)
		return
	}
	for _, h := range waiting {
		if d.ctx.Err() != nil {
			return
		}
		a, _ := h.Agent(district)
		cmd := &agentv1.Command{}
		what := "apply"
		if a.State == AgentReleasing {
			what = "release"
			cmd.Body = &agentv1.Command_HoldRelease{HoldRelease: &agentv1.HoldRelease{HoldId: h.ID, Reason: h.ReleaseReason}}
		} else {
			cmd.Body = &agentv1.Command_HoldApply{HoldApply: &agentv1.HoldApply{
				HoldId: h.ID, Cameras: h.CamerasOf(district), From: timestamppb.New(h.From), To: timestamppb.New(h.To),
				Authority: h.Authority, CaseRef: h.Case,
			}}
		}
		ctx, cancel := context.WithTimeout(d.ctx, d.cfg.CommandTimeout)
		ack, err := d.cfg.Sender.Command(ctx, district, cmd)
		cancel()
		switch {
		case d.ctx.Err() != nil:
			return // closing: the state stays as it is, and is resumed at the next start
		case err != nil:
			why := fmt.Sprintf("not delivered: %v", err)
			if errors.Is(err, context.DeadlineExceeded) {
				why = fmt.Sprintf("the agent did not answer within %s", d.cfg.CommandTimeout)
			}
			d.log.Warn("hold not delivered", "hold", h.ID, "district", district, "command", what, "error", err)
			if ferr := d.cfg.Store.DeliveryFailed(h.ID, district, why); ferr != nil {
				d.log.Error("record a failed delivery", "hold", h.ID, "district", district, "error", ferr)
			}
			return
		case !ack.GetOk():
			d.log.Error("agent refused a hold command", "hold", h.ID, "district", district, "command", what, "error", ack.GetError())
			if ferr := d.cfg.Store.DeliveryFailed(h.ID, district, "the agent refused: "+ack.GetError()); ferr != nil {
				d.log.Error("record a failed delivery", "hold", h.ID, "district", district, "error", ferr)
			}
			continue
		}
		if _, err := d.cfg.Store.Delivered(h.ID, district, a.State, ack.GetSegments()); err != nil {
			d.log.Error("record a delivered hold", "hold", h.ID, "district", district, "error", err)
			continue
		}
		d.log.Info("hold delivered", "hold", h.ID, "district", district, "command", what, "segments", ack.GetSegments())
	}
}

// Close stops the retries and waits for deliveries under way to end
// (their commands are cancelled).
func (d *Deliverer) Close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
}
