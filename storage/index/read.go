package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-cctv/vigil/storage"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// forEachChunk is how many segments ForEach reads per transaction: large
// enough to amortise the transaction, small enough that a slow callback
// never pins an old snapshot of the file.
const forEachChunk = 512

// view runs fn in a read transaction. A ReadOnly index of a missing file has
// no database, and fn is not called: every read sees an empty index.
func (ix *Index) view(fn func(*bolt.Tx) error) error {
	ix.mu.RLock()
	closed := ix.closed
	ix.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if ix.db == nil {
		return nil
	}
	err := ix.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// Get returns the segment with the id, or an error matching ErrNotFound.
func (ix *Index) Get(id string) (storage.Segment, error) {
	var s storage.Segment
	found := false
	err := ix.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSegments).Get([]byte(id))
		if v == nil {
			return nil
		}
		found = true
		var err error
		s, err = decodeSegment(v)
		return err
	})
	switch {
	case err != nil:
		return storage.Segment{}, fmt.Errorf("index: get %s: %w", id, wrapCorrupt(err))
	case !found:
		return storage.Segment{}, fmt.Errorf("index: get %s: %w", id, ErrNotFound)
	}
	return s, nil
}

// wrapCorrupt marks a record decoding error as ErrCorrupt.
func wrapCorrupt(err error) error {
	if errors.Is(err, errRecord) {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return err
}

// List returns the camera's segments that overlap [from, to): those that
// start before to and end after from. A segment ending exactly at from or
// starting exactly at to is not included. They are ordered by start
// (millisecond), then id. from after to is an error.
//
// The scan starts at from minus the longest segment ever indexed for the
// camera rather than at the camera's first segment, so its cost follows the
// window, not the camera's history.
func (ix *Index) List(district, camera string, from, to time.Time) ([]storage.Segment, error) {
	name := cameraName(district, camera)
	if err := storage.ValidateName("district", district); err != nil {
		return nil, fmt.Errorf("index: list %s: %w", name, err)
	}
	if err := storage.ValidateName("camera", camera); err != nil {
		return nil, fmt.Errorf("index: list %s: %w", name, err)
	}
	if from.After(to) {
		return nil, fmt.Errorf("index: list %s: from %s is after to %s", name, from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano))
	}
	if !from.Before(to) || !to.After(minTime) {
		return nil, nil
	}
	var out []storage.Segment
	err := ix.view(func(tx *bolt.Tx) error {
		var err error
		out, err = ix.listTx(tx, district, camera, from, to)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("index: list %s: %w", name, wrapCorrupt(err))
	}
	return out, nil
}

// listTx is List inside a transaction.
func (ix *Index) listTx(tx *bolt.Tx, district, camera string, from, to time.Time) ([]storage.Segment, error) {
	var out []storage.Segment
	prefix := cameraPrefix(district, camera)
	var span time.Duration
	if v := tx.Bucket(bucketSpans).Get([]byte(cameraName(district, camera))); len(v) == 8 {
		span = time.Duration(binary.BigEndian.Uint64(v))
	}
	// Keys hold the start truncated to the millisecond: step one more
	// millisecond back so that truncation cannot skip a candidate.
	seek := append(bytes.Clone(prefix), msKey(from.Add(-span).UnixMilli()-1)...)
	segs := tx.Bucket(bucketSegments)
	c := tx.Bucket(bucketCamera).Cursor()
	for k, _ := c.Seek(seek); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		ix.visited.Add(1)
		rest := k[len(prefix):]
		if len(rest) < 8 {
			return nil, fmt.Errorf("%w: camera key %q", ErrCorrupt, k)
		}
		if !time.UnixMilli(int64(binary.BigEndian.Uint64(rest))).Before(to) {
			break
		}
		v := segs.Get(rest[8:])
		if v == nil {
			return nil, fmt.Errorf("%w: camera key for missing segment %q", ErrCorrupt, rest[8:])
		}
		s, err := decodeSegment(v)
		if err != nil {
			return nil, fmt.Errorf("segment %s: %w", rest[8:], err)
		}
		if s.Overlaps(from, to) {
			out = append(out, s)
		}
	}
	return out, nil
}

// Expiring returns up to limit segments whose Expires is before the given
// time, earliest expiry first; limit <= 0 means no limit. Held segments are
// never returned: they have no expiry entry until their last hold is
// released through Update. The cost is proportional to the segments
// returned, not to the size of the index.
func (ix *Index) Expiring(before time.Time, limit int) ([]storage.Segment, error) {
	var out []storage.Segment
	err := ix.view(func(tx *bolt.Tx) error {
		segs := tx.Bucket(bucketSegments)
		c := tx.Bucket(bucketExpiry).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			ix.visited.Add(1)
			if len(k) < 8 {
				return fmt.Errorf("%w: expiry key %q", ErrCorrupt, k)
			}
			if !time.UnixMilli(int64(binary.BigEndian.Uint64(k))).Before(before) {
				break
			}
			v := segs.Get(k[8:])
			if v == nil {
				return fmt.Errorf("%w: expiry key for missing segment %q", ErrCorrupt, k[8:])
			}
			s, err := decodeSegment(v)
			if err != nil {
				return fmt.Errorf("segment %s: %w", k[8:], err)
			}
			// Keys are truncated to the millisecond, so the last
			// millisecond before the bound needs the exact check.
			if !s.Expires.Before(before) {
				continue
			}
			out = append(out, s)
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index: expiring: %w", wrapCorrupt(err))
	}
	return out, nil
}

// ForEach calls fn for every segment in id order, stopping at and returning
// fn's first error. It reads in chunks of short transactions and calls fn
// with none open, so fn may take its time and may itself use the index.
// It is therefore not a snapshot: a segment unchanged throughout is seen
// exactly once, one added or deleted meanwhile may or may not be seen.
func (ix *Index) ForEach(fn func(storage.Segment) error) error {
	var after []byte
	chunk := make([]storage.Segment, 0, forEachChunk)
	for {
		chunk = chunk[:0]
		err := ix.view(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketSegments).Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && len(chunk) < forEachChunk; k, v = c.Next() {
				s, err := decodeSegment(v)
				if err != nil {
					return fmt.Errorf("segment %s: %w", k, err)
				}
				chunk = append(chunk, s)
				after = bytes.Clone(k)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("index: for each: %w", wrapCorrupt(err))
		}
		for _, s := range chunk {
			if err := fn(s); err != nil {
				return err
			}
		}
		if len(chunk) < forEachChunk {
			return nil
		}
	}
}

// Count returns the number of segments.
func (ix *Index) Count() (int, error) {
	n := 0
	err := ix.view(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketSegments).Stats().KeyN
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("index: count: %w", err)
	}
	return n, nil
}

// Cameras returns the "<district>/<camera>" names that have at least one
// segment, sorted. It seeks past each camera's keys, so its cost follows the
// number of cameras, not of segments.
func (ix *Index) Cameras() ([]string, error) {
	var out []string
	err := ix.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketCamera).Cursor()
		for k, _ := c.First(); k != nil; {
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				return fmt.Errorf("%w: camera key %q", ErrCorrupt, k)
			}
			out = append(out, string(k[:i]))
			// 0x01 sorts after every key of this camera (they continue
			// with 0x00) and before any other camera's.
			next := append(bytes.Clone(k[:i]), 1)
			k, _ = c.Seek(next)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index: cameras: %w", err)
	}
	return out, nil
}
