package enroll

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/vigil-cctv/vigil/central/pki"
	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/proto/identity"
	"github.com/vigil-cctv/vigil/storage"
)

// maxCSRBytes bounds the certificate request: a P-256 request is a few
// hundred bytes and an 8192-bit RSA one about 1.5 KiB.
const maxCSRBytes = 16 << 10

// maxDistrictLen is storage.ValidateName's limit.
const maxDistrictLen = 63

// Service is the Enrollment gRPC service: it exchanges a valid token and a
// certificate request for a certificate naming the token's district.
type Service struct {
	agentv1.UnimplementedEnrollmentServer

	ca       *pki.CA
	tokens   *Tokens
	validity time.Duration
	logger   *slog.Logger
}

var _ agentv1.EnrollmentServer = (*Service)(nil)

// NewService returns the Enrollment service. validity is how long agent
// certificates last (0 means pki.DefaultAgentValidity).
func NewService(ca *pki.CA, tokens *Tokens, validity time.Duration, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Service{ca: ca, tokens: tokens, validity: validity, logger: logger.With("component", "enroll")}
}

// Enroll checks everything it can before it spends the token, so that a
// mistake (wrong district, broken request, wrong central) leaves the
// administrator's token usable: token syntax and CA, the token's state,
// the district, then the certificate is signed, and only then is the token
// redeemed, in one transaction that a concurrent enrolment cannot also win.
// The token itself is never logged.
func (s *Service) Enroll(ctx context.Context, req *agentv1.EnrollRequest) (*agentv1.EnrollResponse, error) {
	log := s.logger.With("client", clientAddr(ctx))
	refuse := func(code codes.Code, reason string, err error) error {
		if err != nil {
			log.Warn("enrolment refused", "reason", reason, "err", err)
		} else {
			log.Warn("enrolment refused", "reason", reason)
		}
		return status.Error(code, reason)
	}

	tok, err := identity.ParseToken(req.GetToken())
	if err != nil {
		return nil, refuse(codes.InvalidArgument, err.Error(), nil)
	}
	if req.GetDistrict() != "" {
		if len(req.GetDistrict()) > maxDistrictLen {
			// Not echoed back or logged: it could be megabytes.
			return nil, refuse(codes.InvalidArgument, "district id longer than 63 characters", nil)
		}
		if err := storage.ValidateName("district", req.GetDistrict()); err != nil {
			return nil, refuse(codes.InvalidArgument, err.Error(), nil)
		}
		// Logged once known to be a short, plain name.
		log = log.With("requested_district", req.GetDistrict())
	}
	if len(req.GetCsr()) == 0 || len(req.GetCsr()) > maxCSRBytes {
		return nil, refuse(codes.InvalidArgument, "certificate request missing or larger than 16 KiB", nil)
	}
	if tok.Fingerprint != s.ca.Fingerprint() {
		return nil, refuse(codes.FailedPrecondition, "token was made by another central (its CA fingerprint is "+
			tok.Fingerprint[:16]+"…, this central's is "+s.ca.Fingerprint()[:16]+"…)", nil)
	}
	district, err := s.tokens.check(tok.Secret)
	if err != nil {
		return nil, s.tokenRefusal(refuse, err)
	}
	log = log.With("district", district)
	if req.GetDistrict() != "" && req.GetDistrict() != district {
		return nil, refuse(codes.PermissionDenied, "token is for district \""+district+"\", not \""+req.GetDistrict()+"\"", nil)
	}
	der, err := s.ca.SignAgent(req.GetCsr(), district, s.validity)
	if err != nil {
		if errors.Is(err, pki.ErrBadCSR) {
			return nil, refuse(codes.InvalidArgument, err.Error(), nil)
		}
		return nil, refuse(codes.Internal, "could not issue the certificate", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, refuse(codes.Internal, "could not issue the certificate", err)
	}
	if _, err := s.tokens.redeem(tok.Secret, district, cert.SerialNumber.Text(16)); err != nil {
		// Another enrolment with this token won the race since check: the
		// certificate just signed is dropped unseen.
		return nil, s.tokenRefusal(refuse, err)
	}
	log = log.With("serial", cert.SerialNumber.Text(16), "not_after", cert.NotAfter)
	log.Info("agent enrolled")
	return &agentv1.EnrollResponse{Certificate: der, CaCertificate: s.ca.Certificate().Raw, District: district}, nil
}

// tokenRefusal maps why a token cannot be used to a gRPC status: unknown
// is Unauthenticated (the caller proved nothing); expired, used and
// another district are PermissionDenied (a real token, but not for this).
func (s *Service) tokenRefusal(refuse func(codes.Code, string, error) error, err error) error {
	for _, known := range []error{ErrTokenExpired, ErrTokenUsed} {
		if errors.Is(err, known) {
			return refuse(codes.PermissionDenied, known.Error(), nil)
		}
	}
	switch {
	case errors.Is(err, ErrTokenUnknown):
		return refuse(codes.Unauthenticated, ErrTokenUnknown.Error(), nil)
	case errors.Is(err, errWrongDistrict):
		return refuse(codes.PermissionDenied, errWrongDistrict.Error(), err)
	}
	return refuse(codes.Internal, "could not check the token", err)
}

func clientAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return "unknown"
}
