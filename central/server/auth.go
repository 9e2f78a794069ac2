package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/vigil-cctv/vigil/central/audit"
	"github.com/vigil-cctv/vigil/central/authz"
	"github.com/vigil-cctv/vigil/central/users"
)

type callerKey struct{}

// caller is the authenticated user of a request.
type caller struct {
	user  users.User
	token string
}

// authorize is the one gate of the CLI API: authorise, audit, serve. Every
// method but Login needs a valid session token; the user's role and district
// scope must allow the request (deny by default); then the access is
// recorded in the audit log, durably, before the handler runs. If the audit
// log cannot be written, the request is refused and nothing is served.
// Refusals are recorded too.
func (s *Server) authorize(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if authz.Public(info.FullMethod) {
		return handler(ctx, req) // Login records its own outcome
	}
	rec := auditRecordFor(ctx, info.FullMethod, req)
	token, err := bearerToken(ctx)
	if err != nil {
		rec.Outcome, rec.Detail = audit.OutcomeDenied, "not authenticated: "+err.Error()
		s.recordAnonymousRefusal(ctx, rec)
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	u, _, err := s.users.Authenticate(token)
	if err != nil {
		rec.Outcome, rec.Detail = audit.OutcomeDenied, "not authenticated: session expired or invalid"
		s.recordAnonymousRefusal(ctx, rec)
		return nil, status.Error(codes.Unauthenticated, "session expired or invalid: log in again")
	}
	rec.Actor = audit.Actor{User: u.Name, Role: string(u.Role), Designation: u.Designation}
	if err := authorizeRequest(u, info.FullMethod, req); err != nil {
		rec.Outcome, rec.Detail = audit.OutcomeDenied, refusalDetail(err.Error(), rec.Detail)
		s.log.Warn("access denied", "user", u.Name, "role", u.Role, "method", info.FullMethod, "client", clientAddr(ctx))
		s.recordRefusal(ctx, rec)
		return nil, denied(err)
	}
	rec.Outcome = audit.OutcomeOK
	// A change is checked before its record is written, changing nothing:
	// a refusal (bad input, out of scope) is recorded as one, and the
	// record of an accepted change carries what only the check knows (a
	// new hold's id).
	ctx, recs, err := s.prepare(ctx, u, info.FullMethod, req, rec)
	if err != nil {
		rec.Outcome, rec.Detail = audit.OutcomeDenied, refusalDetail(status.Convert(err).Message(), rec.Detail)
		s.log.Warn("request refused", "user", u.Name, "role", u.Role, "method", info.FullMethod, "error", status.Convert(err).Message())
		s.recordRefusal(ctx, rec)
		return nil, err
	}
	if _, err := s.audit.AppendBatch(ctx, recs); err != nil {
		s.log.Error("audit log unavailable: request refused", "user", u.Name, "method", info.FullMethod, "error", err)
		return nil, status.Error(codes.Unavailable, "audit log unavailable: the request is refused")
	}
	ctx = context.WithValue(ctx, callerKey{}, caller{user: u, token: token})
	resp, err := handler(ctx, req)
	if err != nil {
		// The attempt is on record; say it did not succeed.
		rec.Outcome, rec.Detail = audit.OutcomeFailed, audit.Clip(status.Convert(err).Message(), audit.MaxDetail)
		if _, aerr := s.audit.Append(context.WithoutCancel(ctx), rec); aerr != nil {
			s.log.Error("audit log: outcome of a failed request not recorded", "method", info.FullMethod, "error", aerr)
		}
	}
	return resp, err
}

// authorizeRequest applies the role rules, then the district scope of the
// district the request names, if any. The rule of a method on one account
// (SetPassword, the TOTP ones) depends on whose account it is.
func authorizeRequest(u users.User, method string, req any) error {
	if authz.SelfService(method) {
		return authz.AuthorizeOwnAccount(u, method, requestAccount(req))
	}
	if district := requestDistrict(req); district != "" || authz.DistrictScoped(method) && requestNamesDistrict(req) {
		return authz.AuthorizeDistrict(u, method, district)
	}
	return authz.Authorize(u, method)
}

// recordAnonymousRefusal records a refused request by nobody in particular
// at most once a minute per client address: the log is append-only and
// never pruned, so a flood of anonymous requests must not become a flood of
// records. How many were left out is said in the next record.
func (s *Server) recordAnonymousRefusal(ctx context.Context, rec audit.Record) {
	source := refusalSource(clientAddr(ctx))
	now := s.opts.Now()
	s.quietMu.Lock()
	if s.quiet == nil {
		s.quiet = map[string]*quietEntry{}
	}
	if _, known := s.quiet[source]; !known && len(s.quiet) >= maxQuietSources {
		for k, q := range s.quiet {
			if now.Sub(q.last) >= time.Minute {
				delete(s.quiet, k)
			}
		}
		if len(s.quiet) >= maxQuietSources {
			// Refusals from this many places at once: one shared line a
			// minute for every address not tracked.
			source = manySources
		}
	}
	q := s.quiet[source]
	if q != nil && now.Sub(q.last) < time.Minute {
		q.skipped++
		s.quietMu.Unlock()
		return
	}
	skipped := 0
	if q != nil {
		skipped = q.skipped
	}
	s.quiet[source] = &quietEntry{last: now}
	s.quietMu.Unlock()
	if skipped > 0 {
		from := "this address"
		switch {
		case source == manySources:
			from = "other addresses"
		case strings.Contains(source, "/"):
			from = "this network (" + source + ")"
		}
		rec.Detail = audit.Clip(fmt.Sprintf("%s (and %d more refusals from %s in the minute before, not recorded one by one)", rec.Detail, skipped, from), audit.MaxDetail)
	}
	s.recordRefusal(ctx, rec)
}

// maxQuietSources bounds the sources whose refusals are summarised one by
// one; manySources stands for all the others.
const (
	maxQuietSources = 10000
	manySources     = "*"
)

// refusalSource is what refusals are summarised by: the IPv4 address, or
// the /64 of an IPv6 address (one client easily holds a whole /64).
func refusalSource(addr string) string {
	host := hostOnly(addr)
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Is4() || ip.Is4In6() {
		return host
	}
	p, err := ip.Prefix(64)
	if err != nil {
		return host
	}
	return p.String()
}

type quietEntry struct {
	last    time.Time
	skipped int
}

// refusalDetail is the detail of a refused request's record: why, and what
// was asked when the request's record says more than its target.
func refusalDetail(why, asked string) string {
	if asked != "" {
		why += " (asked: " + asked + ")"
	}
	return audit.Clip(why, audit.MaxDetail)
}

// recordRefusal records a refused request; the refusal stands whether or not
// the record could be written.
func (s *Server) recordRefusal(ctx context.Context, rec audit.Record) {
	if _, err := s.audit.Append(context.WithoutCancel(ctx), rec); err != nil {
		s.log.Error("audit log: refusal not recorded", "action", rec.Action, "error", err)
	}
}

func callerOf(ctx context.Context) caller {
	c, _ := ctx.Value(callerKey{}).(caller)
	return c
}

func bearerToken(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) != 1 {
		return "", errors.New("not logged in: run vigil login")
	}
	token, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok || token == "" {
		return "", errors.New("malformed authorization header")
	}
	return token, nil
}

func clientAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// checkDistrict applies the caller's district scope for method.
func checkDistrict(ctx context.Context, method, district string) error {
	if err := authz.AuthorizeDistrict(callerOf(ctx).user, method, district); err != nil {
		return denied(err)
	}
	return nil
}

// denied is a PermissionDenied status with authz's reason, without its
// package prefix: the client says "permission denied" itself.
func denied(err error) error {
	return status.Error(codes.PermissionDenied, strings.TrimPrefix(err.Error(), "authz: permission denied: "))
}
