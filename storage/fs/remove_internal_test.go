package fs

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
)

// Deletion is a legal duty: an unlink failure must reach the caller.
func TestDeleteReportsRemoveError(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const key = "d1/cam1/2026/01/02/1-0123456789abcdef.mp4"
	if err := s.Put(t.Context(), key, bytes.NewReader([]byte("x")), 1); err != nil {
		t.Fatal(err)
	}
	removeFile = func(string) error { return syscall.EIO }
	t.Cleanup(func() { removeFile = osRemove })
	if err := s.Delete(t.Context(), key); !errors.Is(err, syscall.EIO) {
		t.Errorf("Delete with a failing unlink = %v, want EIO", err)
	}
}

var osRemove = removeFile
