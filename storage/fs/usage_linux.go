package fs

import (
	"context"
	"fmt"
	"syscall"
)

// Usage reports the filesystem holding the store: bytes used, total capacity
// and bytes free for an unprivileged writer (what Put can still use).
func (s *Store) Usage(ctx context.Context) (used, capacity, free int64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, 0, fmt.Errorf("fs: usage: %w", err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.root, &st); err != nil {
		return 0, 0, 0, fmt.Errorf("fs: usage: statfs %s: %w", s.root, err)
	}
	bsize := int64(st.Bsize)
	capacity = int64(st.Blocks) * bsize
	used = int64(st.Blocks-st.Bfree) * bsize
	free = int64(st.Bavail) * bsize
	return used, capacity, free, nil
}
