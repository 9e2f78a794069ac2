package holds

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
)

// fakeSender plays the agents: connected districts answer with answer;
// block makes them never answer.
type fakeSender struct {
	mu        sync.Mutex
	connected map[string]bool
	refuse    map[string]string // hold id → refusal
	block     bool
	sent      []string // "district apply|release hold"
}

func (f *fakeSender) Connected(d string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connected[d]
}

func (f *fakeSender) Command(ctx context.Context, d string, cmd *agentv1.Command) (*agentv1.CommandAck, error) {
	f.mu.Lock()
	if !f.connected[d] {
		f.mu.Unlock()
		return nil, fmt.Errorf("agent not connected: %s", d)
	}
	var id, what string
	var segments int64
	switch b := cmd.Body.(type) {
	case *agentv1.Command_HoldApply:
		id, what, segments = b.HoldApply.GetHoldId(), "apply", int64(10*len(b.HoldApply.GetCameras()))
	case *agentv1.Command_HoldRelease:
		id, what = b.HoldRelease.GetHoldId(), "release"
	}
	f.sent = append(f.sent, d+" "+what+" "+id)
	refusal, block := f.refuse[id], f.block
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if refusal != "" {
		return &agentv1.CommandAck{RequestId: cmd.RequestId, Error: refusal}, nil
	}
	return &agentv1.CommandAck{RequestId: cmd.RequestId, Ok: true, Segments: segments}, nil
}

func (f *fakeSender) sentList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.sent...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func agentState(t *testing.T, s *Store, id, district string) Agent {
	t.Helper()
	h, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := h.Agent(district)
	return a
}

func place(t *testing.T, s *Store, cameras ...string) Hold {
	t.Helper()
	req := goodRequest()
	req.Cameras = cameras
	p, err := s.Prepare(req)
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Place(p)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestDelivererAppliesAndReleases(t *testing.T) {
	s, _ := mustStore(t)
	sender := &fakeSender{connected: map[string]bool{"north": true}, refuse: map[string]string{}}
	d, err := NewDeliverer(DelivererConfig{Store: s, Sender: sender, RetryInterval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.Start()

	h := place(t, s, "north/gate", "north/yard", "south/dock")
	refused := place(t, s, "north/gate")
	sender.mu.Lock()
	sender.refuse[refused.ID] = "index: disk full"
	sender.mu.Unlock()
	d.Kick("north")
	d.Kick("south")
	waitFor(t, "north applied", func() bool { return agentState(t, s, h.ID, "north").State == AgentApplied })
	if a := agentState(t, s, h.ID, "north"); a.Segments != 20 || a.Error != "" {
		t.Fatalf("north %+v", a)
	}
	waitFor(t, "south's failure recorded", func() bool { return agentState(t, s, h.ID, "south").Error != "" })
	if a := agentState(t, s, h.ID, "south"); a.State != AgentPending || !strings.Contains(a.Error, "not connected") {
		t.Fatalf("south %+v", a)
	}
	// A refusal is recorded, the hold stays pending and is retried (the
	// retry loop sends it again to the connected agent).
	waitFor(t, "refusal recorded", func() bool { return strings.Contains(agentState(t, s, refused.ID, "north").Error, "disk full") })
	waitFor(t, "refused hold retried", func() bool {
		n := 0
		for _, m := range sender.sentList() {
			if strings.HasSuffix(m, refused.ID) {
				n++
			}
		}
		return n >= 2
	})
	sender.mu.Lock()
	delete(sender.refuse, refused.ID)
	sender.mu.Unlock()
	waitFor(t, "refused hold applied at last", func() bool { return agentState(t, s, refused.ID, "north").State == AgentApplied })

	// The agent of south comes: Kick is what the registry's OnAttach does.
	sender.mu.Lock()
	sender.connected["south"] = true
	sender.mu.Unlock()
	d.Kick("south")
	waitFor(t, "south applied", func() bool { return agentState(t, s, h.ID, "south").State == AgentApplied })

	if _, err := s.Release(h.ID, "otto", "case closed"); err != nil {
		t.Fatal(err)
	}
	d.Kick("north")
	d.Kick("south")
	waitFor(t, "released everywhere", func() bool {
		return agentState(t, s, h.ID, "north").State == AgentReleased && agentState(t, s, h.ID, "south").State == AgentReleased
	})
	// Each district got the hold, then its release, in that order.
	order := map[string][]string{}
	for _, m := range sender.sentList() {
		if f := strings.Fields(m); f[2] == h.ID {
			order[f[0]] = append(order[f[0]], f[1])
		}
	}
	for _, dist := range []string{"north", "south"} {
		if got := strings.Join(order[dist], ","); !strings.HasSuffix(got, "apply,release") || strings.Count(got, "release") != 1 {
			t.Errorf("%s received %s", dist, got)
		}
	}
}

// Close cancels a delivery waiting for an agent that does not answer, and
// the hold stays pending.
func TestDelivererCloseCancels(t *testing.T) {
	s, _ := mustStore(t)
	sender := &fakeSender{connected: map[string]bool{"north": true}, block: true}
	d, err := NewDeliverer(DelivererConfig{Store: s, Sender: sender, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	h := place(t, s, "north/gate")
	d.Kick("north")
	waitFor(t, "command sent", func() bool { return len(sender.sentList()) == 1 })
	done := make(chan struct{})
	go func() { d.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if a := agentState(t, s, h.ID, "north"); a.State != AgentPending {
		t.Fatalf("north %+v after close", a)
	}
	d.Kick("north") // after Close: ignored, no goroutine left behind
}

// A command that times out is recorded as such and retried later.
func TestDelivererTimeout(t *testing.T) {
	s, _ := mustStore(t)
	sender := &fakeSender{connected: map[string]bool{"north": true}, block: true}
	d, err := NewDeliverer(DelivererConfig{Store: s, Sender: sender, CommandTimeout: 20 * time.Millisecond, RetryInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	h := place(t, s, "north/gate")
	d.Kick("north")
	waitFor(t, "timeout recorded", func() bool { return strings.Contains(agentState(t, s, h.ID, "north").Error, "did not answer within") })
}
