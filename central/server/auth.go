package server

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/vigil-cctv/vigil/central/authz"
	"github.com/vigil-cctv/vigil/central/users"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

type callerKey struct{}

// caller is the authenticated user of a request.
type caller struct {
	user  users.User
	token string
}

// authorize is the one gate of the CLI API: every method but Login needs a
// valid session token, and the user's role must allow the method (deny by
// default). District scope is checked by the handlers that know the district.
func (s *Server) authorize(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if authz.Public(info.FullMethod) {
		return handler(ctx, req)
	}
	token, err := bearerToken(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	u, _, err := s.users.Authenticate(token)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "session expired or invalid: log in again")
	}
	// SetPassword's rule depends on the request (anyone may change their
	// own): its handler applies authz.AuthorizeSetPassword.
	if info.FullMethod == opsv1.Ops_SetPassword_FullMethodName {
		return handler(context.WithValue(ctx, callerKey{}, caller{user: u, token: token}), req)
	}
	if err := authz.Authorize(u, info.FullMethod); err != nil {
		s.log.Warn("access denied", "user", u.Name, "role", u.Role, "method", info.FullMethod, "client", clientAddr(ctx))
		return nil, denied(err)
	}
	return handler(context.WithValue(ctx, callerKey{}, caller{user: u, token: token}), req)
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
