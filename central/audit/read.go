package audit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"
)

// Query limits.
const (
	DefaultQueryLimit = 1000
	MaxQueryLimit     = 100000
)

// Size returns the number of records committed: the next record gets Seq
// Size(), and the tree of the whole log has size Size().
func (l *Log) Size() uint64 { return l.size.Load() }

// view runs fn in a read transaction, or fails with ErrClosed.
func (l *Log) view(fn func(*bbolt.Tx) error) error {
	l.mu.RLock()
	closed := l.closed
	l.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	return l.db.View(fn)
}

// clip checks a range [from, to) and bounds it by the log's size.
func (l *Log) clip(from, to uint64) (uint64, uint64, error) {
	if from > to {
		return 0, 0, fmt.Errorf("%w: from %d after to %d", ErrOutOfRange, from, to)
	}
	return min(from, l.Size()), min(to, l.Size()), nil
}

// RawRecords returns the stored bytes of the records from Seq from to Seq
// to-1 (to is bounded by Size), for an auditor's program to check. On an
// intact log they are exactly those records; on a damaged one, the values
// stored under keys from..to-1 in key order, so that Verify sees a deleted
// record as a gap, not as a read error.
func (l *Log) RawRecords(from, to uint64) ([][]byte, error) {
	from, to, err := l.clip(from, to)
	if err != nil {
		return nil, fmt.Errorf("audit: raw records: %w", err)
	}
	out := make([][]byte, 0, to-from)
	err = l.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		for k, v := c.Seek(encodeU64(from)); k != nil && decodeU64(k) < to; k, v = c.Next() {
			out = append(out, bytes.Clone(v))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit: raw records: %w", err)
	}
	return out, nil
}

// Records returns the records from Seq from to Seq to-1 (to is bounded by
// Size), decoded. A stored record that is not canonical, or not at its
// place, gives a *TamperError.
func (l *Log) Records(from, to uint64) ([]Record, error) {
	from, to, err := l.clip(from, to)
	if err != nil {
		return nil, fmt.Errorf("audit: records: %w", err)
	}
	out := make([]Record, 0, to-from)
	err = l.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		for seq := from; seq < to; seq++ {
			rec, err := decodeStored(b, seq)
			if err != nil {
				return err
			}
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit: records: %w", err)
	}
	return out, nil
}

// decodeStored reads and decodes the record Seq seq.
func decodeStored(b *bbolt.Bucket, seq uint64) (Record, error) {
	v := b.Get(encodeU64(seq))
	if v == nil {
		return Record{}, tampered(seq, "record missing")
	}
	rec, err := Unmarshal(v)
	if err != nil {
		return Record{}, tampered(seq, "%v", err)
	}
	if rec.Seq != seq {
		return Record{}, tampered(seq, "record stored at %d has seq %d", seq, rec.Seq)
	}
	return rec, nil
}

// StoredHashes returns the tree hashes stored with tlog stored hash indexes
// from to to-1 (see tlog.StoredHashIndex), in index order. Verify compares
// them with the ones it recomputes.
func (l *Log) StoredHashes(from, to int64) ([]tlog.Hash, error) {
	if from < 0 || from > to {
		return nil, fmt.Errorf("audit: stored hashes: %w: [%d, %d)", ErrOutOfRange, from, to)
	}
	out := make([]tlog.Hash, 0, to-from)
	err := l.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketHashes).Cursor()
		for k, v := c.Seek(encodeU64(uint64(from))); k != nil && decodeU64(k) < uint64(to); k, v = c.Next() {
			var h tlog.Hash
			copy(h[:], v)
			out = append(out, h)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit: stored hashes: %w", err)
	}
	return out, nil
}

// Checkpoint returns the latest signed checkpoint, ErrNoCheckpoint if there
// is none yet. It may be up to Options.CheckpointEvery behind the log;
// CheckpointNow signs one of the whole log.
func (l *Log) Checkpoint() ([]byte, error) {
	if cp := l.latestCheckpoint(); cp != nil {
		return bytes.Clone(cp), nil
	}
	return nil, fmt.Errorf("audit: checkpoint: %w", ErrNoCheckpoint)
}

// Checkpoints returns every stored checkpoint, by increasing tree size.
//
// On a log open for writing, a checkpoint committed with records that Size
// does not count yet (the writer is between its commit and updating Size)
// is left out, so that a reader never sees a checkpoint beyond the log. A
// read-only log returns all, as they are stored: one beyond its size is
// evidence that records were removed.
func (l *Log) Checkpoints() ([][]byte, error) {
	size := l.Size()
	var out [][]byte
	err := l.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketCheckpoints).ForEach(func(k, v []byte) error {
			if !l.opts.ReadOnly && decodeU64(k) > size {
				return nil
			}
			out = append(out, bytes.Clone(v))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoints: %w", err)
	}
	return out, nil
}

// InclusionProof returns the proof that record seq is in the tree of size
// treeSize, to check with tlog.CheckRecord against the root of a checkpoint
// of that size and the record's leaf hash, tlog.RecordHash of its stored
// bytes (RawRecords).
func (l *Log) InclusionProof(seq, treeSize uint64) (tlog.RecordProof, error) {
	if treeSize > l.Size() || seq >= treeSize {
		return nil, fmt.Errorf("audit: inclusion proof: %w: record %d in tree of size %d, log of %d", ErrOutOfRange, seq, treeSize, l.Size())
	}
	var p tlog.RecordProof
	err := l.view(func(tx *bbolt.Tx) error {
		var err error
		p, err = tlog.ProveRecord(int64(treeSize), int64(seq), bucketHashReader{tx.Bucket(bucketHashes)})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("audit: inclusion proof: %w", err)
	}
	return p, nil
}

// ConsistencyProof returns the proof that the tree of size newSize extends
// the tree of size oldSize, to check with tlog.CheckTree against the roots
// of two checkpoints. oldSize must be at least 1: every tree extends the
// empty one.
func (l *Log) ConsistencyProof(oldSize, newSize uint64) (tlog.TreeProof, error) {
	if newSize > l.Size() || oldSize < 1 || oldSize > newSize {
		return nil, fmt.Errorf("audit: consistency proof: %w: from size %d to %d, log of %d", ErrOutOfRange, oldSize, newSize, l.Size())
	}
	var p tlog.TreeProof
	err := l.view(func(tx *bbolt.Tx) error {
		var err error
		p, err = tlog.ProveTree(int64(newSize), int64(oldSize), bucketHashReader{tx.Bucket(bucketHashes)})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("audit: consistency proof: %w", err)
	}
	return p, nil
}

// Filter selects records for Query and Scan. Zero fields select everything.
type Filter struct {
	// Since and Until bound the record time: Since <= Time < Until.
	Since, Until time.Time
	// Actor is a user name, matched exactly.
	Actor string
	// Action is an action code matched exactly, or a prefix ending in ".*"
	// ("user.*" selects user.add, user.disable, ...).
	Action string
	// District and Camera match the target's exactly.
	District, Camera string
	// Limit bounds Query's answer: DefaultQueryLimit when zero, at most
	// MaxQueryLimit. Scan ignores it.
	Limit int
}

// match reports whether rec passes the filter's fields other than time.
func (f Filter) match(rec Record) bool {
	if f.Actor != "" && rec.Actor.User != f.Actor {
		return false
	}
	if prefix, ok := strings.CutSuffix(f.Action, "*"); ok {
		if !strings.HasPrefix(rec.Action, prefix) {
			return false
		}
	} else if f.Action != "" && rec.Action != f.Action {
		return false
	}
	if f.District != "" && rec.Target.District != f.District {
		return false
	}
	return f.Camera == "" || rec.Target.Camera == f.Camera
}

func (f Filter) check() error {
	if f.Action != "" {
		if prefix, ok := strings.CutSuffix(f.Action, ".*"); ok {
			if !ValidAction(prefix) {
				return fmt.Errorf("action prefix %q: want words and dots ending in .*, such as user.*", f.Action)
			}
		} else if !ValidAction(f.Action) {
			return fmt.Errorf("action %q: want an action code such as live.start, or a prefix such as user.*", f.Action)
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return fmt.Errorf("until %s before since %s", f.Until.Format(time.RFC3339), f.Since.Format(time.RFC3339))
	}
	if f.Limit < 0 || f.Limit > MaxQueryLimit {
		return fmt.Errorf("%w: limit %d: want 1 to %d", ErrOutOfRange, f.Limit, MaxQueryLimit)
	}
	return nil
}

// errStop ends a Scan early without error.
var errStop = errors.New("stop")

// Query returns the records that pass f, by time (then Seq), at most
// f.Limit of them. Since and Until are looked up in a time index: a query
// of an hour reads that hour's records only.
func (l *Log) Query(f Filter) ([]Record, error) {
	if err := f.check(); err != nil {
		return nil, fmt.Errorf("audit: query: %w", err)
	}
	limit := f.Limit
	if limit == 0 {
		limit = DefaultQueryLimit
	}
	var out []Record
	err := l.scan(f, func(rec Record) error {
		out = append(out, rec)
		if len(out) == limit {
			return errStop
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit: query: %w", err)
	}
	return out, nil
}

// Scan calls fn for every record that passes f (f.Limit aside), by time,
// within one read transaction: reports use it to count over long periods
// without holding every record. An error of fn stops the scan and is
// returned.
func (l *Log) Scan(f Filter, fn func(Record) error) error {
	if err := f.check(); err != nil {
		return fmt.Errorf("audit: scan: %w", err)
	}
	if err := l.scan(f, fn); err != nil {
		return fmt.Errorf("audit: scan: %w", err)
	}
	return nil
}

func (l *Log) scan(f Filter, fn func(Record) error) error {
	err := l.view(func(tx *bbolt.Tx) error {
		records := tx.Bucket(bucketRecords)
		c := tx.Bucket(bucketTimes).Cursor()
		var k []byte
		if f.Since.IsZero() {
			k, _ = c.First()
		} else {
			k, _ = c.Seek(timeKey(f.Since, 0))
		}
		var until []byte
		if !f.Until.IsZero() {
			until = timeKey(f.Until, 0)
		}
		for ; k != nil; k, _ = c.Next() {
			if until != nil && bytes.Compare(k, until) >= 0 {
				return nil
			}
			if len(k) != 16 {
				return fmt.Errorf("%w: bad time index key %x", ErrTampered, k)
			}
			seq := binary.BigEndian.Uint64(k[8:])
			rec, err := decodeStored(records, seq)
			if err != nil {
				return err
			}
			if !bytes.Equal(timeKey(rec.Time, seq), k) {
				return tampered(seq, "time index says %x, record time %s", k[:8], rec.Time.Format(time.RFC3339Nano))
			}
			if !f.match(rec) {
				continue
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// checkTimeIndex checks that the time index holds exactly one key per
// record among the first n, each naming that record's own time.
func (l *Log) checkTimeIndex(n uint64) error {
	return l.db.View(func(tx *bbolt.Tx) error {
		times, recs := tx.Bucket(bucketTimes), tx.Bucket(bucketRecords)
		seen := make([]bool, n)
		count := uint64(0)
		c := times.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) != 16 {
				return tampered(0, "time index holds a malformed key")
			}
			seq := binary.BigEndian.Uint64(k[8:])
			if seq >= n {
				continue // appended after the verification began
			}
			if seen[seq] {
				return tampered(seq, "record indexed twice by time")
			}
			seen[seq] = true
			count++
			rec, err := Unmarshal(recs.Get(encodeU64(seq)))
			if err != nil {
				return tampered(seq, "record unreadable: %v", err)
			}
			if !bytes.Equal(k, timeKey(rec.Time, seq)) {
				return tampered(seq, "time index entry does not match the record's time")
			}
		}
		if count != n {
			for seq, ok := range seen {
				if !ok {
					return tampered(uint64(seq), "record missing from the time index: it would not be listed")
				}
			}
		}
		return nil
	})
}
