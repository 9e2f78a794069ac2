package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-cctv/vigil/central/audit"
	"github.com/vigil-cctv/vigil/proto/actions"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

func TestEveryMethodHasAnAction(t *testing.T) {
	for _, m := range opsv1.Ops_ServiceDesc.Methods {
		full := "/" + opsv1.Ops_ServiceDesc.ServiceName + "/" + m.MethodName
		if a, ok := methodActions[full]; !ok || !audit.ValidAction(a) {
			t.Errorf("%s has no valid action code (%q)", full, a)
		}
	}
}

// Every request is recorded before it is served, with who, what, from where
// and the outcome; refusals too; and an auditor's reads are recorded.
func TestRequestsAreRecorded(t *testing.T) {
	c := startCentral(t)
	ctx := context.Background()
	admin := c.client(t, c.login(t, "admin", c.adminPwd))
	for _, u := range []struct {
		name, role string
		districts  []string
	}{{"olga", "operator", []string{"north"}}, {"aude", "auditor", nil}, {"audn", "auditor", []string{"north"}}} {
		if _, err := admin.AddUser(ctx, &opsv1.AddUserRequest{Name: u.name, Role: u.role, Districts: u.districts, Designation: "act 9", Password: testPassword}); err != nil {
			t.Fatal(err)
		}
	}
	olga := c.client(t, c.login(t, "olga", testPassword))
	from, to := timestamppb.New(time.Now().Add(-time.Hour)), timestamppb.Now()
	if _, err := olga.ListRecordings(ctx, &opsv1.ListRecordingsRequest{District: "north", Camera: "gate", From: from, To: to}); err != nil {
		t.Fatal(err)
	}
	if _, err := olga.ListRecordings(ctx, &opsv1.ListRecordingsRequest{District: "south", Camera: "gate", From: from, To: to}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("out of scope: %v", err)
	}
	if _, err := olga.ListUsers(ctx, &opsv1.ListUsersRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("operator lists users: %v", err)
	}
	c.client(t, "").Login(ctx, &opsv1.LoginRequest{User: "olga", Password: "not her password"})
	c.client(t, "").ListAgents(ctx, &opsv1.ListAgentsRequest{})

	aude := c.client(t, c.login(t, "aude", testPassword))
	resp, err := aude.AuditLog(ctx, &opsv1.AuditLogRequest{})
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ actor, action, outcome, district string }
	seen := map[key]bool{}
	for _, r := range resp.GetRecords() {
		seen[key{r.GetActor(), r.GetAction(), r.GetOutcome(), r.GetDistrict()}] = true
	}
	for _, want := range []key{
		{"admin", actions.LoginOK, "ok", ""},
		{"admin", actions.UserAdd, "ok", ""},
		{"olga", actions.RecordingsList, "ok", "north"},
		{"olga", actions.RecordingsList, "denied", "south"},
		{"olga", "user.list", "denied", ""},
		{"olga", actions.LoginFail, "denied", ""},
		{"", actions.AgentsList, "denied", ""},
		{"aude", actions.AuditRead, "ok", ""},
	} {
		if !seen[want] {
			t.Errorf("no record %+v", want)
		}
	}
	// The listing records its own reading first.
	if last := resp.GetRecords()[len(resp.GetRecords())-1]; last.GetAction() != actions.AuditRead || last.GetActor() != "aude" {
		t.Errorf("last record %v, want the auditor's own read", last)
	}
	// The log verifies, over the API, against the key central hands out.
	cp, err := aude.AuditCheckpoint(ctx, &opsv1.AuditCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := aude.AuditRecords(ctx, &opsv1.AuditRecordsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(cp.GetVerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(&audit.Bundle{RecordBytes: recs.GetRecords(), CheckpointNotes: recs.GetCheckpoints()}, v, cp.GetCheckpoint())
	if err != nil || rep.Records < 10 {
		t.Fatalf("verify: %+v %v", rep, err)
	}

	// An auditor of one district reads that district's records only; the
	// whole log (records of every district) is for unscoped auditors.
	audn := c.client(t, c.login(t, "audn", testPassword))
	north, err := audn.AuditLog(ctx, &opsv1.AuditLogRequest{District: "north"})
	if err != nil || len(north.GetRecords()) == 0 {
		t.Fatalf("scoped auditor, own district: %v", err)
	}
	for _, r := range north.GetRecords() {
		if r.GetDistrict() != "north" {
			t.Errorf("scoped auditor sees %+v", r)
		}
	}
	if _, err := audn.AuditLog(ctx, &opsv1.AuditLogRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("scoped auditor, every district: %v", err)
	}
	if _, err := audn.AuditLog(ctx, &opsv1.AuditLogRequest{District: "south"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("scoped auditor, other district: %v", err)
	}
	if _, err := audn.AuditRecords(ctx, &opsv1.AuditRecordsRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("scoped auditor, whole log: %v", err)
	}
}

// Fail closed: when the audit log cannot be written, requests are refused
// and nothing is served — logins included.
func TestAuditUnavailableRefusesRequests(t *testing.T) {
	c := startCentral(t)
	ctx := context.Background()
	admin := c.client(t, c.login(t, "admin", c.adminPwd))
	if _, err := admin.AddUser(ctx, &opsv1.AddUserRequest{Name: "olga", Role: "operator", Districts: []string{"north"}, Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	olga := c.client(t, c.login(t, "olga", testPassword))
	before := c.Audit().Size()
	if err := c.Audit().Close(); err != nil { // the store is gone
		t.Fatal(err)
	}
	list, err := olga.ListRecordings(ctx, &opsv1.ListRecordingsRequest{District: "north", Camera: "gate",
		From: timestamppb.New(time.Now().Add(-time.Hour)), To: timestamppb.Now()})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "audit log unavailable") || list != nil {
		t.Fatalf("recordings served without an audit record: %v %v", list, err)
	}
	if _, err := admin.AddUser(ctx, &opsv1.AddUserRequest{Name: "otto", Role: "officer", Password: testPassword}); status.Code(err) != codes.Unavailable {
		t.Fatalf("user added without an audit record: %v", err)
	}
	if _, err := c.Users().Get("otto"); err == nil {
		t.Fatal("the refused request changed something")
	}
	resp, err := c.client(t, "").Login(ctx, &opsv1.LoginRequest{User: "olga", Password: testPassword})
	if status.Code(err) != codes.Unavailable || resp.GetToken() != "" {
		t.Fatalf("login without an audit record: %v", err)
	}
	if c.Audit().Size() != before {
		t.Fatal("records appeared in a closed log")
	}
}

// A flood of anonymous requests from one address becomes one record a
// minute, not one record each: the audit log is never pruned.
func TestAnonymousFloodIsSummarised(t *testing.T) {
	c := startCentral(t)
	ctx := context.Background()
	anon := c.client(t, "")
	before := c.Audit().Size()
	for range 50 {
		anon.ListAgents(ctx, &opsv1.ListAgentsRequest{})
	}
	if grew := c.Audit().Size() - before; grew != 1 {
		t.Fatalf("50 anonymous refusals made %d records, want 1", grew)
	}
	c.clock.Advance(time.Minute)
	anon.ListAgents(ctx, &opsv1.ListAgentsRequest{})
	recs, _ := c.Audit().Records(c.Audit().Size()-1, c.Audit().Size())
	if len(recs) != 1 || !strings.Contains(recs[0].Detail, "and 49 more refusals") {
		t.Fatalf("summary record: %+v", recs)
	}
}

func TestRefusalSource(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:5555":             "192.0.2.7",
		"[2001:db8:1:2:aaaa::1]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:bbbb::9]:443": "2001:db8:1:2::/64",
		"[::ffff:192.0.2.7]:1":       "::ffff:192.0.2.7",
		"not an address":             "not an address",
		"":                           "",
	} {
		if got := refusalSource(in); got != want {
			t.Errorf("refusalSource(%q) = %q, want %q", in, got, want)
		}
	}
}
