package enroll

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/vigil-cctv/vigil/central/pki"
	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/proto/identity"
)

// syncBuffer is a log sink safe for concurrent writers.
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

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// mustDB opens a bbolt database closed when the test ends.
func mustDB(t testing.TB, path string) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustTokens(t testing.TB, now func() time.Time) (*Tokens, *bbolt.DB) {
	t.Helper()
	db := mustDB(t, filepath.Join(t.TempDir(), "central.db"))
	tokens, err := NewTokens(db, now)
	if err != nil {
		t.Fatal(err)
	}
	return tokens, db
}

// testCentral is the enrolment side of a central, serving on loopback.
type testCentral struct {
	ca     *pki.CA
	tokens *Tokens
	db     *bbolt.DB
	clock  *clock
	addr   string
	logs   *syncBuffer
	calls  atomic.Int32 // Enroll calls that reached the service
	link   *linkStub
}

// startCentral serves the Enrollment service and a Link stub that reports
// the district of each agent's certificate, over TLS with the agents'
// configuration of a fresh CA, on a random loopback port.
func startCentral(t *testing.T) *testCentral {
	t.Helper()
	logger, logs := testLogger(t)
	c := &testCentral{clock: newClock(), logs: logs, link: &linkStub{seen: make(chan seenAgent, 10)}}
	var err error
	if c.ca, _, err = pki.LoadOrCreate(t.TempDir(), logger); err != nil {
		t.Fatal(err)
	}
	c.tokens, c.db = mustTokens(t, c.clock.Now)
	serverCert, err := c.ca.ServerCertificate([]string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	count := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		c.calls.Add(1)
		return handler(ctx, req)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(c.ca.AgentTLSConfig(serverCert))), grpc.UnaryInterceptor(count))
	agentv1.RegisterEnrollmentServer(srv, NewService(c.ca, c.tokens, 0, logger))
	agentv1.RegisterLinkServer(srv, c.link)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	c.addr = lis.Addr().String()
	return c
}

// token makes a token of district for this central.
func (c *testCentral) token(t *testing.T, district string) identity.Token {
	t.Helper()
	tok, _, err := c.tokens.Create(district, 0, c.ca.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// used reads whether the token with secret is spent, from the database.
func (c *testCentral) used(t *testing.T, secret string) bool {
	t.Helper()
	var rec tokenRecord
	err := c.db.View(func(tx *bbolt.Tx) error {
		return json.Unmarshal(tx.Bucket(bucketTokens).Get(secretKey(secret)), &rec)
	})
	if err != nil {
		t.Fatal(err)
	}
	return rec.Used
}

// known reports whether central stores a token with secret.
func (c *testCentral) known(t *testing.T, secret string) bool {
	t.Helper()
	var found bool
	err := c.db.View(func(tx *bbolt.Tx) error {
		found = tx.Bucket(bucketTokens).Get(secretKey(secret)) != nil
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

type linkStub struct {
	agentv1.UnimplementedLinkServer
	seen chan seenAgent
}

type seenAgent struct{ cert, claimed string }

// Connect does what the Link server will: the district is the
// certificate's; the one in the Hello is only a claim.
func (l *linkStub) Connect(stream agentv1.Link_ConnectServer) error {
	district, err := pki.AgentDistrict(stream.Context())
	if err != nil {
		return err
	}
	msg, err := stream.Recv()
	if err != nil {
		return err
	}
	l.seen <- seenAgent{cert: district, claimed: msg.GetHello().GetDistrict()}
	return stream.Send(&agentv1.CentralMessage{Body: &agentv1.CentralMessage_Welcome{Welcome: &agentv1.Welcome{}}})
}

// dial connects to addr as an agent does: central's CA pinned by
// fingerprint, host names not checked, cert (if any) as client
// certificate.
func dial(t *testing.T, addr, pin string, cert *tls.Certificate) *grpc.ClientConn {
	t.Helper()
	conf := &tls.Config{
		MinVersion:            tls.VersionTLS13,
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: identity.VerifyPinned(pin),
	}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// agent is the agent's side of enrolment, written out here: this package
// may not import the agent's.
type agent struct {
	key *ecdsa.PrivateKey
	csr []byte
}

func newAgent(t testing.TB) *agent {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return &agent{key: key, csr: csr}
}

// enrol calls Enroll at addr, pinning the token's fingerprint.
func (a *agent) enrol(t *testing.T, addr string, tok string, district string) (*agentv1.EnrollResponse, error) {
	t.Helper()
	pin := strings.Repeat("0", 64)
	if parsed, err := identity.ParseToken(tok); err == nil {
		pin = parsed.Fingerprint
	}
	return a.enrolPinned(t, addr, pin, &agentv1.EnrollRequest{Token: tok, Csr: a.csr, District: district})
}

func (a *agent) enrolPinned(t *testing.T, addr, pin string, req *agentv1.EnrollRequest) (*agentv1.EnrollResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return agentv1.NewEnrollmentClient(dial(t, addr, pin, nil)).Enroll(ctx, req)
}

// link opens the Link with the enrolled certificate, claiming district, and
// waits for central's answer.
func (a *agent) link(t *testing.T, addr, pin string, certDER []byte, claimed string) error {
	t.Helper()
	conn := dial(t, addr, pin, &tls.Certificate{Certificate: [][]byte{certDER}, PrivateKey: a.key})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := agentv1.NewLinkClient(conn).Connect(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&agentv1.AgentMessage{Body: &agentv1.AgentMessage_Hello{Hello: &agentv1.Hello{District: claimed}}}); err != nil {
		_, err = stream.Recv()
		return err
	}
	_, err = stream.Recv()
	return err
}
