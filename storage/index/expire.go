package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vigil-cctv/vigil/storage"
)

// Destroying a segment takes two steps the store and the index cannot share
// a transaction for: the object is deleted, then the record. A hold placed
// in between would cover a segment whose object is already gone. So the
// sweeper first claims what it will delete, in one transaction that checks
// no hold covers it: the claim takes the segment out of the expiry index
// and into the claims bucket, and ApplyHold passes over claimed segments.
// Either the hold commits first (the segment is held and never claimed) or
// the claim does (the segment is destroyed and the hold does not count
// it); there is no third order. Claims survive a crash and are finished at
// the next sweep.
var (
	bucketClaims    = []byte("claims") // id → reason
	keyUsage        = []byte("usage_bytes")
	keyPlaceholders = []byte("placeholder_held") // segments held by PlaceholderHold
	keyRetention    = []byte("retention/")       // + "<district>/<camera>" → ns applied
)

// ErrNotClaimed means DeleteClaimed was given a segment that the sweeper
// has not claimed (or that a hold covers).
var ErrNotClaimed = errors.New("segment not claimed for deletion")

// Claim is a segment the sweeper has committed to destroy, and why.
type Claim struct {
	Segment storage.Segment
	Reason  string
}

func claimed(tx *bolt.Tx, id string) bool {
	b := tx.Bucket(bucketClaims)
	return b != nil && b.Get([]byte(id)) != nil
}

// ClaimRequest says what ClaimExpiring claims.
type ClaimRequest struct {
	// Before: segments whose Expires is before it (far in the future to
	// take the oldest regardless, under disk pressure).
	Before time.Time
	// Limit bounds the count claimed (0: no bound); Bytes, when positive,
	// stops claiming once the segments claimed add up to it.
	Limit int
	Bytes int64
	// Reason is recorded with the claim ("retention", "pressure").
	Reason string
}

// ClaimExpiring claims unheld segments for deletion, earliest expiry first,
// as the request bounds them. The cost follows the segments claimed, not
// the index size.
func (ix *Index) ClaimExpiring(ctx context.Context, req ClaimRequest) ([]storage.Segment, error) {
	before, limit, reason := req.Before, req.Limit, req.Reason
	if reason == "" {
		return nil, fmt.Errorf("index: claim: no reason")
	}
	var out []storage.Segment
	err := ix.submit(ctx, func(tx *bolt.Tx) error {
		out = out[:0]
		claims, err := tx.CreateBucketIfNotExists(bucketClaims)
		if err != nil {
			return err
		}
		segs := tx.Bucket(bucketSegments)
		exp := tx.Bucket(bucketExpiry)
		c := exp.Cursor()
		var done [][]byte
		var claimedBytes int64
		for k, _ := c.First(); k != nil && (limit <= 0 || len(out) < limit) && (req.Bytes <= 0 || claimedBytes < req.Bytes); k, _ = c.Next() {
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
			if !s.Expires.Before(before) || s.Held() {
				continue
			}
			if err := claims.Put([]byte(s.ID), []byte(reason)); err != nil {
				return err
			}
			done = append(done, bytes.Clone(k))
			out = append(out, s)
			claimedBytes += s.Bytes
		}
		// Not while the cursor walks the bucket.
		for _, k := range done {
			if err := exp.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index: claim: %w", wrapCorrupt(err))
	}
	return out, nil
}

// Claims returns every segment claimed and not yet deleted: after a crash,
// or after a deletion the store refused.
func (ix *Index) Claims() ([]Claim, error) {
	var out []Claim
	err := ix.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketClaims)
		if b == nil {
			return nil
		}
		segs := tx.Bucket(bucketSegments)
		return b.ForEach(func(k, v []byte) error {
			raw := segs.Get(k)
			if raw == nil {
				return fmt.Errorf("%w: claim for missing segment %q", ErrCorrupt, k)
			}
			s, err := decodeSegment(raw)
			if err != nil {
				return fmt.Errorf("segment %s: %w", k, err)
			}
			out = append(out, Claim{Segment: s, Reason: string(v)})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("index: claims: %w", wrapCorrupt(err))
	}
	return out, nil
}

// DeleteClaimed forgets a claimed segment whose object the store has
// destroyed, writing in the same transaction the district log entry and
// the outbox report of the deletion (report nil: not reported). A segment
// not claimed fails with ErrNotClaimed and nothing changes.
func (ix *Index) DeleteClaimed(ctx context.Context, id string, logged *Logged, report []byte) error {
	err := ix.submit(ctx, func(tx *bolt.Tx) error {
		if !claimed(tx, id) {
			return ErrNotClaimed
		}
		raw := tx.Bucket(bucketSegments).Get([]byte(id))
		if raw == nil {
			return fmt.Errorf("%w: claim for missing segment %q", ErrCorrupt, id)
		}
		s, err := decodeSegment(raw)
		if err != nil {
			return err
		}
		if s.Held() {
			return ErrNotClaimed
		}
		if err := removeTx(tx, &s); err != nil {
			return err
		}
		if err := logged.writeTx(tx); err != nil {
			return err
		}
		if report != nil {
			_, err = appendTx(tx, report)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("index: delete %s: %w", id, wrapCorrupt(err))
	}
	if logged.reported() || report != nil {
		ix.notifyReports()
	}
	return nil
}

// addUsage moves the total of indexed bytes by delta.
func addUsage(tx *bolt.Tx, delta int64) error {
	if delta == 0 {
		return nil
	}
	meta := tx.Bucket(bucketMeta)
	var total int64
	if v := meta.Get(keyUsage); len(v) == 8 {
		total = int64(binary.BigEndian.Uint64(v))
	}
	return meta.Put(keyUsage, binary.BigEndian.AppendUint64(nil, uint64(max(total+delta, 0))))
}

// Usage is the total size of the indexed segments, in bytes: what the
// store holds for the district, as far as the index knows.
func (ix *Index) Usage() (int64, error) {
	var total int64
	err := ix.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyUsage); len(v) == 8 {
			total = int64(binary.BigEndian.Uint64(v))
		}
		return nil
	})
	return total, err
}

// initUsage computes the usage count of an index written before it was
// kept.
func (ix *Index) initUsage() error {
	return ix.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta.Get(keyUsage) != nil {
			return nil
		}
		var total int64
		err := tx.Bucket(bucketSegments).ForEach(func(k, v []byte) error {
			s, err := decodeSegment(v)
			if err != nil {
				return fmt.Errorf("segment %s: %w", k, err)
			}
			total += s.Bytes
			return nil
		})
		if err != nil {
			return wrapCorrupt(err)
		}
		return meta.Put(keyUsage, binary.BigEndian.AppendUint64(nil, uint64(total)))
	})
}

// Unclaim gives back a claimed segment whose deletion failed: it returns
// to the expiry index (a later sweep claims it again), so that a hold
// placed meanwhile can still cover it. With storeHeld (the store refused
// because the object carries a legal hold the index did not know of) it is
// kept as held by PlaceholderHold instead.
func (ix *Index) Unclaim(ctx context.Context, id string, storeHeld bool) error {
	err := ix.submit(ctx, func(tx *bolt.Tx) error {
		if !claimed(tx, id) {
			return nil
		}
		raw := tx.Bucket(bucketSegments).Get([]byte(id))
		if raw == nil {
			return fmt.Errorf("%w: claim for missing segment %q", ErrCorrupt, id)
		}
		s, err := decodeSegment(raw)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketClaims).Delete([]byte(id)); err != nil {
			return err
		}
		if storeHeld && !slices.Contains(s.HeldBy, PlaceholderHold) {
			s.HeldBy = append(s.HeldBy, PlaceholderHold)
		}
		return putTx(tx, &s, encodeSegment(&s), false)
	})
	if err != nil {
		return fmt.Errorf("index: unclaim %s: %w", id, wrapCorrupt(err))
	}
	return nil
}

func addPlaceholders(tx *bolt.Tx, up bool) error {
	meta := tx.Bucket(bucketMeta)
	var n uint64
	if v := meta.Get(keyPlaceholders); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	switch {
	case up:
		n++
	case n > 0:
		n--
	}
	return meta.Put(keyPlaceholders, binary.BigEndian.AppendUint64(nil, n))
}

// PlaceholderHeld counts the segments held by PlaceholderHold: kept on
// the store's word, waiting for a hold the index knows.
func (ix *Index) PlaceholderHeld() (int, error) {
	var n uint64
	err := ix.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyPlaceholders); len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return int(n), err
}
