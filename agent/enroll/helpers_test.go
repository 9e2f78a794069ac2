package enroll

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/proto/identity"
)

// The agent may not import central's packages, so its tests run against a
// small central of their own: a CA made here and an Enrollment service
// whose answers each test can replace, which is also how a broken or
// malicious central is played.

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger(t testing.TB) (*slog.Logger, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

var serial atomic.Int64

// testCA is a certificate authority for tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key := mustKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: "test central CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) fingerprint() string { return identity.Fingerprint(ca.cert) }

// issue signs tmpl for pub, filling serial and validity when unset.
func (ca *testCA) issue(t testing.TB, tmpl *x509.Certificate, pub crypto.PublicKey) []byte {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(serial.Add(1))
	if tmpl.NotAfter.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// agentTemplate is what central issues to an agent of district.
func agentTemplate(district string) *x509.Certificate {
	return &x509.Certificate{
		Subject: pkix.Name{CommonName: "agent:" + district}, URIs: []*url.URL{identity.DistrictURI(district)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

// serverCert is central's listener certificate, with the CA in its chain.
func (ca *testCA) serverCert(t testing.TB) tls.Certificate {
	t.Helper()
	key := mustKey(t)
	der := ca.issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "central"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, &key.PublicKey)
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key}
}

// fakeCentral serves Enrollment over TLS on loopback. By default it signs
// the request's key for district, like central.
type fakeCentral struct {
	agentv1.UnimplementedEnrollmentServer
	ca       *testCA
	district string
	addr     string
	calls    atomic.Int32

	mu      sync.Mutex
	last    *agentv1.EnrollRequest
	respond func(t testing.TB, req *agentv1.EnrollRequest, csr *x509.CertificateRequest) (*agentv1.EnrollResponse, error)
	t       testing.TB
}

func startFake(t *testing.T, district string) *fakeCentral {
	t.Helper()
	f := &fakeCentral{ca: newTestCA(t), district: district, t: t}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{f.ca.serverCert(t)},
	})))
	agentv1.RegisterEnrollmentServer(srv, f)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	f.addr = lis.Addr().String()
	return f
}

// token is a token carrying this central's fingerprint.
func (f *fakeCentral) token() identity.Token {
	return identity.Token{Fingerprint: f.ca.fingerprint(), Secret: strings.Repeat("s", 43)}
}

func (f *fakeCentral) setRespond(r func(t testing.TB, req *agentv1.EnrollRequest, csr *x509.CertificateRequest) (*agentv1.EnrollResponse, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.respond = r
}

func (f *fakeCentral) lastRequest() *agentv1.EnrollRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func (f *fakeCentral) Enroll(_ context.Context, req *agentv1.EnrollRequest) (*agentv1.EnrollResponse, error) {
	f.calls.Add(1)
	f.mu.Lock()
	f.last = req
	respond := f.respond
	f.mu.Unlock()
	csr, err := x509.ParseCertificateRequest(req.GetCsr())
	if err != nil || csr.CheckSignature() != nil {
		return nil, status.Error(codes.InvalidArgument, "bad certificate request")
	}
	if respond != nil {
		return respond(f.t, req, csr)
	}
	return &agentv1.EnrollResponse{
		Certificate: f.ca.issue(f.t, agentTemplate(f.district), csr.PublicKey), CaCertificate: f.ca.cert.Raw, District: f.district,
	}, nil
}

// options are Enroll's options against f into a fresh data directory.
func (f *fakeCentral) options(t *testing.T) Options {
	logger, _ := testLogger(t)
	return Options{Central: f.addr, Token: f.token().String(), DataDir: t.TempDir(), District: f.district, Logger: logger}
}

func mustEnroll(t *testing.T, opts Options) *Identity {
	t.Helper()
	id, err := Enroll(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
