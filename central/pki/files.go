package pki

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// exists returns nil if path exists, else the error of its Lstat.
func exists(path string) error {
	_, err := os.Lstat(path)
	return err
}

// writeNewFile writes a file that must not exist yet (O_EXCL) and syncs
// it: the CA key is never overwritten, even by a second central started
// on the same directory at the same moment. A partly written file is
// removed, since this call made it.
func writeNewFile(path string, data []byte, mode os.FileMode) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			err = errors.Join(err, os.Remove(path))
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Sync()
}

// writeFileSync writes a file through a synced temporary file renamed
// into place, so a crash leaves either the old content or the new one.
// It does not sync the directory; callers do once after their renames.
func writeFileSync(path string, data []byte, mode os.FileMode) error {
	tmp, err := writeTempSync(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*", data, mode)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return nil
}

// writeTempSync writes data to a new file of a unique name in dir (see
// os.CreateTemp for pattern), syncs it, and returns its path.
func writeTempSync(dir, pattern string, data []byte, mode os.FileMode) (name string, err error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			err = errors.Join(err, os.Remove(f.Name()))
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return "", err
	}
	if _, err := f.Write(data); err != nil {
		return "", err
	}
	return f.Name(), f.Sync()
}

// syncDir makes the renames and creations in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
