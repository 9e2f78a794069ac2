package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/vigil-cctv/vigil/agent/segmenter"
)

// Upload tuning.
const (
	uploadWorkers = 4
	// uploadAlarmAfter is how many consecutive failures raise an alarm: a
	// store that refuses segments loses footage once the spool fills.
	uploadAlarmAfter = 3
	uploadMinBackoff = time.Second
	uploadMaxBackoff = 30 * time.Second
)

// uploader moves finished segments from the spool to the store, then the
// index, then removes the spool file, in that order.
type uploader struct {
	a   *Agent
	log *slog.Logger

	mu       sync.Mutex
	cond     *sync.Cond
	queue    []uploadJob
	inFlight int
	failures int
	stopped  bool
	// done holds the ids stored by this process, so reconciliation does not
	// take a segment stored after its listing for a missing one.
	done map[string]bool
}

type uploadJob struct {
	camera string
	fin    *segmenter.Finished
}

func newUploader(a *Agent) *uploader {
	u := &uploader{a: a, log: a.opts.Logger.With("component", "uploader"), done: make(map[string]bool)}
	u.cond = sync.NewCond(&u.mu)
	return u
}

func (u *uploader) enqueue(camera string, fin *segmenter.Finished) {
	u.mu.Lock()
	u.queue = append(u.queue, uploadJob{camera, fin})
	u.mu.Unlock()
	u.cond.Signal()
}

// pending counts segments not yet stored.
func (u *uploader) pending() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.queue) + u.inFlight
}

func (u *uploader) storedThisRun(id string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.done[id]
}

func (u *uploader) run(ctx context.Context) {
	go func() {
		<-ctx.Done()
		u.mu.Lock()
		u.stopped = true
		u.mu.Unlock()
		u.cond.Broadcast()
	}()
	var wg sync.WaitGroup
	for range uploadWorkers {
		wg.Add(1)
		go func() { defer wg.Done(); u.work(ctx) }()
	}
	wg.Wait()
}

func (u *uploader) work(ctx context.Context) {
	for {
		u.mu.Lock()
		for len(u.queue) == 0 && !u.stopped {
			u.cond.Wait()
		}
		if u.stopped {
			u.mu.Unlock()
			return
		}
		job := u.queue[0]
		u.queue = u.queue[1:]
		u.inFlight++
		u.mu.Unlock()

		err := u.upload(ctx, job)

		u.mu.Lock()
		u.inFlight--
		if err != nil {
			// Back to the queue; the file stays in the spool meanwhile.
			u.queue = append(u.queue, job)
			u.failures++
		} else {
			u.failures = 0
			u.done[job.fin.ID] = true
		}
		failures := u.failures
		u.mu.Unlock()
		u.cond.Broadcast()

		if err == nil {
			u.a.clear(AlarmStoreFailing)
			continue
		}
		if errors.Is(err, errStopped) {
			return
		}
		u.log.Error("storing segment failed; will retry", "camera", job.camera, "id", job.fin.ID, "error", err)
		if failures >= uploadAlarmAfter {
			u.a.raise(AlarmStoreFailing, fmt.Sprintf("segments cannot be stored (%d failures in a row): %v", failures, err))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retryDelay(failures)):
		}
	}
}

func retryDelay(failures int) time.Duration {
	d := uploadMinBackoff
	for i := 1; i < failures && d < uploadMaxBackoff; i++ {
		d *= 2
	}
	d = min(d, uploadMaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// upload stores one spool file, indexes it and removes the file.
func (u *uploader) upload(ctx context.Context, job uploadJob) error {
	a := u.a
	seg := job.fin.Segment(a.cfg.District, job.camera)
	seg.Expires = seg.Start.Add(a.retentionOf(job.camera))
	f, err := os.Open(job.fin.Path)
	if err != nil {
		return fmt.Errorf("open spool file: %w", err)
	}
	err = a.store.Put(ctx, seg.Key, f, job.fin.Bytes)
	f.Close()
	if err != nil {
		if ctx.Err() != nil {
			return errStopped
		}
		return fmt.Errorf("store: %w", err)
	}
	if err := a.index.Put(ctx, &seg); err != nil {
		if ctx.Err() != nil {
			return errStopped
		}
		return fmt.Errorf("index: %w", err)
	}
	if err := os.Remove(job.fin.Path); err != nil {
		// Stored and indexed: a leftover spool file is only uploaded again.
		u.log.Warn("remove spool file", "path", job.fin.Path, "error", err)
	}
	u.log.Info("segment stored", "camera", job.camera, "id", seg.ID,
		"start", seg.Start.Format(time.RFC3339Nano), "duration", seg.Duration().Round(time.Millisecond),
		"bytes", seg.Bytes, "key", seg.Key, "recovered", seg.Recovered)
	if a.opts.OnStored != nil {
		a.opts.OnStored(seg)
	}
	return nil
}

// drain waits until the queue is empty or the timeout passes.
func (u *uploader) drain(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if u.pending() == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
