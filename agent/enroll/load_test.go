package enroll

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadNotEnrolled(t *testing.T) {
	_, err := Load(t.TempDir())
	if !errors.Is(err, ErrNotEnrolled) || !strings.Contains(err.Error(), "identity") {
		t.Fatalf("got %v", err)
	}
}

// TestLoadRefusesTampered: each file of an identity is checked against the
// others; any change is refused with what is wrong.
func TestLoadRefusesTampered(t *testing.T) {
	f := startFake(t, "north")
	other := newTestCA(t)
	otherKey := mustKey(t)
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	otherKeyDER, _ := x509.MarshalPKCS8PrivateKey(otherKey)

	cases := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   string
	}{
		{"CA replaced", func(t *testing.T, dir string) {
			write(t, dir, caFile, pemOf("CERTIFICATE", other.cert.Raw), 0o644)
		}, "ca.crt is not the CA pinned in central.json"},
		{"CA and pin replaced", func(t *testing.T, dir string) {
			write(t, dir, caFile, pemOf("CERTIFICATE", other.cert.Raw), 0o644)
			editJSON(t, dir, f.ca.fingerprint(), other.fingerprint())
		}, "agent.crt is not issued by the pinned CA"},
		{"certificate of another key", func(t *testing.T, dir string) {
			write(t, dir, certFile, pemOf("CERTIFICATE", f.ca.issue(t, agentTemplate("north"), &otherKey.PublicKey)), 0o644)
		}, "agent.key does not match agent.crt"},
		{"key replaced", func(t *testing.T, dir string) {
			write(t, dir, keyFile, pemOf("PRIVATE KEY", otherKeyDER), 0o600)
		}, "agent.key does not match agent.crt"},
		{"district edited", func(t *testing.T, dir string) {
			editJSON(t, dir, `"district": "north"`, `"district": "south"`)
		}, `agent.crt names district "north" but central.json says "south"`},
		{"certificate of another district", func(t *testing.T, dir string) {
			// Signed by the right CA for the right key: only the district
			// differs from central.json.
			id, err := load(filepath.Dir(dir), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			write(t, dir, certFile, pemOf("CERTIFICATE", f.ca.issue(t, agentTemplate("south"), id.key.Public())), 0o644)
		}, `names district "south"`},
		{"key readable by others", func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Join(dir, keyFile), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "readable by others"},
		{"corrupt key", func(t *testing.T, dir string) { write(t, dir, keyFile, []byte("garbage"), 0o600) }, "agent.key is corrupt"},
		{"truncated certificate", func(t *testing.T, dir string) {
			data, _ := os.ReadFile(filepath.Join(dir, certFile))
			write(t, dir, certFile, data[:len(data)/2], 0o644)
		}, "agent.crt is corrupt"},
		{"central.json garbage", func(t *testing.T, dir string) { write(t, dir, centralFile, []byte("{"), 0o644) }, "central.json"},
		{"central.json without address", func(t *testing.T, dir string) {
			editJSON(t, dir, `"address": "`+f.addr+`"`, `"address": ""`)
		}, "lacks the central address"},
		{"file missing", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, caFile)); err != nil {
				t.Fatal(err)
			}
		}, "ca.crt: no such file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := f.options(t)
			mustEnroll(t, opts)
			c.tamper(t, filepath.Join(opts.DataDir, "identity"))
			_, err := Load(opts.DataDir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "enroll: identity in ") || !strings.HasSuffix(err.Error(), "; enrol again") {
				t.Errorf("error shape: %v", err)
			}
		})
	}
}

func TestLoadExpired(t *testing.T) {
	f := startFake(t, "north")
	opts := f.options(t)
	id := mustEnroll(t, opts)
	if _, err := load(opts.DataDir, id.Certificate().NotAfter); err == nil || !strings.Contains(err.Error(), "the certificate expired on") {
		t.Fatalf("got %v", err)
	}
	loaded, err := load(opts.DataDir, id.Certificate().NotAfter.Add(-RenewBefore+time.Hour))
	if err != nil || !loaded.ExpiresSoon(id.Certificate().NotAfter.Add(-RenewBefore+time.Hour)) {
		t.Fatalf("a month before: %v", err)
	}
}

func write(t *testing.T, dir, name string, data []byte, mode os.FileMode) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func editJSON(t *testing.T, dir, old, new string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, centralFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("central.json lacks %s: %s", old, data)
	}
	write(t, dir, centralFile, []byte(strings.Replace(string(data), old, new, 1)), 0o644)
}
