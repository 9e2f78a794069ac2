package pki

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/proto/identity"
)

func TestServerCertificate(t *testing.T) {
	ca := mustCA(t)
	cert, err := ca.ServerCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if len(cert.Certificate) != 2 || string(cert.Certificate[1]) != string(ca.cert.Raw) {
		t.Fatal("the chain does not carry the CA certificate")
	}
	// What an agent does with it: find the pinned CA in the chain.
	if err := identity.VerifyPinned(ca.Fingerprint())(cert.Certificate, nil); err != nil {
		t.Fatalf("pinned verification: %v", err)
	}
	if !slices.Contains(leaf.DNSNames, "localhost") || len(leaf.IPAddresses) < 2 {
		t.Errorf("default hosts: %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("ext key usage %v", leaf.ExtKeyUsage)
	}
	if got := leaf.NotAfter.Sub(time.Now()); got < serverValidity-time.Hour || got > serverValidity+time.Hour {
		t.Errorf("validity %v", got)
	}
	if fi, err := os.Stat(filepath.Join(ca.dir, serverKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("server.key: %v %v", fi.Mode(), err)
	}
}

func TestServerCertificateReissue(t *testing.T) {
	ca := mustCA(t)
	hosts := []string{"central.example", "10.0.0.1", "[::1]"}
	first, err := ca.ServerCertificate(hosts)
	if err != nil {
		t.Fatal(err)
	}
	serial := func(c interface{ String() string }) string { return c.String() }
	same := func(t *testing.T, what string, hosts []string, want bool) {
		t.Helper()
		got, err := ca.ServerCertificate(hosts)
		if err != nil {
			t.Fatal(err)
		}
		if reused := serial(got.Leaf.SerialNumber) == serial(first.Leaf.SerialNumber); reused != want {
			t.Fatalf("%s: reused=%v, want %v", what, reused, want)
		}
		first = got
	}
	same(t, "same hosts, other order and case", []string{"::1", "Central.Example.", "10.0.0.1", "10.0.0.1"}, true)

	// A restarted central finds it on disk.
	reloaded, _, err := LoadOrCreate(ca.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := reloaded.ServerCertificate(hosts)
	if err != nil || got.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) != 0 {
		t.Fatalf("after restart: %v, reissued=%v", err, err == nil)
	}

	same(t, "hosts changed", []string{"central.example", "10.0.0.2"}, false)
	if !slices.Equal(first.Leaf.DNSNames, []string{"central.example"}) || first.Leaf.IPAddresses[0].String() != "10.0.0.2" {
		t.Fatalf("new names: %v %v", first.Leaf.DNSNames, first.Leaf.IPAddresses)
	}
	hosts = []string{"central.example", "10.0.0.2"}

	ca.now = func() time.Time { return time.Now().Add(serverValidity - serverRenewBefore + day) }
	same(t, "expiring within 30 days", hosts, false)
	same(t, "fresh again", hosts, true)
	ca.now = time.Now

	if err := os.WriteFile(filepath.Join(ca.dir, serverCertFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	same(t, "corrupt server.crt", hosts, false)
	if err := os.Remove(filepath.Join(ca.dir, serverKeyFile)); err != nil {
		t.Fatal(err)
	}
	same(t, "missing server.key", hosts, false)

	// A server certificate of another CA in the directory (restored from
	// the wrong backup) is replaced.
	other := mustCA(t)
	if _, err := other.ServerCertificate(hosts); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{serverKeyFile, serverCertFile} {
		data, _ := os.ReadFile(filepath.Join(other.dir, name))
		if err := os.WriteFile(filepath.Join(ca.dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	same(t, "issued by another CA", hosts, false)
}

func TestServerCertificateBadHosts(t *testing.T) {
	ca := mustCA(t)
	for _, h := range []string{"", "a b", "http://x", "x..y", strings.Repeat("a", 64) + ".example"} {
		if _, err := ca.ServerCertificate([]string{"localhost", h}); err == nil || !strings.Contains(err.Error(), "neither a host name nor an IP") {
			t.Errorf("%q: %v", h, err)
		}
	}
}
