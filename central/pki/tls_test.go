package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/proto/identity"
)

// linkStub is the part of the Link service this package is about: who is
// on the connection, by certificate, against what the agent claims.
type linkStub struct {
	agentv1.UnimplementedLinkServer
	seen chan seenAgent
}

type seenAgent struct{ cert, claimed string }

func (l *linkStub) Connect(stream agentv1.Link_ConnectServer) error {
	district, err := AgentDistrict(stream.Context())
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

// serveAgents runs the agents' listener of ca on a random loopback port
// with only the Link stub.
func serveAgents(t *testing.T, ca *CA) (addr string, link *linkStub) {
	t.Helper()
	server, err := ca.ServerCertificate([]string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	link = &linkStub{seen: make(chan seenAgent, 10)}
	srv := grpc.NewServer(grpc.Creds(ca.AgentCredentials(server)))
	agentv1.RegisterLinkServer(srv, link)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), link
}

// connectLink opens the Link as an agent holding cert (nil: none) and
// claiming district, with central's CA pinned, and returns central's
// first answer.
func connectLink(t *testing.T, addr, pin string, cert *tls.Certificate, claimed string, tweak ...func(*tls.Config)) error {
	t.Helper()
	conf := &tls.Config{
		MinVersion:            tls.VersionTLS13,
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: identity.VerifyPinned(pin),
		// Sent whatever the server asks for: the server, not the client,
		// must refuse a bad certificate.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if cert == nil {
				return &tls.Certificate{}, nil
			}
			return cert, nil
		},
	}
	for _, f := range tweak {
		f(conf)
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := agentv1.NewLinkClient(conn).Connect(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&agentv1.AgentMessage{Body: &agentv1.AgentMessage_Hello{Hello: &agentv1.Hello{District: claimed}}}); err != nil {
		_, err = stream.Recv() // the reason is in the status
		return err
	}
	_, err = stream.Recv()
	return err
}

// agentCert is a key and a certificate signed by ca for district.
func agentCert(t *testing.T, ca *CA, district string) *tls.Certificate {
	t.Helper()
	key := mustKey(t)
	der, err := ca.SignAgent(mustCSR(t, key, nil), district, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestAgentConnections runs real gRPC over TLS on loopback: only a
// certificate of this CA gets a district, and the district is the
// certificate's, whatever the agent claims.
func TestAgentConnections(t *testing.T) {
	ca, logs := mustCAWithLogs(t)
	other := mustCA(t)
	addr, link := serveAgents(t, ca)

	forgedKey := mustKey(t)
	// Self-signed, with the real CA's name as issuer and the right district:
	// it differs from a real one only by the signature.
	forgedTmpl := clientTemplate("agent:north", time.Now().Add(time.Hour), identity.DistrictURI("north"))
	forgedTmpl.Issuer = ca.cert.Subject
	forgedParent := &x509.Certificate{Subject: ca.cert.Subject, SubjectKeyId: ca.cert.SubjectKeyId}
	forged := &tls.Certificate{Certificate: [][]byte{signRaw(t, forgedTmpl, forgedParent, &forgedKey.PublicKey, forgedKey)}, PrivateKey: forgedKey}

	// Signed by the CA but without a district, or expired: made with the
	// CA's key directly, as SignAgent would not.
	noDistrictKey := mustKey(t)
	noDistrict := &tls.Certificate{Certificate: [][]byte{signRaw(t, clientTemplate("agent:", time.Now().Add(time.Hour)), ca.cert, &noDistrictKey.PublicKey, ca.key)}, PrivateKey: noDistrictKey}
	expiredKey := mustKey(t)
	expired := &tls.Certificate{Certificate: [][]byte{signRaw(t, clientTemplate("agent:north", time.Now().Add(-time.Minute), identity.DistrictURI("north")), ca.cert, &expiredKey.PublicKey, ca.key)}, PrivateKey: expiredKey}

	// Central's own server certificate: signed by the CA, but for servers.
	serverCert, err := ca.ServerCertificate([]string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name     string
		cert     *tls.Certificate
		claimed  string
		wantSeen string     // district the server sees; "" when refused
		wantCode codes.Code // when refused
		wantErr  string     // in the client's error, or for TLS refusals in central's log
	}{
		{"own certificate", agentCert(t, ca, "north"), "north", "north", 0, ""},
		{"another district's certificate", agentCert(t, ca, "south"), "north", "south", 0, ""},
		{"forged certificate", forged, "north", "", codes.Unavailable, "certificate signed by unknown authority"},
		{"another central's certificate", agentCert(t, other, "north"), "north", "", codes.Unavailable, "certificate signed by unknown authority"},
		{"expired certificate", expired, "north", "", codes.Unavailable, "certificate has expired"},
		{"server certificate as a client", &serverCert, "north", "", codes.Unavailable, "incompatible key usage"},
		{"no certificate", nil, "north", "", codes.Unauthenticated, "no client certificate"},
		{"no district in the certificate", noDistrict, "north", "", codes.Unauthenticated, "client certificate names no district"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := connectLink(t, addr, ca.Fingerprint(), c.cert, c.claimed)
			if c.wantSeen != "" {
				if err != nil {
					t.Fatal(err)
				}
				got := <-link.seen
				if got.cert != c.wantSeen || got.claimed != c.claimed {
					t.Fatalf("server saw %+v, want certificate district %q", got, c.wantSeen)
				}
				return
			}
			st := status.Convert(err)
			if c.wantCode == codes.Unavailable {
				// Refused during the handshake: the client only sees the
				// connection go (TLS 1.3 checks its certificate after it
				// has finished); central logs why.
				if st.Code() != codes.Unavailable {
					t.Fatalf("got %v, want Unavailable", err)
				}
				waitLog(t, logs, "level=WARN", "agent connection refused at TLS", c.wantErr)
			} else if st.Code() != c.wantCode || !strings.Contains(st.Message(), c.wantErr) {
				t.Fatalf("got %v, want %v containing %q", err, c.wantCode, c.wantErr)
			}
			select {
			case got := <-link.seen:
				t.Fatalf("refused connection reached the service as %+v", got)
			default:
			}
		})
	}

	t.Run("TLS 1.2 refused", func(t *testing.T) {
		err := connectLink(t, addr, ca.Fingerprint(), agentCert(t, ca, "north"), "north", func(c *tls.Config) {
			c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		})
		if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "protocol version") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("agent pinning another CA refuses central", func(t *testing.T) {
		err := connectLink(t, addr, other.Fingerprint(), agentCert(t, ca, "north"), "north")
		if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "not the pinned one") {
			t.Fatalf("got %v", err)
		}
	})
}

// waitLog waits for a log line holding all of parts.
func waitLog(t *testing.T, logs *syncBuffer, parts ...string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		for line := range strings.Lines(logs.String()) {
			found := true
			for _, p := range parts {
				found = found && strings.Contains(line, p)
			}
			if found {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q", parts)
		}
	}
}

func TestAgentDistrictWithoutTLS(t *testing.T) {
	if _, err := AgentDistrict(context.Background()); !errors.Is(err, ErrNoTLS) {
		t.Errorf("no peer: %v", err)
	}
	plain := peer.NewContext(context.Background(), &peer.Peer{})
	if _, err := AgentDistrict(plain); !errors.Is(err, ErrNoTLS) {
		t.Errorf("no auth info: %v", err)
	}
	noCert := peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{}}})
	if _, err := AgentDistrict(noCert); !errors.Is(err, ErrNoClientCert) {
		t.Errorf("no certificate: %v", err)
	}
	if status.Code(ErrNoClientCert) != codes.Unauthenticated {
		t.Error("sentinels must carry Unauthenticated")
	}

	// A plaintext gRPC server: its handlers see no TLS.
	got := make(chan error, 1)
	srv := grpc.NewServer()
	agentv1.RegisterLinkServer(srv, &linkFunc{f: func(stream agentv1.Link_ConnectServer) error {
		_, err := AgentDistrict(stream.Context())
		got <- err
		return err
	}})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := agentv1.NewLinkClient(conn).Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "not TLS") {
		t.Errorf("client got %v", err)
	}
	if err := <-got; !errors.Is(err, ErrNoTLS) {
		t.Errorf("server got %v", err)
	}
}

type linkFunc struct {
	agentv1.UnimplementedLinkServer
	f func(agentv1.Link_ConnectServer) error
}

func (l *linkFunc) Connect(s agentv1.Link_ConnectServer) error { return l.f(s) }

func TestUserTLSConfig(t *testing.T) {
	ca := mustCA(t)
	server, err := ca.ServerCertificate([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	c := ca.UserTLSConfig(server)
	if c.MinVersion != tls.VersionTLS13 || c.ClientAuth != tls.NoClientCert || len(c.Certificates) != 1 {
		t.Errorf("%+v", c)
	}
	a := ca.AgentTLSConfig(server)
	if a.MinVersion != tls.VersionTLS13 || a.ClientAuth != tls.VerifyClientCertIfGiven || len(a.ClientCAs.Subjects()) != 1 {
		t.Errorf("%+v", a)
	}
}
