package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-cctv/vigil/central/audit"
	"github.com/vigil-cctv/vigil/central/authz"
	"github.com/vigil-cctv/vigil/central/enroll"
	"github.com/vigil-cctv/vigil/central/registry"
	"github.com/vigil-cctv/vigil/central/users"
	"github.com/vigil-cctv/vigil/proto/actions"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
	"github.com/vigil-cctv/vigil/storage"
)

// opsService implements opsv1.OpsServer. Requests reach it authenticated
// and authorised by Server.authorize.
type opsService struct {
	opsv1.UnimplementedOpsServer
	s *Server
}

func (o *opsService) Login(ctx context.Context, req *opsv1.LoginRequest) (*opsv1.LoginResponse, error) {
	addr := hostOnly(clientAddr(ctx))
	token, expires, u, err := o.s.users.LoginTOTP(req.GetUser(), req.GetPassword(), req.GetTotp(), addr)
	var tooMany *users.TooManyAttemptsError
	switch {
	case errors.As(err, &tooMany):
		// Throttled attempts are many and alike: recorded like anonymous
		// refusals, at most once a minute per address.
		o.s.recordAnonymousRefusal(ctx, audit.Record{
			Actor: audit.Actor{User: audit.Clip(req.GetUser(), 64)}, Action: actions.LoginFail, Outcome: audit.OutcomeDenied,
			Client: audit.Clip(clientAddr(ctx), audit.MaxText), Target: audit.Target{User: audit.Clip(req.GetUser(), 64)},
			Detail: audit.Clip(err.Error(), audit.MaxDetail),
		})
		return nil, status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, users.ErrSecondFactorRequired):
		// The password was right: the client asks for the code and logs
		// in again. Recorded as a refused login; the store did not count
		// it as a failure.
		o.s.recordLogin(ctx, req.GetUser(), nil, err)
		return nil, status.Error(codes.Unauthenticated, secondFactorRequired)
	case errors.Is(err, users.ErrBadCredentials):
		o.s.recordLogin(ctx, req.GetUser(), nil, err)
		if req.GetTotp() != "" {
			// Said from the request alone: it tells nothing the caller
			// did not send.
			return nil, status.Error(codes.Unauthenticated, "wrong user name, password or authenticator code")
		}
		return nil, status.Error(codes.Unauthenticated, "wrong user name or password")
	case err != nil:
		return nil, status.Error(codes.Internal, err.Error())
	}
	// A session nobody can trace is not handed out.
	if err := o.s.recordLogin(ctx, u.Name, &u, nil); err != nil {
		o.s.users.Logout(token)
		return nil, status.Error(codes.Unavailable, "audit log unavailable: login refused")
	}
	o.s.log.Info("login", "user", u.Name, "role", u.Role, "client", addr)
	return &opsv1.LoginResponse{Token: token, Expires: timestamppb.New(expires), User: userToProto(u)}, nil
}

// secondFactorRequired is the Unauthenticated message of a login
// that needs a TOTP code. The CLI recognises it by its prefix, "second
// factor required", to ask for the code: keep that prefix.
const secondFactorRequired = "second factor required: give the code of your authenticator app"

func (o *opsService) Logout(ctx context.Context, _ *opsv1.LogoutRequest) (*opsv1.LogoutResponse, error) {
	if err := o.s.users.Logout(callerOf(ctx).token); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &opsv1.LogoutResponse{}, nil
}

func (o *opsService) WhoAmI(ctx context.Context, _ *opsv1.WhoAmIRequest) (*opsv1.WhoAmIResponse, error) {
	c := callerOf(ctx)
	_, expires, err := o.s.users.Authenticate(c.token)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	return &opsv1.WhoAmIResponse{User: userToProto(c.user), Expires: timestamppb.New(expires)}, nil
}

func (o *opsService) CreateEnrollmentToken(ctx context.Context, req *opsv1.CreateEnrollmentTokenRequest) (*opsv1.CreateEnrollmentTokenResponse, error) {
	if err := checkDistrict(ctx, opsv1.Ops_CreateEnrollmentToken_FullMethodName, req.GetDistrict()); err != nil {
		return nil, err
	}
	if req.GetTtlSeconds() < 0 || req.GetTtlSeconds() > int64(enroll.MaxTTL/time.Second) {
		return nil, status.Errorf(codes.InvalidArgument, "ttl must be within 0-%s", enroll.MaxTTL)
	}
	ttl := time.Duration(req.GetTtlSeconds()) * time.Second
	if ttl == 0 {
		ttl = o.s.cfg.EnrollmentTTL.Std()
	}
	tok, expires, err := o.s.tokens.Create(req.GetDistrict(), ttl, o.s.ca.Fingerprint())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	o.s.log.Info("enrolment token created", "district", req.GetDistrict(), "by", callerOf(ctx).user.Name, "expires", expires)
	return &opsv1.CreateEnrollmentTokenResponse{Token: tok.String(), Expires: timestamppb.New(expires), CaFingerprint: o.s.ca.Fingerprint()}, nil
}

func (o *opsService) ListAgents(ctx context.Context, _ *opsv1.ListAgentsRequest) (*opsv1.ListAgentsResponse, error) {
	agents, err := o.s.registry.Agents()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	u := callerOf(ctx).user
	resp := &opsv1.ListAgentsResponse{}
	for _, a := range agents {
		if !u.InScope(a.District) {
			continue
		}
		pa := agentToProto(a)
		if al := o.s.pendingHoldsAlarm(a.District); al != nil {
			pa.Alarms = append(pa.Alarms, al)
		}
		resp.Agents = append(resp.Agents, pa)
	}
	return resp, nil
}

// holdsPendingAfter is how long a hold may wait for a district before
// the status says so (a connected agent applies one within seconds).
const holdsPendingAfter = time.Minute

// pendingHoldsAlarm is central's alarm about holds not yet applied (or
// released) at a district for a while. It names no hold: everyone sees
// agent status, and a hold names a judicial case.
func (s *Server) pendingHoldsAlarm(district string) *opsv1.Alarm {
	hs, err := s.holds.Waiting(district)
	if err != nil {
		s.log.Error("pending holds for the status", "district", district, "error", err)
		return nil
	}
	n, since := 0, time.Time{}
	for _, h := range hs {
		a, _ := h.Agent(district)
		if s.opts.Now().Sub(a.UpdatedAt) < holdsPendingAfter && s.opts.Now().Sub(h.PlacedAt) < holdsPendingAfter {
			continue
		}
		n++
		if since.IsZero() || a.UpdatedAt.Before(since) {
			since = a.UpdatedAt
		}
	}
	if n == 0 {
		return nil
	}
	return &opsv1.Alarm{Code: "holds_pending", Since: timestamppb.New(since),
		Message: fmt.Sprintf("%d judicial hold change(s) not yet carried out at this district (officers: vigil hold list)", n)}
}

func agentToProto(a registry.Agent) *opsv1.Agent {
	out := &opsv1.Agent{
		District: a.District, Connected: a.Connected, AgentVersion: a.Version,
		ClockOffsetMs: a.ClockOffset.Milliseconds(), AppliedSeq: a.AppliedSeq,
	}
	if !a.LastSeen.IsZero() {
		out.LastSeen = timestamppb.New(a.LastSeen)
	}
	for _, c := range a.Cameras {
		out.Cameras = append(out.Cameras, &opsv1.Camera{
			Id: c.GetCamera(), Status: c.GetState(), Since: c.GetSince(), LastError: c.GetLastError(),
			Recording: c.GetRecording(), Detector: c.GetDetector(),
		})
	}
	if hb := a.Heartbeat; hb != nil {
		out.StorageUsedBytes, out.StorageCapacityBytes, out.SpooledSegments = hb.GetStorageUsedBytes(), hb.GetStorageCapacityBytes(), hb.GetSpooledSegments()
		for _, al := range hb.GetAlarms() {
			out.Alarms = append(out.Alarms, &opsv1.Alarm{Code: al.GetCode(), Message: al.GetMessage(), Since: al.GetSince()})
		}
	}
	// Alarms central raises itself about an agent.
	now := timestamppb.Now()
	if a.ClockOffset > registry.ClockWarning || a.ClockOffset < -registry.ClockWarning {
		out.Alarms = append(out.Alarms, &opsv1.Alarm{Code: "clock_offset", Message: "agent clock is " + a.ClockOffset.Round(time.Millisecond).String() + " off central's", Since: now})
	}
	if a.Rejected > 0 {
		out.Alarms = append(out.Alarms, &opsv1.Alarm{Code: "reports_rejected", Message: "central rejected invalid reports from this agent; see central's log", Since: now})
	}
	return out
}

func (o *opsService) ListRecordings(ctx context.Context, req *opsv1.ListRecordingsRequest) (*opsv1.ListRecordingsResponse, error) {
	if err := storage.ValidateName("district", req.GetDistrict()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := storage.ValidateName("camera", req.GetCamera()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := req.GetFrom().CheckValid(); err != nil {
		return nil, status.Error(codes.InvalidArgument, "from: "+err.Error())
	}
	if err := req.GetTo().CheckValid(); err != nil {
		return nil, status.Error(codes.InvalidArgument, "to: "+err.Error())
	}
	from, to := req.GetFrom().AsTime(), req.GetTo().AsTime()
	if !from.Before(to) {
		return nil, status.Error(codes.InvalidArgument, "from must be before to")
	}
	if err := checkDistrict(ctx, opsv1.Ops_ListRecordings_FullMethodName, req.GetDistrict()); err != nil {
		return nil, err
	}
	segs, err := o.s.catalog.List(req.GetDistrict(), req.GetCamera(), from, to)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	// What holds a segment is central's hold registry: the agent reports
	// segments as they are stored, not each time a hold reaches them.
	active, err := o.s.holds.List(false)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp := &opsv1.ListRecordingsResponse{}
	for _, s := range segs {
		var heldBy []string
		for _, h := range active {
			if h.Covers(req.GetDistrict(), s.GetCamera(), s.GetStart().AsTime(), s.GetEnd().AsTime()) {
				heldBy = append(heldBy, h.ID)
			}
		}
		resp.Recordings = append(resp.Recordings, &opsv1.Recording{
			Id: s.GetId(), District: req.GetDistrict(), Camera: s.GetCamera(), Start: s.GetStart(), End: s.GetEnd(),
			Bytes: s.GetBytes(), Sha256: s.GetSha256(), Key: s.GetKey(), HeldBy: heldBy, Codec: s.GetCodec(),
			MotionScore: s.GetMotionScore(), Expires: s.GetExpires(), Recovered: s.GetRecovered(), Missing: s.GetMissing(),
		})
	}
	return resp, nil
}

func (o *opsService) AddUser(ctx context.Context, req *opsv1.AddUserRequest) (*opsv1.AddUserResponse, error) {
	role, err := users.ParseRole(req.GetRole())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	u, err := o.s.users.Add(req.GetName(), role, req.GetDistricts(), req.GetDesignation(), req.GetPassword())
	if err != nil {
		return nil, userError(err)
	}
	o.s.log.Info("user added", "user", u.Name, "role", u.Role, "by", callerOf(ctx).user.Name)
	return &opsv1.AddUserResponse{User: userToProto(u)}, nil
}

func (o *opsService) ListUsers(context.Context, *opsv1.ListUsersRequest) (*opsv1.ListUsersResponse, error) {
	list, err := o.s.users.List()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp := &opsv1.ListUsersResponse{}
	for _, u := range list {
		resp.Users = append(resp.Users, userToProto(u))
	}
	return resp, nil
}

func (o *opsService) DisableUser(ctx context.Context, req *opsv1.DisableUserRequest) (*opsv1.DisableUserResponse, error) {
	if req.GetName() == callerOf(ctx).user.Name {
		return nil, status.Error(codes.FailedPrecondition, "you cannot disable yourself")
	}
	if err := o.s.users.Disable(req.GetName()); err != nil {
		return nil, userError(err)
	}
	o.s.log.Info("user disabled", "user", req.GetName(), "by", callerOf(ctx).user.Name)
	return &opsv1.DisableUserResponse{}, nil
}

func (o *opsService) SetPassword(ctx context.Context, req *opsv1.SetPasswordRequest) (*opsv1.SetPasswordResponse, error) {
	c := callerOf(ctx)
	if err := authz.AuthorizeSetPassword(c.user, req.GetName()); err != nil {
		return nil, denied(err)
	}
	if req.GetName() == c.user.Name {
		// Prove it is the person, not just their session: check the
		// current password as a login would (rate-limited, failures
		// recorded). The session it opens ends with SetPassword below.
		// For a user with a second factor, ErrSecondFactorRequired says
		// the password is right, which is all this asks: the session in
		// hand was opened with a code.
		if _, _, _, err := o.s.users.Login(c.user.Name, req.GetCurrentPassword(), hostOnly(clientAddr(ctx))); err != nil && !errors.Is(err, users.ErrSecondFactorRequired) {
			if errors.Is(err, users.ErrBadCredentials) {
				return nil, status.Error(codes.PermissionDenied, "current password is wrong")
			}
			return nil, status.Error(codes.ResourceExhausted, err.Error())
		}
	}
	if err := o.s.users.SetPassword(req.GetName(), req.GetPassword()); err != nil {
		return nil, userError(err)
	}
	o.s.log.Info("password changed", "user", req.GetName(), "by", callerOf(ctx).user.Name)
	return &opsv1.SetPasswordResponse{}, nil
}

func (o *opsService) EnrollTOTP(ctx context.Context, req *opsv1.EnrollTOTPRequest) (*opsv1.EnrollTOTPResponse, error) {
	c := callerOf(ctx)
	if err := authz.AuthorizeOwnAccount(c.user, opsv1.Ops_EnrollTOTP_FullMethodName, req.GetName()); err != nil {
		return nil, denied(err)
	}
	secret, uri, err := o.s.users.EnrollTOTP(req.GetName())
	if err != nil {
		return nil, userError(err)
	}
	o.s.log.Info("second factor enrolment started", "user", req.GetName())
	return &opsv1.EnrollTOTPResponse{Secret: secret, Uri: uri}, nil
}

func (o *opsService) ConfirmTOTP(ctx context.Context, req *opsv1.ConfirmTOTPRequest) (*opsv1.ConfirmTOTPResponse, error) {
	c := callerOf(ctx)
	if err := authz.AuthorizeOwnAccount(c.user, opsv1.Ops_ConfirmTOTP_FullMethodName, req.GetName()); err != nil {
		return nil, denied(err)
	}
	if err := o.s.users.ConfirmTOTP(req.GetName(), req.GetCode()); err != nil {
		return nil, userError(err)
	}
	o.s.log.Info("second factor enabled", "user", req.GetName())
	return &opsv1.ConfirmTOTPResponse{}, nil
}

func (o *opsService) DisableTOTP(ctx context.Context, req *opsv1.DisableTOTPRequest) (*opsv1.DisableTOTPResponse, error) {
	c := callerOf(ctx)
	if err := authz.AuthorizeOwnAccount(c.user, opsv1.Ops_DisableTOTP_FullMethodName, req.GetName()); err != nil {
		return nil, denied(err)
	}
	if err := o.s.users.DisableTOTP(req.GetName()); err != nil {
		return nil, userError(err)
	}
	o.s.log.Info("second factor disabled", "user", req.GetName(), "by", c.user.Name)
	return &opsv1.DisableTOTPResponse{}, nil
}

// hostOnly drops the port: rate limits are per address, not per source port.
func hostOnly(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

func userError(err error) error {
	switch {
	case errors.Is(err, users.ErrNoSuchUser):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, users.ErrUserExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, users.ErrLastAdmin):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, users.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func userToProto(u users.User) *opsv1.User {
	return &opsv1.User{
		Name: u.Name, Role: string(u.Role), Districts: u.Districts, Designation: u.Designation,
		Disabled: u.Disabled, Created: timestamppb.New(u.Created), Totp: u.TOTP,
	}
}
