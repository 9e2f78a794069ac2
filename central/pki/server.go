package pki

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/credentials"
)

const (
	serverValidity = 365 * day
	// serverRenewBefore leaves a month for central to be restarted (the
	// certificate is reissued at start) before clients start refusing it.
	serverRenewBefore = 30 * day
)

// ServerCertificate returns the certificate of central's listeners for the
// given DNS names and IP addresses (by default localhost, 127.0.0.1, ::1
// and this machine's host name). It is kept in server.key and server.crt
// and reissued when missing, unreadable, expiring within 30 days, or made
// for other names. The chain includes the CA certificate: clients find the
// CA there and compare its fingerprint with the one they pinned.
func (ca *CA) ServerCertificate(hosts []string) (tls.Certificate, error) {
	if len(hosts) == 0 {
		hosts = defaultHosts()
	}
	dnsNames, ips, err := splitHosts(hosts)
	if err != nil {
		return tls.Certificate{}, err
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	cert, why := ca.loadServer(dnsNames, ips)
	if why == "" {
		return cert, nil
	}
	ca.logger.Info("issuing server certificate", "reason", why, "dns", dnsNames, "ips", ips)
	return ca.issueServer(dnsNames, ips)
}

func defaultHosts() []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	return hosts
}

// splitHosts sorts hosts into canonical, deduplicated DNS names and IP
// addresses, so that the same set given in another order or case does not
// cause a reissue.
func splitHosts(hosts []string) (dnsNames []string, ips []net.IP, err error) {
	var ipText []string
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if unbracketed, ok := strings.CutPrefix(h, "["); ok {
			h = strings.TrimSuffix(unbracketed, "]")
		}
		if ip := net.ParseIP(h); ip != nil {
			ipText = append(ipText, ip.String())
			continue
		}
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if !validDNSName(h) {
			return nil, nil, fmt.Errorf("pki: server certificate: %q is neither a host name nor an IP address", h)
		}
		dnsNames = append(dnsNames, h)
	}
	slices.Sort(dnsNames)
	dnsNames = slices.Compact(dnsNames)
	slices.Sort(ipText)
	for _, s := range slices.Compact(ipText) {
		ips = append(ips, net.ParseIP(s))
	}
	return dnsNames, ips, nil
}

func validDNSName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i, c := range label {
			ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' ||
				c == '*' && i == 0 && len(label) == 1
			if !ok {
				return false
			}
		}
	}
	return true
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	slices.Sort(out)
	return out
}

// loadServer returns the stored server certificate, or why it must be
// reissued.
func (ca *CA) loadServer(dnsNames []string, ips []net.IP) (tls.Certificate, string) {
	keyPath, certPath := ca.path(serverKeyFile), ca.path(serverCertFile)
	if exists(keyPath) != nil || exists(certPath) != nil {
		return tls.Certificate{}, "missing"
	}
	key, err := readKey(keyPath)
	if err != nil {
		return tls.Certificate{}, err.Error()
	}
	leaf, _, err := readCert(certPath)
	if err != nil {
		return tls.Certificate{}, err.Error()
	}
	switch {
	case !publicKeysEqual(leaf.PublicKey, key.Public()):
		return tls.Certificate{}, "server.crt does not match server.key"
	case leaf.CheckSignatureFrom(ca.cert) != nil:
		return tls.Certificate{}, "not issued by this CA"
	case leaf.NotAfter.Sub(ca.now()) < serverRenewBefore:
		return tls.Certificate{}, "expires on " + leaf.NotAfter.Format(time.RFC3339)
	case !slices.Equal(sortedLower(leaf.DNSNames), dnsNames) || !slices.Equal(ipStrings(leaf.IPAddresses), ipStrings(ips)):
		return tls.Certificate{}, "host names changed"
	}
	return tls.Certificate{Certificate: [][]byte{leaf.Raw, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}, ""
}

func sortedLower(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.ToLower(n)
	}
	slices.Sort(out)
	return out
}

func (ca *CA) issueServer(dnsNames []string, ips []net.IP) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: generate server key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return tls.Certificate{}, err
	}
	now := ca.now()
	cn := "vigil central"
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"vigil"}, CommonName: cn},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     ca.clampNotAfter(now.Add(serverValidity)),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: sign server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: sign server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: encode server key: %w", err)
	}
	// Key first: a crash between the two renames leaves a pair that does
	// not match, which the next start reissues.
	if err := writeFileSync(ca.path(serverKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: write server key: %w", err)
	}
	if err := writeFileSync(ca.path(serverCertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: write server certificate: %w", err)
	}
	if err := syncDir(ca.dir); err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// clampNotAfter keeps a certificate from outliving the CA that signs it.
func (ca *CA) clampNotAfter(t time.Time) time.Time {
	if t.After(ca.cert.NotAfter) {
		return ca.cert.NotAfter
	}
	return t
}

// AgentTLSConfig is the TLS configuration of the agents' listener. A client
// certificate is verified against this CA when given but not required:
// enrolment runs before the agent has one. Services that need an agent
// (the Link) call AgentDistrict, which refuses a connection without one.
func (ca *CA) AgentTLSConfig(server tls.Certificate) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{server},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
	}
}

// UserTLSConfig is the TLS configuration of the CLI users' listener. Users
// authenticate with tokens, not certificates.
func (ca *CA) UserTLSConfig(server tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{server},
		ClientAuth:   tls.NoClientCert,
	}
}

// AgentCredentials are the gRPC transport credentials of the agents'
// listener: AgentTLSConfig, and a log line for each refused handshake. A
// certificate refused at the TLS layer never reaches a handler, and the
// client sees little more than a closed connection (TLS 1.3 checks the
// client's certificate after the client has finished), so this log is
// where a forged or foreign certificate shows up.
func (ca *CA) AgentCredentials(server tls.Certificate) credentials.TransportCredentials {
	return &loggingCreds{TransportCredentials: credentials.NewTLS(ca.AgentTLSConfig(server)), logger: ca.logger}
}

type loggingCreds struct {
	credentials.TransportCredentials
	logger *slog.Logger
}

func (c *loggingCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		// Certificate failures are someone trying; anything else is most
		// likely a port scan or a client that went away.
		level := slog.LevelDebug
		var verr *tls.CertificateVerificationError
		if errors.As(err, &verr) {
			level = slog.LevelWarn
		}
		c.logger.Log(context.Background(), level, "agent connection refused at TLS", "client", conn.RemoteAddr().String(), "err", err)
	}
	return out, info, err
}

func (c *loggingCreds) Clone() credentials.TransportCredentials {
	return &loggingCreds{TransportCredentials: c.TransportCredentials.Clone(), logger: c.logger}
}
