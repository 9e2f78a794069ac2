package authz

import (
	"errors"
	"strings"
	"testing"

	"github.com/vigil-cctv/vigil/central/users"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

// opsMethods lists every RPC of the Ops service from its descriptor, so a
// new RPC shows up here without anyone remembering to add it.
func opsMethods() []string {
	var out []string
	for _, m := range opsv1.Ops_ServiceDesc.Methods {
		out = append(out, "/"+opsv1.Ops_ServiceDesc.ServiceName+"/"+m.MethodName)
	}
	for _, s := range opsv1.Ops_ServiceDesc.Streams {
		out = append(out, "/"+opsv1.Ops_ServiceDesc.ServiceName+"/"+s.StreamName)
	}
	// The web console's own actions are ruled in the same table.
	return append(out, ConsoleLive, ConsoleViewRecording)
}

const (
	allow = true
	deny  = false
)

// verdict is the expected answer for a caller whose scope is the single
// district "north": asking for "north" (in) and for "south" (out).
type verdict struct{ in, out bool }

// auditorOnly: the audit log names no district; out of scope stays out.
var auditorOnly = map[users.Role]verdict{
	users.RoleOperator: {deny, deny},
	users.RoleOfficer:  {deny, deny},
	users.RoleAuditor:  {allow, deny},
	users.RoleAdmin:    {deny, deny},
}

// expected is the policy written out by hand, role by role. It must agree
// with the rules table; writing it twice is the point.
var expected = map[string]map[users.Role]verdict{
	opsv1.Ops_Login_FullMethodName: {
		// Public, but Login names no district: out of scope is still out.
		users.RoleOperator: {allow, deny},
		users.RoleOfficer:  {allow, deny},
		users.RoleAuditor:  {allow, deny},
		users.RoleAdmin:    {allow, deny},
	},
	opsv1.Ops_Logout_FullMethodName: {
		users.RoleOperator: {allow, deny},
		users.RoleOfficer:  {allow, deny},
		users.RoleAuditor:  {allow, deny},
		users.RoleAdmin:    {allow, deny},
	},
	opsv1.Ops_WhoAmI_FullMethodName: {
		users.RoleOperator: {allow, deny},
		users.RoleOfficer:  {allow, deny},
		users.RoleAuditor:  {allow, deny},
		users.RoleAdmin:    {allow, deny},
	},
	opsv1.Ops_CreateEnrollmentToken_FullMethodName: {
		users.RoleOperator: {deny, deny},
		users.RoleOfficer:  {deny, deny},
		users.RoleAuditor:  {deny, deny},
		users.RoleAdmin:    {allow, deny},
	},
	opsv1.Ops_ListAgents_FullMethodName: {
		users.RoleOperator: {allow, deny},
		users.RoleOfficer:  {allow, deny},
		users.RoleAuditor:  {allow, deny},
		users.RoleAdmin:    {allow, deny},
	},
	opsv1.Ops_ListRecordings_FullMethodName: {
		users.RoleOperator: {allow, deny},
		users.RoleOfficer:  {allow, deny},
		users.RoleAuditor:  {allow, deny},
		users.RoleAdmin:    {deny, deny}, // administrators see no footage
	},
	opsv1.Ops_AddUser_FullMethodName: {
		users.RoleOperator: {deny, deny},
		users.RoleOfficer:  {deny, deny},
		users.RoleAuditor:  {deny, deny},
		users.RoleAdmin:    {allow, deny},
	},
	opsv1.Ops_ListUsers_FullMethodName: {
		users.RoleOperator: {deny, deny},
		users.RoleOfficer:  {deny, deny},
		users.RoleAuditor:  {deny, deny},
		users.RoleAdmin:    {allow, deny},
	},
	opsv1.Ops_DisableUser_FullMethodName: {
		users.RoleOperator: {deny, deny},
		users.RoleOfficer:  {deny, deny},
		users.RoleAuditor:  {deny, deny},
		users.RoleAdmin:    {allow, deny},
	},
	opsv1.Ops_SetPassword_FullMethodName: {
		// Method level; self-service goes through AuthorizeSetPassword.
		users.RoleOperator: {deny, deny},
		users.RoleOfficer:  {deny, deny},
		users.RoleAuditor:  {deny, deny},
		users.RoleAdmin:    {allow, deny},
	},
	// Method level: nobody. Enrolling one's own second factor goes
	// through AuthorizeOwnAccount; no role may do it for someone else.
	opsv1.Ops_EnrollTOTP_FullMethodName:  nobody,
	opsv1.Ops_ConfirmTOTP_FullMethodName: nobody,
	opsv1.Ops_DisableTOTP_FullMethodName: {
		// Method level; self-service goes through AuthorizeOwnAccount.
		users.RoleOperator: {deny, deny},
		users.RoleOfficer:  {deny, deny},
		users.RoleAuditor:  {deny, deny},
		users.RoleAdmin:    {allow, deny},
	},
	opsv1.Ops_AuditLog_FullMethodName:        auditorOnly,
	opsv1.Ops_AuditCheckpoint_FullMethodName: auditorOnly,
	opsv1.Ops_AuditRecords_FullMethodName:    auditorOnly,
	opsv1.Ops_AuditReport_FullMethodName:     auditorOnly,
	opsv1.Ops_PlaceHold_FullMethodName:       officerOnly,
	opsv1.Ops_ReleaseHold_FullMethodName:     officerOnly,
	opsv1.Ops_ListHolds_FullMethodName: {
		users.RoleOperator: {deny, deny}, // a hold names a judicial case
		users.RoleOfficer:  {allow, deny},
		users.RoleAuditor:  {allow, deny},
		users.RoleAdmin:    {deny, deny},
	},
	opsv1.Ops_GetHold_FullMethodName: {
		users.RoleOperator: {deny, deny},
		users.RoleOfficer:  {allow, deny},
		users.RoleAuditor:  {allow, deny},
		users.RoleAdmin:    {deny, deny},
	},
	opsv1.Ops_RetentionReport_FullMethodName: {
		users.RoleOperator: {deny, deny},
		users.RoleOfficer:  {allow, deny},
		users.RoleAuditor:  {allow, deny},
		users.RoleAdmin:    {allow, deny},
	},
	// Video, live or recorded: operators and officers of the district;
	// never auditors nor administrators.
	ConsoleLive: {
		users.RoleOperator: {allow, deny},
		users.RoleOfficer:  {allow, deny},
		users.RoleAuditor:  {deny, deny},
		users.RoleAdmin:    {deny, deny},
	},
	ConsoleViewRecording: {
		users.RoleOperator: {allow, deny},
		users.RoleOfficer:  {allow, deny},
		users.RoleAuditor:  {deny, deny},
		users.RoleAdmin:    {deny, deny},
	},
}

// nobody: no role, at the method level.
var nobody = map[users.Role]verdict{
	users.RoleOperator: {deny, deny},
	users.RoleOfficer:  {deny, deny},
	users.RoleAuditor:  {deny, deny},
	users.RoleAdmin:    {deny, deny},
}

// selfMethods are the RPCs on one's own account.
var selfMethods = map[string]bool{
	opsv1.Ops_SetPassword_FullMethodName: true,
	opsv1.Ops_EnrollTOTP_FullMethodName:  true,
	opsv1.Ops_ConfirmTOTP_FullMethodName: true,
	opsv1.Ops_DisableTOTP_FullMethodName: true,
}

// officerOnly: placing and releasing holds, within the officer's districts.
var officerOnly = map[users.Role]verdict{
	users.RoleOperator: {deny, deny},
	users.RoleOfficer:  {allow, deny},
	users.RoleAuditor:  {deny, deny},
	users.RoleAdmin:    {deny, deny},
}

// scopedMethods are the RPCs that act on districts.
var scopedMethods = map[string]bool{
	opsv1.Ops_CreateEnrollmentToken_FullMethodName: true,
	opsv1.Ops_ListAgents_FullMethodName:            true,
	opsv1.Ops_ListRecordings_FullMethodName:        true,
	opsv1.Ops_PlaceHold_FullMethodName:             true,
	opsv1.Ops_ReleaseHold_FullMethodName:           true,
	opsv1.Ops_ListHolds_FullMethodName:             true,
	opsv1.Ops_GetHold_FullMethodName:               true,
	opsv1.Ops_RetentionReport_FullMethodName:       true,
	ConsoleLive:                                    true,
	ConsoleViewRecording:                           true,
}

// TestMatrix checks every role × every Ops RPC × a district in and out of
// the caller's scope, and the same for callers with every district.
func TestMatrix(t *testing.T) {
	methods := opsMethods()
	if len(methods) == 0 {
		t.Fatal("no methods in the service descriptor")
	}
	for _, m := range methods {
		if _, ok := rules[m]; !ok {
			t.Errorf("%s has no rule in the table: it is denied to everyone", m)
		}
		if _, ok := expected[m]; !ok {
			t.Errorf("%s has no expected verdicts in this test", m)
		}
	}
	for m := range rules {
		found := false
		for _, x := range methods {
			found = found || x == m
		}
		if !found {
			t.Errorf("rule for %s, which the service does not have", m)
		}
	}

	for _, m := range methods {
		name := m[strings.LastIndex(m, "/")+1:]
		for _, role := range users.Roles() {
			want, ok := expected[m][role]
			if !ok {
				t.Errorf("%s: no expectation for role %s", m, role)
				continue
			}
			scoped := users.User{Name: "someone", Role: role, Districts: []string{"north"}}
			everywhere := users.User{Name: "someone", Role: role}
			cases := []struct {
				scope    string
				u        users.User
				district string
				want     bool
			}{
				{"in scope", scoped, "north", want.in},
				{"out of scope", scoped, "south", want.out},
				// Every district: in scope wherever; "south" is as "north".
				{"all districts", everywhere, "south", want.in},
			}
			for _, c := range cases {
				t.Run(name+"/"+string(role)+"/"+c.scope, func(t *testing.T) {
					err := AuthorizeDistrict(c.u, m, c.district)
					if got := err == nil; got != c.want {
						t.Fatalf("AuthorizeDistrict = %v, want allowed=%v", err, c.want)
					}
					if err != nil {
						checkDenied(t, err, string(role))
					}
					// Authorize ignores districts: it answers as in scope.
					aerr := Authorize(c.u, m)
					if got := aerr == nil; got != want.in {
						t.Fatalf("Authorize = %v, want allowed=%v", aerr, want.in)
					}
					if aerr != nil {
						checkDenied(t, aerr, string(role))
						if !strings.Contains(aerr.Error(), m) {
							t.Fatalf("error %q does not name the method", aerr)
						}
					}
				})
			}
		}
		if got := DistrictScoped(m); got != scopedMethods[m] {
			t.Errorf("DistrictScoped(%s) = %v", m, got)
		}
		if got := SelfService(m); got != selfMethods[m] {
			t.Errorf("SelfService(%s) = %v", m, got)
		}
	}
}

func checkDenied(t *testing.T, err error, role string) {
	t.Helper()
	if !errors.Is(err, ErrDenied) {
		t.Fatalf("error %v does not wrap ErrDenied", err)
	}
	if !strings.Contains(err.Error(), role) || !strings.HasPrefix(err.Error(), "authz: ") {
		t.Fatalf("error %q does not name the role %q", err, role)
	}
}

// TestUnusableCallers checks the callers that must be refused whatever the
// table says: not authenticated, unknown role, disabled.
func TestUnusableCallers(t *testing.T) {
	callers := map[string]users.User{
		"unauthenticated": {},
		"no role":         {Name: "x"},
		"unknown role":    {Name: "x", Role: "root"},
		"no name":         {Role: users.RoleAdmin},
	}
	for _, role := range users.Roles() {
		callers["disabled "+string(role)] = users.User{Name: "x", Role: role, Disabled: true}
	}
	for what, u := range callers {
		for _, m := range opsMethods() {
			err := Authorize(u, m)
			if Public(m) {
				if err != nil {
					t.Errorf("%s calling public %s: %v", what, m, err)
				}
				continue
			}
			if !errors.Is(err, ErrDenied) {
				t.Errorf("%s calling %s: %v", what, m, err)
			}
			if err := AuthorizeDistrict(u, m, "north"); !errors.Is(err, ErrDenied) {
				t.Errorf("%s calling %s on north: %v", what, m, err)
			}
		}
		if err := AuthorizeSetPassword(u, u.Name); !errors.Is(err, ErrDenied) {
			t.Errorf("%s setting its own password: %v", what, err)
		}
		for m := range selfMethods {
			if err := AuthorizeOwnAccount(u, m, u.Name); !errors.Is(err, ErrDenied) {
				t.Errorf("%s calling %s on its own account: %v", what, m, err)
			}
		}
	}
}

func TestUnknownMethod(t *testing.T) {
	admin := users.User{Name: "root", Role: users.RoleAdmin}
	for _, m := range []string{"", "/vigil.ops.v1.Ops/DeleteAuditLog", "/vigil.ops.v1.Ops/login", "/vigil.agent.v1.Agent/Link", "Login"} {
		err := Authorize(admin, m)
		if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "unknown method") {
			t.Errorf("Authorize(%q) = %v", m, err)
		}
		if Public(m) || DistrictScoped(m) {
			t.Errorf("%q public or scoped", m)
		}
	}
}

func TestPublic(t *testing.T) {
	for _, m := range opsMethods() {
		if got, want := Public(m), m == opsv1.Ops_Login_FullMethodName; got != want {
			t.Errorf("Public(%s) = %v, want %v", m, got, want)
		}
	}
}

func TestAuthorizeSetPassword(t *testing.T) {
	admin := users.User{Name: "root", Role: users.RoleAdmin}
	cases := []struct {
		name   string
		caller users.User
		target string
		want   bool
	}{
		{"admin, someone else", admin, "olga", allow},
		{"admin, self", admin, "root", allow},
		{"admin limited to a district, someone else", users.User{Name: "root", Role: users.RoleAdmin, Districts: []string{"north"}}, "olga", allow},
		{"operator, self", users.User{Name: "olga", Role: users.RoleOperator, Districts: []string{"north"}}, "olga", allow},
		{"officer, self", users.User{Name: "otto", Role: users.RoleOfficer}, "otto", allow},
		{"auditor, self", users.User{Name: "ada", Role: users.RoleAuditor}, "ada", allow},
		{"operator, someone else", users.User{Name: "olga", Role: users.RoleOperator, Districts: []string{"north"}}, "root", deny},
		{"officer, someone else", users.User{Name: "otto", Role: users.RoleOfficer}, "olga", deny},
		{"auditor, someone else", users.User{Name: "ada", Role: users.RoleAuditor}, "olga", deny},
		{"disabled admin", users.User{Name: "root", Role: users.RoleAdmin, Disabled: true}, "olga", deny},
		{"disabled operator, self", users.User{Name: "olga", Role: users.RoleOperator, Disabled: true}, "olga", deny},
		{"unauthenticated, empty target", users.User{}, "", deny},
		{"unknown role, self", users.User{Name: "x", Role: "root"}, "x", deny},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := AuthorizeSetPassword(c.caller, c.target)
			if got := err == nil; got != c.want {
				t.Fatalf("got %v, want allowed=%v", err, c.want)
			}
			if err != nil && !errors.Is(err, ErrDenied) {
				t.Fatalf("%v does not wrap ErrDenied", err)
			}
		})
	}
}

// TestAuthorizeOwnAccount checks the methods on one account, role by role,
// on one's own account and on someone else's.
func TestAuthorizeOwnAccount(t *testing.T) {
	type want struct{ self, other bool }
	// adminOrSelf: administrators act on anyone, everyone on themself.
	adminOrSelf := map[users.Role]want{
		users.RoleOperator: {allow, deny},
		users.RoleOfficer:  {allow, deny},
		users.RoleAuditor:  {allow, deny},
		users.RoleAdmin:    {allow, allow},
	}
	// selfOnly: an administrator enrolling someone's second factor would
	// hold it.
	selfOnly := map[users.Role]want{
		users.RoleOperator: {allow, deny},
		users.RoleOfficer:  {allow, deny},
		users.RoleAuditor:  {allow, deny},
		users.RoleAdmin:    {allow, deny},
	}
	expected := map[string]map[users.Role]want{
		opsv1.Ops_SetPassword_FullMethodName: adminOrSelf,
		opsv1.Ops_EnrollTOTP_FullMethodName:  selfOnly,
		opsv1.Ops_ConfirmTOTP_FullMethodName: selfOnly,
		opsv1.Ops_DisableTOTP_FullMethodName: adminOrSelf,
		// Not self-service: the target changes nothing.
		opsv1.Ops_DisableUser_FullMethodName: {
			users.RoleOperator: {deny, deny},
			users.RoleOfficer:  {deny, deny},
			users.RoleAuditor:  {deny, deny},
			users.RoleAdmin:    {allow, allow},
		},
	}
	for m := range selfMethods {
		if _, ok := expected[m]; !ok {
			t.Errorf("%s: no expectation", m)
		}
	}
	for m, byRole := range expected {
		name := m[strings.LastIndex(m, "/")+1:]
		for _, role := range users.Roles() {
			// A district scope changes nothing: accounts are not per
			// district.
			u := users.User{Name: "me", Role: role, Districts: []string{"north"}}
			for _, c := range []struct {
				target string
				want   bool
			}{{"me", byRole[role].self}, {"someone", byRole[role].other}, {"", byRole[role].other}} {
				t.Run(name+"/"+string(role)+"/"+c.target, func(t *testing.T) {
					err := AuthorizeOwnAccount(u, m, c.target)
					if got := err == nil; got != c.want {
						t.Fatalf("got %v, want allowed=%v", err, c.want)
					}
					if err != nil {
						checkDenied(t, err, string(role))
					}
				})
			}
		}
	}
	if err := AuthorizeOwnAccount(users.User{Name: "me", Role: users.RoleAdmin}, "/vigil.ops.v1.Ops/Nope", "me"); !errors.Is(err, ErrDenied) {
		t.Fatalf("unknown method: %v", err)
	}
}
