package enroll

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-cctv/vigil/central/pki"
	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/proto/identity"
)

// TestEnrolEndToEnd: over real gRPC and TLS, an agent enrols with a token,
// gets a certificate naming the token's district, and with it connects as
// that district, whatever district it claims.
func TestEnrolEndToEnd(t *testing.T) {
	c := startCentral(t)
	tok := c.token(t, "north")
	a := newAgent(t)
	resp, err := a.enrol(t, c.addr, tok.String(), "north")
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(resp.GetCaCertificate())
	if err != nil || identity.Fingerprint(caCert) != tok.Fingerprint {
		t.Fatalf("CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(resp.GetCertificate())
	if err != nil {
		t.Fatal(err)
	}
	if err := identity.VerifyLeaf(cert, caCert, x509.ExtKeyUsageClientAuth); err != nil {
		t.Fatal(err)
	}
	if d, err := identity.DistrictFromCert(cert); err != nil || d != "north" || resp.GetDistrict() != "north" {
		t.Fatalf("district %q/%q %v", d, resp.GetDistrict(), err)
	}
	if !a.key.PublicKey.Equal(cert.PublicKey) {
		t.Fatal("certificate is not for the agent's key")
	}
	if !c.used(t, tok.Secret) {
		t.Fatal("token not spent")
	}

	// The new identity is accepted, and it is what central goes by.
	if err := a.link(t, c.addr, tok.Fingerprint, resp.GetCertificate(), "north"); err != nil {
		t.Fatal(err)
	}
	if got := <-c.link.seen; got.cert != "north" {
		t.Fatalf("central saw %+v", got)
	}

	// Another district's agent claiming to be north is seen as what its
	// certificate says.
	south := newAgent(t)
	southResp, err := south.enrol(t, c.addr, c.token(t, "south").String(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := south.link(t, c.addr, tok.Fingerprint, southResp.GetCertificate(), "north"); err != nil {
		t.Fatal(err)
	}
	if got := <-c.link.seen; got.cert != "south" || got.claimed != "north" {
		t.Fatalf("central saw %+v, want certificate district south", got)
	}

	logs := c.logs.String()
	if !strings.Contains(logs, `msg="agent enrolled"`) || !strings.Contains(logs, "district=north") || !strings.Contains(logs, "client=127.0.0.1:") {
		t.Errorf("enrolment not logged with district and client:\n%s", logs)
	}
	if strings.Contains(logs, tok.Secret) {
		t.Error("the token's secret is in the log")
	}
}

// TestEnrolRefusals: each way a request can be wrong gets a clear status,
// and leaves the token as it was unless it had already been spent.
func TestEnrolRefusals(t *testing.T) {
	rsaSmall, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weakCSR, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, rsaSmall)
	if err != nil {
		t.Fatal(err)
	}
	other := startCentral(t)

	cases := []struct {
		name string
		// prepare returns the request, given a fresh token of district
		// north of this central.
		prepare  func(t *testing.T, c *testCentral, tok identity.Token, a *agent) *agentv1.EnrollRequest
		code     codes.Code
		want     string
		wantUsed bool // the token is spent afterwards
	}{
		{"expired token", func(t *testing.T, c *testCentral, tok identity.Token, a *agent) *agentv1.EnrollRequest {
			c.clock.Add(DefaultTTL)
			return &agentv1.EnrollRequest{Token: tok.String(), Csr: a.csr}
		}, codes.PermissionDenied, "token expired", false},
		{"reused token", func(t *testing.T, c *testCentral, tok identity.Token, a *agent) *agentv1.EnrollRequest {
			if _, err := newAgent(t).enrol(t, c.addr, tok.String(), "north"); err != nil {
				t.Fatal(err)
			}
			return &agentv1.EnrollRequest{Token: tok.String(), Csr: a.csr, District: "north"}
		}, codes.PermissionDenied, "token already used", true},
		{"unknown token", func(t *testing.T, c *testCentral, tok identity.Token, a *agent) *agentv1.EnrollRequest {
			guess := identity.Token{Fingerprint: tok.Fingerprint, Secret: base64.RawURLEncoding.EncodeToString(make([]byte, 32))}
			return &agentv1.EnrollRequest{Token: guess.String(), Csr: a.csr}
		}, codes.Unauthenticated, "token unknown", false},
		{"token of another district", func(t *testing.T, c *testCentral, tok identity.Token, a *agent) *agentv1.EnrollRequest {
			return &agentv1.EnrollRequest{Token: tok.String(), Csr: a.csr, District: "south"}
		}, codes.PermissionDenied, `token is for district "north", not "south"`, false},
		{"token made by another central", func(t *testing.T, c *testCentral, tok identity.Token, a *agent) *agentv1.EnrollRequest {
			// A client that does not pin (the agent does, and would not
			// get this far) sends a token carrying another CA's fingerprint.
			foreign, _, err := c.tokens.Create("north", 0, other.ca.Fingerprint())
			if err != nil {
				t.Fatal(err)
			}
			return &agentv1.EnrollRequest{Token: foreign.String(), Csr: a.csr}
		}, codes.FailedPrecondition, "token was made by another central", false},
		{"garbage CSR", func(t *testing.T, c *testCentral, tok identity.Token, a *agent) *agentv1.EnrollRequest {
			return &agentv1.EnrollRequest{Token: tok.String(), Csr: []byte("certainly not DER"), District: "north"}
		}, codes.InvalidArgument, "bad certificate request", false},
		{"weak key", func(t *testing.T, c *testCentral, tok identity.Token, a *agent) *agentv1.EnrollRequest {
			return &agentv1.EnrollRequest{Token: tok.String(), Csr: weakCSR}
		}, codes.InvalidArgument, "RSA key of 1024 bits", false},
		{"no CSR", func(t *testing.T, c *testCentral, tok identity.Token, a *agent) *agentv1.EnrollRequest {
			return &agentv1.EnrollRequest{Token: tok.String()}
		}, codes.InvalidArgument, "certificate request missing", false},
		{"huge CSR", func(t *testing.T, c *testCentral, tok identity.Token, a *agent) *agentv1.EnrollRequest {
			return &agentv1.EnrollRequest{Token: tok.String(), Csr: make([]byte, maxCSRBytes+1)}
		}, codes.InvalidArgument, "larger than 16 KiB", false},
		{"not a token", func(t *testing.T, c *testCentral, tok identity.Token, a *agent) *agentv1.EnrollRequest {
			return &agentv1.EnrollRequest{Token: "vigil-enroll-v1." + tok.Fingerprint + ".short", Csr: a.csr}
		}, codes.InvalidArgument, "not a vigil enrolment token", false},
		{"bad district name", func(t *testing.T, c *testCentral, tok identity.Token, a *agent) *agentv1.EnrollRequest {
			return &agentv1.EnrollRequest{Token: tok.String(), Csr: a.csr, District: "North!"}
		}, codes.InvalidArgument, "district id", false},
		{"huge district name", func(t *testing.T, c *testCentral, tok identity.Token, a *agent) *agentv1.EnrollRequest {
			return &agentv1.EnrollRequest{Token: tok.String(), Csr: a.csr, District: strings.Repeat("n", 1<<20)}
		}, codes.InvalidArgument, "district id longer than 63 characters", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := startCentral(t)
			tok := c.token(t, "north")
			a := newAgent(t)
			req := tc.prepare(t, c, tok, a)
			resp, err := a.enrolPinned(t, c.addr, c.ca.Fingerprint(), req)
			if err == nil {
				t.Fatalf("enrolled: %v", resp)
			}
			if st := status.Convert(err); st.Code() != tc.code || !strings.Contains(st.Message(), tc.want) {
				t.Fatalf("got %v, want %v containing %q", err, tc.code, tc.want)
			}
			// The token sent, when central knows it, else the fresh one.
			sent := tok.Secret
			if p, err := identity.ParseToken(req.GetToken()); err == nil && c.known(t, p.Secret) {
				sent = p.Secret
			}
			if used := c.used(t, sent); used != tc.wantUsed {
				t.Fatalf("token spent=%v, want %v", used, tc.wantUsed)
			}
			logs := c.logs.String()
			if !strings.Contains(logs, `msg="enrolment refused"`) || !strings.Contains(logs, "client=127.0.0.1:") {
				t.Errorf("refusal not logged")
			}
			if strings.Contains(logs, tok.Secret) || strings.Contains(logs, req.GetToken()[len(req.GetToken())-20:]) {
				t.Error("a token is in the log")
			}
			if !tc.wantUsed && tc.name != "expired token" {
				// The token still works for the right request.
				if _, err := newAgent(t).enrol(t, c.addr, tok.String(), "north"); err != nil {
					t.Fatalf("the token no longer works: %v", err)
				}
			}
		})
	}
}

// TestAgentRefusesAnotherCentral: a token names a CA by fingerprint; an
// agent that reaches a central with another CA refuses it during the TLS
// handshake, before it sends the token or the request, so the token is
// neither disclosed nor spent.
func TestAgentRefusesAnotherCentral(t *testing.T) {
	c := startCentral(t)
	other := startCentral(t)
	// Stored at c, but carrying other's fingerprint: the agent is pointed at
	// c with a token meant for other.
	tok, _, err := c.tokens.Create("north", 0, other.ca.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	_, err = newAgent(t).enrol(t, c.addr, tok.String(), "north")
	if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "central's CA is not the pinned one") {
		t.Fatalf("got %v", err)
	}
	if n := c.calls.Load(); n != 0 {
		t.Fatalf("%d calls reached central", n)
	}
	if c.used(t, tok.Secret) {
		t.Fatal("token spent")
	}
}

// TestConcurrentEnrolment: one token, many agents at once: exactly one
// enrols.
func TestConcurrentEnrolment(t *testing.T) {
	c := startCentral(t)
	tok := c.token(t, "north")
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		a := newAgent(t)
		wg.Go(func() {
			_, err := a.enrol(t, c.addr, tok.String(), "north")
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "token already used"):
			t.Errorf("unexpected refusal: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d enrolments with one token", ok)
	}
}

// TestServiceValidity: the service issues certificates for the validity
// it was given.
func TestServiceValidity(t *testing.T) {
	tokens, _ := mustTokens(t, nil)
	ca, _, err := pki.LoadOrCreate(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := NewService(ca, tokens, time.Hour, nil)
	tok, _, err := tokens.Create("north", 0, ca.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	a := newAgent(t)
	resp, err := svc.Enroll(t.Context(), &agentv1.EnrollRequest{Token: tok.String(), Csr: a.csr})
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(resp.GetCertificate())
	if got := time.Until(cert.NotAfter); got > time.Hour {
		t.Errorf("validity %v, want the service's hour", got)
	}
}
