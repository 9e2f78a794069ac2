package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/vigil-cctv/vigil/storage"
)

// storeRetry is how often an unreachable store is tried again.
const storeRetry = 5 * time.Second

// lazyStore opens the object store on first use and retries while it cannot
// be reached: a district server that boots while MinIO is down records into
// its spool and stores the segments once the store answers, instead of not
// recording at all.
type lazyStore struct {
	open func(context.Context) (storage.ObjectStore, error)

	mu      sync.Mutex
	store   storage.ObjectStore
	lastTry time.Time
	lastErr error
}

// get returns the store, opening it if needed; while it cannot be opened it
// returns the last error, trying again at most every storeRetry.
func (l *lazyStore) get(ctx context.Context) (storage.ObjectStore, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.store != nil {
		return l.store, nil
	}
	if l.lastErr != nil && time.Since(l.lastTry) < storeRetry {
		return nil, l.lastErr
	}
	l.lastTry = time.Now()
	st, err := l.open(ctx)
	if err != nil {
		l.lastErr = fmt.Errorf("open store: %w", err)
		return nil, l.lastErr
	}
	l.store, l.lastErr = st, nil
	return st, nil
}

// opened returns the store if it is open.
func (l *lazyStore) opened() storage.ObjectStore {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.store
}
