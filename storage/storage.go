// Package storage holds what a district keeps: the ObjectStore interface that
// footage is written to (implemented by storage/fs and storage/s3), the
// segment metadata shared by agent and central, and the object key layout.
//
// The bbolt index of segments lives in storage/index.
package storage

import (
	"context"
	"errors"
	"io"
	"time"
)

// Sentinel errors shared by every ObjectStore implementation. Callers test
// them with errors.Is.
var (
	// ErrNotFound means no object exists under the key.
	ErrNotFound = errors.New("object not found")
	// ErrHeld means the object is under a legal hold and the store refused to
	// delete or overwrite it.
	ErrHeld = errors.New("object is under legal hold")
	// ErrInvalidKey means the key is empty, absolute, or escapes the store
	// (".." elements, backslashes, control characters).
	ErrInvalidKey = errors.New("invalid object key")
)

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key      string
	Size     int64
	Modified time.Time
}

// ObjectStore is where segments are kept. Implementations must make Put
// atomic (a reader never sees a partial object, a crash never leaves one
// under the key) and durable when it returns.
type ObjectStore interface {
	// Put stores size bytes from r under key, replacing nothing: putting an
	// existing key that is under legal hold fails with ErrHeld.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get opens the object for reading. The caller closes the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error)
	// Stat returns the object's info, or ErrNotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Delete destroys the object, every version of it included. Deleting a
	// missing key is not an error; deleting a held object fails with ErrHeld.
	Delete(ctx context.Context, key string) error
	// List calls fn for every object whose key starts with prefix, in
	// lexical key order. An error from fn stops the walk and is returned.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	// SetLegalHold turns the legal hold of the object on or off. While on,
	// the store itself refuses Delete and overwrite.
	SetLegalHold(ctx context.Context, key string, on bool) error
	// LegalHold reports whether the object is under legal hold.
	LegalHold(ctx context.Context, key string) (bool, error)
	// Close releases the store's resources.
	Close() error
}
