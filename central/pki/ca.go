// Package pki is central's own certificate authority.
//
// Central makes its CA at first start and never replaces it: every enrolled
// agent pins the CA's fingerprint, so a new CA would mean enrolling every
// agent again. The CA signs the agents' client certificates, whose only
// name is their district (the one fact central trusts about who is at the
// other end of an agent connection), and the server certificate of
// central's listeners, which is served together with the CA certificate so
// that clients can pin the CA by fingerprint instead of trusting host names.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vigil-cctv/vigil/proto/identity"
)

// Files in the CA directory.
const (
	caKeyFile  = "ca.key"
	caCertFile = "ca.crt"
	// caCertPending is the name pattern (os.CreateTemp) of a new CA's
	// certificate until its key is written. Unique, so that two centrals
	// started at once on one directory cannot swap certificates: the key,
	// written with O_EXCL, decides which one wins.
	caCertPending  = "ca.crt.new-*"
	serverKeyFile  = "server.key"
	serverCertFile = "server.crt"
)

const (
	day = 24 * time.Hour

	caValidity = 10 * 365 * day
	// caWarnBefore is how early central starts saying that its CA will
	// expire: replacing it means enrolling every agent again, which takes
	// planning.
	caWarnBefore = 365 * day

	// clockSkew backdates NotBefore so that a peer whose clock is a little
	// behind still accepts a certificate issued a moment ago.
	clockSkew = 5 * time.Minute
)

// CA is central's certificate authority. Its methods are safe for
// concurrent use.
type CA struct {
	dir    string
	cert   *x509.Certificate
	key    crypto.Signer
	pem    []byte
	fp     string
	logger *slog.Logger
	now    func() time.Time // replaced by tests that move the clock

	mu sync.Mutex // serialises the server certificate's files
}

// LoadOrCreate loads the CA kept in dir, or makes a new one when dir holds
// none; created reports which. An existing key is never overwritten: a
// key without its certificate, or the reverse, is an error to resolve by
// hand, because guessing would silently cut off every enrolled agent.
func LoadOrCreate(dir string, logger *slog.Logger) (ca *CA, created bool, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ca = &CA{dir: dir, logger: logger.With("component", "pki"), now: time.Now}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("pki: %w", err)
	}
	keyPath, certPath := ca.path(caKeyFile), ca.path(caCertFile)
	keyErr, certErr := exists(keyPath), exists(certPath)
	switch {
	case keyErr == nil && certErr == nil:
		err = ca.load()
	case errors.Is(keyErr, fs.ErrNotExist) && errors.Is(certErr, fs.ErrNotExist):
		err = ca.create()
		created = err == nil
	case keyErr == nil && errors.Is(certErr, fs.ErrNotExist):
		err = ca.finishCreate()
	case errors.Is(keyErr, fs.ErrNotExist) && certErr == nil:
		err = fmt.Errorf("pki: %s exists without its key %s: restore the key from a backup "+
			"(a new CA would need every agent to enrol again)", certPath, keyPath)
	case keyErr != nil:
		err = fmt.Errorf("pki: %w", keyErr)
	default:
		err = fmt.Errorf("pki: %w", certErr)
	}
	if err != nil {
		return nil, false, err
	}
	if created {
		ca.logger.Info("created certificate authority", "dir", dir, "fingerprint", ca.Fingerprint(),
			"not_after", ca.cert.NotAfter)
	} else {
		ca.logger.Info("loaded certificate authority", "dir", dir, "fingerprint", ca.Fingerprint(),
			"not_after", ca.cert.NotAfter)
	}
	if left := ca.cert.NotAfter.Sub(ca.now()); left < caWarnBefore {
		ca.logger.Warn("certificate authority expires soon; every agent will have to enrol again with a new CA",
			"not_after", ca.cert.NotAfter)
	}
	return ca, created, nil
}

// Certificate is the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Fingerprint is the CA certificate's fingerprint, which enrolment tokens
// carry and agents pin.
func (ca *CA) Fingerprint() string { return ca.fp }

// PEM is the CA certificate in PEM form.
func (ca *CA) PEM() []byte { return bytes.Clone(ca.pem) }

func (ca *CA) path(name string) string { return filepath.Join(ca.dir, name) }

// create makes a new CA. The certificate is written first under a pending
// name and renamed into place only after the key is durably written: a
// crash in between leaves a key and a pending certificate, which
// finishCreate completes, rather than a key without a certificate.
func (ca *CA) create() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pki: generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return err
	}
	now := ca.now()
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"vigil"}, CommonName: "vigil central CA " + host},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// No intermediates: the CA signs agents and central's listeners only.
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("pki: create CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("pki: encode CA key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	pending, err := writeTempSync(ca.dir, caCertPending, certPEM, 0o644)
	if err != nil {
		return fmt.Errorf("pki: write CA certificate: %w", err)
	}
	if err := writeNewFile(ca.path(caKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		err = fmt.Errorf("pki: write CA key: %w", err)
		if errors.Is(err, fs.ErrExist) {
			err = fmt.Errorf("pki: another central is creating a CA in %s at the same time", ca.dir)
		}
		return errors.Join(err, os.Remove(pending))
	}
	if err := os.Rename(pending, ca.path(caCertFile)); err != nil {
		return fmt.Errorf("pki: write CA certificate: %w", err)
	}
	if err := syncDir(ca.dir); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return ca.load()
}

// finishCreate completes a creation interrupted between writing the key and
// renaming its certificate into place: among the pending certificates, the
// one that matches the key.
func (ca *CA) finishCreate() error {
	keyPath := ca.path(caKeyFile)
	key, err := readKey(keyPath)
	if err != nil {
		return err
	}
	candidates, err := filepath.Glob(ca.path(caCertPending))
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	var pending string
	for _, c := range candidates {
		if cert, _, err := readCert(c); err == nil && publicKeysEqual(cert.PublicKey, key.Public()) {
			pending = c
			break
		}
	}
	if pending == "" {
		return fmt.Errorf("pki: %s exists without its certificate %s: restore the certificate from a backup "+
			"(a new CA would need every agent to enrol again)", keyPath, ca.path(caCertFile))
	}
	if err := os.Rename(pending, ca.path(caCertFile)); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := syncDir(ca.dir); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	ca.logger.Warn("completed a CA creation interrupted by a crash", "dir", ca.dir)
	return ca.load()
}

func (ca *CA) load() error {
	keyPath, certPath := ca.path(caKeyFile), ca.path(caCertFile)
	key, err := readKey(keyPath)
	if err != nil {
		return err
	}
	cert, certPEM, err := readCert(certPath)
	if err != nil {
		return err
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return fmt.Errorf("pki: %s is not a CA certificate", certPath)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return fmt.Errorf("pki: %s is not self-signed: %w", certPath, err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return fmt.Errorf("pki: %s and %s do not match (key of another CA?)", keyPath, certPath)
	}
	if now := ca.now(); !now.Before(cert.NotAfter) {
		return fmt.Errorf("pki: CA certificate %s expired on %s; a new CA means every agent enrols again "+
			"(move ca.key and ca.crt aside to make one)", certPath, cert.NotAfter.Format(time.RFC3339))
	}
	ca.key, ca.cert, ca.pem, ca.fp = key, cert, certPEM, identity.Fingerprint(cert)
	return nil
}

// readKey reads a PKCS#8 PEM private key that only its owner can read.
func readKey(path string) (crypto.Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	// Like ssh: a key others can read may already be someone else's.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("pki: %s is readable by others (mode %04o); chmod 600 it and consider the key compromised if others did read it", path, perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("pki: %s is corrupt: no PEM \"PRIVATE KEY\" block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s is corrupt: %w", path, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: %s: %T cannot sign", path, k)
	}
	return signer, nil
}

// readCert reads a PEM certificate and returns it with its PEM bytes.
func readCert(path string) (*x509.Certificate, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("pki: %s is corrupt: no PEM \"CERTIFICATE\" block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %s is corrupt: %w", path, err)
	}
	return cert, pem.EncodeToMemory(block), nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// serialLimit bounds serial numbers to 128 random bits.
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// randomSerial returns a random, positive 128-bit serial number: random so
// that serials neither collide nor can be predicted.
func randomSerial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("pki: serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}
