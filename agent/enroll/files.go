package enroll

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Temporary directories next to identity/. A new identity is assembled in
// a fresh one and renamed into place, so identity/ is always either
// complete or absent.
const (
	newDirPrefix = ".identity-new-"
	oldDirPrefix = ".identity-old-"
)

// writeIdentity writes id's files under dataDir/identity, replacing an
// existing identity only if force. Every file is synced before the rename,
// and the data directory after it.
//
// With force there is a moment between moving the old identity aside and
// renaming the new one in where a crash leaves neither in place (the agent
// then reports that it is not enrolled, and the old identity is in
// .identity-old-*); renaming over a non-empty directory is not possible.
func writeIdentity(dataDir string, id *Identity, force bool, logger *slog.Logger) (err error) {
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	removeStale(dataDir, logger)
	keyDER, err := x509.MarshalPKCS8PrivateKey(id.key)
	if err != nil {
		return fmt.Errorf("enroll: encode key: %w", err)
	}
	info, err := json.MarshalIndent(centralInfo{
		Address: id.Central, CAFingerprint: id.CAFingerprint, District: id.District, EnrolledAt: id.EnrolledAt,
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
		{certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: id.cert.Raw}), 0o644},
		{caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: id.ca.Raw}), 0o644},
		{centralFile, append(info, '\n'), 0o644},
	}

	tmp, err := os.MkdirTemp(dataDir, newDirPrefix) // mode 0700
	if err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	for _, f := range files {
		if err := writeFileSync(filepath.Join(tmp, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("enroll: write identity: %w", err)
		}
	}
	if err := syncDir(tmp); err != nil {
		return fmt.Errorf("enroll: write identity: %w", err)
	}

	final := identityDir(dataDir)
	var old string
	if _, err := os.Lstat(final); err == nil {
		if !force {
			return fmt.Errorf("enroll: %w: %s; force to replace it", ErrAlreadyEnrolled, final)
		}
		old = filepath.Join(dataDir, oldDirPrefix+strconv.FormatInt(time.Now().UnixNano(), 10))
		if err := os.Rename(final, old); err != nil {
			return fmt.Errorf("enroll: move the old identity aside: %w", err)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("enroll: write identity: %w", err)
	}
	if err := syncDir(dataDir); err != nil {
		return fmt.Errorf("enroll: write identity: %w", err)
	}
	id.Dir = final
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("enroll: new identity in place, but the old one is still in %s: %w", old, err)
		}
	}
	return nil
}

// removeStale deletes identities left half-written by a crash: they never
// were in use, and they hold private keys. Failing to is not a reason to
// refuse a new enrolment, but is said.
func removeStale(dataDir string, logger *slog.Logger) {
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		logger.Warn("cannot look for half-written identities", "dir", dataDir, "err", err)
		return
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), newDirPrefix) {
			path := filepath.Join(dataDir, e.Name())
			if err := os.RemoveAll(path); err != nil {
				logger.Warn("cannot remove a half-written identity", "dir", path, "err", err)
			}
		}
	}
}

// writeFileSync creates name (which must not exist) with mode, and syncs it.
func writeFileSync(name string, data []byte, mode os.FileMode) (err error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
