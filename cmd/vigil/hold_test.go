package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-cctv/vigil/agent/enroll"
	centralconfig "github.com/vigil-cctv/vigil/central/config"
	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/storage"
)

// linkAgent plays a district's agent over the real link, enrolled like a
// real one: it announces cameras, sends reports and answers hold commands
// with ok and a segment count (or not at all when segments < 0).
type linkAgent struct {
	t      *testing.T
	stream agentv1.Link_ConnectClient
	cancel context.CancelFunc
	sendMu sync.Mutex
	done   chan struct{}

	mu    sync.Mutex
	acked uint64
}

func dialLinkAgent(t *testing.T, central *runningCentral, id *enroll.Identity, cameras []string, segments int64) *linkAgent {
	t.Helper()
	conn, err := grpc.NewClient(central.AgentAddr(), grpc.WithTransportCredentials(credentials.NewTLS(id.ClientTLS())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := agentv1.NewLinkClient(conn).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := &linkAgent{t: t, stream: stream, cancel: cancel, done: make(chan struct{})}
	a.send(&agentv1.AgentMessage{Body: &agentv1.AgentMessage_Hello{Hello: &agentv1.Hello{
		District: id.District, AgentVersion: "test", Clock: timestamppb.Now(), Cameras: cameras, OutboxId: "outbox-1",
	}}})
	if msg, err := stream.Recv(); err != nil || msg.GetWelcome() == nil {
		t.Fatalf("welcome: %v %v", msg, err)
	}
	go func() {
		defer close(a.done)
		for {
			msg, err := stream.Recv()
			if err != nil {
				return
			}
			if ack := msg.GetAck(); ack != nil {
				a.mu.Lock()
				a.acked = ack.GetSeq()
				a.mu.Unlock()
			}
			if cmd := msg.GetCommand(); cmd != nil && segments >= 0 {
				a.send(&agentv1.AgentMessage{Body: &agentv1.AgentMessage_CommandAck{CommandAck: &agentv1.CommandAck{
					RequestId: cmd.GetRequestId(), Ok: true, Segments: segments,
				}}})
			}
		}
	}()
	return a
}

func (a *linkAgent) send(msg *agentv1.AgentMessage) {
	a.sendMu.Lock()
	defer a.sendMu.Unlock()
	if err := a.stream.Send(msg); err != nil {
		a.t.Errorf("agent send: %v", err)
	}
}

// report sends reports numbered from 1 and waits for central to apply them.
func (a *linkAgent) report(reports ...*agentv1.Report) {
	a.t.Helper()
	for i, r := range reports {
		r.Seq, r.At = uint64(i+1), timestamppb.Now()
		a.send(&agentv1.AgentMessage{Body: &agentv1.AgentMessage_Report{Report: r}})
	}
	waitUntil(a.t, 10*time.Second, "reports applied", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.acked >= uint64(len(reports))
	})
}

func (a *linkAgent) hangUp(central *runningCentral) {
	a.stream.CloseSend()
	<-a.done
	waitUntil(a.t, 10*time.Second, "agent detached", func() bool { return !central.Registry().Connected("north") })
}

func storedReport(camera string, n int, start time.Time, keep time.Duration) *agentv1.Report {
	id := fmt.Sprintf("%016x", n)
	start = start.Truncate(time.Millisecond)
	return &agentv1.Report{Body: &agentv1.Report_SegmentStored{SegmentStored: &agentv1.SegmentStored{Segment: &agentv1.Segment{
		Id: id, Camera: camera, Start: timestamppb.New(start), End: timestamppb.New(start.Add(time.Minute)),
		Bytes: 10, Sha256: strings.Repeat("ab", 32), Codec: "h264", Key: storage.SegmentKey("north", camera, start, id),
		Expires: timestamppb.New(start.Add(keep)),
	}}}}
}

func statusReport(camera string, retention time.Duration) *agentv1.Report {
	return &agentv1.Report{Body: &agentv1.Report_CameraStatus{CameraStatus: &agentv1.CameraStatus{
		Camera: camera, State: "up", Since: timestamppb.Now(), RetentionSeconds: int64(retention / time.Second),
	}}}
}

// TestOfficerCLI: an officer places a hold while the district's agent is
// away (pending, with when footage starts to expire), it is applied when
// the agent comes back, and released; bad input and the wrong roles get one
// clear line and change nothing, and every refusal is in the audit log; an
// auditor reads the holds and the retention report.
func TestOfficerCLI(t *testing.T) {
	t.Setenv("VIGIL_HOME", t.TempDir())
	dir := t.TempDir()
	ccfg := &centralconfig.Config{DataDir: filepath.Join(dir, "central"), AgentListen: freeAddr(t), APIListen: freeAddr(t), ConsoleListen: "127.0.0.1:0"}
	if err := ccfg.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	central := startCentralProcess(t, ccfg)
	defer central.stop(t)
	ctx := context.Background()
	run := func(stdin string, args ...string) (string, error) {
		t.Helper()
		root := newRootCommand()
		var out, errOut strings.Builder
		root.SetOut(&out)
		root.SetErr(&errOut)
		root.SetIn(strings.NewReader(stdin))
		root.SetArgs(args)
		err := root.ExecuteContext(ctx)
		return out.String() + errOut.String(), err
	}
	api, fp := central.APIAddr(), central.Fingerprint()
	login := func(user, password string) {
		t.Helper()
		if out, err := run(password+"\n", "login", "--central", api, "--user", user, "--password-stdin", "--ca-fingerprint", fp); err != nil {
			t.Fatalf("login %s: %v %s", user, err, out)
		}
	}
	login("admin", central.AdminPassword)
	for _, u := range [][]string{{"otto", "officer"}, {"aude", "auditor"}, {"olga", "operator", "--district", "north"}} {
		args := append([]string{"user", "add", u[0], "--role", u[1], "--designation", "act 8/2026", "--password-stdin"}, u[2:]...)
		if out, err := run("a long password 1\n", args...); err != nil {
			t.Fatalf("user add %s: %v %s", u[0], err, out)
		}
	}

	// The district's agent reports its cameras and footage, then goes away.
	tok, _, err := central.Tokens().Create("north", time.Hour, fp)
	if err != nil {
		t.Fatal(err)
	}
	id, err := enroll.Enroll(ctx, enroll.Options{Central: central.AgentAddr(), Token: tok.String(), DataDir: filepath.Join(dir, "agent"), District: "north"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	away := dialLinkAgent(t, central, id, []string{"gate", "yard"}, -1)
	away.report(
		statusReport("gate", 2*time.Hour),
		statusReport("yard", 0),
		storedReport("gate", 1, now.Add(-3*time.Hour), 2*time.Hour),       // before the span, past retention: not compliant
		storedReport("gate", 2, now.Add(-90*time.Minute), 2*time.Hour),    // in the span: expires in 30 min
		storedReport("yard", 3, now.Add(-60*time.Minute), 7*24*time.Hour), // in the span
	)
	away.hangUp(central)

	login("otto", "a long password 1")
	place := []string{"hold", "place", "--camera", "north/gate,north/yard", "--from", "-2h", "--to", "+1h",
		"--authority", "Procura della Repubblica di Milano", "--case", "RG 1234/2026", "--reason", "theft at the gate", "--wait", "0"}
	with := func(flag, value string) []string {
		args := append([]string{}, place...)
		for i := range args {
			if args[i] == flag {
				args[i+1] = value
			}
		}
		return args
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{with("--case", " "), "case is required"},
		{with("--authority", ""), "authority is required"},
		{with("--to", "-3h"), "inverted span"},
		{with("--camera", "north/roof"), "unknown camera north/roof"},
		{with("--camera", "gate"), "want DISTRICT/CAMERA"},
		{with("--to", "+800h"), "more than 30 days ahead"},
		{with("--from", "yesterday"), "--from"},
		{place[:len(place)-4], `required flag(s) "reason" not set`},
		{append(with("--wait", "0"), "-o", "xml"), "want table or json"},
	} {
		_, err := run("", c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: got %v, want one line with %q", c.args[2:], err, c.want)
		}
	}
	if out, err := run("", "hold", "list", "--all", "-o", "json"); err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("holds after refusals: %v %s", err, out)
	}

	// Placed while the agent is away: pending, and said plainly.
	out, err := run("", place...)
	if err != nil {
		t.Fatalf("hold place: %v %s", err, out)
	}
	firstExpiry := now.Add(-90 * time.Minute).Truncate(time.Millisecond).Add(2 * time.Hour).Local().Format(time.DateTime)
	wantPending := "PENDING at north: the agent has not confirmed yet; footage in the span may expire from " + firstExpiry + " unless it reconnects before"
	if !strings.Contains(out, wantPending) || !strings.Contains(out, " placed\n") {
		t.Fatalf("place output lacks %q:\n%s", wantPending, out)
	}
	holdID := strings.Fields(out)[1]
	var rows []map[string]any
	out, err = run("", "hold", "list", "-o", "json")
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("hold list json: %v %v %s", err, rows, out)
	}
	for _, k := range []string{"id", "state", "authority", "case", "reason", "cameras", "from", "to", "agents", "officer", "placed_at"} {
		if _, ok := rows[0][k]; !ok {
			t.Errorf("hold list json lacks %q", k)
		}
	}
	agents, _ := rows[0]["agents"].([]any)
	if rows[0]["id"] != holdID || rows[0]["state"] != "active" || rows[0]["case"] != "RG 1234/2026" || len(agents) != 1 {
		t.Fatalf("hold row %v", rows[0])
	}
	agent0, _ := agents[0].(map[string]any)
	for _, k := range []string{"district", "state", "segments"} {
		if _, ok := agent0[k]; !ok {
			t.Errorf("hold list json agent lacks %q", k)
		}
	}
	if agent0["state"] != "pending" || agent0["first_expiry"] == nil {
		t.Fatalf("agent %v", agent0)
	}

	// The agent comes back and applies it.
	back := dialLinkAgent(t, central, id, []string{"gate", "yard"}, 2)
	var shown map[string]any
	waitUntil(t, 10*time.Second, "hold applied", func() bool {
		out, err := run("", "hold", "show", holdID, "-o", "json")
		if err != nil || json.Unmarshal([]byte(out), &shown) != nil {
			return false
		}
		a := shown["agents"].([]any)[0].(map[string]any)
		return a["state"] == "applied" && a["segments"] == float64(2)
	})
	if out, err := run("", "hold", "show", holdID); err != nil || !strings.Contains(out, "applied") || strings.Contains(out, "PENDING") ||
		!strings.Contains(out, "Procura della Repubblica di Milano") {
		t.Fatalf("hold show: %v\n%s", err, out)
	}
	if out, err := run("", "hold", "list"); err != nil || !strings.Contains(out, "north:applied(2)") {
		t.Fatalf("hold list: %v\n%s", err, out)
	}
	if _, err := run("", "hold", "show", "h-000000000000"); err == nil || !strings.Contains(err.Error(), "no such hold") {
		t.Fatalf("unknown hold: %v", err)
	}

	// The wrong roles.
	login("olga", "a long password 1")
	if _, err := run("", place...); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("operator places a hold: %v", err)
	}
	if _, err := run("", "hold", "list"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("operator lists holds: %v", err)
	}
	login("aude", "a long password 1")
	if _, err := run("", place...); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("auditor places a hold: %v", err)
	}
	if _, err := run("", "hold", "release", holdID, "--reason", "x"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("auditor releases a hold: %v", err)
	}
	if out, err := run("", "hold", "list", "-o", "json"); err != nil || !strings.Contains(out, holdID) {
		t.Fatalf("auditor's hold list: %v %s", err, out)
	}
	out, err = run("", "retention", "report", "--since", "-24h")
	if err != nil || !strings.Contains(out, "NOT COMPLIANT: 1 of 2 cameras") || !strings.Contains(out, "north/gate: its oldest unheld footage is 3h old, retention 2h") ||
		!strings.Contains(out, holdID) {
		t.Fatalf("retention report: %v\n%s", err, out)
	}
	var rep map[string]any
	out, err = run("", "retention", "report", "--since", "-24h", "-o", "json")
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("retention report json: %v %s", err, out)
	}
	cams, _ := rep["cameras"].([]any)
	if rep["compliant"] != false || len(cams) != 2 {
		t.Fatalf("report %v", rep)
	}
	for _, c := range cams {
		c := c.(map[string]any)
		for _, k := range []string{"district", "camera", "retention_seconds", "oldest_unheld", "oldest_unheld_age_seconds", "compliant", "segments", "held_segments", "holds", "as_of"} {
			if _, ok := c[k]; !ok {
				t.Errorf("camera lacks %q", k)
			}
		}
		if c["camera"] == "yard" && (c["compliant"] != true || c["held_segments"] != float64(1) || c["retention_seconds"] != float64(7*24*3600)) {
			t.Errorf("yard %v", c)
		}
	}

	// Released; the agent confirms.
	login("otto", "a long password 1")
	if _, err := run("", "hold", "release", holdID); err == nil || !strings.Contains(err.Error(), `required flag(s) "reason"`) {
		t.Fatalf("release without reason: %v", err)
	}
	out, err = run("", "hold", "release", holdID, "--reason", "case closed by the court")
	if err != nil || !strings.Contains(out, "hold "+holdID+" released") || !strings.Contains(out, "case closed by the court") {
		t.Fatalf("release: %v\n%s", err, out)
	}
	waitUntil(t, 10*time.Second, "release confirmed", func() bool {
		out, err := run("", "hold", "show", holdID, "-o", "json")
		return err == nil && strings.Contains(out, `"state": "released"`) && !strings.Contains(out, "releasing")
	})
	if _, err := run("", "hold", "release", holdID, "--reason", "again"); err == nil || !strings.Contains(err.Error(), "already released") {
		t.Fatalf("released twice: %v", err)
	}
	if out, _ := run("", "hold", "list"); !strings.Contains(out, "no active holds") {
		t.Fatalf("active holds after release:\n%s", out)
	}
	back.hangUp(central)

	// Every refusal and every change is on record.
	login("aude", "a long password 1")
	out, err = run("", "audit", "log", "--action", "hold.*", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var recs []auditRecordJSON
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, r := range recs {
		count[r.Actor+" "+r.Action+" "+r.Outcome]++
		if r.Action == "hold.place" && r.Outcome == "denied" && r.Actor == "otto" && !strings.Contains(r.Detail, "(asked: authority ") {
			t.Errorf("refusal without the request: %+v", r)
		}
	}
	// Refused by central: empty case and authority, inverted span, unknown
	// camera, bad camera, 30 days (the rest never left the CLI).
	for k, want := range map[string]int{
		"otto hold.place denied": 6, "otto hold.place ok": 2, "olga hold.place denied": 1, "olga hold.list denied": 1,
		"aude hold.place denied": 1, "aude hold.release denied": 1, "otto hold.release ok": 2, "otto hold.release denied": 1,
	} {
		if count[k] != want {
			t.Errorf("%s: %d records, want %d (all: %v)", k, count[k], want, count)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		45 * time.Second:                          "45s",
		2*time.Minute + 6*time.Second:             "2m6s",
		3 * time.Minute:                           "3m",
		2*time.Hour + time.Minute + 5*time.Second: "2h1m",
		7 * 24 * time.Hour:                        "7d",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
