//go:build !linux

package fs

import (
	"context"
	"errors"
)

// Usage is implemented on Linux only, where district servers run.
func (s *Store) Usage(ctx context.Context) (used, capacity, free int64, err error) {
	return 0, 0, 0, errors.New("fs: usage: not supported on this platform")
}
