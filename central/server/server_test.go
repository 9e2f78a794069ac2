package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-cctv/vigil/central/config"
	"github.com/vigil-cctv/vigil/central/users"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

// fakeClock is settable from tests; it starts at the real time so that
// certificates are valid.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type testCentral struct {
	*Server
	clock    *fakeClock
	adminPwd string
}

// startCentral runs a central on loopback ports until the test ends.
func startCentral(t *testing.T) *testCentral {
	t.Helper()
	dir := t.TempDir()
	cfg := &config.Config{DataDir: filepath.Join(dir, "central"), AgentListen: "127.0.0.1:0", APIListen: "127.0.0.1:0", ConsoleListen: "127.0.0.1:0"}
	if err := cfg.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Now()}
	srv, err := New(cfg, Options{
		Logger: slog.New(slog.DiscardHandler), Now: clock.Now,
		Users: users.Options{Argon2: users.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("central: %v", err)
		}
	})
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("central did not start: %v", err)
	}
	pw, err := os.ReadFile(filepath.Join(cfg.DataDir, "admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(pw)) != srv.AdminPassword {
		t.Fatal("admin-password file differs from the bootstrap password")
	}
	return &testCentral{Server: srv, clock: clock, adminPwd: srv.AdminPassword}
}

type tokenCreds string

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}
func (tokenCreds) RequireTransportSecurity() bool { return true }

// client dials the API with central's CA pinned and, if token is set, the
// session token.
func (c *testCentral) client(t *testing.T, token string) opsv1.OpsClient {
	t.Helper()
	tlsCfg := credentials.NewTLS(pinned(c.Fingerprint()))
	opts := []grpc.DialOption{grpc.WithTransportCredentials(tlsCfg)}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds(token)))
	}
	conn, err := grpc.NewClient(c.APIAddr(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return opsv1.NewOpsClient(conn)
}

func (c *testCentral) login(t *testing.T, user, password string) string {
	t.Helper()
	resp, err := c.client(t, "").Login(context.Background(), &opsv1.LoginRequest{User: user, Password: password})
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return resp.GetToken()
}

const testPassword = "correct horse battery"

// TestAuthorizationMatrix calls every RPC as every role, in and out of the
// caller's district scope, over real gRPC with TLS, and checks allow/deny
// against a table written out here (not derived from the policy).
func TestAuthorizationMatrix(t *testing.T) {
	c := startCentral(t)
	admin := c.client(t, c.login(t, "admin", c.adminPwd))
	ctx := context.Background()
	for _, u := range []struct {
		name, role string
		districts  []string
	}{
		{"olga", "operator", []string{"north"}},
		{"otto", "officer", nil},
		{"aude", "auditor", nil},
		{"adam", "admin", nil},
		{"oskar", "officer", nil}, // places the holds the calls read and release
	} {
		if _, err := admin.AddUser(ctx, &opsv1.AddUserRequest{Name: u.name, Role: u.role, Districts: u.districts, Designation: "act 12/2026", Password: testPassword}); err != nil {
			t.Fatal(err)
		}
	}
	now := timestamppb.Now()
	hourAgo := timestamppb.New(time.Now().Add(-time.Hour))
	n := 0
	// Holds need cameras central knows, and holds to read and release.
	for _, d := range []string{"north", "south"} {
		c.connectAgent(t, c.agentTLS(t, d), d, "outbox-1", []string{"gate"}, nil).hangUp(c, d)
	}
	// Not otto: his sessions end when he changes his password below.
	oskar := c.client(t, c.login(t, "oskar", testPassword))
	holdOf := map[string]string{}
	placeHold := func(cl opsv1.OpsClient, d string) (string, error) {
		resp, err := cl.PlaceHold(ctx, &opsv1.PlaceHoldRequest{Cameras: []string{d + "/gate"}, From: hourAgo, To: now,
			Authority: "Procura di Milano", CaseRef: "RG 1/2026", Reason: "matrix"})
		return resp.GetHold().GetId(), err
	}
	for _, d := range []string{"north", "south"} {
		id, err := placeHold(oskar, d)
		if err != nil {
			t.Fatal(err)
		}
		holdOf[d] = id
	}
	calls := map[string]func(cl opsv1.OpsClient, self, district string) error{
		"WhoAmI": func(cl opsv1.OpsClient, _, _ string) error {
			_, err := cl.WhoAmI(ctx, &opsv1.WhoAmIRequest{})
			return err
		},
		"CreateEnrollmentToken": func(cl opsv1.OpsClient, _, d string) error {
			_, err := cl.CreateEnrollmentToken(ctx, &opsv1.CreateEnrollmentTokenRequest{District: d})
			return err
		},
		"ListAgents": func(cl opsv1.OpsClient, _, _ string) error {
			_, err := cl.ListAgents(ctx, &opsv1.ListAgentsRequest{})
			return err
		},
		"ListRecordings": func(cl opsv1.OpsClient, _, d string) error {
			_, err := cl.ListRecordings(ctx, &opsv1.ListRecordingsRequest{District: d, Camera: "gate", From: hourAgo, To: now})
			return err
		},
		"AddUser": func(cl opsv1.OpsClient, _, _ string) error {
			n++
			_, err := cl.AddUser(ctx, &opsv1.AddUserRequest{Name: fmt.Sprintf("new%d", n), Role: "auditor", Password: testPassword})
			return err
		},
		"ListUsers": func(cl opsv1.OpsClient, _, _ string) error {
			_, err := cl.ListUsers(ctx, &opsv1.ListUsersRequest{})
			return err
		},
		"DisableUser": func(cl opsv1.OpsClient, _, _ string) error {
			n++
			name := fmt.Sprintf("victim%d", n)
			if _, err := admin.AddUser(ctx, &opsv1.AddUserRequest{Name: name, Role: "auditor", Password: testPassword}); err != nil {
				t.Fatal(err)
			}
			_, err := cl.DisableUser(ctx, &opsv1.DisableUserRequest{Name: name})
			return err
		},
		"SetPassword(other)": func(cl opsv1.OpsClient, self, _ string) error {
			other := "aude"
			if self == other {
				other = "otto"
			}
			_, err := cl.SetPassword(ctx, &opsv1.SetPasswordRequest{Name: other, Password: testPassword})
			return err
		},
		"AuditLog": func(cl opsv1.OpsClient, _, _ string) error {
			_, err := cl.AuditLog(ctx, &opsv1.AuditLogRequest{})
			return err
		},
		"AuditCheckpoint": func(cl opsv1.OpsClient, _, _ string) error {
			_, err := cl.AuditCheckpoint(ctx, &opsv1.AuditCheckpointRequest{})
			return err
		},
		"AuditRecords": func(cl opsv1.OpsClient, _, _ string) error {
			_, err := cl.AuditRecords(ctx, &opsv1.AuditRecordsRequest{Count: 10})
			return err
		},
		"AuditReport": func(cl opsv1.OpsClient, _, _ string) error {
			_, err := cl.AuditReport(ctx, &opsv1.AuditReportRequest{Since: hourAgo})
			return err
		},
		"PlaceHold": func(cl opsv1.OpsClient, _, d string) error {
			_, err := placeHold(cl, d)
			return err
		},
		"ReleaseHold": func(cl opsv1.OpsClient, _, d string) error {
			id, err := placeHold(oskar, d)
			if err != nil {
				t.Fatal(err)
			}
			_, err = cl.ReleaseHold(ctx, &opsv1.ReleaseHoldRequest{Id: id, Reason: "matrix"})
			return err
		},
		"ListHolds": func(cl opsv1.OpsClient, _, _ string) error {
			_, err := cl.ListHolds(ctx, &opsv1.ListHoldsRequest{All: true})
			return err
		},
		"GetHold": func(cl opsv1.OpsClient, _, d string) error {
			_, err := cl.GetHold(ctx, &opsv1.GetHoldRequest{Id: holdOf[d]})
			return err
		},
		"RetentionReport": func(cl opsv1.OpsClient, _, _ string) error {
			_, err := cl.RetentionReport(ctx, &opsv1.RetentionReportRequest{Since: hourAgo})
			return err
		},
		"SetPassword(self)": func(cl opsv1.OpsClient, self, _ string) error {
			_, err := cl.SetPassword(ctx, &opsv1.SetPasswordRequest{Name: self, Password: testPassword, CurrentPassword: testPassword})
			return err
		},
		"EnrollTOTP(self)": func(cl opsv1.OpsClient, self, _ string) error {
			_, err := cl.EnrollTOTP(ctx, &opsv1.EnrollTOTPRequest{Name: self})
			return err
		},
		"EnrollTOTP(other)": func(cl opsv1.OpsClient, self, _ string) error {
			_, err := cl.EnrollTOTP(ctx, &opsv1.EnrollTOTPRequest{Name: otherThan(self)})
			return err
		},
		"ConfirmTOTP(self)": func(cl opsv1.OpsClient, self, _ string) error {
			resp, err := cl.EnrollTOTP(ctx, &opsv1.EnrollTOTPRequest{Name: self})
			if err != nil {
				return err
			}
			code, err := users.TOTPCode(resp.GetSecret(), c.clock.Now())
			if err != nil {
				t.Fatal(err)
			}
			_, err = cl.ConfirmTOTP(ctx, &opsv1.ConfirmTOTPRequest{Name: self, Code: code})
			// The next calls log in with a password only.
			if _, derr := admin.DisableTOTP(ctx, &opsv1.DisableTOTPRequest{Name: self}); derr != nil {
				t.Fatal(derr)
			}
			return err
		},
		"ConfirmTOTP(other)": func(cl opsv1.OpsClient, self, _ string) error {
			_, err := cl.ConfirmTOTP(ctx, &opsv1.ConfirmTOTPRequest{Name: otherThan(self), Code: "123456"})
			return err
		},
		"DisableTOTP(self)": func(cl opsv1.OpsClient, self, _ string) error {
			_, err := cl.DisableTOTP(ctx, &opsv1.DisableTOTPRequest{Name: self})
			return err
		},
		"DisableTOTP(other)": func(cl opsv1.OpsClient, self, _ string) error {
			_, err := cl.DisableTOTP(ctx, &opsv1.DisableTOTPRequest{Name: otherThan(self)})
			return err
		},
	}

	// Allowed: role → call → districts in which it is allowed ("*" = both).
	allowed := map[string]map[string]string{
		"operator": {"WhoAmI": "*", "ListAgents": "*", "ListRecordings": "north", "SetPassword(self)": "*"},
		"officer": {"WhoAmI": "*", "ListAgents": "*", "ListRecordings": "*", "SetPassword(self)": "*",
			"PlaceHold": "*", "ReleaseHold": "*", "ListHolds": "*", "GetHold": "*", "RetentionReport": "*"},
		"auditor": {"WhoAmI": "*", "ListAgents": "*", "ListRecordings": "*", "SetPassword(self)": "*",
			"AuditLog": "*", "AuditCheckpoint": "*", "AuditRecords": "*", "AuditReport": "*",
			"ListHolds": "*", "GetHold": "*", "RetentionReport": "*"},
		"admin": {"WhoAmI": "*", "ListAgents": "*", "CreateEnrollmentToken": "*", "AddUser": "*", "ListUsers": "*",
			"DisableUser": "*", "SetPassword(other)": "*", "SetPassword(self)": "*", "RetentionReport": "*",
			// Removing someone's second factor, yes; enrolling it, no:
			// the administrator would hold it.
			"DisableTOTP(other)": "*"},
	}
	// Everyone may enrol, confirm and remove their own second factor.
	for _, calls := range allowed {
		for _, call := range []string{"EnrollTOTP(self)", "ConfirmTOTP(self)", "DisableTOTP(self)"} {
			calls[call] = "*"
		}
	}
	for _, who := range []struct{ name, role string }{{"olga", "operator"}, {"otto", "officer"}, {"aude", "auditor"}, {"adam", "admin"}} {
		for call, do := range calls {
			for _, district := range []string{"north", "south"} {
				cl := c.client(t, c.login(t, who.name, testPassword))
				err := do(cl, who.name, district)
				where := allowed[who.role][call]
				want := where == "*" || where == district
				got := status.Code(err) != codes.PermissionDenied
				if got != want {
					t.Errorf("%s calling %s in %s: allowed=%v, want %v (%v)", who.role, call, district, got, want, err)
				}
				if got && err != nil {
					t.Errorf("%s calling %s in %s: allowed but failed: %v", who.role, call, district, err)
				}
			}
		}
	}
	// Every RPC of the service is in the matrix (Login and Logout below).
	for _, m := range opsv1.Ops_ServiceDesc.Methods {
		found := m.MethodName == "Login" || m.MethodName == "Logout"
		for call := range calls {
			found = found || strings.HasPrefix(call, m.MethodName)
		}
		if !found {
			t.Errorf("RPC %s is not in the authorization matrix", m.MethodName)
		}
	}
}

// otherThan is a user of the matrix other than self.
func otherThan(self string) string {
	if self == "aude" {
		return "otto"
	}
	return "aude"
}

// Without a session, with a forged one, or with an expired one, every RPC
// but Login is refused; logging out ends the session.
func TestUnauthenticatedAndExpired(t *testing.T) {
	c := startCentral(t)
	ctx := context.Background()
	for name, cl := range map[string]opsv1.OpsClient{"no token": c.client(t, ""), "forged token": c.client(t, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")} {
		if _, err := cl.ListAgents(ctx, &opsv1.ListAgentsRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := cl.WhoAmI(ctx, &opsv1.WhoAmIRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: %v", name, err)
		}
	}
	token := c.login(t, "admin", c.adminPwd)
	cl := c.client(t, token)
	if _, err := cl.WhoAmI(ctx, &opsv1.WhoAmIRequest{}); err != nil {
		t.Fatal(err)
	}
	c.clock.Advance(8*time.Hour + time.Minute)
	if _, err := cl.WhoAmI(ctx, &opsv1.WhoAmIRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("expired session: %v", err)
	}
	token = c.login(t, "admin", c.adminPwd)
	cl = c.client(t, token)
	if _, err := cl.Logout(ctx, &opsv1.LogoutRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.WhoAmI(ctx, &opsv1.WhoAmIRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("after logout: %v", err)
	}
	// Wrong passwords: a clear refusal, then rate limiting.
	anon := c.client(t, "")
	var last error
	for range 8 {
		_, last = anon.Login(ctx, &opsv1.LoginRequest{User: "admin", Password: "wrong password!"})
	}
	if status.Code(last) != codes.ResourceExhausted {
		t.Fatalf("after 8 failures: %v", last)
	}
	failures, err := c.Users().FailedLogins(time.Time{})
	if err != nil || len(failures) < 5 {
		t.Fatalf("failed logins recorded: %d %v", len(failures), err)
	}
}

// Changing one's own password needs the current one: a stolen session
// alone cannot take the account over.
func TestOwnPasswordNeedsCurrent(t *testing.T) {
	c := startCentral(t)
	ctx := context.Background()
	admin := c.client(t, c.login(t, "admin", c.adminPwd))
	if _, err := admin.AddUser(ctx, &opsv1.AddUserRequest{Name: "olga", Role: "operator", Districts: []string{"north"}, Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	olga := c.client(t, c.login(t, "olga", testPassword))
	for _, current := range []string{"", "not the password"} {
		_, err := olga.SetPassword(ctx, &opsv1.SetPasswordRequest{Name: "olga", Password: "a brand new password", CurrentPassword: current})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("current %q: %v", current, err)
		}
	}
	c.login(t, "olga", testPassword) // unchanged
	if _, err := olga.SetPassword(ctx, &opsv1.SetPasswordRequest{Name: "olga", Password: "a brand new password", CurrentPassword: testPassword}); err != nil {
		t.Fatal(err)
	}
	c.login(t, "olga", "a brand new password")
}

// A client that pins another CA refuses central before sending anything.
func TestClientPinsCA(t *testing.T) {
	c := startCentral(t)
	conn, err := grpc.NewClient(c.APIAddr(), grpc.WithTransportCredentials(credentials.NewTLS(pinned(strings.Repeat("0", 64)))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = opsv1.NewOpsClient(conn).Login(context.Background(), &opsv1.LoginRequest{User: "admin", Password: c.adminPwd})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "not the pinned one") {
		t.Fatalf("wrong pin: %v", err)
	}
}
