package authz

import (
	"errors"
	"fmt"
	"slices"

	"github.com/vigil-cctv/vigil/central/users"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

// ErrDenied is wrapped by every refusal of this package.
var ErrDenied = errors.New("permission denied")

// rule says who may call one method.
type rule struct {
	// public methods need no token at all.
	public bool
	// anyRole allows every authenticated user, whatever the role.
	anyRole bool
	// roles allowed when not public or anyRole.
	roles []users.Role
	// self also allows any authenticated user acting on their own account;
	// the server applies it with AuthorizeOwnAccount, since only the
	// request says whose account it is.
	self bool
	// district marks methods whose request names a district, or whose
	// answer is per district: the server must check each district with
	// AuthorizeDistrict, or drop out-of-scope rows with User.InScope.
	district bool
}

var (
	everyRole = []users.Role{users.RoleOperator, users.RoleOfficer, users.RoleAuditor, users.RoleAdmin}
	adminOnly = []users.Role{users.RoleAdmin}
	// footage are the roles that may see recording metadata. Not admin:
	// DESIGN.md says administrators cannot view video without the operator
	// role, and listing recordings is the first step to viewing them.
	footage = []users.Role{users.RoleOperator, users.RoleOfficer, users.RoleAuditor}
	// auditors read the access audit log.
	auditors = []users.Role{users.RoleAuditor}
	// officers place and release judicial holds (DESIGN.md: the
	// responsible officer).
	officers = []users.Role{users.RoleOfficer}
	// holdReaders see holds: the officers who place them and the auditors
	// who check them. Not operators: a hold names a judicial case.
	holdReaders = []users.Role{users.RoleOfficer, users.RoleAuditor}
	// retentionReaders see the retention evidence: it holds no footage, and
	// administrators run the retention it proves.
	retentionReaders = []users.Role{users.RoleOfficer, users.RoleAuditor, users.RoleAdmin}
	// watchers see video, live or recorded: the operators of the central
	// room, and the officers who also handle holds. Never auditors (they
	// check the log, not the footage) nor administrators (DESIGN.md).
	watchers = []users.Role{users.RoleOperator, users.RoleOfficer}
)

// Console actions that are not calls of the Ops service: the web console
// authorises them by these names, with the same rules and scope checks.
const (
	// ConsoleLive is watching a camera live.
	ConsoleLive = "/vigil.console/Live"
	// ConsoleViewRecording is opening a recorded segment.
	ConsoleViewRecording = "/vigil.console/ViewRecording"
)

// rules is the whole policy of the Ops service. A method missing here is
// denied to everyone; TestMatrix fails for any RPC of the service that has
// no rule.
var rules = map[string]rule{
	opsv1.Ops_Login_FullMethodName:  {public: true},
	opsv1.Ops_Logout_FullMethodName: {anyRole: true},
	opsv1.Ops_WhoAmI_FullMethodName: {anyRole: true},

	// Enrolling an agent creates the identity of a district.
	opsv1.Ops_CreateEnrollmentToken_FullMethodName: {roles: adminOnly, district: true},
	// Agent health (cameras up or down, storage, clock) is no footage:
	// everyone may see it for their districts, admins to run the system.
	opsv1.Ops_ListAgents_FullMethodName:     {roles: everyRole, district: true},
	opsv1.Ops_ListRecordings_FullMethodName: {roles: footage, district: true},

	opsv1.Ops_AddUser_FullMethodName:     {roles: adminOnly},
	opsv1.Ops_ListUsers_FullMethodName:   {roles: adminOnly},
	opsv1.Ops_DisableUser_FullMethodName: {roles: adminOnly},
	// Admins set anyone's password; everyone may change their own.
	opsv1.Ops_SetPassword_FullMethodName: {roles: adminOnly, self: true},
	// A second factor is enrolled by its owner only: whoever enrols sees
	// the secret, and an administrator holding someone's second factor
	// would make it no factor of theirs. Removing one takes no secret:
	// administrators may, for someone who lost their device.
	opsv1.Ops_EnrollTOTP_FullMethodName:  {self: true},
	opsv1.Ops_ConfirmTOTP_FullMethodName: {self: true},
	opsv1.Ops_DisableTOTP_FullMethodName: {roles: adminOnly, self: true},

	// The audit log is for auditors. Administrators cannot read it either:
	// it records what they do.
	opsv1.Ops_AuditLog_FullMethodName:        {roles: auditors},
	opsv1.Ops_AuditCheckpoint_FullMethodName: {roles: auditors},
	opsv1.Ops_AuditRecords_FullMethodName:    {roles: auditors},
	opsv1.Ops_AuditReport_FullMethodName:     {roles: auditors},

	// Judicial holds. The server checks every district of a hold's cameras
	// against the officer's scope, and shows readers only what concerns
	// their districts.
	opsv1.Ops_PlaceHold_FullMethodName:       {roles: officers, district: true},
	opsv1.Ops_ReleaseHold_FullMethodName:     {roles: officers, district: true},
	opsv1.Ops_ListHolds_FullMethodName:       {roles: holdReaders, district: true},
	opsv1.Ops_GetHold_FullMethodName:         {roles: holdReaders, district: true},
	opsv1.Ops_RetentionReport_FullMethodName: {roles: retentionReaders, district: true},

	ConsoleLive:          {roles: watchers, district: true},
	ConsoleViewRecording: {roles: watchers, district: true},
}

// Public reports whether method may be called without a token (Login).
func Public(method string) bool {
	return rules[method].public
}

// DistrictScoped reports whether method acts on districts, so that the
// server must also apply AuthorizeDistrict or User.InScope to what it
// touches or returns.
func DistrictScoped(method string) bool {
	return rules[method].district
}

// Authorize returns nil if u may call method (a full gRPC method name such
// as "/vigil.ops.v1.Ops/ListAgents"), and otherwise an error wrapping
// ErrDenied that names the user's role and the method. Unknown methods,
// callers without a valid role (the zero User: not authenticated) and
// disabled users are denied; public methods are allowed to anyone.
//
// For the methods on one's own account (SelfService: SetPassword and the
// TOTP ones), Authorize allows only the roles listed, none for EnrollTOTP
// and ConfirmTOTP: the server must call AuthorizeOwnAccount instead, which
// also allows people to act on their own account. Failing closed keeps a
// server that forgets the special case from letting anyone reset anyone's
// password or second factor.
func Authorize(u users.User, method string) error {
	r, ok := rules[method]
	if !ok {
		return fmt.Errorf("authz: %w: unknown method %s", ErrDenied, method)
	}
	if r.public {
		return nil
	}
	if err := caller(u, method); err != nil {
		return err
	}
	if r.anyRole || slices.Contains(r.roles, u.Role) {
		return nil
	}
	return fmt.Errorf("authz: %w: role %q may not call %s", ErrDenied, u.Role, method)
}

// caller checks that u is a usable identity at all.
func caller(u users.User, method string) error {
	if u.Name == "" || !u.Role.Valid() {
		return fmt.Errorf("authz: %w: %s needs an authenticated user with a known role (got %q)", ErrDenied, method, u.Role)
	}
	if u.Disabled {
		return fmt.Errorf("authz: %w: user %q is disabled", ErrDenied, u.Name)
	}
	return nil
}

// AuthorizeDistrict is Authorize plus the district scope: u must be allowed
// to call method and district must be one of u's districts (any, when u has
// none listed). The empty district is never in scope.
func AuthorizeDistrict(u users.User, method, district string) error {
	if err := Authorize(u, method); err != nil {
		return err
	}
	if !u.InScope(district) {
		return fmt.Errorf("authz: %w: role %q may not call %s for district %q: user %q is limited to %v",
			ErrDenied, u.Role, method, district, u.Name, u.Districts)
	}
	return nil
}

// SelfService reports whether method acts on one account named in the
// request that its owner may act on whatever their role: the server must
// authorise it with AuthorizeOwnAccount.
func SelfService(method string) bool {
	return rules[method].self
}

// AuthorizeOwnAccount decides a SelfService method for the account target:
// the roles of its rule may act on anyone's account, any other
// authenticated user only on their own.
func AuthorizeOwnAccount(u users.User, method, target string) error {
	if err := caller(u, method); err != nil {
		return err
	}
	if Authorize(u, method) == nil {
		return nil
	}
	if rules[method].self && u.Name == target {
		return nil
	}
	return fmt.Errorf("authz: %w: role %q may call %s only for its own account, not %q's", ErrDenied, u.Role, method, target)
}

// AuthorizeSetPassword decides SetPassword: an administrator may set
// anyone's password, any other authenticated user only their own.
func AuthorizeSetPassword(u users.User, target string) error {
	return AuthorizeOwnAccount(u, opsv1.Ops_SetPassword_FullMethodName, target)
}
