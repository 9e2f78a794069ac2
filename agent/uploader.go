package agent

import (
	"context"
	"errors"
	"fmt"
	"github.com/vigil-cctv/vigil/proto/actions"
	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/index"
	"io/fs"
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
// index, then removes the spool file, in that order. A segment that fails
// waits with its own backoff while the others go on.
type uploader struct {
	a   *Agent
	log *slog.Logger

	mu       sync.Mutex
	cond     *sync.Cond
	queue    []*uploadJob
	inFlight int
	failures int // consecutive failures, any job
	dropped  int // segments not recorded because the store was full of held footage
	stopped  bool
	// tracked holds the ids this run is storing or has stored, until the
	// start-up reconciliation is done, so it does not take a segment stored
	// meanwhile for a missing or unindexed one.
	tracked map[string]bool
}

type uploadJob struct {
	camera    string
	fin       *segmenter.Finished
	attempts  int
	notBefore time.Time
}

func newUploader(a *Agent) *uploader {
	u := &uploader{a: a, log: a.opts.Logger.With("component", "uploader"), tracked: make(map[string]bool)}
	u.cond = sync.NewCond(&u.mu)
	return u
}

func (u *uploader) enqueue(camera string, fin *segmenter.Finished) {
	u.mu.Lock()
	u.queue = append(u.queue, &uploadJob{camera: camera, fin: fin})
	if u.tracked != nil {
		u.tracked[fin.ID] = true
	}
	u.mu.Unlock()
	u.cond.Signal()
}

// handling reports whether this run queued the segment for storage.
func (u *uploader) handling(id string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.tracked[id]
}

// stopTracking ends the bookkeeping needed by reconciliation.
func (u *uploader) stopTracking() {
	u.mu.Lock()
	u.tracked = nil
	u.mu.Unlock()
}

// pending counts segments not yet stored.
func (u *uploader) pending() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.queue) + u.inFlight
}

func (u *uploader) run(ctx context.Context) {
	go func() {
		<-ctx.Done()
		u.mu.Lock()
		u.stopped = true
		u.mu.Unlock()
		u.cond.Broadcast()
	}()
	// Wake the workers when a job's backoff ends.
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				u.cond.Broadcast()
			}
		}
	}()
	var wg sync.WaitGroup
	for range uploadWorkers {
		wg.Add(1)
		go func() { defer wg.Done(); u.work(ctx) }()
	}
	wg.Wait()
}

// next takes the first job whose backoff is over, waiting for one.
func (u *uploader) next() *uploadJob {
	u.mu.Lock()
	defer u.mu.Unlock()
	for {
		if u.stopped {
			return nil
		}
		now := time.Now()
		for i, job := range u.queue {
			if !job.notBefore.After(now) {
				u.queue = append(u.queue[:i], u.queue[i+1:]...)
				u.inFlight++
				return job
			}
		}
		u.cond.Wait()
	}
}

func (u *uploader) work(ctx context.Context) {
	for {
		job := u.next()
		if job == nil {
			return
		}
		err := u.upload(ctx, job)

		u.mu.Lock()
		u.inFlight--
		switch {
		case err == nil:
			u.failures = 0
		case errors.Is(err, errStopped):
			u.queue = append(u.queue, job) // stays in the spool for the next start
		case errors.Is(err, errSpoolGone):
			// The spool file is gone: nothing left to store. Say so loudly.
		default:
			job.attempts++
			job.notBefore = time.Now().Add(retryDelay(job.attempts))
			u.queue = append(u.queue, job)
			u.failures++
		}
		failures := u.failures
		u.mu.Unlock()
		u.cond.Broadcast()

		switch {
		case err == nil:
			if failures == 0 {
				u.a.clear(AlarmStoreFailing)
			}
			if !u.a.sweeper.Full() {
				u.a.clear(AlarmNotRecording)
			}
		case errors.Is(err, errStopped):
			return
		case errors.Is(err, errSpoolGone):
			u.a.raise(AlarmSpoolLost, fmt.Sprintf("segment %s of %s vanished from the spool before it was stored: %v", job.fin.ID, job.camera, err))
		default:
			u.log.Error("storing segment failed; will retry", "camera", job.camera, "id", job.fin.ID, "attempt", job.attempts, "error", err)
			if failures >= uploadAlarmAfter {
				u.a.raise(AlarmStoreFailing, fmt.Sprintf("segments cannot be stored (%d failures in a row): %v", failures, err))
			}
		}
	}
}

// errSpoolGone means the segment's spool file no longer exists.
var errSpoolGone = errors.New("spool file gone")

func retryDelay(attempts int) time.Duration {
	d := uploadMinBackoff
	for i := 1; i < attempts && d < uploadMaxBackoff; i++ {
		d *= 2
	}
	d = min(d, uploadMaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// upload stores one spool file, indexes it and removes the file.
func (u *uploader) upload(ctx context.Context, job *uploadJob) error {
	a := u.a
	seg := job.fin.Segment(a.cfg.District, job.camera)
	seg.Expires = seg.Start.Add(a.retentionOf(job.camera))
	held, err := a.index.Covering(seg.District, seg.Camera, seg.Start, seg.End)
	if err != nil {
		return err
	}
	if len(held) == 0 && !a.expiryNow().Before(seg.Expires) {
		// It waited in the spool past its retention (the store was
		// unreachable that long): it must not be kept now.
		return u.dropExpired(job, seg)
	}
	store, err := a.store.get(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return errStopped
		}
		return err
	}
	switch {
	case a.sweeper.Full() && len(held) == 0:
		// The store is full of held footage: nothing may be deleted to
		// make room, so this segment is not recorded (alarm raised).
		return u.dropFull(job)
	case a.sweeper.Full():
		// A hold covers it: kept in the spool until there is room.
		return errors.New("store full of held footage; this segment is held and waits in the spool")
	}
	f, err := os.Open(job.fin.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %v", errSpoolGone, err)
	}
	if err != nil {
		return fmt.Errorf("open spool file: %w", err)
	}
	err = store.Put(ctx, seg.Key, f, job.fin.Bytes)
	f.Close()
	if err != nil {
		if ctx.Err() != nil {
			return errStopped
		}
		return fmt.Errorf("store: %w", err)
	}
	if err := a.indexSegment(ctx, &seg); err != nil {
		if ctx.Err() != nil {
			return errStopped
		}
		return fmt.Errorf("index: %w", err)
	}
	// A hold placed over a span still being recorded covers this segment
	// (the index made it held): the store's legal hold follows.
	if stored, err := a.index.Get(seg.ID); err == nil && stored.Held() {
		if err := a.holds.Protect(ctx, stored); err != nil {
			a.raise(AlarmHolds, fmt.Sprintf("segment %s is held but its store legal hold failed (the index keeps it): %v", seg.ID, err))
		}
	}
	if err := os.Remove(job.fin.Path); err != nil {
		// Stored and indexed: a leftover spool file is only stored again.
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

// dropFull discards a segment the full store cannot take.
func (u *uploader) dropFull(job *uploadJob) error {
	u.mu.Lock()
	u.dropped++
	n := u.dropped
	u.mu.Unlock()
	u.a.raise(AlarmNotRecording, fmt.Sprintf("%d segments not recorded: the store is full of held footage", n))
	u.log.Error("segment not recorded: store full of held footage", "camera", job.camera, "id", job.fin.ID)
	if err := os.Remove(job.fin.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove spool file: %w", err)
	}
	return nil
}

// dropExpired destroys a spool file whose footage is past its retention,
// recording the deletion like the sweeper's.
func (u *uploader) dropExpired(job *uploadJob, seg storage.Segment) error {
	if err := os.Remove(job.fin.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove expired spool file: %w", err)
	}
	u.a.journal(context.Background(), index.JournalEntry{Time: time.Now(), Action: actions.SegmentDeleted, Camera: seg.Camera, Segment: seg.ID,
		Detail: clipText(fmt.Sprintf("reason retention; never stored (it waited in the spool past its expiry); sha256 %s; start %s; expires %s",
			seg.SHA256, seg.Start.UTC().Format(time.RFC3339Nano), seg.Expires.UTC().Format(time.RFC3339Nano)))})
	u.log.Warn("spooled segment past its retention deleted without being stored", "camera", seg.Camera, "id", seg.ID)
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
