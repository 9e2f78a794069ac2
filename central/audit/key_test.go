package audit

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	s1, v1, vkey1, err := LoadOrCreateKey(dir, "vigil-central")
	if err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"vigil-central.key": 0o600, "vigil-central.pub": 0o644} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", name, info.Mode().Perm(), mode)
		}
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "vigil-central.pub"))
	if strings.TrimSpace(string(pub)) != vkey1 || !strings.HasPrefix(vkey1, "vigil-central+") {
		t.Errorf("public key file %q, verifier key %q", pub, vkey1)
	}
	if err := checkPair(s1, v1); err != nil {
		t.Fatal(err)
	}
	// The verifier key an auditor is given works on its own.
	v, err := note.NewVerifier(vkey1)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkPair(s1, v); err != nil {
		t.Fatal(err)
	}

	// Loaded again: the same key, not a new one.
	s2, _, vkey2, err := LoadOrCreateKey(dir, "vigil-central")
	if err != nil || vkey2 != vkey1 || s2.KeyHash() != s1.KeyHash() {
		t.Fatalf("second load: %v, key %q, want %q", err, vkey2, vkey1)
	}

	// A lost public key file is written again from the private key.
	os.Remove(filepath.Join(dir, "vigil-central.pub"))
	if _, _, vkey3, err := LoadOrCreateKey(dir, "vigil-central"); err != nil || vkey3 != vkey1 {
		t.Fatalf("after removing the public key: %v, key %q", err, vkey3)
	}

	// A public key file of another key is refused.
	other := mustKey(t, "vigil-central")
	os.WriteFile(filepath.Join(dir, "vigil-central.pub"), []byte(other.vkey+"\n"), 0o644)
	if _, _, _, err := LoadOrCreateKey(dir, "vigil-central"); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("load with a foreign public key = %v, want ErrKeyMismatch", err)
	}

	// A private key file named after another key is refused.
	key, _ := os.ReadFile(filepath.Join(dir, "vigil-central.key"))
	os.WriteFile(filepath.Join(dir, "renamed.key"), key, 0o600)
	if _, _, _, err := LoadOrCreateKey(dir, "renamed"); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("load of a renamed key = %v, want ErrKeyMismatch", err)
	}
}

func TestLoadOrCreateKeyRefuses(t *testing.T) {
	dir := t.TempDir()
	// The private key is lost but auditors hold the public one: no new key.
	os.WriteFile(filepath.Join(dir, "lost.pub"), []byte("lost+00000000+AQ==\n"), 0o644)
	if _, _, _, err := LoadOrCreateKey(dir, "lost"); err == nil || !strings.Contains(err.Error(), "restore the private key") {
		t.Errorf("load with only a public key = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "lost.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a private key was created: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "broken.key"), []byte("PRIVATE+KEY+broken+garbage\n"), 0o600)
	if _, _, _, err := LoadOrCreateKey(dir, "broken"); err == nil {
		t.Error("load of a malformed private key succeeded")
	}
	for _, name := range []string{"", "a b", "a+b", "../up", ".hidden", "a/b", strings.Repeat("x", 65)} {
		if _, _, _, err := LoadOrCreateKey(dir, name); err == nil {
			t.Errorf("key name %q accepted", name)
		}
	}
	if _, _, _, err := LoadOrCreateKey(filepath.Join(dir, "missing"), "k"); err == nil {
		t.Error("key in a missing directory succeeded")
	}
}

func TestOpenCheckpoint(t *testing.T) {
	k := mustKey(t, "vigil-central")
	l := mustOpen(t, filepath.Join(t.TempDir(), "audit.db"), k, nil)
	mustAppend(t, l, 0, 3)
	cp, err := l.CheckpointNow(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if tree, err := OpenCheckpoint(cp, k.verifier); err != nil || tree.N != 3 {
		t.Fatalf("OpenCheckpoint = %+v, %v", tree, err)
	}
	// The same text signed by a key of another name is of another log.
	stranger := mustKey(t, "elsewhere")
	text := strings.SplitN(string(cp), "\n\n", 2)[0] + "\n"
	foreign, err := note.Sign(&note.Note{Text: text}, stranger.signer)
	if err != nil {
		t.Fatal(err)
	}
	sameName := mustKey(t, "vigil-central")
	for _, tc := range []struct {
		name     string
		msg      []byte
		verifier note.Verifier
	}{
		{"another key of the same name", cp, sameName.verifier},
		{"another log's origin", foreign, stranger.verifier},
		{"not a note", []byte("vigil-central/audit\n3\n"), k.verifier},
		{"signature cut", cp[:len(cp)-10], k.verifier},
		{"size changed", []byte(strings.Replace(string(cp), "\n3\n", "\n4\n", 1)), k.verifier},
		{"no verifier", cp, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := OpenCheckpoint(tc.msg, tc.verifier); !errors.Is(err, ErrBadCheckpoint) {
				t.Fatalf("OpenCheckpoint = %v, want ErrBadCheckpoint", err)
			}
		})
	}
	for _, text := range []string{
		"vigil-central/audit\n3\n",
		"vigil-central/audit\n03\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
		"vigil-central/audit\n-1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
		"vigil-central/audit\n3\nAAAA\n",
		"vigil-central/audit\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nextra\n",
		"\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
	} {
		if _, _, err := parseCheckpointText(text); err == nil {
			t.Errorf("parseCheckpointText(%q) accepted", text)
		}
	}
}

// TestVerifierKeyDerivation: the verifier key derived from a private key
// is note's own, whatever characters the base64 holds ('+' among them).
func TestVerifierKeyDerivation(t *testing.T) {
	for range 200 {
		skey, vkey, err := note.GenerateKey(rand.Reader, "vigil-central")
		if err != nil {
			t.Fatal(err)
		}
		got, err := verifierKey(skey, "vigil-central")
		if err != nil || got != vkey {
			t.Fatalf("verifierKey(%q) = %q, %v; want %q", skey, got, err, vkey)
		}
	}
}
