package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/vigil-cctv/vigil/storage"
	bolt "go.etcd.io/bbolt"
)

// maxBatch caps how many writes share one transaction, so one commit stays
// short enough that readers and the next batch are not kept waiting.
const maxBatch = 1024

// maxUpdateAttempts bounds Update's optimistic retries. Only writers racing
// on the same id conflict, so hitting it means something is looping.
const maxUpdateAttempts = 64

// maxIDLen keeps ids far below bbolt's key limit once they are embedded in
// secondary keys.
const maxIDLen = 256

// Earliest and latest indexable instants: keys hold Unix milliseconds as
// unsigned integers and records hold Unix nanoseconds as int64.
var (
	minTime = time.Unix(0, 0)
	maxTime = time.Unix(0, 1<<63-1)
)

const (
	opPending   = iota // queued, the writer may take it
	opTaken            // the writer owns it and will answer on done
	opAbandoned        // the caller gave up; the writer must skip it
)

type writeOp struct {
	apply func(tx *bolt.Tx) error
	done  chan error // buffered: the writer never blocks on a caller
	state atomic.Int32
}

// errConflict is Update's signal that the record changed between its read
// and its write; it never leaves the package.
var errConflict = errors.New("record changed concurrently")

// submit queues apply for the writer goroutine and waits for its commit.
// The context only bounds the wait before the writer takes the operation:
// once taken it commits or fails as a whole, so the caller always learns
// the true outcome rather than a cancellation that hides a write.
func (ix *Index) submit(ctx context.Context, apply func(*bolt.Tx) error) error {
	if ix.readOnly {
		return ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		// Checked first: the select below picks at random among ready
		// cases and could otherwise queue a write for a dead context.
		return err
	}
	op := &writeOp{apply: apply, done: make(chan error, 1)}
	ix.mu.RLock()
	if ix.closed {
		ix.mu.RUnlock()
		return ErrClosed
	}
	select {
	case ix.ops <- op:
	case <-ctx.Done():
		ix.mu.RUnlock()
		return ctx.Err()
	}
	ix.mu.RUnlock()
	select {
	case err := <-op.done:
		return err
	case <-ctx.Done():
		if op.state.CompareAndSwap(opPending, opAbandoned) {
			return ctx.Err()
		}
		return <-op.done
	}
}

// run is the writer goroutine: it takes the first queued operation, then
// everything else already queued, and commits them in one transaction.
// Operations that queue during that commit's fsync form the next batch,
// so batches grow with load without a timer delaying a lone writer.
func (ix *Index) run() {
	defer close(ix.stopped)
	batch := make([]*writeOp, 0, maxBatch)
	for op := range ix.ops {
		batch = append(batch[:0], op)
	fill:
		for len(batch) < maxBatch {
			select {
			case op, ok := <-ix.ops:
				if !ok {
					break fill
				}
				batch = append(batch, op)
			default:
				break fill
			}
		}
		ix.commit(batch)
	}
}

// commit applies the batch in one transaction. An operation whose apply
// fails is answered with its error and the transaction is redone without
// it, so one bad write never fails or half-applies its neighbours.
func (ix *Index) commit(batch []*writeOp) {
	live := make([]*writeOp, 0, len(batch))
	for _, op := range batch {
		if op.state.CompareAndSwap(opPending, opTaken) {
			live = append(live, op)
		}
	}
	for len(live) > 0 {
		failed := -1
		var opErr error
		err := ix.db.Update(func(tx *bolt.Tx) error {
			for i, op := range live {
				if err := op.apply(tx); err != nil {
					failed, opErr = i, err
					return err
				}
			}
			if ix.beforeCommit != nil {
				ix.beforeCommit()
			}
			return nil
		})
		if failed >= 0 {
			// Rolled back: the failed operation changed nothing, and the
			// ones before it are retried in the next round.
			live[failed].done <- opErr
			live = slices.Delete(live, failed, failed+1)
			continue
		}
		if err == nil {
			ix.commits.Add(1)
		}
		for _, op := range live {
			op.done <- err
		}
		return
	}
}

// validate checks what the index needs of a segment; the messages name the
// field so that a bad input is easy to trace.
func validate(s *storage.Segment) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidSegment, fmt.Sprintf(format, args...))
	}
	switch {
	case s.ID == "":
		return bad("empty id")
	case len(s.ID) > maxIDLen:
		return bad("id longer than %d bytes", maxIDLen)
	case s.Key == "":
		return bad("empty object key")
	case s.Bytes < 0:
		return bad("negative size %d", s.Bytes)
	}
	if err := storage.ValidateName("district", s.District); err != nil {
		return bad("%v", err)
	}
	if err := storage.ValidateName("camera", s.Camera); err != nil {
		return bad("%v", err)
	}
	for _, f := range []struct {
		name string
		t    time.Time
	}{{"start", s.Start}, {"end", s.End}, {"expires", s.Expires}} {
		if f.t.IsZero() {
			return bad("%s not set", f.name)
		}
		if f.t.Before(minTime) || f.t.After(maxTime) {
			return bad("%s %s outside 1970-2262", f.name, f.t.Format(time.RFC3339))
		}
	}
	if s.End.Before(s.Start) {
		return bad("end %s before start %s", s.End.Format(time.RFC3339Nano), s.Start.Format(time.RFC3339Nano))
	}
	for _, h := range s.HeldBy {
		if h == "" {
			return bad("empty hold id")
		}
	}
	return nil
}

// Put adds the segment or replaces the one with the same id, moving its
// camera and expiry entries if start, camera or expiry changed.
//
// One field is merged, not replaced: HeldBy becomes the union of the stored
// and the new holds. Holds are released only through Update, so a retried
// upload that re-puts a segment can never silently drop a hold.
//
// Concurrent Puts share a commit. Put returns once the segment is durable,
// or with ctx's error if ctx ends before the writer took it (then nothing
// was written). An invalid segment fails with ErrInvalidSegment.
func (ix *Index) Put(ctx context.Context, seg *storage.Segment) error {
	if seg == nil {
		return fmt.Errorf("index: put: %w: nil segment", ErrInvalidSegment)
	}
	if err := validate(seg); err != nil {
		return fmt.Errorf("index: put %s: %w", seg.ID, err)
	}
	s := *seg
	s.HeldBy = slices.Clone(seg.HeldBy)
	val := encodeSegment(&s)
	err := ix.submit(ctx, func(tx *bolt.Tx) error {
		return putTx(tx, &s, val, true)
	})
	if err != nil {
		return fmt.Errorf("index: put %s: %w", seg.ID, err)
	}
	return nil
}

// putTx writes s (whose encoding is val) and its secondary keys, first
// removing the secondary keys of any record it replaces. With mergeHolds the
// stored holds are kept (see Put). It must not modify s: a batch may run it
// again after a rollback.
func putTx(tx *bolt.Tx, s *storage.Segment, val []byte, mergeHolds bool) error {
	segs := tx.Bucket(bucketSegments)
	var oldBytes int64
	oldPlaceholder := false
	if old := segs.Get([]byte(s.ID)); old != nil {
		o, err := decodeSegment(old)
		if err != nil {
			return fmt.Errorf("%w: stored record: %w", ErrCorrupt, err)
		}
		if mergeHolds {
			if merged := unionHolds(o.HeldBy, s.HeldBy); len(merged) != len(s.HeldBy) {
				m := *s
				m.HeldBy = merged
				s, val = &m, encodeSegment(&m)
			}
		}
		if err := deleteSecondary(tx, &o); err != nil {
			return err
		}
		oldBytes = o.Bytes
		oldPlaceholder = slices.Contains(o.HeldBy, PlaceholderHold)
	}
	// A hold covers what is recorded within its span after it was placed
	// too: a segment indexed later joins every hold in force over it.
	// A segment the sweeper claimed is past saving (expire.go).
	isClaimed := claimed(tx, s.ID)
	var covering []string
	if !isClaimed {
		var err error
		if covering, err = coveringHolds(tx, s); err != nil {
			return err
		}
	}
	if merged := unionHolds(covering, s.HeldBy); len(merged) != len(s.HeldBy) {
		m := *s
		m.HeldBy = merged
		s, val = &m, encodeSegment(&m)
	}
	if err := segs.Put([]byte(s.ID), val); err != nil {
		return err
	}
	if err := tx.Bucket(bucketCamera).Put(cameraKey(s), nil); err != nil {
		return err
	}
	// A held segment has no expiry entry, so the sweeper never sees it and
	// Expiring's cost stays proportional to what may actually be deleted.
	// Nor has one the sweeper has claimed: it is being destroyed.
	if !s.Held() && !isClaimed {
		if err := tx.Bucket(bucketExpiry).Put(expiryKey(s), nil); err != nil {
			return err
		}
	}
	if err := addUsage(tx, s.Bytes-oldBytes); err != nil {
		return err
	}
	if now := slices.Contains(s.HeldBy, PlaceholderHold); now != oldPlaceholder {
		if err := addPlaceholders(tx, now); err != nil {
			return err
		}
	}
	return growSpan(tx, s)
}

// removeTx removes the segment's record, its secondary keys and any claim
// on it, and takes its bytes off the usage count.
func removeTx(tx *bolt.Tx, s *storage.Segment) error {
	if err := deleteSecondary(tx, s); err != nil {
		return err
	}
	if b := tx.Bucket(bucketClaims); b != nil {
		if err := b.Delete([]byte(s.ID)); err != nil {
			return err
		}
	}
	if err := addUsage(tx, -s.Bytes); err != nil {
		return err
	}
	if slices.Contains(s.HeldBy, PlaceholderHold) {
		if err := addPlaceholders(tx, false); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketSegments).Delete([]byte(s.ID))
}

func deleteSecondary(tx *bolt.Tx, s *storage.Segment) error {
	if err := tx.Bucket(bucketCamera).Delete(cameraKey(s)); err != nil {
		return err
	}
	return tx.Bucket(bucketExpiry).Delete(expiryKey(s))
}

// growSpan records the longest duration seen for the camera. It only grows:
// List needs an upper bound, and a stale large one costs a few extra keys
// visited, never a missed segment.
func growSpan(tx *bolt.Tx, s *storage.Segment) error {
	spans := tx.Bucket(bucketSpans)
	name := []byte(cameraName(s.District, s.Camera))
	d := int64(s.Duration())
	if v := spans.Get(name); len(v) == 8 && int64(binary.BigEndian.Uint64(v)) >= d {
		return nil
	}
	return spans.Put(name, binary.BigEndian.AppendUint64(nil, uint64(d)))
}

// unionHolds returns b followed by the ids of a that b lacks.
func unionHolds(a, b []string) []string {
	out := slices.Clone(b)
	for _, h := range a {
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Delete removes the segment and its camera and expiry entries. A missing id
// fails with ErrNotFound.
func (ix *Index) Delete(id string) error {
	err := ix.submit(context.Background(), func(tx *bolt.Tx) error {
		segs := tx.Bucket(bucketSegments)
		old := segs.Get([]byte(id))
		if old == nil {
			return ErrNotFound
		}
		o, err := decodeSegment(old)
		if err != nil {
			return fmt.Errorf("%w: stored record: %w", ErrCorrupt, err)
		}
		return removeTx(tx, &o)
	})
	if err != nil {
		return fmt.Errorf("index: delete %s: %w", id, err)
	}
	return nil
}

// SetMissing sets or clears the segment's Missing flag. A missing id fails
// with ErrNotFound.
func (ix *Index) SetMissing(id string, missing bool) error {
	err := ix.submit(context.Background(), func(tx *bolt.Tx) error {
		old := tx.Bucket(bucketSegments).Get([]byte(id))
		if old == nil {
			return ErrNotFound
		}
		s, err := decodeSegment(old)
		if err != nil {
			return fmt.Errorf("%w: stored record: %w", ErrCorrupt, err)
		}
		if s.Missing == missing {
			return nil
		}
		s.Missing = missing
		return putTx(tx, &s, encodeSegment(&s), false)
	})
	if err != nil {
		return fmt.Errorf("index: set missing %s: %w", id, err)
	}
	return nil
}

// Update reads the segment, lets fn change it, and stores the result with its
// secondary keys moved to match. Unlike Put it replaces HeldBy as fn leaves
// it, so it is how holds are added and released.
//
// fn runs in the caller's goroutine with no transaction open, and may run
// more than once if another writer changes the same segment meanwhile: it
// must only change the segment it is given. An error from fn is returned
// wrapped and nothing is stored. fn must not change the id. A missing id
// fails with ErrNotFound, an invalid result with ErrInvalidSegment.
func (ix *Index) Update(id string, fn func(*storage.Segment) error) error {
	return ix.update(id, fn, nil)
}

// update is Update with an extra step run in the write transaction on the
// stored result (the outbox's report of it).
func (ix *Index) update(id string, fn func(*storage.Segment) error, also func(*bolt.Tx, *storage.Segment) error) error {
	for range maxUpdateAttempts {
		var raw []byte
		err := ix.view(func(tx *bolt.Tx) error {
			if v := tx.Bucket(bucketSegments).Get([]byte(id)); v != nil {
				raw = bytes.Clone(v)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("index: update %s: %w", id, err)
		}
		if raw == nil {
			return fmt.Errorf("index: update %s: %w", id, ErrNotFound)
		}
		s, err := decodeSegment(raw)
		if err != nil {
			return fmt.Errorf("index: update %s: %w: stored record: %w", id, ErrCorrupt, err)
		}
		if err := fn(&s); err != nil {
			return fmt.Errorf("index: update %s: %w", id, err)
		}
		if s.ID != id {
			return fmt.Errorf("index: update %s: %w: fn changed the id to %q", id, ErrInvalidSegment, s.ID)
		}
		if err := validate(&s); err != nil {
			return fmt.Errorf("index: update %s: %w", id, err)
		}
		if len(s.HeldBy) == 0 {
			s.HeldBy = nil
		}
		val := encodeSegment(&s)
		err = ix.submit(context.Background(), func(tx *bolt.Tx) error {
			if cur := tx.Bucket(bucketSegments).Get([]byte(id)); !bytes.Equal(cur, raw) {
				return errConflict
			}
			if err := putTx(tx, &s, val, false); err != nil {
				return err
			}
			if also != nil {
				return also(tx, &s)
			}
			return nil
		})
		if errors.Is(err, errConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("index: update %s: %w", id, err)
		}
		return nil
	}
	return fmt.Errorf("index: update %s: gave up after %d concurrent changes", id, maxUpdateAttempts)
}
