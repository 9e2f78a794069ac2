// Package identity is how agents and central recognise each other: the
// district named in an agent's certificate, the fingerprint of central's
// CA, the one-time enrolment token that carries it, and the check of a
// server certificate against a pinned CA. Agent and central both use it;
// neither imports the other.
package identity

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/vigil-cctv/vigil/storage"
)

// districtHost is the host part of the URI SAN naming an agent's district:
// vigil://district/<id>.
const (
	uriScheme    = "vigil"
	districtHost = "district"
)

// DistrictURI is the URI SAN put in an agent certificate.
func DistrictURI(district string) *url.URL {
	return &url.URL{Scheme: uriScheme, Host: districtHost, Path: "/" + district}
}

// ErrNoDistrict means a certificate names no district, or more than one.
var ErrNoDistrict = errors.New("certificate names no single district")

// DistrictFromCert returns the district an agent certificate was issued for.
func DistrictFromCert(cert *x509.Certificate) (string, error) {
	var found []string
	for _, u := range cert.URIs {
		if u.Scheme == uriScheme && u.Host == districtHost {
			found = append(found, strings.TrimPrefix(u.Path, "/"))
		}
	}
	if len(found) != 1 {
		return "", ErrNoDistrict
	}
	if err := storage.ValidateName("district", found[0]); err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoDistrict, err)
	}
	return found[0], nil
}

// Fingerprint is the lowercase hex SHA-256 of a certificate's DER bytes.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// VerifyPinned returns a tls.Config.VerifyPeerCertificate function for use
// with InsecureSkipVerify: the peer's chain must include the CA whose
// fingerprint is pinned, and the leaf must chain to it. Host names are not
// checked: the pinned CA is the trust anchor, not the public PKI.
func VerifyPinned(fingerprint string) func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	fingerprint = strings.ToLower(fingerprint)
	return func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		if len(rawCerts) == 0 {
			return errors.New("central sent no certificate")
		}
		certs := make([]*x509.Certificate, 0, len(rawCerts))
		for _, raw := range rawCerts {
			c, err := x509.ParseCertificate(raw)
			if err != nil {
				return fmt.Errorf("central sent a bad certificate: %w", err)
			}
			certs = append(certs, c)
		}
		var ca *x509.Certificate
		for _, c := range certs {
			if c.IsCA && Fingerprint(c) == fingerprint {
				ca = c
			}
		}
		if ca == nil {
			return fmt.Errorf("central's CA is not the pinned one (fingerprint %s…)", short(fingerprint))
		}
		return VerifyLeaf(certs[0], ca, x509.ExtKeyUsageServerAuth)
	}
}

// VerifyLeaf checks that leaf was issued by ca for the given use.
func VerifyLeaf(leaf, ca *x509.Certificate, usage x509.ExtKeyUsage) error {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return fmt.Errorf("certificate not issued by the pinned CA: %w", err)
	}
	return nil
}

func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16]
	}
	return fp
}

// Token is a one-time enrolment token: the secret central checks, and the
// fingerprint of central's CA, so the agent can pin it before sending
// anything.
type Token struct {
	Fingerprint string // 64 hex characters
	Secret      string // 43 base64url characters (32 random bytes)
}

const tokenPrefix = "vigil-enroll-v1"

// String is the printable form: vigil-enroll-v1.<fingerprint>.<secret>.
func (t Token) String() string { return tokenPrefix + "." + t.Fingerprint + "." + t.Secret }

// ErrBadToken means a string is not an enrolment token.
var ErrBadToken = errors.New("not a vigil enrolment token")

// ParseToken reads a token printed by `vigil central token create`.
func ParseToken(s string) (Token, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 3 || parts[0] != tokenPrefix {
		return Token{}, ErrBadToken
	}
	fp, secret := parts[1], parts[2]
	if b, err := hex.DecodeString(fp); err != nil || len(b) != sha256.Size || strings.ToLower(fp) != fp {
		return Token{}, fmt.Errorf("%w: bad CA fingerprint", ErrBadToken)
	}
	if len(secret) != 43 || strings.Trim(secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		return Token{}, fmt.Errorf("%w: bad secret", ErrBadToken)
	}
	return Token{Fingerprint: fp, Secret: secret}, nil
}
