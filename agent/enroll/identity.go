package enroll

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vigil-cctv/vigil/proto/identity"
	"github.com/vigil-cctv/vigil/storage"
)

// Files of an identity, under <data dir>/identity/.
const (
	identitySubdir = "identity"
	keyFile        = "agent.key"
	certFile       = "agent.crt"
	caFile         = "ca.crt"
	centralFile    = "central.json"
)

// RenewBefore is how long before its certificate expires an identity says
// it expires soon: a month to enrol again.
const RenewBefore = 30 * 24 * time.Hour

// Identity is who the agent is to central: its district, its key and
// certificate, and central's pinned CA.
type Identity struct {
	District      string
	Central       string // host:port of central's agent listener
	CAFingerprint string
	EnrolledAt    time.Time
	Dir           string // where the files are

	key  crypto.Signer
	cert *x509.Certificate
	ca   *x509.Certificate
}

func newIdentity(district, fingerprint string, key crypto.Signer, cert, ca *x509.Certificate) *Identity {
	return &Identity{District: district, CAFingerprint: fingerprint, key: key, cert: cert, ca: ca}
}

// centralInfo is central.json.
type centralInfo struct {
	Address       string    `json:"address"`
	CAFingerprint string    `json:"ca_fingerprint"`
	District      string    `json:"district"`
	EnrolledAt    time.Time `json:"enrolled_at"`
}

// Certificate is the agent's certificate.
func (id *Identity) Certificate() *x509.Certificate { return id.cert }

// CACertificate is central's pinned CA certificate.
func (id *Identity) CACertificate() *x509.Certificate { return id.ca }

// ExpiresSoon reports whether the certificate expires within RenewBefore
// of now; the agent should warn, since an expired certificate cuts it off
// from central.
func (id *Identity) ExpiresSoon(now time.Time) bool {
	return id.cert.NotAfter.Sub(now) < RenewBefore
}

// ClientTLS is the TLS configuration of connections to central: the
// agent's certificate, and central accepted only if its chain holds the
// pinned CA and its certificate chains to it. Host names are not checked
// (InsecureSkipVerify): central is reached by whatever address works from
// the district, and the pinned CA, not a name, is what is trusted.
func (id *Identity) ClientTLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(id.ca)
	cert := &tls.Certificate{Certificate: [][]byte{id.cert.Raw}, PrivateKey: id.key, Leaf: id.cert}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Always sent, whatever CAs the server lists as acceptable: a central
		// that does not accept it then fails the handshake with a clear
		// alert instead of seeing an anonymous client.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil },
		// Unused while InsecureSkipVerify is set, but says which CA is meant.
		RootCAs:               pool,
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: identity.VerifyPinned(id.CAFingerprint),
	}
}

func identityDir(dataDir string) string { return filepath.Join(dataDir, identitySubdir) }

// Load reads the identity kept under dataDir and checks it: the key is
// private to its owner and matches the certificate, the certificate chains
// to the pinned CA, names the district of central.json and has not
// expired. ErrNotEnrolled when there is no identity directory.
func Load(dataDir string) (*Identity, error) {
	return load(dataDir, time.Now())
}

func load(dataDir string, now time.Time) (*Identity, error) {
	dir := identityDir(dataDir)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("enroll: %w (no %s)", ErrNotEnrolled, dir)
	} else if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("enroll: identity in %s: "+format+"; enrol again", append([]any{dir}, args...)...)
	}

	data, err := os.ReadFile(filepath.Join(dir, centralFile))
	if err != nil {
		return nil, bad("%v", err)
	}
	var info centralInfo
	if err := json.Unmarshal(data, &info); err != nil {
		return nil, bad("%s: %v", centralFile, err)
	}
	if info.Address == "" || info.CAFingerprint == "" {
		return nil, bad("%s lacks the central address or CA fingerprint", centralFile)
	}
	if err := storage.ValidateName("district", info.District); err != nil {
		return nil, bad("%s: %v", centralFile, err)
	}
	key, err := readKey(filepath.Join(dir, keyFile))
	if err != nil {
		return nil, bad("%v", err)
	}
	cert, err := readCert(filepath.Join(dir, certFile))
	if err != nil {
		return nil, bad("%v", err)
	}
	ca, err := readCert(filepath.Join(dir, caFile))
	if err != nil {
		return nil, bad("%v", err)
	}
	if fp := identity.Fingerprint(ca); fp != info.CAFingerprint {
		return nil, bad("%s is not the CA pinned in %s", caFile, centralFile)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, bad("%s does not match %s", keyFile, certFile)
	}
	if !now.Before(cert.NotAfter) {
		return nil, bad("the certificate expired on %s", cert.NotAfter.Format(time.RFC3339))
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, bad("%s is not issued by the pinned CA: %v", certFile, err)
	}
	district, err := identity.DistrictFromCert(cert)
	if err != nil {
		return nil, bad("%s: %v", certFile, err)
	}
	if district != info.District {
		return nil, bad("%s names district %q but %s says %q", certFile, district, centralFile, info.District)
	}
	id := newIdentity(district, info.CAFingerprint, key, cert, ca)
	id.Central, id.EnrolledAt, id.Dir = info.Address, info.EnrolledAt, dir
	return id, nil
}

// readKey reads a PKCS#8 PEM key that only its owner can read.
func readKey(path string) (crypto.Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	// Like ssh: a key others can read may already be someone else's.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others (mode %04o): chmod 600 it, and treat the key as compromised if others did read it", path, perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s is corrupt: no PEM \"PRIVATE KEY\" block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s is corrupt: %w", path, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: %T cannot sign", path, k)
	}
	return signer, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s is corrupt: no PEM \"CERTIFICATE\" block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s is corrupt: %w", path, err)
	}
	return cert, nil
}
