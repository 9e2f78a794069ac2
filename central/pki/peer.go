package pki

import (
	"context"
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
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", ErrNoTLS
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", ErrNoTLS
	}
	// Only verified chains count: PeerCertificates alone is whatever the
	// client sent.
	chains := info.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		return "", ErrNoClientCert
	}
	district, err := identity.DistrictFromCert(chains[0][0])
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoDistrict, err)
	}
	return district, nil
}
