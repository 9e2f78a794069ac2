package server

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-cctv/vigil/central/users"
	"github.com/vigil-cctv/vigil/proto/actions"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

// TestSecondFactorLogin drives a second factor over the API: enrolment and
// confirmation by its owner, logins that need the code, the answers and
// audit records of each outcome, and removal by an administrator.
func TestSecondFactorLogin(t *testing.T) {
	c := startCentral(t)
	ctx := context.Background()
	people := c.addPeople(t, [3]string{"olga", "operator", "north"})
	admin, olga := people["admin"], people["olga"]
	anon := c.client(t, "")
	code := func(secret string) string {
		t.Helper()
		// Each code on a step of its own: a code is accepted once.
		c.clock.Advance(users.TOTPPeriod)
		code, err := users.TOTPCode(secret, c.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	login := func(password, totp string) (*opsv1.LoginResponse, error) {
		return anon.Login(ctx, &opsv1.LoginRequest{User: "olga", Password: password, Totp: totp})
	}

	if _, err := admin.EnrollTOTP(ctx, &opsv1.EnrollTOTPRequest{Name: "olga"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("admin enrols olga's second factor: %v", err)
	}
	enrol, err := olga.EnrollTOTP(ctx, &opsv1.EnrollTOTPRequest{Name: "olga"})
	if err != nil || enrol.GetSecret() == "" || enrol.GetUri() == "" {
		t.Fatalf("enrol: %v %v", enrol, err)
	}
	// Pending: the password alone still logs in.
	if _, err := login(testPassword, ""); err != nil {
		t.Fatalf("login while pending: %v", err)
	}
	if _, err := olga.ConfirmTOTP(ctx, &opsv1.ConfirmTOTPRequest{Name: "olga", Code: "000000"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("confirm with a wrong code: %v", err)
	}
	if _, err := olga.ConfirmTOTP(ctx, &opsv1.ConfirmTOTPRequest{Name: "olga", Code: code(enrol.GetSecret())}); err != nil {
		t.Fatalf("confirm: %v", err)
	}
	// The session that enrolled goes on; it now shows the second factor.
	who, err := olga.WhoAmI(ctx, &opsv1.WhoAmIRequest{})
	if err != nil || !who.GetUser().GetTotp() {
		t.Fatalf("whoami after confirm: %v %v", who, err)
	}
	list, err := admin.ListUsers(ctx, &opsv1.ListUsersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range list.GetUsers() {
		if u.GetTotp() != (u.GetName() == "olga") {
			t.Errorf("list: %s totp=%v", u.GetName(), u.GetTotp())
		}
	}

	failuresBefore, err := c.Users().FailedLogins(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	// No code: asked for one, as many times as it takes; not a failure.
	for range 8 {
		_, err := login(testPassword, "")
		if st := status.Convert(err); st.Code() != codes.Unauthenticated || st.Message() != secondFactorRequired {
			t.Fatalf("login without a code: %v", err)
		}
	}
	if f, _ := c.Users().FailedLogins(time.Time{}); len(f) != len(failuresBefore) {
		t.Fatalf("asking for the code recorded failures: %+v", f[len(failuresBefore):])
	}
	// A wrong password is told as before, code or not.
	if _, err := login("not her password", ""); status.Convert(err).Message() != "wrong user name or password" {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := login(testPassword, "000000"); status.Code(err) != codes.Unauthenticated || status.Convert(err).Message() != "wrong user name, password or authenticator code" {
		t.Fatalf("wrong code: %v", err)
	}
	good := code(enrol.GetSecret())
	resp, err := login(testPassword, good)
	if err != nil || !resp.GetUser().GetTotp() {
		t.Fatalf("login with the code: %v %v", resp, err)
	}
	if _, err := login(testPassword, good); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("the same code again: %v", err)
	}
	f, err := c.Users().FailedLogins(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[users.FailureReason]int{}
	for _, x := range f[len(failuresBefore):] {
		reasons[x.Reason]++
	}
	if reasons[users.ReasonBadSecondFactor] != 2 || reasons[users.ReasonBadPassword] != 1 || len(reasons) != 2 {
		t.Fatalf("failures recorded: %v", reasons)
	}

	// Changing one's own password still takes the current password alone:
	// the session was opened with the code.
	olga = c.client(t, resp.GetToken())
	if _, err := olga.SetPassword(ctx, &opsv1.SetPasswordRequest{Name: "olga", Password: "a brand new password", CurrentPassword: "wrong"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("own password, wrong current one: %v", err)
	}
	if _, err := olga.SetPassword(ctx, &opsv1.SetPasswordRequest{Name: "olga", Password: "a brand new password", CurrentPassword: testPassword}); err != nil {
		t.Fatalf("own password with a second factor: %v", err)
	}
	if _, err := login("a brand new password", ""); status.Convert(err).Message() != secondFactorRequired {
		t.Fatalf("new password, no code: %v", err)
	}

	// Lost device: an administrator removes the second factor.
	if _, err := admin.DisableTOTP(ctx, &opsv1.DisableTOTPRequest{Name: "olga"}); err != nil {
		t.Fatalf("admin removes olga's second factor: %v", err)
	}
	if _, err := login("a brand new password", ""); err != nil {
		t.Fatalf("login after removal: %v", err)
	}

	// The audit log tells the story, the secret and codes nowhere in it.
	type key struct{ actor, outcome, detail string }
	seen := map[key]int{}
	for _, r := range auditRecords(t, c, actions.UserTOTP) {
		if r.Target.User != "olga" {
			t.Errorf("record of %q", r.Target.User)
		}
		if strings.Contains(r.Detail, enrol.GetSecret()) || strings.Contains(r.Detail, good) {
			t.Errorf("secret or code recorded: %q", r.Detail)
		}
		d := r.Detail
		if r.Outcome != "ok" {
			d = "" // the reason, in words
		}
		seen[key{r.Actor.User, r.Outcome, d}]++
	}
	want := map[key]int{
		{"admin", "denied", ""}:    1, // enrolling olga's
		{"olga", "ok", "enrol"}:    1,
		{"olga", "ok", "confirm"}:  2, // the wrong code, then the right one
		{"olga", "failed", ""}:     1, // the wrong code
		{"admin", "ok", "disable"}: 1,
	}
	if !maps.Equal(seen, want) {
		t.Errorf("user.totp records %v, want %v", seen, want)
	}
	asked := 0
	for _, r := range auditRecords(t, c, actions.LoginFail) {
		if r.Target.User == "olga" && r.Detail == "second factor required" {
			asked++
		}
	}
	if asked != 9 { // eight, and once after the password change
		t.Errorf("%d login.fail records of a missing code, want 9", asked)
	}
}
