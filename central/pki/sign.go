package pki

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net/url"
	"time"

	"github.com/vigil-cctv/vigil/proto/identity"
	"github.com/vigil-cctv/vigil/storage"
)

// DefaultAgentValidity is how long an agent certificate lasts when
// SignAgent is given no validity.
const DefaultAgentValidity = 365 * day

// RSA key sizes accepted in an agent's certificate request. Below 2048
// bits is breakable; above 8192 only makes every handshake slow.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// SignAgent issues the client certificate of the agent of district for the
// key in csrDER (PKCS #10, DER). The request only proves that the agent
// holds the key: whatever names it asks for are ignored, and the only name
// in the certificate is the district, which the caller took from the
// enrolment token. A validity of 0 means DefaultAgentValidity; the
// certificate never outlives the CA.
func (ca *CA) SignAgent(csrDER []byte, district string, validity time.Duration) ([]byte, error) {
	if err := storage.ValidateName("district", district); err != nil {
		return nil, fmt.Errorf("pki: sign agent: %w", err)
	}
	switch {
	case validity < 0:
		return nil, fmt.Errorf("pki: sign agent: negative validity %v", validity)
	case validity == 0:
		validity = DefaultAgentValidity
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("pki: %w: %v", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("pki: %w: signature: %v", ErrBadCSR, err)
	}
	switch pub := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		// ParseCertificateRequest accepts only the NIST curves.
	case *rsa.PublicKey:
		if bits := pub.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return nil, fmt.Errorf("pki: %w: RSA key of %d bits (want %d to %d)", ErrBadCSR, bits, minRSABits, maxRSABits)
		}
	default:
		return nil, fmt.Errorf("pki: %w: %T keys are not accepted (use ECDSA, or RSA of at least %d bits)", ErrBadCSR, pub, minRSABits)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := ca.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"vigil"}, CommonName: "agent:" + district},
		URIs:         []*url.URL{identity.DistrictURI(district)},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     ca.clampNotAfter(now.Add(validity)),
		// TLS 1.3 clients only sign with their key.
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign agent certificate: %w", err)
	}
	return der, nil
}
