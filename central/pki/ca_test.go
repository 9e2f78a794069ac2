package pki

import (
	"bytes"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/proto/identity"
)

func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	logger, logs := testLogger(t)
	ca, created, err := LoadOrCreate(dir, logger)
	if err != nil || !created {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	cert := ca.Certificate()
	if !cert.IsCA || !cert.MaxPathLenZero {
		t.Errorf("CA certificate: IsCA=%v MaxPathLenZero=%v", cert.IsCA, cert.MaxPathLenZero)
	}
	if got := cert.NotAfter.Sub(time.Now()); got < caValidity-time.Hour || got > caValidity+time.Hour {
		t.Errorf("CA validity %v, want about %v", got, caValidity)
	}
	if ca.Fingerprint() != identity.Fingerprint(cert) || len(ca.Fingerprint()) != 64 {
		t.Errorf("fingerprint %q", ca.Fingerprint())
	}
	for name, want := range map[string]os.FileMode{caKeyFile: 0o600, caCertFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	onDisk, _ := os.ReadFile(filepath.Join(dir, caCertFile))
	if !bytes.Equal(ca.PEM(), onDisk) {
		t.Error("PEM() differs from ca.crt")
	}
	if !strings.Contains(logs.String(), ca.Fingerprint()) {
		t.Error("the fingerprint is not logged at creation")
	}
	keyBefore, _ := os.ReadFile(filepath.Join(dir, caKeyFile))

	again, created, err := LoadOrCreate(dir, logger)
	if err != nil || created {
		t.Fatalf("second start: created=%v err=%v", created, err)
	}
	if again.Fingerprint() != ca.Fingerprint() {
		t.Error("reload changed the CA")
	}
	if !publicKeysEqual(again.key.Public(), ca.key.Public()) {
		t.Error("reload changed the key")
	}
	keyAfter, _ := os.ReadFile(filepath.Join(dir, caKeyFile))
	if !bytes.Equal(keyBefore, keyAfter) {
		t.Error("ca.key rewritten on reload")
	}
}

// TestLoadOrCreateRefuses: damaged or incomplete CA directories are
// errors that say what is wrong, and the key is never replaced.
func TestLoadOrCreateRefuses(t *testing.T) {
	other := mustCA(t)
	otherKey, _ := os.ReadFile(filepath.Join(other.dir, caKeyFile))
	serverCert, err := other.ServerCertificate([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		damage func(dir string) error
		want   string
	}{
		{"key without certificate", func(dir string) error { return os.Remove(filepath.Join(dir, caCertFile)) },
			"exists without its certificate"},
		{"certificate without key", func(dir string) error { return os.Remove(filepath.Join(dir, caKeyFile)) },
			"exists without its key"},
		{"corrupt key", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, caKeyFile), []byte("garbage"), 0o600)
		}, "ca.key is corrupt"},
		{"truncated key", func(dir string) error {
			data, _ := os.ReadFile(filepath.Join(dir, caKeyFile))
			return os.WriteFile(filepath.Join(dir, caKeyFile), append(data[:40:40], []byte("\n-----END PRIVATE KEY-----\n")...), 0o600)
		}, "ca.key is corrupt"},
		{"corrupt certificate", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, caCertFile), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644)
		}, "ca.crt is corrupt"},
		{"key of another CA", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, caKeyFile), otherKey, 0o600)
		}, "do not match"},
		{"certificate not a CA", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, caCertFile), pemCert(serverCert.Certificate[0]), 0o644)
		}, "not a CA certificate"},
		{"key readable by others", func(dir string) error {
			return os.Chmod(filepath.Join(dir, caKeyFile), 0o644)
		}, "readable by others"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ca := mustCA(t)
			if err := c.damage(ca.dir); err != nil {
				t.Fatal(err)
			}
			keyBefore, _ := os.ReadFile(filepath.Join(ca.dir, caKeyFile))
			_, _, err := LoadOrCreate(ca.dir, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "pki: ") {
				t.Errorf("error without prefix: %v", err)
			}
			keyAfter, _ := os.ReadFile(filepath.Join(ca.dir, caKeyFile))
			if !bytes.Equal(keyBefore, keyAfter) {
				t.Error("ca.key changed")
			}
		})
	}
}

func TestLoadRefusesExpiredCA(t *testing.T) {
	ca := mustCA(t)
	_, _, err := loadAt(ca.dir, ca.cert.NotAfter.Add(time.Second))
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("got %v", err)
	}
}

// loadAt is LoadOrCreate with the clock set to now.
func loadAt(dir string, now time.Time) (*CA, bool, error) {
	ca := &CA{dir: dir, now: func() time.Time { return now }}
	return ca, false, ca.load()
}

// TestFinishInterruptedCreate: a crash after the key was written but
// before the certificate was renamed into place is completed at the next
// start, with the same CA; a pending certificate of another key is not
// taken.
func TestFinishInterruptedCreate(t *testing.T) {
	ca := mustCA(t)
	other := mustCA(t)
	// The other CA's certificate, pending too: a loser of a creation race.
	if err := os.WriteFile(filepath.Join(ca.dir, "ca.crt.new-1"), other.PEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(ca.dir, caCertFile), filepath.Join(ca.dir, "ca.crt.new-2")); err != nil {
		t.Fatal(err)
	}
	got, created, err := LoadOrCreate(ca.dir, nil)
	if err != nil || created {
		t.Fatalf("created=%v err=%v", created, err)
	}
	if got.Fingerprint() != ca.Fingerprint() {
		t.Error("another CA was completed")
	}

	// Only a foreign pending certificate: refused.
	if err := os.Rename(filepath.Join(ca.dir, caCertFile), filepath.Join(ca.dir, "ca.crt.gone")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreate(ca.dir, nil); err == nil || !strings.Contains(err.Error(), "exists without its certificate") {
		t.Fatalf("got %v", err)
	}
}

// TestCreateRace: two centrals creating a CA in one directory at once end
// with one CA, whichever wins, never a key and certificate that do not
// match.
func TestCreateRace(t *testing.T) {
	for range 5 {
		dir := t.TempDir()
		errs := make(chan error, 2)
		for range 2 {
			go func() { _, _, err := LoadOrCreate(dir, nil); errs <- err }()
		}
		<-errs
		<-errs
		if _, _, err := LoadOrCreate(dir, nil); err != nil {
			t.Fatalf("after the race: %v", err)
		}
	}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
