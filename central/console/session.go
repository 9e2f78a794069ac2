package console

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/vigil-cctv/vigil/central/audit"
	"github.com/vigil-cctv/vigil/central/authz"
	"github.com/vigil-cctv/vigil/central/users"
	"github.com/vigil-cctv/vigil/proto/actions"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

// sessionCookie holds the session token. The __Host- prefix makes the
// browser refuse it unless Secure, for this host only and the whole path.
const sessionCookie = "__Host-vigil-session"

// csrfHeader carries the CSRF token on every request that changes state.
const csrfHeader = "X-CSRF-Token"

// session is an authenticated request's user.
type session struct {
	user  users.User
	token string
}

// session authenticates the request by its cookie, applying the idle
// timeout; without a valid session it answers 401 and returns false.
func (c *Console) session(w http.ResponseWriter, r *http.Request) (session, bool) {
	s, err := c.authenticate(r)
	if err != nil {
		writeError(w, http.StatusUnauthorized, err.Error())
		return session{}, false
	}
	return s, true
}

var errNoSession = errors.New("not logged in")

func (c *Console) authenticate(r *http.Request) (session, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return session{}, errNoSession
	}
	// A refresh the page makes by itself is not use of the session.
	return c.authenticateToken(ck.Value, r.Header.Get(backgroundHeader) == "")
}

// backgroundHeader marks the page's own periodic requests.
const backgroundHeader = "X-Vigil-Background"

// authenticateToken checks a session token; touch counts the request as
// use of the session.
func (c *Console) authenticateToken(token string, touch bool) (session, error) {
	now := c.cfg.Now()
	c.mu.Lock()
	last, seen := c.lastSeen[token]
	c.mu.Unlock()
	if seen && now.Sub(last) > c.cfg.IdleTimeout {
		c.endSession(token)
		return session{}, errors.New("session ended after " + c.cfg.IdleTimeout.String() + " without use: log in again")
	}
	u, _, err := c.cfg.Users.Authenticate(token)
	if err != nil {
		c.forget(token)
		return session{}, errors.New("session expired or ended: log in again")
	}
	if touch || !seen {
		c.pruneIdle(now)
		// A session central knows but this process has not seen (central
		// restarted) starts its idle clock now.
		c.mu.Lock()
		c.lastSeen[token] = now
		c.mu.Unlock()
	}
	return session{user: u, token: token}, nil
}

// endSession ends a session left idle, on record.
func (c *Console) endSession(token string) {
	if u, _, err := c.cfg.Users.Authenticate(token); err == nil {
		rec := c.record(session{user: u, token: token}, actions.Logout, audit.Target{User: u.Name}, "")
		rec.Detail = "session ended after " + c.cfg.IdleTimeout.String() + " without use"
		if _, err := c.cfg.Audit.Append(context.Background(), rec); err != nil {
			c.log.Error("audit log: end of an idle session not recorded", "user", u.Name, "error", err)
		}
	}
	if err := c.cfg.Users.Logout(token); err != nil {
		c.log.Error("end idle session", "error", err)
	}
	c.forget(token)
}

// pruneIdle forgets the sessions idle for longer than the timeout that
// were never presented again (their next use would find them ended).
func (c *Console) pruneIdle(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.pruned) < time.Minute {
		return
	}
	c.pruned = now
	for token, last := range c.lastSeen {
		if now.Sub(last) > 2*c.cfg.IdleTimeout {
			delete(c.lastSeen, token)
		}
	}
}

// forget drops what this console holds of a session that ended: its
// playback tickets, and its live views, at once.
func (c *Console) forget(token string) {
	c.mu.Lock()
	delete(c.lastSeen, token)
	for id, t := range c.tickets {
		if t.token == token {
			delete(c.tickets, id)
		}
	}
	c.mu.Unlock()
	c.endViews(func(v *liveView) bool { return v.s.token == token }, errSessionEnded{errors.New("logged out")})
}

// sessionInfo is what the page learns of its session.
type sessionInfo struct {
	User        string   `json:"user"`
	Role        string   `json:"role"`
	Districts   []string `json:"districts"`
	Designation string   `json:"designation,omitempty"`
	CSRF        string   `json:"csrf"`
	IdleTimeout int      `json:"idle_timeout_s"`
	Expires     string   `json:"expires,omitempty"`
}

func (c *Console) info(u users.User, token string, expires time.Time) sessionInfo {
	si := sessionInfo{
		User: u.Name, Role: string(u.Role), Districts: u.Districts, Designation: u.Designation,
		CSRF: c.csrfToken(token), IdleTimeout: int(c.cfg.IdleTimeout / time.Second),
	}
	if si.Districts == nil {
		si.Districts = []string{}
	}
	if !expires.IsZero() {
		si.Expires = expires.UTC().Format(time.RFC3339)
	}
	return si
}

type loginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
	TOTP     string `json:"totp"`
}

// handleLogin logs in through the Ops service's Login, so that the console
// and the CLI share the throttling, the second factor and the audit
// records of logins.
func (c *Console) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if !readJSON(w, r, &req) {
		return
	}
	resp, err := c.cfg.Invoke(r.Context(), "Login", "", r.RemoteAddr, loginMessage(req))
	if err != nil {
		st := status.Convert(err)
		if st.Code() == codes.Unauthenticated && secondFactorRequired(st.Message()) {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": st.Message(), "totp_required": true})
			return
		}
		writeStatus(w, err)
		return
	}
	lr := resp.(*opsv1.LoginResponse)
	expires := lr.GetExpires().AsTime()
	u, _, err := c.cfg.Users.Authenticate(lr.GetToken())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "login: "+err.Error())
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: lr.GetToken(), Path: "/", Expires: expires,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
	c.mu.Lock()
	c.lastSeen[lr.GetToken()] = c.cfg.Now()
	c.mu.Unlock()
	writeJSON(w, http.StatusOK, c.info(u, lr.GetToken(), expires))
}

func (c *Console) handleSession(w http.ResponseWriter, r *http.Request) {
	s, ok := c.session(w, r)
	if !ok {
		return
	}
	_, expires, _ := c.cfg.Users.Authenticate(s.token)
	writeJSON(w, http.StatusOK, c.info(s.user, s.token, expires))
}

func (c *Console) handleLogout(w http.ResponseWriter, r *http.Request) {
	s, ok := c.changing(w, r)
	if !ok {
		return
	}
	if _, err := c.cfg.Invoke(r.Context(), "Logout", s.token, r.RemoteAddr, &opsv1.LogoutRequest{}); err != nil {
		writeStatus(w, err)
		return
	}
	c.forget(s.token)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

// changing authenticates a request that changes state: it must also carry
// the session's CSRF token.
func (c *Console) changing(w http.ResponseWriter, r *http.Request) (session, bool) {
	s, ok := c.session(w, r)
	if !ok {
		return session{}, false
	}
	if !c.checkCSRF(s.token, r.Header.Get(csrfHeader)) {
		writeError(w, http.StatusForbidden, "missing or wrong CSRF token: reload the page")
		return session{}, false
	}
	return s, true
}

// bridged are the Ops methods the page may call through /api/ops/.
var bridged = []string{
	"WhoAmI", "ListAgents", "ListHolds", "GetHold", "PlaceHold", "ReleaseHold",
	"AuditLog", "AuditCheckpoint", "AuditReport", "RetentionReport",
	"ListUsers", "AddUser", "DisableUser", "SetPassword",
}

var protoOut = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// handleOps calls one Ops method with the JSON of its request message.
// Every request goes through POST with the CSRF token: reads of the audit
// log are recorded, so even they are not left to a forged link.
func (c *Console) handleOps(w http.ResponseWriter, r *http.Request) {
	s, ok := c.changing(w, r)
	if !ok {
		return
	}
	method := r.PathValue("method")
	if !slices.Contains(bridged, method) {
		writeError(w, http.StatusNotFound, "no such operation: "+method)
		return
	}
	req, err := newRequest(method)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	body, err := readAll(w, r)
	if err != nil {
		return
	}
	if len(body) > 0 {
		if err := protojson.Unmarshal(body, req); err != nil {
			writeError(w, http.StatusBadRequest, "malformed "+method+" request: "+err.Error())
			return
		}
	}
	resp, err := c.cfg.Invoke(r.Context(), method, s.token, r.RemoteAddr, req)
	if err != nil {
		writeStatus(w, err)
		return
	}
	if method == "DisableUser" || method == "SetPassword" {
		// Both end the target's sessions: end their live views now
		// rather than at the next check.
		c.recheckViews()
	}
	writeProto(w, resp)
}

// newRequest makes an empty request message of an Ops method.
func newRequest(method string) (proto.Message, error) {
	sd := opsv1.File_proto_ops_v1_ops_proto.Services().ByName("Ops")
	md := sd.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return nil, errors.New("console: no Ops method " + method)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
	if err != nil {
		return nil, err
	}
	return mt.New().Interface(), nil
}

// writeStatus answers a gRPC status with its HTTP equivalent.
func writeStatus(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	code := http.StatusInternalServerError
	switch st.Code() {
	case codes.Unauthenticated:
		code = http.StatusUnauthorized
	case codes.PermissionDenied:
		code = http.StatusForbidden
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		code = http.StatusBadRequest
	case codes.NotFound:
		code = http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		code = http.StatusConflict
	case codes.ResourceExhausted:
		code = http.StatusTooManyRequests
	case codes.Unavailable:
		code = http.StatusServiceUnavailable
	case codes.DeadlineExceeded, codes.Canceled:
		code = http.StatusGatewayTimeout
	}
	writeError(w, code, st.Message())
}

// watchSession ends with the session: it checks it every interval, keeping
// it in use meanwhile, and calls stop when it is gone.
func (c *Console) watchSession(ctx context.Context, token string, every time.Duration, stop func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := c.authenticateToken(token, true); err != nil {
				stop(err)
				return
			}
		}
	}
}

func loginMessage(req loginRequest) *opsv1.LoginRequest {
	return &opsv1.LoginRequest{User: req.User, Password: req.Password, Totp: req.TOTP}
}

// secondFactorRequired tells a login refused for want of the TOTP code.
func secondFactorRequired(msg string) bool {
	return strings.HasPrefix(msg, "second factor required")
}

// recheckViews ends the live views whose session no longer stands.
func (c *Console) recheckViews() {
	c.mu.Lock()
	views := make([]*liveView, 0, len(c.liveViews))
	for v := range c.liveViews {
		views = append(views, v)
	}
	c.mu.Unlock()
	for _, v := range views {
		if _, _, err := c.cfg.Users.Authenticate(v.s.token); err != nil {
			c.endViews(func(x *liveView) bool { return x == v }, errSessionEnded{errors.New("the user's sessions were ended")})
		}
	}
}

// handleAgents is the page's periodic refresh of agent health: authorised
// like ListAgents, not recorded (see Config.AgentsStatus).
func (c *Console) handleAgents(w http.ResponseWriter, r *http.Request) {
	s, ok := c.session(w, r)
	if !ok {
		return
	}
	if err := authz.Authorize(s.user, opsv1.Ops_ListAgents_FullMethodName); err != nil {
		writeError(w, http.StatusForbidden, "your role may not see the agents")
		return
	}
	resp, err := c.cfg.AgentsStatus(r.Context(), s.user)
	if err != nil {
		writeStatus(w, err)
		return
	}
	writeProto(w, resp)
}

// writeProto answers a message as JSON (protojson, the .proto's names).
func writeProto(w http.ResponseWriter, m proto.Message) {
	out, err := protoOut.Marshal(m)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
}
