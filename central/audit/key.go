package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Key file names in the directory given to LoadOrCreateKey.
const (
	privateKeySuffix = ".key"
	publicKeySuffix  = ".pub"
)

// LoadOrCreateKey returns the note signer and verifier of the key called
// name kept in dir, and the verifier key in note's text form
// ("<name>+<hash>+<key>"), which is what auditors are given. At the first
// start it generates an Ed25519 key: <dir>/<name>.key holds the private key
// (mode 0600, never overwritten), <dir>/<name>.pub the verifier key (0644).
//
// It refuses to make a new key when the public key file exists without the
// private one: auditors hold that public key, and a silently replaced key
// would make every later checkpoint unverifiable for them. It also refuses a
// public key file that is not the private key's (ErrKeyMismatch).
func LoadOrCreateKey(dir, name string) (note.Signer, note.Verifier, string, error) {
	if !validKeyName(name) {
		return nil, nil, "", fmt.Errorf("audit: key: name %q: want letters, digits, '.', '_' or '-'", name)
	}
	privPath := filepath.Join(dir, name+privateKeySuffix)
	pubPath := filepath.Join(dir, name+publicKeySuffix)

	skey, err := os.ReadFile(privPath)
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(pubPath); err == nil {
			return nil, nil, "", fmt.Errorf("audit: key: %s exists but %s does not: restore the private key rather than making a new one (auditors hold the old public key)", pubPath, privPath)
		}
		if err := createKey(dir, name, privPath); err != nil {
			return nil, nil, "", err
		}
		skey, err = os.ReadFile(privPath)
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("audit: key: %w", err)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, nil, "", fmt.Errorf("audit: key: %s: %w", privPath, err)
	}
	if signer.Name() != name {
		return nil, nil, "", fmt.Errorf("%w: %s is the key of %q, not %q", ErrKeyMismatch, privPath, signer.Name(), name)
	}
	vkey, err := verifierKey(strings.TrimSpace(string(skey)), name)
	if err != nil {
		return nil, nil, "", fmt.Errorf("audit: key: %s: %w", privPath, err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, "", fmt.Errorf("audit: key: %w", err)
	}
	if err := checkPair(signer, verifier); err != nil {
		return nil, nil, "", err
	}

	switch pub, err := os.ReadFile(pubPath); {
	case errors.Is(err, fs.ErrNotExist):
		// Written after the private key: a crash in between, or a removed
		// file, is repaired from the private key.
		if err := writeFileAtomic(pubPath, []byte(vkey+"\n"), 0o644); err != nil {
			return nil, nil, "", fmt.Errorf("audit: key: %w", err)
		}
	case err != nil:
		return nil, nil, "", fmt.Errorf("audit: key: %w", err)
	case strings.TrimSpace(string(pub)) != vkey:
		return nil, nil, "", fmt.Errorf("%w: %s is not the public key of %s", ErrKeyMismatch, pubPath, privPath)
	}
	return signer, verifier, vkey, nil
}

// createKey generates a key and stores its private half at privPath. The
// file is written in full and synced under a temporary name, then linked
// into place: link fails if privPath exists, so two processes starting at
// once cannot overwrite each other's key, and a crash leaves either no key
// or a whole one.
func createKey(dir, name, privPath string) error {
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return fmt.Errorf("audit: key: generate: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+name+".key.*")
	if err != nil {
		return fmt.Errorf("audit: key: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600 already; say it anyway, since this is
	// the one file whose mode matters.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("audit: key: %w", err)
	}
	if _, err := tmp.WriteString(skey + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("audit: key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("audit: key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("audit: key: %w", err)
	}
	if err := os.Link(tmp.Name(), privPath); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("audit: key: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("audit: key: %w", err)
	}
	return nil
}

// verifierKey derives the verifier key from an encoded signer key
// ("PRIVATE+KEY+<name>+<hash>+<base64 of 0x01 and the Ed25519 seed>"), which
// note.NewSigner has already accepted.
func verifierKey(skey, name string) (string, error) {
	// The key data may contain '+' (base64); the fields before it do not.
	fields := strings.SplitN(skey, "+", 5)
	if len(fields) != 5 {
		return "", errors.New("not a note signer key")
	}
	raw, err := base64.StdEncoding.DecodeString(fields[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("not an Ed25519 note key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(name, pub)
}

// checkPair signs a probe with signer and verifies it with verifier.
func checkPair(signer note.Signer, verifier note.Verifier) error {
	msg, err := note.Sign(&note.Note{Text: "vigil audit key check\n"}, signer)
	if err != nil {
		return fmt.Errorf("audit: key: %w", err)
	}
	if _, err := note.Open(msg, note.VerifierList(verifier)); err != nil {
		return fmt.Errorf("%w: signer %s+%08x does not match verifier %s+%08x", ErrKeyMismatch,
			signer.Name(), signer.KeyHash(), verifier.Name(), verifier.KeyHash())
	}
	return nil
}

func validKeyName(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '.' {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// writeFileAtomic writes data to path through a synced temporary file and a
// rename, so that path holds either its old content or all of data.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
