// Package enroll is the agent's side of enrolment: it makes the agent's
// key, which never leaves the district server, has central sign it in
// exchange for a one-time token, and keeps the resulting identity (key,
// certificate naming the district, central's pinned CA) in the agent's
// data directory for every later connection to central.
//
// Trust comes from the token, not from host names or the public PKI: the
// token carries the fingerprint of central's CA, and the agent talks only
// to a server whose certificate chains to that CA.
package enroll

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/proto/identity"
	"github.com/vigil-cctv/vigil/storage"
)

// Errors of enrolment and of Load, for callers that react to them; the
// message of the wrapping error says the rest.
var (
	// ErrNotEnrolled: the data directory holds no identity (Load).
	ErrNotEnrolled = errors.New("agent not enrolled")
	// ErrAlreadyEnrolled: the data directory holds an identity and
	// Options.Force is not set.
	ErrAlreadyEnrolled = errors.New("already enrolled")
	// ErrCAMismatch: the server is not the central that made the token (or
	// someone is in between).
	ErrCAMismatch = errors.New("central's CA does not match the token's fingerprint")
	// ErrRefused: central refused the token or the request.
	ErrRefused = errors.New("central refused enrolment")
	// ErrBadResponse: central answered with a certificate the agent cannot
	// use; nothing is written.
	ErrBadResponse = errors.New("central sent an unusable certificate")
)

// enrollTimeout bounds an enrolment whose context has no deadline, so that
// a server that accepts connections and never answers does not hang the
// command.
const enrollTimeout = 30 * time.Second

// Options of Enroll.
type Options struct {
	// Central is central's agent listener, host:port.
	Central string
	// Token is the token printed by `vigil central token create`.
	Token string
	// DataDir is the agent's data directory; the identity goes in its
	// identity/ subdirectory.
	DataDir string
	// District is the district this agent believes it serves. When set,
	// central refuses (without spending the token) a token made for
	// another. Empty means the token's district.
	District string
	// Force replaces an existing identity.
	Force bool
	// Logger receives one line per enrolment; nil discards.
	Logger *slog.Logger
}

// Enroll makes a key, has central certify it for the token's district, and
// stores the identity under DataDir. Nothing is written unless every check
// of central's answer passes, and an existing identity is kept unless
// Force is set.
func Enroll(ctx context.Context, opts Options) (*Identity, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "enroll")
	tok, err := identity.ParseToken(opts.Token)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	if _, _, err := net.SplitHostPort(opts.Central); err != nil {
		return nil, fmt.Errorf("enroll: central address %q: want host:port", opts.Central)
	}
	if opts.District != "" {
		if err := storage.ValidateName("district", opts.District); err != nil {
			return nil, fmt.Errorf("enroll: %w", err)
		}
	}
	if opts.DataDir == "" {
		return nil, errors.New("enroll: no data directory")
	}
	// Before contacting central: refusing afterwards would spend the token
	// for nothing.
	if err := checkNotEnrolled(opts.DataDir, opts.Force); err != nil {
		return nil, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("enroll: generate key: %w", err)
	}
	cn := "agent"
	if opts.District != "" {
		cn += ":" + opts.District
	}
	// Central ignores the names in the request; it proves we hold the key.
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		return nil, fmt.Errorf("enroll: certificate request: %w", err)
	}

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, enrollTimeout)
		defer cancel()
	}
	pin := &pinCheck{verify: identity.VerifyPinned(tok.Fingerprint)}
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The pinned CA is the trust anchor, checked by VerifyPeerCertificate;
		// host names and the system roots are not what is trusted.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: pin.check,
	}
	// passthrough: the address goes to the dialer as it is, so a bad host
	// name fails with the resolver's own error.
	conn, err := grpc.NewClient("passthrough:///"+opts.Central, grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)))
	if err != nil {
		return nil, fmt.Errorf("enroll: central %s: %w", opts.Central, err)
	}
	defer conn.Close()
	resp, err := agentv1.NewEnrollmentClient(conn).Enroll(ctx, &agentv1.EnrollRequest{
		Token: tok.String(), Csr: csr, District: opts.District,
	})
	if err != nil {
		return nil, explain(err, pin.failure(), opts.Central)
	}

	// Central has spent the token by now: a failure from here on needs a
	// new one, which the error says.
	id, err := checkResponse(resp, tok, opts.District, key)
	if err != nil {
		return nil, fmt.Errorf("%w (the token is spent; make a new one)", err)
	}
	id.Central = opts.Central
	id.EnrolledAt = time.Now().UTC().Truncate(time.Second)
	if err := writeIdentity(opts.DataDir, id, opts.Force, logger); err != nil {
		return nil, fmt.Errorf("%w (the token is spent; make a new one)", err)
	}
	logger.Info("enrolled", "district", id.District, "central", id.Central,
		"ca_fingerprint", id.CAFingerprint, "not_after", id.cert.NotAfter, "dir", id.Dir)
	return id, nil
}

// pinCheck remembers why the pinned-CA check failed: gRPC reports a failed
// handshake as an unavailable server, which would hide that the server is
// the wrong one.
type pinCheck struct {
	verify func([][]byte, [][]*x509.Certificate) error
	mu     sync.Mutex
	err    error
}

func (p *pinCheck) check(raw [][]byte, chains [][]*x509.Certificate) error {
	err := p.verify(raw, chains)
	if err != nil {
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
	}
	return err
}

func (p *pinCheck) failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// explain turns a failed call into one line that says what to do.
func explain(err, pinErr error, addr string) error {
	if pinErr != nil {
		return fmt.Errorf("enroll: %w (is %s the central that made the token?): %v", ErrCAMismatch, addr, pinErr)
	}
	st := status.Convert(err)
	switch st.Code() {
	case codes.Unauthenticated, codes.PermissionDenied, codes.FailedPrecondition, codes.InvalidArgument:
		return fmt.Errorf("enroll: %w: %s", ErrRefused, st.Message())
	case codes.Unavailable:
		// gRPC wraps the dialer's error in its own words; the dialer's are
		// the ones that say what is wrong.
		msg := st.Message()
		if _, dialErr, ok := strings.Cut(msg, "Error while dialing: "); ok {
			msg = strings.TrimSuffix(dialErr, `"`)
		}
		return fmt.Errorf("enroll: cannot reach central at %s: %s", addr, msg)
	case codes.DeadlineExceeded:
		return fmt.Errorf("enroll: central at %s did not answer in time: %s", addr, st.Message())
	case codes.Canceled:
		return fmt.Errorf("enroll: %w", err)
	}
	return fmt.Errorf("enroll: central at %s: %s: %s", addr, st.Code(), st.Message())
}

// checkResponse verifies central's answer: the CA is the pinned one, the
// certificate chains to it, is for client authentication, names exactly one
// district (the one asked for, if any, and the one central says), and
// certifies our key.
func checkResponse(resp *agentv1.EnrollResponse, tok identity.Token, wantDistrict string, key *ecdsa.PrivateKey) (*Identity, error) {
	ca, err := x509.ParseCertificate(resp.GetCaCertificate())
	if err != nil {
		return nil, fmt.Errorf("enroll: %w: CA certificate: %v", ErrBadResponse, err)
	}
	if identity.Fingerprint(ca) != tok.Fingerprint {
		return nil, fmt.Errorf("enroll: %w: central returned a CA certificate with fingerprint %s", ErrCAMismatch, identity.Fingerprint(ca))
	}
	if !ca.IsCA {
		return nil, fmt.Errorf("enroll: %w: the pinned certificate is not a CA", ErrBadResponse)
	}
	cert, err := x509.ParseCertificate(resp.GetCertificate())
	if err != nil {
		return nil, fmt.Errorf("enroll: %w: %v", ErrBadResponse, err)
	}
	if err := identity.VerifyLeaf(cert, ca, x509.ExtKeyUsageClientAuth); err != nil {
		return nil, fmt.Errorf("enroll: %w: %v", ErrBadResponse, err)
	}
	district, err := identity.DistrictFromCert(cert)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w: %v", ErrBadResponse, err)
	}
	if district != resp.GetDistrict() {
		return nil, fmt.Errorf("enroll: %w: certificate names district %q but central said %q", ErrBadResponse, district, resp.GetDistrict())
	}
	if wantDistrict != "" && district != wantDistrict {
		return nil, fmt.Errorf("enroll: %w: certificate is for district %q, not %q", ErrBadResponse, district, wantDistrict)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("enroll: %w: the certificate is not for our key", ErrBadResponse)
	}
	return newIdentity(district, tok.Fingerprint, key, cert, ca), nil
}

// checkNotEnrolled refuses to go on when dataDir holds an identity, unless
// force.
func checkNotEnrolled(dataDir string, force bool) error {
	dir := identityDir(dataDir)
	_, err := os.Lstat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("enroll: %w", err)
	case force:
		return nil
	}
	what := dir
	if id, lerr := Load(dataDir); lerr == nil {
		what = fmt.Sprintf("%s (district %q, central %s)", dir, id.District, id.Central)
	}
	return fmt.Errorf("enroll: %w: %s; force to replace it", ErrAlreadyEnrolled, what)
}
