package index

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/vigil-cctv/vigil/storage"
)

// The outbox holds the reports the agent owes central, in the same file as
// the index so that a segment and the report of it are written in one
// transaction: no crash can leave a segment indexed but never reported, or
// reported but not indexed. Reports are opaque payloads to this package,
// numbered by a sequence that never goes back within one outbox, even across
// restarts and after every report has been acknowledged. A new outbox (new
// id) starts again at 1.
var (
	bucketOutbox = []byte("outbox") // seq (8 bytes, big endian) → payload
	keyNextSeq   = []byte("outbox_next_seq")
	keyStarted   = []byte("outbox_started") // value: the outbox id
)

// Report is one queued report.
type Report struct {
	Seq     uint64
	Payload []byte
}

// ErrOutboxStarted means StartOutbox was called for an outbox already started.
var ErrOutboxStarted = errors.New("outbox already started")

// appendTx queues payload with the next sequence number.
func appendTx(tx *bolt.Tx, payload []byte) (uint64, error) {
	out, err := tx.CreateBucketIfNotExists(bucketOutbox)
	if err != nil {
		return 0, err
	}
	meta := tx.Bucket(bucketMeta)
	seq := uint64(1)
	if v := meta.Get(keyNextSeq); len(v) == 8 {
		seq = binary.BigEndian.Uint64(v)
	}
	if err := meta.Put(keyNextSeq, binary.BigEndian.AppendUint64(nil, seq+1)); err != nil {
		return 0, err
	}
	return seq, out.Put(binary.BigEndian.AppendUint64(nil, seq), payload)
}

// OutboxID is the id StartOutbox gave this outbox, "" before it ran. A new
// index file (the old one lost) gets a new id, telling central that sequence
// numbers start again and its picture of the district must be rebuilt.
func (ix *Index) OutboxID() (string, error) {
	var id string
	err := ix.view(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			id = string(meta.Get(keyStarted))
		}
		return nil
	})
	return id, err
}

// StartOutbox turns reporting on: in one transaction, it queues the report
// that payloadFor makes of every segment already indexed (what central has
// never heard of), then the extra payloads, and gives the outbox an id. It
// runs once per index; a second call fails with ErrOutboxStarted.
func (ix *Index) StartOutbox(ctx context.Context, payloadFor func(storage.Segment) ([]byte, error), extra ...[]byte) (int, error) {
	return ix.newOutbox(ctx, false, payloadFor, extra)
}

// RestartOutbox replaces the outbox with a new one, under a new id: the
// queued reports are dropped and replaced by a report of every indexed
// segment and the extra payloads. An agent does this when central's
// picture of it cannot be brought up to date by resending (central lost or
// rolled back its state, or this index was restored from a copy): central
// then rebuilds the district from the new outbox.
func (ix *Index) RestartOutbox(ctx context.Context, payloadFor func(storage.Segment) ([]byte, error), extra ...[]byte) (int, error) {
	return ix.newOutbox(ctx, true, payloadFor, extra)
}

func (ix *Index) newOutbox(ctx context.Context, restart bool, payloadFor func(storage.Segment) ([]byte, error), extra [][]byte) (int, error) {
	n := 0
	outboxID := storage.NewSegmentID() // any random id will do
	err := ix.submit(ctx, func(tx *bolt.Tx) error {
		n = 0
		meta := tx.Bucket(bucketMeta)
		if meta.Get(keyStarted) != nil && !restart {
			return ErrOutboxStarted
		}
		if tx.Bucket(bucketOutbox) != nil {
			if err := tx.DeleteBucket(bucketOutbox); err != nil {
				return err
			}
		}
		// Sequence numbers count within one outbox: central expects a new
		// one to start at 1.
		if err := meta.Put(keyNextSeq, binary.BigEndian.AppendUint64(nil, 1)); err != nil {
			return err
		}
		c := tx.Bucket(bucketSegments).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			s, err := decodeSegment(v)
			if err != nil {
				return fmt.Errorf("%w: stored record %q: %w", ErrCorrupt, k, err)
			}
			p, err := payloadFor(s)
			if err != nil {
				return err
			}
			if _, err := appendTx(tx, p); err != nil {
				return err
			}
			n++
		}
		for _, p := range extra {
			if _, err := appendTx(tx, p); err != nil {
				return err
			}
		}
		return meta.Put(keyStarted, []byte(outboxID))
	})
	if err != nil {
		return 0, fmt.Errorf("index: start outbox: %w", err)
	}
	ix.notifyReports()
	return n, nil
}

// UpdateReported is Update, plus the report payloadFor makes of the updated
// segment queued in the same transaction.
func (ix *Index) UpdateReported(id string, fn func(*storage.Segment) error, payloadFor func(storage.Segment) ([]byte, error)) error {
	err := ix.update(id, fn, func(tx *bolt.Tx, s *storage.Segment) error {
		p, err := payloadFor(*s)
		if err != nil {
			return err
		}
		_, err = appendTx(tx, p)
		return err
	})
	if err == nil {
		ix.notifyReports()
	}
	return err
}

// OutboxRange is the first queued report's sequence number (0 when none is
// queued) and the last number ever handed out.
func (ix *Index) OutboxRange() (first, last uint64, err error) {
	err = ix.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketOutbox); b != nil {
			if k, _ := b.Cursor().First(); k != nil {
				first = binary.BigEndian.Uint64(k)
			}
		}
		if meta := tx.Bucket(bucketMeta); meta != nil {
			if v := meta.Get(keyNextSeq); len(v) == 8 {
				last = binary.BigEndian.Uint64(v) - 1
			}
		}
		return nil
	})
	return first, last, err
}

// PutReported is Put, plus payload queued in the outbox in the same
// transaction. It returns the report's sequence number.
func (ix *Index) PutReported(ctx context.Context, seg *storage.Segment, payload []byte) (uint64, error) {
	if seg == nil {
		return 0, fmt.Errorf("index: put: %w: nil segment", ErrInvalidSegment)
	}
	if err := validate(seg); err != nil {
		return 0, fmt.Errorf("index: put %s: %w", seg.ID, err)
	}
	s := *seg
	s.HeldBy = slices.Clone(seg.HeldBy)
	val := encodeSegment(&s)
	var seq uint64
	err := ix.submit(ctx, func(tx *bolt.Tx) error {
		if err := putTx(tx, &s, val, true); err != nil {
			return err
		}
		var err error
		seq, err = appendTx(tx, payload)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("index: put %s: %w", seg.ID, err)
	}
	ix.notifyReports()
	return seq, nil
}

// AppendReport queues a report that goes with no index change (a camera's
// status, say).
func (ix *Index) AppendReport(ctx context.Context, payload []byte) (uint64, error) {
	var seq uint64
	err := ix.submit(ctx, func(tx *bolt.Tx) error {
		var err error
		seq, err = appendTx(tx, payload)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("index: append report: %w", err)
	}
	ix.notifyReports()
	return seq, nil
}

// Reports returns up to max queued reports with a sequence number above
// after, in order.
func (ix *Index) Reports(after uint64, max int) ([]Report, error) {
	var out []Report
	err := ix.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, after+1)); k != nil && len(out) < max; k, v = c.Next() {
			out = append(out, Report{Seq: binary.BigEndian.Uint64(k), Payload: slices.Clone(v)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index: read reports: %w", err)
	}
	return out, nil
}

// AckReports forgets the reports up to and including seq: central has
// applied them durably.
func (ix *Index) AckReports(seq uint64) error {
	err := ix.submit(context.Background(), func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= seq; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("index: ack reports: %w", err)
	}
	return nil
}

// OutboxState is the number of queued reports and the last sequence number
// handed out (0 before any).
func (ix *Index) OutboxState() (pending int, lastSeq uint64, err error) {
	err = ix.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketOutbox); b != nil {
			pending = b.Stats().KeyN
		}
		if meta := tx.Bucket(bucketMeta); meta != nil {
			if v := meta.Get(keyNextSeq); len(v) == 8 {
				lastSeq = binary.BigEndian.Uint64(v) - 1
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("index: outbox state: %w", err)
	}
	return pending, lastSeq, nil
}

// ReportsAdded is signalled (without blocking, coalescing) after reports are
// queued, so a sender can sleep until there is something to send.
func (ix *Index) ReportsAdded() <-chan struct{} { return ix.reportsAdded }

func (ix *Index) notifyReports() {
	select {
	case ix.reportsAdded <- struct{}{}:
	default:
	}
}
