package pki

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrBadCSR means SignAgent cannot sign a certificate request: it does not
// parse, its signature does not prove possession of its key, or the key is
// of a kind or size central refuses. The enrolment service answers it
// with InvalidArgument.
var ErrBadCSR = errors.New("bad certificate request")

// Why AgentDistrict finds no agent on a connection. Each carries the gRPC
// code Unauthenticated, so a handler may return them (wrapped or not) as
// they are.
var (
	// ErrNoTLS: the call did not come over TLS (a listener misconfigured).
	ErrNoTLS error = &authError{"connection is not TLS"}
	// ErrNoClientCert: the client sent no certificate, as during enrolment.
	ErrNoClientCert error = &authError{"no client certificate: enrol the agent first"}
	// ErrNoDistrict: the certificate is this CA's but names no single
	// valid district (not an agent certificate).
	ErrNoDistrict error = &authError{"client certificate names no district"}
)

type authError struct{ msg string }

func (e *authError) Error() string { return e.msg }

// GRPCStatus lets gRPC send the error as Unauthenticated.
func (e *authError) GRPCStatus() *status.Status { return status.New(codes.Unauthenticated, e.msg) }
