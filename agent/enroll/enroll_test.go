package enroll

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/proto/identity"
)

func TestEnroll(t *testing.T) {
	f := startFake(t, "north")
	opts := f.options(t)
	logger, logs := testLogger(t)
	opts.Logger = logger
	id, err := Enroll(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if id.District != "north" || id.Central != f.addr || id.CAFingerprint != f.ca.fingerprint() {
		t.Fatalf("identity %+v", id)
	}
	// What central received: the token, the district, and a request for
	// the key the certificate certifies.
	req := f.lastRequest()
	if req.GetToken() != opts.Token || req.GetDistrict() != "north" {
		t.Errorf("request %+v", req)
	}
	csr, _ := x509.ParseCertificateRequest(req.GetCsr())
	if !publicKeysEqual(id.key.Public(), csr.PublicKey) {
		t.Error("the request is not for the stored key")
	}

	dir := filepath.Join(opts.DataDir, "identity")
	wantModes := map[string]os.FileMode{"": 0o700, keyFile: 0o600, certFile: 0o644, caFile: 0o644, centralFile: 0o644}
	for name, want := range wantModes {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&^0o022 != want&^0o022 || fi.Mode().Perm()&0o077 != 0 && name == keyFile {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	var info map[string]any
	data, _ := os.ReadFile(filepath.Join(dir, centralFile))
	if err := json.Unmarshal(data, &info); err != nil {
		t.Fatal(err)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range info {
			if !yield(k) {
				return
			}
		}
	})
	if !slices.Equal(keys, []string{"address", "ca_fingerprint", "district", "enrolled_at"}) || info["district"] != "north" ||
		info["address"] != f.addr || info["ca_fingerprint"] != f.ca.fingerprint() {
		t.Errorf("central.json: %s", data)
	}
	entries, _ := os.ReadDir(opts.DataDir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only identity/", len(entries))
	}

	loaded, err := Load(opts.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.District != id.District || loaded.Central != id.Central || loaded.CAFingerprint != id.CAFingerprint ||
		!loaded.EnrolledAt.Equal(id.EnrolledAt) || !loaded.Certificate().Equal(id.Certificate()) || loaded.Dir != dir {
		t.Errorf("loaded %+v, enrolled %+v", loaded, id)
	}
	if loaded.ExpiresSoon(time.Now()) || !loaded.ExpiresSoon(time.Now().Add(340*24*time.Hour)) {
		t.Error("ExpiresSoon")
	}
	if !strings.Contains(logs.String(), "district=north") || strings.Contains(logs.String(), f.token().Secret) {
		t.Errorf("log: %s", logs.String())
	}
}

// TestClientTLS: the stored identity connects to a server that requires a
// certificate of the CA, as the agent; a server of another CA is refused.
func TestClientTLS(t *testing.T) {
	f := startFake(t, "north")
	opts := f.options(t)
	mustEnroll(t, opts)
	id, err := Load(opts.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(f.ca.cert)
	serve := func(ca *testCA) (string, chan string) {
		lis, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
			MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{ca.serverCert(t)},
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { lis.Close() })
		seen := make(chan string, 1)
		go func() {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
			tc := conn.(*tls.Conn)
			if err := tc.Handshake(); err != nil {
				seen <- "handshake: " + err.Error()
				return
			}
			d, err := identity.DistrictFromCert(tc.ConnectionState().VerifiedChains[0][0])
			if err != nil {
				d = err.Error()
			}
			seen <- d
			io.Copy(io.Discard, conn)
		}()
		return lis.Addr().String(), seen
	}

	addr, seen := serve(f.ca)
	conn, err := tls.Dial("tcp", addr, id.ClientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := <-seen; got != "north" {
		t.Fatalf("server saw %q", got)
	}

	impostor := newTestCA(t)
	addr, _ = serve(impostor)
	if _, err := tls.Dial("tcp", addr, id.ClientTLS()); err == nil || !strings.Contains(err.Error(), "not the pinned one") {
		t.Fatalf("impostor central accepted: %v", err)
	}
}

func TestEnrollTokenDistrict(t *testing.T) {
	f := startFake(t, "north")
	opts := f.options(t)
	opts.District = ""
	id := mustEnroll(t, opts)
	if id.District != "north" || f.lastRequest().GetDistrict() != "" {
		t.Fatalf("district %q, sent %q", id.District, f.lastRequest().GetDistrict())
	}
}

func TestEnrollKeepsExistingIdentity(t *testing.T) {
	f := startFake(t, "north")
	opts := f.options(t)
	first := mustEnroll(t, opts)
	keyBefore, _ := os.ReadFile(filepath.Join(opts.DataDir, "identity", keyFile))
	_, err := Enroll(t.Context(), opts)
	if !errors.Is(err, ErrAlreadyEnrolled) || !strings.Contains(err.Error(), `district "north"`) {
		t.Fatalf("got %v", err)
	}
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("central was called %d times: the token would be spent for nothing", n)
	}
	if keyAfter, _ := os.ReadFile(filepath.Join(opts.DataDir, "identity", keyFile)); string(keyAfter) != string(keyBefore) {
		t.Fatal("key replaced")
	}

	opts.Force = true
	second := mustEnroll(t, opts)
	if second.Certificate().Equal(first.Certificate()) {
		t.Fatal("not replaced")
	}
	loaded, err := Load(opts.DataDir)
	if err != nil || !loaded.Certificate().Equal(second.Certificate()) {
		t.Fatalf("after replacing: %v", err)
	}
	entries, _ := os.ReadDir(opts.DataDir)
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}

// TestEnrollRefusesAnotherCA: a token names central's CA; a server with
// another CA is refused during the handshake, before the token or the
// request is sent.
func TestEnrollRefusesAnotherCA(t *testing.T) {
	f := startFake(t, "north")
	opts := f.options(t)
	opts.Token = identity.Token{Fingerprint: newTestCA(t).fingerprint(), Secret: f.token().Secret}.String()
	_, err := Enroll(t.Context(), opts)
	if !errors.Is(err, ErrCAMismatch) || !strings.HasPrefix(err.Error(), "enroll: central's CA does not match the token's fingerprint") {
		t.Fatalf("got %v", err)
	}
	if n := f.calls.Load(); n != 0 {
		t.Fatalf("%d requests reached the server", n)
	}
	assertNotEnrolled(t, opts.DataDir)
}

func TestEnrollRefusedByCentral(t *testing.T) {
	cases := []struct {
		code codes.Code
		msg  string
		want string
	}{
		{codes.PermissionDenied, "token already used", "enroll: central refused enrolment: token already used"},
		{codes.PermissionDenied, "token expired", "enroll: central refused enrolment: token expired"},
		{codes.Unauthenticated, "token unknown", "enroll: central refused enrolment: token unknown"},
		{codes.PermissionDenied, `token is for district "south", not "north"`, `enroll: central refused enrolment: token is for district "south", not "north"`},
		{codes.FailedPrecondition, "token was made by another central", "enroll: central refused enrolment: token was made by another central"},
		{codes.Internal, "could not issue the certificate", "enroll: central at 127.0.0.1:"},
	}
	for _, c := range cases {
		t.Run(c.msg, func(t *testing.T) {
			f := startFake(t, "north")
			f.setRespond(func(testing.TB, *agentv1.EnrollRequest, *x509.CertificateRequest) (*agentv1.EnrollResponse, error) {
				return nil, status.Error(c.code, c.msg)
			})
			opts := f.options(t)
			_, err := Enroll(t.Context(), opts)
			if err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			if (c.code != codes.Internal) != errors.Is(err, ErrRefused) {
				t.Errorf("ErrRefused: %v", err)
			}
			assertNotEnrolled(t, opts.DataDir)
		})
	}
}

// TestEnrollBadResponses: a central that answers with a certificate the
// agent cannot use, by mistake or on purpose, gets nothing written.
func TestEnrollBadResponses(t *testing.T) {
	other := newTestCA(t)
	type respondFunc = func(testing.TB, *agentv1.EnrollRequest, *x509.CertificateRequest) (*agentv1.EnrollResponse, error)
	respond := func(f *fakeCentral, tmpl *x509.Certificate, district string) respondFunc {
		return func(t testing.TB, _ *agentv1.EnrollRequest, csr *x509.CertificateRequest) (*agentv1.EnrollResponse, error) {
			return &agentv1.EnrollResponse{Certificate: f.ca.issue(t, tmpl, csr.PublicKey), CaCertificate: f.ca.cert.Raw, District: district}, nil
		}
	}
	cases := []struct {
		name    string
		respond func(f *fakeCentral) respondFunc
		wantErr error
		want    string
	}{
		{"another district", func(f *fakeCentral) respondFunc { return respond(f, agentTemplate("south"), "south") },
			ErrBadResponse, `certificate is for district "south", not "north"`},
		{"district differs from the certificate", func(f *fakeCentral) respondFunc { return respond(f, agentTemplate("north"), "south") },
			ErrBadResponse, `certificate names district "north" but central said "south"`},
		{"no district", func(f *fakeCentral) respondFunc {
			tmpl := agentTemplate("north")
			tmpl.URIs = nil
			return respond(f, tmpl, "north")
		}, ErrBadResponse, "names no single district"},
		{"server certificate", func(f *fakeCentral) respondFunc {
			tmpl := agentTemplate("north")
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			return respond(f, tmpl, "north")
		}, ErrBadResponse, "not issued by the pinned CA"},
		{"another key", func(f *fakeCentral) respondFunc {
			return func(t testing.TB, _ *agentv1.EnrollRequest, _ *x509.CertificateRequest) (*agentv1.EnrollResponse, error) {
				return &agentv1.EnrollResponse{Certificate: f.ca.issue(t, agentTemplate("north"), &mustKey(t).PublicKey), CaCertificate: f.ca.cert.Raw, District: "north"}, nil
			}
		}, ErrBadResponse, "not for our key"},
		{"signed by another CA", func(f *fakeCentral) respondFunc {
			return func(t testing.TB, _ *agentv1.EnrollRequest, csr *x509.CertificateRequest) (*agentv1.EnrollResponse, error) {
				return &agentv1.EnrollResponse{Certificate: other.issue(t, agentTemplate("north"), csr.PublicKey), CaCertificate: f.ca.cert.Raw, District: "north"}, nil
			}
		}, ErrBadResponse, "not issued by the pinned CA"},
		{"another CA returned", func(f *fakeCentral) respondFunc {
			return func(t testing.TB, _ *agentv1.EnrollRequest, csr *x509.CertificateRequest) (*agentv1.EnrollResponse, error) {
				return &agentv1.EnrollResponse{Certificate: other.issue(t, agentTemplate("north"), csr.PublicKey), CaCertificate: other.cert.Raw, District: "north"}, nil
			}
		}, ErrCAMismatch, "central returned a CA certificate with fingerprint"},
		{"garbage", func(f *fakeCentral) respondFunc {
			return func(testing.TB, *agentv1.EnrollRequest, *x509.CertificateRequest) (*agentv1.EnrollResponse, error) {
				return &agentv1.EnrollResponse{Certificate: []byte("x"), CaCertificate: f.ca.cert.Raw, District: "north"}, nil
			}
		}, ErrBadResponse, "x509"},
		{"nothing", func(f *fakeCentral) respondFunc {
			return func(testing.TB, *agentv1.EnrollRequest, *x509.CertificateRequest) (*agentv1.EnrollResponse, error) {
				return &agentv1.EnrollResponse{}, nil
			}
		}, ErrBadResponse, "CA certificate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := startFake(t, "north")
			f.setRespond(c.respond(f))
			opts := f.options(t)
			_, err := Enroll(t.Context(), opts)
			if !errors.Is(err, c.wantErr) || !strings.Contains(err.Error(), c.want) || !strings.HasSuffix(err.Error(), "(the token is spent; make a new one)") {
				t.Fatalf("got %v, want %v containing %q", err, c.wantErr, c.want)
			}
			assertNotEnrolled(t, opts.DataDir)
		})
	}
}

func TestEnrollUnreachable(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	f := startFake(t, "north")
	opts := f.options(t)
	opts.Central = addr
	_, err = Enroll(t.Context(), opts)
	if err == nil || !strings.HasPrefix(err.Error(), "enroll: cannot reach central at "+addr) || !strings.HasSuffix(err.Error(), "connect: connection refused") {
		t.Fatalf("got %v", err)
	}

	// A server that accepts and never speaks: the deadline ends it.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	opts.Central = silent.Addr().String()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err = Enroll(ctx, opts)
	if err == nil || !strings.Contains(err.Error(), "did not answer in time") {
		t.Fatalf("got %v", err)
	}
	assertNotEnrolled(t, opts.DataDir)
}

func TestEnrollBadOptions(t *testing.T) {
	f := startFake(t, "north")
	cases := []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"bad token", func(o *Options) { o.Token = "vigil-enroll-v1.abc.def" }, "enroll: not a vigil enrolment token"},
		{"no token", func(o *Options) { o.Token = "" }, "not a vigil enrolment token"},
		{"no port", func(o *Options) { o.Central = "central.example" }, "want host:port"},
		{"URL", func(o *Options) { o.Central = "https://central.example:8443" }, "want host:port"},
		{"bad district", func(o *Options) { o.District = "North" }, "district id"},
		{"no data dir", func(o *Options) { o.DataDir = "" }, "no data directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := f.options(t)
			c.change(&opts)
			if _, err := Enroll(t.Context(), opts); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
	if n := f.calls.Load(); n != 0 {
		t.Fatalf("%d calls", n)
	}
}

func assertNotEnrolled(t *testing.T, dataDir string) {
	t.Helper()
	if _, err := Load(dataDir); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("Load after a failed enrolment: %v", err)
	}
	entries, _ := os.ReadDir(dataDir)
	if len(entries) != 0 {
		t.Fatalf("left in the data directory: %v", entries)
	}
}
