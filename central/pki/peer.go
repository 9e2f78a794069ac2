package pki

import (
	"context"
	"crypto/x509"
	"fmt"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/vigil-cctv/vigil/proto/identity"
)

// AgentDistrict returns the district of the agent on the other end of a
// gRPC call, from the client certificate that the TLS handshake verified
// against this CA (AgentTLSConfig). It is the only trustworthy statement of
// who the agent is: whatever district an agent claims in its messages must
// be compared with this one.
func AgentDistrict(ctx context.Context) (string, error) {
	_, district, err := AgentCertificate(ctx)
	return district, err
}

// AgentCertificate is AgentDistrict that also returns the verified
// certificate itself (its serial number says which enrolment it came from).
func AgentCertificate(ctx context.Context) (*x509.Certificate, string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, "", ErrNoTLS
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil, "", ErrNoTLS
	}
	// Only verified chains count: PeerCertificates alone is whatever the
	// client sent.
	chains := info.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		return nil, "", ErrNoClientCert
	}
	district, err := identity.DistrictFromCert(chains[0][0])
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrNoDistrict, err)
	}
	return chains[0][0], district, nil
}
