package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/proto/identity"
	"github.com/vigil-cctv/vigil/storage"
)

// agentTLS enrols an agent of district through the Enrollment service, as
// vigil agent enroll does, and returns its client configuration.
func (c *testCentral) agentTLS(t *testing.T, district string) *tls.Config {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := c.Tokens().Create(district, time.Hour, c.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(c.AgentAddr(), grpc.WithTransportCredentials(credentials.NewTLS(pinned(c.Fingerprint()))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := agentv1.NewEnrollmentClient(conn).Enroll(context.Background(), &agentv1.EnrollRequest{Token: tok.String(), Csr: csr, District: district})
	if err != nil {
		t.Fatal(err)
	}
	cfg := pinned(c.Fingerprint())
	cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{resp.GetCertificate()}, PrivateKey: key}}
	return cfg
}

func (c *testCentral) link(t *testing.T, tlsCfg *tls.Config) agentv1.Link_ConnectClient {
	t.Helper()
	conn, err := grpc.NewClient(c.AgentAddr(), grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := agentv1.NewLinkClient(conn).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

func hello(district string) *agentv1.AgentMessage {
	return &agentv1.AgentMessage{Body: &agentv1.AgentMessage_Hello{Hello: &agentv1.Hello{
		District: district, AgentVersion: "test", Clock: timestamppb.Now(), Cameras: []string{"gate"}, OutboxId: "outbox-1",
	}}}
}

func segmentReport(district string, seq uint64, n int) *agentv1.AgentMessage {
	start := time.Now().Add(-time.Hour).Truncate(time.Millisecond).Add(time.Duration(n) * time.Minute)
	id := strings.Repeat("0", 14) + string(rune('a'+n/16)) + string(rune('a'+n%16))
	return &agentv1.AgentMessage{Body: &agentv1.AgentMessage_Report{Report: &agentv1.Report{
		Seq: seq, At: timestamppb.Now(), Body: &agentv1.Report_SegmentStored{SegmentStored: &agentv1.SegmentStored{Segment: &agentv1.Segment{
			Id: id, Camera: "gate", Start: timestamppb.New(start), End: timestamppb.New(start.Add(time.Minute)),
			Bytes: 10, Sha256: strings.Repeat("ab", 32), Codec: "h264", Key: storage.SegmentKey(district, "gate", start, id),
			Expires: timestamppb.New(start.Add(24 * time.Hour)),
		}}},
	}}}
}

// An agent's certificate decides its district: claiming another is refused.
func TestLinkRefusesAnotherDistrict(t *testing.T) {
	c := startCentral(t)
	stream := c.link(t, c.agentTLS(t, "north"))
	if err := stream.Send(hello("south")); err != nil {
		t.Fatal(err)
	}
	_, err := stream.Recv()
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `certificate is for district "north", not "south"`) {
		t.Fatalf("got %v", err)
	}
}

// Without a client certificate the link is refused (enrolment needs none,
// the link does).
func TestLinkNeedsClientCertificate(t *testing.T) {
	c := startCentral(t)
	stream := c.link(t, pinned(c.Fingerprint()))
	stream.Send(hello("north"))
	_, err := stream.Recv()
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("got %v", err)
	}
}

// A certificate signed by another CA does not get through TLS.
func TestLinkRefusesForeignCA(t *testing.T) {
	c := startCentral(t)
	other := startCentral(t)
	cfg := other.agentTLS(t, "north")
	cfg.VerifyPeerCertificate = identity.VerifyPinned(c.Fingerprint())
	conn, err := grpc.NewClient(c.AgentAddr(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// TLS 1.3 reports the refusal at the first read: Connect or Recv.
	stream, err := agentv1.NewLinkClient(conn).Connect(context.Background())
	if err == nil {
		stream.Send(hello("north"))
		_, err = stream.Recv()
	}
	// The client learns only that the connection broke ("unknown
	// certificate authority" or a broken pipe, depending on timing).
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("a certificate of another CA: %v", err)
	}
	if agents, _ := c.Registry().Agents(); len(agents) != 0 {
		t.Fatalf("an agent got in: %+v", agents)
	}
}

// Reports are applied once, in order; a resend after reconnecting does not
// duplicate; a gap is refused and what came before it is kept.
func TestLinkAppliesReportsOnce(t *testing.T) {
	c := startCentral(t)
	tlsCfg := c.agentTLS(t, "north")
	stream := c.link(t, tlsCfg)
	stream.Send(hello("north"))
	msg, err := stream.Recv()
	if err != nil || msg.GetWelcome() == nil || msg.GetWelcome().GetAppliedSeq() != 0 {
		t.Fatalf("welcome: %v %v", msg, err)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		stream.Send(segmentReport("north", seq, int(seq)))
	}
	var acked uint64
	for acked < 3 {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		acked = msg.GetAck().GetSeq()
	}
	stream.CloseSend()

	// Reconnect: central says where it is; a resend is harmless.
	stream = c.link(t, tlsCfg)
	stream.Send(hello("north"))
	msg, _ = stream.Recv()
	if msg.GetWelcome().GetAppliedSeq() != 3 {
		t.Fatalf("applied after reconnect: %d", msg.GetWelcome().GetAppliedSeq())
	}
	for seq := uint64(2); seq <= 4; seq++ {
		stream.Send(segmentReport("north", seq, int(seq)))
	}
	for acked < 4 {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		acked = msg.GetAck().GetSeq()
	}
	ids, _ := c.Catalog().IDs("north")
	if len(ids) != 4 {
		t.Fatalf("%d segments in the catalog, want 4", len(ids))
	}
	// A gap.
	stream.Send(segmentReport("north", 6, 6))
	for {
		_, err := stream.Recv()
		if err != nil {
			if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "resend from 5") {
				t.Fatalf("gap: %v", err)
			}
			break
		}
	}
	if ids, _ := c.Catalog().IDs("north"); len(ids) != 4 {
		t.Fatalf("%d segments after the gap", len(ids))
	}
}

// Enrolling a district again revokes its previous certificate.
func TestLinkRefusesSupersededCertificate(t *testing.T) {
	c := startCentral(t)
	old := c.agentTLS(t, "north")
	c.agentTLS(t, "north")
	stream := c.link(t, old)
	stream.Send(hello("north"))
	_, err := stream.Recv()
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "superseded") {
		t.Fatalf("old certificate: %v", err)
	}
}
