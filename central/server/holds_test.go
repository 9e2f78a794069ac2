package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-cctv/vigil/central/audit"
	"github.com/vigil-cctv/vigil/proto/actions"
	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
	"github.com/vigil-cctv/vigil/storage"
)

// fakeAgent plays a district's agent over the real link: it sends reports
// and answers central's commands with answer (no answer when it returns
// nil).
type fakeAgent struct {
	t      *testing.T
	stream agentv1.Link_ConnectClient
	answer func(*agentv1.Command) *agentv1.CommandAck
	sendMu sync.Mutex
	done   chan struct{}

	mu       sync.Mutex
	acked    uint64
	commands []*agentv1.Command
}

// connectAgent opens the link with a hello of district's cameras and
// outbox, and serves it in the background until the test ends.
func (c *testCentral) connectAgent(t *testing.T, tlsCfg *tls.Config, district, outbox string, cameras []string, answer func(*agentv1.Command) *agentv1.CommandAck) *fakeAgent {
	t.Helper()
	a := &fakeAgent{t: t, stream: c.link(t, tlsCfg), answer: answer, done: make(chan struct{})}
	err := a.stream.Send(&agentv1.AgentMessage{Body: &agentv1.AgentMessage_Hello{Hello: &agentv1.Hello{
		District: district, AgentVersion: "test", Clock: timestamppb.New(c.clock.Now()), Cameras: cameras, OutboxId: outbox,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := a.stream.Recv()
	if err != nil || msg.GetWelcome() == nil {
		t.Fatalf("welcome: %v %v", msg, err)
	}
	go a.serve()
	return a
}

func (a *fakeAgent) serve() {
	defer close(a.done)
	for {
		msg, err := a.stream.Recv()
		if err != nil {
			return
		}
		if ack := msg.GetAck(); ack != nil {
			a.mu.Lock()
			a.acked = ack.GetSeq()
			a.mu.Unlock()
		}
		if cmd := msg.GetCommand(); cmd != nil {
			a.mu.Lock()
			a.commands = append(a.commands, cmd)
			a.mu.Unlock()
			if a.answer == nil {
				continue
			}
			if ack := a.answer(cmd); ack != nil {
				ack.RequestId = cmd.GetRequestId()
				a.send(&agentv1.AgentMessage{Body: &agentv1.AgentMessage_CommandAck{CommandAck: ack}})
			}
		}
	}
}

func (a *fakeAgent) send(msg *agentv1.AgentMessage) {
	a.sendMu.Lock()
	defer a.sendMu.Unlock()
	if err := a.stream.Send(msg); err != nil {
		a.t.Errorf("agent send: %v", err)
	}
}

// report sends reports numbered from seq and waits until central has
// applied them.
func (a *fakeAgent) report(seq uint64, reports ...*agentv1.Report) uint64 {
	a.t.Helper()
	for _, r := range reports {
		r.Seq = seq
		if r.At == nil {
			r.At = timestamppb.Now()
		}
		a.send(&agentv1.AgentMessage{Body: &agentv1.AgentMessage_Report{Report: r}})
		seq++
	}
	last := seq - 1
	poll(a.t, "reports applied", func() bool { a.mu.Lock(); defer a.mu.Unlock(); return a.acked >= last })
	return seq
}

func (a *fakeAgent) received() []*agentv1.Command {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*agentv1.Command(nil), a.commands...)
}

// hangUp closes the agent's side of the link and waits for central to see
// it gone.
func (a *fakeAgent) hangUp(c *testCentral, district string) {
	a.t.Helper()
	a.stream.CloseSend()
	<-a.done
	poll(a.t, "agent detached", func() bool { return !c.Registry().Connected(district) })
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func segmentStored(district, camera string, n int, start time.Time, keep time.Duration) *agentv1.Report {
	id := fmt.Sprintf("%016x", n)
	start = start.Truncate(time.Millisecond)
	return &agentv1.Report{Body: &agentv1.Report_SegmentStored{SegmentStored: &agentv1.SegmentStored{Segment: &agentv1.Segment{
		Id: id, Camera: camera, Start: timestamppb.New(start), End: timestamppb.New(start.Add(time.Minute)),
		Bytes: 10, Sha256: strings.Repeat("ab", 32), Codec: "h264", Key: storage.SegmentKey(district, camera, start, id),
		Expires: timestamppb.New(start.Add(keep)),
	}}}}
}

func segmentDeleted(camera string, n int, reason string, at time.Time) *agentv1.Report {
	return &agentv1.Report{Body: &agentv1.Report_SegmentDeleted{SegmentDeleted: &agentv1.SegmentDeleted{
		Id: fmt.Sprintf("%016x", n), Camera: camera, Reason: reason, DeletedAt: timestamppb.New(at),
	}}}
}

func cameraStatus(camera string, retention time.Duration) *agentv1.Report {
	return &agentv1.Report{Body: &agentv1.Report_CameraStatus{CameraStatus: &agentv1.CameraStatus{
		Camera: camera, State: "up", Since: timestamppb.Now(), RetentionSeconds: int64(retention / time.Second),
	}}}
}

// addPeople adds users with testPassword and returns a client per name.
func (c *testCentral) addPeople(t *testing.T, people ...[3]string) map[string]opsv1.OpsClient {
	t.Helper()
	admin := c.client(t, c.login(t, "admin", c.adminPwd))
	out := map[string]opsv1.OpsClient{"admin": admin}
	for _, p := range people {
		var districts []string
		if p[2] != "" {
			districts = strings.Split(p[2], ",")
		}
		if _, err := admin.AddUser(context.Background(), &opsv1.AddUserRequest{Name: p[0], Role: p[1], Districts: districts, Designation: "act 5/2026", Password: testPassword}); err != nil {
			t.Fatal(err)
		}
		out[p[0]] = c.client(t, c.login(t, p[0], testPassword))
	}
	return out
}

func holdRequest(now time.Time, cameras ...string) *opsv1.PlaceHoldRequest {
	return &opsv1.PlaceHoldRequest{
		Cameras: cameras, From: timestamppb.New(now.Add(-2 * time.Hour)), To: timestamppb.New(now.Add(time.Hour)),
		Authority: "Procura della Repubblica di Milano", CaseRef: "RG 1234/2026", Reason: "theft at the gate",
	}
}

func auditRecords(t *testing.T, c *testCentral, action string) []audit.Record {
	t.Helper()
	recs, err := c.Audit().Query(audit.Filter{Action: action})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// Bad input, the wrong role or a district out of scope: a clear error,
// nothing changed, the refusal in the audit log with its reason.
func TestHoldRefusalsChangeNothing(t *testing.T) {
	c := startCentral(t)
	ctx := context.Background()
	cl := c.addPeople(t, [3]string{"otto", "officer", ""}, [3]string{"ofelia", "officer", "north"},
		[3]string{"olga", "operator", "north"}, [3]string{"aude", "auditor", ""})
	north := c.connectAgent(t, c.agentTLS(t, "north"), "north", "outbox-1", []string{"gate"}, nil)
	south := c.connectAgent(t, c.agentTLS(t, "south"), "south", "outbox-1", []string{"dock"}, nil)
	north.hangUp(c, "north")
	south.hangUp(c, "south")
	now := c.clock.Now()

	cases := []struct {
		name   string
		who    string
		edit   func(*opsv1.PlaceHoldRequest)
		code   codes.Code
		reason string
	}{
		{"empty case", "otto", func(r *opsv1.PlaceHoldRequest) { r.CaseRef = "  " }, codes.InvalidArgument, "case is required"},
		{"empty authority", "otto", func(r *opsv1.PlaceHoldRequest) { r.Authority = "" }, codes.InvalidArgument, "authority is required"},
		{"inverted span", "otto", func(r *opsv1.PlaceHoldRequest) { r.From, r.To = r.To, r.From }, codes.InvalidArgument, "inverted span"},
		{"no span", "otto", func(r *opsv1.PlaceHoldRequest) { r.From = nil }, codes.InvalidArgument, "from is required"},
		{"unknown camera", "otto", func(r *opsv1.PlaceHoldRequest) { r.Cameras = []string{"north/roof"} }, codes.InvalidArgument, "unknown camera north/roof"},
		{"unknown district", "otto", func(r *opsv1.PlaceHoldRequest) { r.Cameras = []string{"east/gate"} }, codes.InvalidArgument, "unknown camera east/gate"},
		{"no camera", "otto", func(r *opsv1.PlaceHoldRequest) { r.Cameras = nil }, codes.InvalidArgument, "at least one camera"},
		{"to beyond 30 days", "otto", func(r *opsv1.PlaceHoldRequest) { r.To = timestamppb.New(now.Add(31 * 24 * time.Hour)) }, codes.InvalidArgument, "more than 30 days ahead"},
		{"operator", "olga", func(*opsv1.PlaceHoldRequest) {}, codes.PermissionDenied, `role "operator" may not call`},
		{"auditor", "aude", func(*opsv1.PlaceHoldRequest) {}, codes.PermissionDenied, `role "auditor" may not call`},
		{"officer of another district", "ofelia", func(r *opsv1.PlaceHoldRequest) { r.Cameras = []string{"north/gate", "south/dock"} }, codes.PermissionDenied, `for district "south"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := c.Audit().Size()
			req := holdRequest(now, "north/gate")
			tc.edit(req)
			resp, err := cl[tc.who].PlaceHold(ctx, req)
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.reason) || resp != nil {
				t.Fatalf("got %v %v, want %s with %q", resp, err, tc.code, tc.reason)
			}
			if list, _ := c.Holds().List(true); len(list) != 0 {
				t.Fatalf("a refused hold was stored: %+v", list)
			}
			recs, _ := c.Audit().Records(before, c.Audit().Size())
			if len(recs) != 1 {
				t.Fatalf("%d records for one refusal: %+v", len(recs), recs)
			}
			r := recs[0]
			if r.Action != actions.HoldPlace || r.Outcome != audit.OutcomeDenied || r.Actor.User != tc.who ||
				!strings.Contains(r.Detail, tc.reason) || !strings.Contains(r.Detail, "case ") {
				t.Fatalf("refusal record %+v", r)
			}
		})
	}

	// Release refusals, around one real hold.
	placed, err := cl["otto"].PlaceHold(ctx, holdRequest(now, "south/dock"))
	if err != nil {
		t.Fatal(err)
	}
	id := placed.GetHold().GetId()
	releases := []struct {
		name, who, id, reason string
		code                  codes.Code
		text                  string
	}{
		{"unknown hold", "otto", "h-000000000000", "done", codes.NotFound, "no such hold"},
		{"malformed id", "otto", "../h", "done", codes.InvalidArgument, "hold id"},
		{"no reason", "otto", id, " ", codes.InvalidArgument, "reason is required"},
		{"auditor", "aude", id, "done", codes.PermissionDenied, "auditor"},
		{"officer of another district", "ofelia", id, "done", codes.PermissionDenied, `for district "south"`},
	}
	for _, tc := range releases {
		t.Run("release/"+tc.name, func(t *testing.T) {
			before := c.Audit().Size()
			_, err := cl[tc.who].ReleaseHold(ctx, &opsv1.ReleaseHoldRequest{Id: tc.id, Reason: tc.reason})
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("got %v, want %s with %q", err, tc.code, tc.text)
			}
			if h, _ := c.Holds().Get(id); h.State != "active" {
				t.Fatalf("hold %s after a refused release", h.State)
			}
			recs, _ := c.Audit().Records(before, c.Audit().Size())
			if len(recs) != 1 || recs[0].Action != actions.HoldRelease || recs[0].Outcome != audit.OutcomeDenied || !strings.Contains(recs[0].Detail, tc.text) {
				t.Fatalf("refusal records %+v", recs)
			}
		})
	}
	if _, err := cl["otto"].ReleaseHold(ctx, &opsv1.ReleaseHoldRequest{Id: id, Reason: "case closed"}); err != nil {
		t.Fatal(err)
	}
	_, err = cl["otto"].ReleaseHold(ctx, &opsv1.ReleaseHoldRequest{Id: id, Reason: "again"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "already released") {
		t.Fatalf("released twice: %v", err)
	}

	// Readers: operators see no holds; a scoped officer sees only holds of
	// its districts.
	if _, err := cl["olga"].ListHolds(ctx, &opsv1.ListHoldsRequest{All: true}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("operator lists holds: %v", err)
	}
	if list, err := cl["ofelia"].ListHolds(ctx, &opsv1.ListHoldsRequest{All: true}); err != nil || len(list.GetHolds()) != 0 {
		t.Fatalf("north's officer sees south's hold: %v %v", list, err)
	}
	if _, err := cl["ofelia"].GetHold(ctx, &opsv1.GetHoldRequest{Id: id}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("north's officer reads south's hold: %v", err)
	}
	if list, err := cl["aude"].ListHolds(ctx, &opsv1.ListHoldsRequest{All: true}); err != nil || len(list.GetHolds()) != 1 {
		t.Fatalf("auditor's list: %v %v", list, err)
	}
}

// A hold placed while the district's agent is away is pending, with when
// footage of its span starts to expire; it is applied, with the agent's
// count, as soon as the agent connects; releasing makes it releasing, then
// released once the agent confirms. Every step is in the audit log.
func TestHoldDeliveredWhenAgentConnects(t *testing.T) {
	c := startCentral(t)
	ctx := context.Background()
	cl := c.addPeople(t, [3]string{"otto", "officer", ""}, [3]string{"aude", "auditor", ""})
	tlsCfg := c.agentTLS(t, "north")
	now := c.clock.Now()
	first := c.connectAgent(t, tlsCfg, "north", "outbox-1", []string{"gate", "yard"}, nil)
	first.report(1,
		segmentStored("north", "gate", 1, now.Add(-90*time.Minute), 2*time.Hour),
		segmentStored("north", "gate", 2, now.Add(-100*time.Minute), 2*time.Hour), // the earliest to expire
		segmentStored("north", "gate", 3, now.Add(-10*time.Minute), 2*time.Hour),
		segmentStored("north", "yard", 4, now.Add(-3*time.Hour), 24*time.Hour), // not in the span
	)
	first.hangUp(c, "north")

	req := holdRequest(now, "north/gate", "north/yard")
	placed, err := cl["otto"].PlaceHold(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	h := placed.GetHold()
	if h.GetState() != "active" || h.GetOfficer() != "otto" || len(h.GetAgents()) != 1 || h.GetAgents()[0].GetState() != "pending" {
		t.Fatalf("placed %+v", h)
	}
	if !strings.HasPrefix(h.GetId(), "h-") || len(h.GetId()) != 14 {
		t.Fatalf("hold id %q", h.GetId())
	}
	wantExpiry := now.Add(-100 * time.Minute).Truncate(time.Millisecond).Add(2 * time.Hour)
	if got := h.GetAgents()[0].GetFirstExpiry(); got == nil || !got.AsTime().Equal(wantExpiry) {
		t.Fatalf("first expiry %v, want %v", got, wantExpiry)
	}
	poll(t, "the failed delivery recorded", func() bool {
		got, _ := c.Holds().Get(h.GetId())
		return strings.Contains(got.Agents[0].Error, "not connected")
	})
	// A hold waiting this long shows in the district's status, naming no
	// case (everyone sees agent status).
	c.clock.Advance(2 * time.Minute)
	pendingAlarm := func() *opsv1.Alarm {
		t.Helper()
		agents, err := cl["aude"].ListAgents(ctx, &opsv1.ListAgentsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range agents.GetAgents() {
			for _, al := range a.GetAlarms() {
				if a.GetDistrict() == "north" && al.GetCode() == "holds_pending" {
					return al
				}
			}
		}
		return nil
	}
	if al := pendingAlarm(); al == nil || !strings.Contains(al.GetMessage(), "1 judicial hold") || strings.Contains(al.GetMessage(), h.GetId()) {
		t.Fatalf("pending hold alarm: %v", al)
	}

	// Recorded once per camera, each with every field, before it happened.
	recs := auditRecords(t, c, actions.HoldPlace)
	if len(recs) != 2 {
		t.Fatalf("%d hold.place records, want one per camera: %+v", len(recs), recs)
	}
	for i, r := range recs {
		want := []string{"gate", "yard"}[i]
		if r.Outcome != audit.OutcomeOK || r.Actor.User != "otto" || r.Actor.Role != "officer" || r.Target.District != "north" ||
			r.Target.Camera != want || r.Target.Hold != h.GetId() || !r.Target.From.Equal(h.GetFrom().AsTime()) ||
			!r.Target.To.Equal(h.GetTo().AsTime()) || r.Reason != "theft at the gate" ||
			!strings.Contains(r.Detail, `authority "Procura della Repubblica di Milano"`) || !strings.Contains(r.Detail, `case "RG 1234/2026"`) ||
			!strings.Contains(r.Detail, "north/gate,north/yard") {
			t.Errorf("record %d: %+v", i, r)
		}
	}

	// The agent comes back and applies the hold.
	agent := c.connectAgent(t, tlsCfg, "north", "outbox-1", []string{"gate", "yard"}, func(cmd *agentv1.Command) *agentv1.CommandAck {
		switch cmd.Body.(type) {
		case *agentv1.Command_HoldApply, *agentv1.Command_HoldRelease:
			return &agentv1.CommandAck{Ok: true, Segments: 3}
		}
		return nil
	})
	poll(t, "applied", func() bool {
		got, err := cl["aude"].GetHold(ctx, &opsv1.GetHoldRequest{Id: h.GetId()})
		return err == nil && got.GetHold().GetAgents()[0].GetState() == "applied"
	})
	got, _ := cl["otto"].GetHold(ctx, &opsv1.GetHoldRequest{Id: h.GetId()})
	if a := got.GetHold().GetAgents()[0]; a.GetSegments() != 3 || a.GetError() != "" || a.GetFirstExpiry() != nil {
		t.Fatalf("applied agent %+v", a)
	}
	if al := pendingAlarm(); al != nil {
		t.Fatalf("alarm once the hold is applied: %v", al)
	}
	apply := agent.received()[0].GetHoldApply()
	if apply.GetHoldId() != h.GetId() || strings.Join(apply.GetCameras(), ",") != "gate,yard" ||
		!apply.GetFrom().AsTime().Equal(req.GetFrom().AsTime().Truncate(time.Second)) || !apply.GetTo().AsTime().Equal(req.GetTo().AsTime().Add(time.Second-1).Truncate(time.Second)) ||
		apply.GetAuthority() != req.GetAuthority() || apply.GetCaseRef() != req.GetCaseRef() {
		t.Fatalf("HoldApply %+v", apply)
	}

	rel, err := cl["otto"].ReleaseHold(ctx, &opsv1.ReleaseHoldRequest{Id: h.GetId(), Reason: "case closed by the court"})
	if err != nil {
		t.Fatal(err)
	}
	if rel.GetHold().GetState() != "released" || rel.GetHold().GetReleasedBy() != "otto" || rel.GetHold().GetReleaseReason() != "case closed by the court" {
		t.Fatalf("released %+v", rel.GetHold())
	}
	if s := rel.GetHold().GetAgents()[0].GetState(); s != "releasing" && s != "released" {
		t.Fatalf("agent state after release %s", s)
	}
	poll(t, "released at the district", func() bool {
		got, _ := c.Holds().Get(h.GetId())
		return got.Agents[0].State == "released"
	})
	cmds := agent.received()
	if r := cmds[len(cmds)-1].GetHoldRelease(); r.GetHoldId() != h.GetId() || r.GetReason() != "case closed by the court" {
		t.Fatalf("last command %+v", cmds[len(cmds)-1])
	}
	recs = auditRecords(t, c, actions.HoldRelease)
	if len(recs) != 2 || recs[0].Reason != "case closed by the court" || recs[0].Target.Hold != h.GetId() || !strings.Contains(recs[0].Detail, "RG 1234/2026") {
		t.Fatalf("hold.release records %+v", recs)
	}
	if active, _ := cl["otto"].ListHolds(ctx, &opsv1.ListHoldsRequest{}); len(active.GetHolds()) != 0 {
		t.Fatal("a released hold listed as active")
	}
}

// An agent that comes back with a new outbox lost its index and its holds:
// they are pending again and sent again.
func TestHoldResentAfterNewOutbox(t *testing.T) {
	c := startCentral(t)
	ctx := context.Background()
	cl := c.addPeople(t, [3]string{"otto", "officer", ""})
	tlsCfg := c.agentTLS(t, "north")
	acks := func(cmd *agentv1.Command) *agentv1.CommandAck { return &agentv1.CommandAck{Ok: true, Segments: 5} }
	agent := c.connectAgent(t, tlsCfg, "north", "outbox-1", []string{"gate"}, acks)
	placed, err := cl["otto"].PlaceHold(ctx, holdRequest(c.clock.Now(), "north/gate"))
	if err != nil {
		t.Fatal(err)
	}
	id := placed.GetHold().GetId()
	applied := func() bool { h, _ := c.Holds().Get(id); return h.Agents[0].State == "applied" }
	poll(t, "applied", applied)
	agent.hangUp(c, "north")

	again := c.connectAgent(t, tlsCfg, "north", "outbox-2", []string{"gate"}, acks)
	poll(t, "sent again", func() bool { return len(again.received()) == 1 })
	if got := again.received()[0].GetHoldApply().GetHoldId(); got != id {
		t.Fatalf("resent %q", got)
	}
	poll(t, "applied again", applied)
}

// The retention report, from the catalog as the agents reported it: the
// oldest footage no hold covers against each camera's retention, held
// segments and their holds, deletions per day and reason.
func TestRetentionReport(t *testing.T) {
	c := startCentral(t)
	ctx := context.Background()
	cl := c.addPeople(t, [3]string{"otto", "officer", ""}, [3]string{"aude", "auditor", ""},
		[3]string{"audn", "auditor", "south"}, [3]string{"olga", "operator", "north"})
	now := c.clock.Now()
	agent := c.connectAgent(t, c.agentTLS(t, "north"), "north", "outbox-1", []string{"door", "gate", "yard"},
		func(*agentv1.Command) *agentv1.CommandAck { return &agentv1.CommandAck{Ok: true, Segments: 1} })
	day := func(t time.Time) string { return t.UTC().Format(time.DateOnly) }
	agent.report(1,
		cameraStatus("gate", time.Hour),
		cameraStatus("door", time.Hour),
		// yard reports no retention: 7 days are assumed.
		cameraStatus("yard", 0),
		// gate: footage 2 h old that no hold covers, with 1 h retention.
		segmentStored("north", "gate", 1, now.Add(-2*time.Hour), time.Hour),
		segmentStored("north", "gate", 2, now.Add(-10*time.Minute), time.Hour),
		// door: the 3 h old segment is held; the oldest unheld is 30 min old.
		segmentStored("north", "door", 3, now.Add(-3*time.Hour), time.Hour),
		segmentStored("north", "door", 4, now.Add(-30*time.Minute), time.Hour),
		segmentStored("north", "yard", 5, now.Add(-24*time.Hour), 7*24*time.Hour),
		segmentDeleted("gate", 10, "retention", now.Add(-26*time.Hour)),
		segmentDeleted("gate", 11, "retention", now.Add(-25*time.Hour)),
		segmentDeleted("gate", 12, "pressure", now.Add(-time.Minute)),
		segmentDeleted("gate", 13, "missing", now.Add(-time.Minute)),
		segmentDeleted("door", 14, "retention", now.Add(-time.Minute)),
		segmentDeleted("door", 15, "retention", now.Add(-10*24*time.Hour)), // before since
	)
	hold := &opsv1.PlaceHoldRequest{
		Cameras: []string{"north/door"}, From: timestamppb.New(now.Add(-3*time.Hour - time.Minute)), To: timestamppb.New(now.Add(-2 * time.Hour)),
		Authority: "Tribunale di Torino", CaseRef: "RG 77/2026", Reason: "assault",
	}
	placed, err := cl["otto"].PlaceHold(ctx, hold)
	if err != nil {
		t.Fatal(err)
	}
	holdID := placed.GetHold().GetId()
	base := now
	c.clock.Advance(time.Minute)
	now = c.clock.Now()

	since := timestamppb.New(now.Add(-3 * 24 * time.Hour))
	rep, err := cl["aude"].RetentionReport(ctx, &opsv1.RetentionReportRequest{Since: since})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.GetGeneratedAt().AsTime().Equal(now) {
		t.Errorf("generated at %v", rep.GetGeneratedAt().AsTime())
	}
	cams := map[string]*opsv1.CameraRetention{}
	for _, cr := range rep.GetCameras() {
		cams[cr.GetDistrict()+"/"+cr.GetCamera()] = cr
		if cr.GetAsOf() == nil || cr.GetAsOf().AsTime().Before(now.Add(-time.Minute)) {
			t.Errorf("%s as of %v", cr.GetCamera(), cr.GetAsOf())
		}
	}
	if len(cams) != 3 {
		t.Fatalf("cameras %v", cams)
	}
	gate, door, yard := cams["north/gate"], cams["north/door"], cams["north/yard"]
	if gate.GetRetentionSeconds() != 3600 || gate.GetCompliant() || gate.GetSegments() != 2 || gate.GetHeldSegments() != 0 ||
		gate.GetOldestUnheldAgeSeconds() != int64((2*time.Hour+time.Minute)/time.Second) || len(gate.GetHolds()) != 0 {
		t.Errorf("gate %+v", gate)
	}
	if door.GetRetentionSeconds() != 3600 || !door.GetCompliant() || door.GetSegments() != 2 || door.GetHeldSegments() != 1 ||
		door.GetOldestUnheldAgeSeconds() != int64(31*time.Minute/time.Second) || strings.Join(door.GetHolds(), ",") != holdID {
		t.Errorf("door %+v", door)
	}
	if yard.GetRetentionSeconds() != 7*24*3600 || !yard.GetCompliant() || yard.GetSegments() != 1 {
		t.Errorf("yard %+v", yard)
	}
	type counts struct{ retention, pressure, other int64 }
	dels := map[string]counts{}
	for _, d := range rep.GetDeletions() {
		dels[d.GetDay()+" "+d.GetDistrict()+"/"+d.GetCamera()] = counts{d.GetRetention(), d.GetPressure(), d.GetOther()}
	}
	want := map[string]counts{}
	add := func(at time.Time, camera string, c counts) {
		k := day(at) + " north/" + camera
		w := want[k]
		w.retention, w.pressure, w.other = w.retention+c.retention, w.pressure+c.pressure, w.other+c.other
		want[k] = w
	}
	add(base.Add(-26*time.Hour), "gate", counts{1, 0, 0})
	add(base.Add(-25*time.Hour), "gate", counts{1, 0, 0})
	add(base.Add(-time.Minute), "gate", counts{0, 1, 1})
	add(base.Add(-time.Minute), "door", counts{1, 0, 0})
	if fmt.Sprint(dels) != fmt.Sprint(want) {
		t.Errorf("deletions %v, want %v", dels, want)
	}
	if len(rep.GetHolds()) != 1 || rep.GetHolds()[0].GetId() != holdID {
		t.Errorf("holds %+v", rep.GetHolds())
	}

	// Releasing the hold makes the held footage count against retention.
	if _, err := cl["otto"].ReleaseHold(ctx, &opsv1.ReleaseHoldRequest{Id: holdID, Reason: "closed"}); err != nil {
		t.Fatal(err)
	}
	rep, _ = cl["otto"].RetentionReport(ctx, &opsv1.RetentionReportRequest{Since: since})
	for _, cr := range rep.GetCameras() {
		if cr.GetCamera() == "door" && (cr.GetCompliant() || cr.GetHeldSegments() != 0 || len(cr.GetHolds()) != 0) {
			t.Errorf("door after release %+v", cr)
		}
	}
	if len(rep.GetHolds()) != 1 || rep.GetHolds()[0].GetState() != "released" {
		t.Errorf("a hold released since the start of the report is not in it: %+v", rep.GetHolds())
	}
	if rep, _ := cl["otto"].RetentionReport(ctx, &opsv1.RetentionReportRequest{Since: timestamppb.New(now.Add(time.Hour))}); len(rep.GetHolds()) != 0 {
		t.Errorf("a hold released before the report's start is in it")
	}

	// Administrators read it; operators do not; an auditor of south sees
	// nothing of north.
	if _, err := cl["admin"].RetentionReport(ctx, &opsv1.RetentionReportRequest{Since: since}); err != nil {
		t.Errorf("admin: %v", err)
	}
	if _, err := cl["olga"].RetentionReport(ctx, &opsv1.RetentionReportRequest{Since: since}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("operator: %v", err)
	}
	south, err := cl["audn"].RetentionReport(ctx, &opsv1.RetentionReportRequest{Since: since})
	if err != nil || len(south.GetCameras())+len(south.GetDeletions())+len(south.GetHolds()) != 0 {
		t.Errorf("south's auditor sees %v %v", south, err)
	}
	if recs := auditRecords(t, c, actions.RetentionReport); len(recs) < 4 {
		t.Errorf("%d retention.report records", len(recs))
	}
}

// Fail closed: when the audit log cannot be written, no hold is placed or
// released.
func TestHoldNeedsTheAuditLog(t *testing.T) {
	c := startCentral(t)
	ctx := context.Background()
	cl := c.addPeople(t, [3]string{"otto", "officer", ""})
	c.connectAgent(t, c.agentTLS(t, "north"), "north", "outbox-1", []string{"gate"}, nil).hangUp(c, "north")
	placed, err := cl["otto"].PlaceHold(ctx, holdRequest(c.clock.Now(), "north/gate"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Audit().Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cl["otto"].PlaceHold(ctx, holdRequest(c.clock.Now(), "north/gate")); status.Code(err) != codes.Unavailable {
		t.Fatalf("hold placed without an audit record: %v", err)
	}
	if _, err := cl["otto"].ReleaseHold(ctx, &opsv1.ReleaseHoldRequest{Id: placed.GetHold().GetId(), Reason: "done"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("hold released without an audit record: %v", err)
	}
	list, _ := c.Holds().List(true)
	if len(list) != 1 || list[0].State != "active" {
		t.Fatalf("holds changed without an audit record: %+v", list)
	}
}
