package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vigil-cctv/vigil/storage"
)

// Judicial holds as the district keeps them. A hold in force is stored here
// and every segment it covers lists its id in HeldBy, which takes the
// segment out of the expiry index: the sweeper never sees it. Both happen in
// one transaction, and a segment indexed later joins every hold in force
// over it (putTx), so "held" is decided in one place, under bbolt's single
// writer, and no hold can race a deletion (see ClaimExpired).
var (
	bucketHolds = []byte("holds") // hold id → JSON Hold
	// hold_cameras lets putTx find the holds over a segment without
	// decoding every hold: "<district>/<camera>" 0x00 from-ms id →
	// from-ns, to-ns (8 bytes each) and 1 if in force.
	bucketHoldCameras = []byte("hold_cameras")
	// holds_released remembers released hold ids (id → release time), so
	// that an apply arriving late (resent, reordered) cannot bring a
	// released hold back.
	bucketHoldsReleased = []byte("holds_released")
)

// PlaceholderHold stands in HeldBy for a hold the store enforces (its
// object carries a legal hold) that the index does not know: after the
// index was lost and rebuilt, or when the store refused to delete an
// object. Such a segment is kept; the first hold applied over it takes the
// placeholder's place, and releasing that hold lets it go.
const PlaceholderHold = "store-legal-hold"

// Hold states at the district.
const (
	// HoldApplying: the hold is in force in the index; the store's own
	// legal holds are still being set on the objects it covers.
	HoldApplying = "applying"
	// HoldApplied: every covered object carries the store's legal hold.
	HoldApplied = "applied"
	// HoldReleasing: release has begun; the store's legal holds are being
	// lifted. The hold still covers its segments in the index until
	// FinishRelease.
	HoldReleasing = "releasing"
)

// ErrHoldNotFound means the district has no hold with the id.
var ErrHoldNotFound = errors.New("hold not found")

// ErrHoldReleased means the hold was released at the district already: it
// cannot be applied again (a new hold gets a new id).
var ErrHoldReleased = errors.New("hold already released")

// ErrInvalidHold means a hold cannot be applied as given (no id, no
// cameras, an empty span). Nothing was changed.
var ErrInvalidHold = errors.New("invalid hold")

// Hold is a judicial hold at the district: every segment of Cameras that
// overlaps [From, To) is kept until the hold is released.
type Hold struct {
	ID        string    `json:"id"`
	District  string    `json:"district"`
	Cameras   []string  `json:"cameras"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Authority string    `json:"authority,omitempty"`
	Case      string    `json:"case,omitempty"`
	State     string    `json:"state"`
	// Applied is when the hold first took effect at the district.
	Applied time.Time `json:"applied"`
}

// Covers reports whether the hold keeps the segment.
func (h *Hold) Covers(s *storage.Segment) bool {
	return s.District == h.District && slices.Contains(h.Cameras, s.Camera) && s.Overlaps(h.From, h.To)
}

// inForce reports whether the hold still claims new segments.
func (h *Hold) inForce() bool { return h.State != HoldReleasing }

func (h *Hold) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidHold, fmt.Sprintf(format, args...))
	}
	if h.ID == "" || len(h.ID) > maxIDLen {
		return bad("id %q", h.ID)
	}
	if err := storage.ValidateName("district", h.District); err != nil {
		return bad("%v", err)
	}
	if len(h.Cameras) == 0 {
		return bad("no cameras")
	}
	for _, c := range h.Cameras {
		if err := storage.ValidateName("camera", c); err != nil {
			return bad("%v", err)
		}
	}
	if !h.From.Before(h.To) {
		return bad("empty span %s to %s", h.From.Format(time.RFC3339), h.To.Format(time.RFC3339))
	}
	return nil
}

func getHold(tx *bolt.Tx, id string) (*Hold, error) {
	b := tx.Bucket(bucketHolds)
	if b == nil {
		return nil, nil
	}
	v := b.Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	var h Hold
	if err := json.Unmarshal(v, &h); err != nil {
		return nil, fmt.Errorf("%w: hold %s: %w", ErrCorrupt, id, err)
	}
	return &h, nil
}

func putHold(tx *bolt.Tx, h *Hold) error {
	if err := deleteHold(tx, h.ID); err != nil {
		return err
	}
	b, err := tx.CreateBucketIfNotExists(bucketHolds)
	if err != nil {
		return err
	}
	v, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := b.Put([]byte(h.ID), v); err != nil {
		return err
	}
	cams, err := tx.CreateBucketIfNotExists(bucketHoldCameras)
	if err != nil {
		return err
	}
	val := binary.BigEndian.AppendUint64(nil, uint64(h.From.UnixNano()))
	val = binary.BigEndian.AppendUint64(val, uint64(h.To.UnixNano()))
	if h.inForce() {
		val = append(val, 1)
	} else {
		val = append(val, 0)
	}
	for _, cam := range h.Cameras {
		if err := cams.Put(holdCameraKey(h, cam), val); err != nil {
			return err
		}
	}
	return nil
}

// deleteHold removes the hold and its camera keys, if it exists.
func deleteHold(tx *bolt.Tx, id string) error {
	old, err := getHold(tx, id)
	if err != nil || old == nil {
		return err
	}
	if cams := tx.Bucket(bucketHoldCameras); cams != nil {
		for _, cam := range old.Cameras {
			if err := cams.Delete(holdCameraKey(old, cam)); err != nil {
				return err
			}
		}
	}
	return tx.Bucket(bucketHolds).Delete([]byte(id))
}

func holdCameraKey(h *Hold, camera string) []byte {
	k := cameraPrefix(h.District, camera)
	k = append(k, msKey(h.From.UnixMilli())...)
	return append(k, h.ID...)
}

func forEachHold(tx *bolt.Tx, fn func(*Hold) error) error {
	b := tx.Bucket(bucketHolds)
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		var h Hold
		if err := json.Unmarshal(v, &h); err != nil {
			return fmt.Errorf("%w: hold %s: %w", ErrCorrupt, k, err)
		}
		return fn(&h)
	})
}

// coveringHolds returns the ids of the holds in force over s. It visits
// the camera's holds that start before the segment ends, keys only.
func coveringHolds(tx *bolt.Tx, s *storage.Segment) ([]string, error) {
	cams := tx.Bucket(bucketHoldCameras)
	if cams == nil {
		return nil, nil
	}
	var ids []string
	prefix := cameraPrefix(s.District, s.Camera)
	end, start := s.End.UnixNano(), s.Start.UnixNano()
	c := cams.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(k) < len(prefix)+8 || len(v) != 17 {
			return nil, fmt.Errorf("%w: hold camera key %q", ErrCorrupt, k)
		}
		// Keys are in order of from truncated to the millisecond: stop at
		// the first millisecond at or after the segment's end, and check
		// the exact span of the others.
		if fromMs := int64(binary.BigEndian.Uint64(k[len(prefix):])); fromMs*int64(time.Millisecond) >= end {
			break
		}
		from, to := int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))
		if v[16] == 1 && from < end && to > start {
			ids = append(ids, string(k[len(prefix)+8:]))
		}
	}
	return ids, nil
}

// Logged is a district log entry written in the same transaction as the
// index change it records, and the outbox report made of it (Report nil:
// not reported, the agent is not enrolled).
type Logged struct {
	Entry  JournalEntry
	Report func(JournalEntry) ([]byte, error)
}

func (l *Logged) writeTx(tx *bolt.Tx) error {
	if l == nil {
		return nil
	}
	e := l.Entry
	if err := journalTx(tx, &e); err != nil {
		return err
	}
	if l.Report == nil {
		return nil
	}
	p, err := l.Report(e)
	if err != nil {
		return err
	}
	_, err = appendTx(tx, p)
	return err
}

func (l *Logged) reported() bool { return l != nil && l.Report != nil }

// HoldApplication is what ApplyHold did.
type HoldApplication struct {
	// Covered is every segment the hold covers now; Added those it did
	// not cover before this call.
	Covered, Added []storage.Segment
	// WasApplied is set when the hold was already fully applied (the
	// store's legal holds set): only Added then need theirs.
	WasApplied bool
}

// ApplyHold puts the hold in force, in one transaction: it is stored, every
// segment it covers is marked held (and leaves the expiry index), and the
// district log entry that log makes of the covered segments is written.
// Segments the sweeper has already claimed are past saving and are not
// covered; a segment held by PlaceholderHold gets this hold in its place.
// Applying a hold again (central resends until it hears back) covers what
// was recorded since; a hold released here fails with ErrHoldReleased.
//
// The caller sets the store's legal hold on the segments (all Covered, or
// only Added when WasApplied) and then calls SetHoldState(HoldApplied).
func (ix *Index) ApplyHold(ctx context.Context, h Hold, log func(covered []storage.Segment) *Logged) (HoldApplication, error) {
	if err := h.validate(); err != nil {
		return HoldApplication{}, fmt.Errorf("index: apply hold: %w", err)
	}
	h.Cameras = slices.Clone(h.Cameras)
	var res HoldApplication
	var logged *Logged
	err := ix.submit(ctx, func(tx *bolt.Tx) error {
		res = HoldApplication{}
		if b := tx.Bucket(bucketHoldsReleased); b != nil && b.Get([]byte(h.ID)) != nil {
			return ErrHoldReleased
		}
		stored := h
		if old, err := getHold(tx, h.ID); err != nil {
			return err
		} else if old != nil {
			stored.Applied = old.Applied
			res.WasApplied = old.State == HoldApplied
		}
		if stored.Applied.IsZero() {
			stored.Applied = time.Now().UTC()
		}
		stored.State = HoldApplying
		if err := putHold(tx, &stored); err != nil {
			return err
		}
		for _, cam := range h.Cameras {
			segs, err := ix.listTx(tx, h.District, cam, h.From, h.To)
			if err != nil {
				return err
			}
			for i := range segs {
				s := &segs[i]
				if claimed(tx, s.ID) {
					continue
				}
				if !slices.Contains(s.HeldBy, h.ID) {
					s.HeldBy = slices.DeleteFunc(slices.Clone(s.HeldBy), func(x string) bool { return x == PlaceholderHold })
					s.HeldBy = append(s.HeldBy, h.ID)
					// putTx also adds every other hold in force over s.
					if err := putTx(tx, s, encodeSegment(s), false); err != nil {
						return err
					}
					res.Added = append(res.Added, *s)
				}
				res.Covered = append(res.Covered, *s)
			}
		}
		logged = log(res.Covered)
		return logged.writeTx(tx)
	})
	if err != nil {
		return HoldApplication{}, fmt.Errorf("index: apply hold %s: %w", h.ID, wrapCorrupt(err))
	}
	if logged.reported() {
		ix.notifyReports()
	}
	return res, nil
}

// SetHoldState records the hold's progress (HoldApplied once the store's
// legal holds are set).
func (ix *Index) SetHoldState(ctx context.Context, id, state string) error {
	err := ix.submit(ctx, func(tx *bolt.Tx) error {
		h, err := getHold(tx, id)
		if err != nil {
			return err
		}
		if h == nil {
			return ErrHoldNotFound
		}
		h.State = state
		return putHold(tx, h)
	})
	if err != nil {
		return fmt.Errorf("index: hold %s: %w", id, err)
	}
	return nil
}

// Holds returns the holds the district keeps, in id order.
func (ix *Index) Holds() ([]Hold, error) {
	var out []Hold
	err := ix.view(func(tx *bolt.Tx) error {
		return forEachHold(tx, func(h *Hold) error { out = append(out, *h); return nil })
	})
	if err != nil {
		return nil, fmt.Errorf("index: holds: %w", err)
	}
	return out, nil
}

// Hold returns the district's hold with the id, or ErrHoldNotFound.
func (ix *Index) Hold(id string) (Hold, error) {
	var out *Hold
	err := ix.view(func(tx *bolt.Tx) error {
		var err error
		out, err = getHold(tx, id)
		return err
	})
	if err == nil && out == nil {
		err = ErrHoldNotFound
	}
	if err != nil {
		return Hold{}, fmt.Errorf("index: hold %s: %w", id, err)
	}
	return *out, nil
}

// BeginRelease marks the hold HoldReleasing (new segments no longer join
// it) and returns the segments it alone keeps: those whose store legal
// hold the caller lifts before FinishRelease. Until FinishRelease the
// segments stay held in the index, so a crash in between leaves them kept,
// never unprotected. An unknown id fails with ErrHoldNotFound.
func (ix *Index) BeginRelease(ctx context.Context, id string) ([]storage.Segment, error) {
	var only []storage.Segment
	err := ix.submit(ctx, func(tx *bolt.Tx) error {
		only = only[:0]
		h, err := getHold(tx, id)
		if err != nil {
			return err
		}
		if h == nil {
			return ErrHoldNotFound
		}
		h.State = HoldReleasing
		if err := putHold(tx, h); err != nil {
			return err
		}
		segs, err := ix.heldBy(tx, h)
		if err != nil {
			return err
		}
		for _, s := range segs {
			others, err := coveringHolds(tx, &s)
			if err != nil {
				return err
			}
			if len(others) == 0 && len(s.HeldBy) == 1 {
				only = append(only, s)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index: release hold %s: %w", id, wrapCorrupt(err))
	}
	return only, nil
}

// FinishRelease ends the hold: it is forgotten, its id leaves the segments
// it covered, those no other hold keeps go back to the expiry index (the
// next sweep deletes those already past expiry), and the log entry log
// makes of the count released is written, all in one transaction. It
// returns how many segments the hold covered. An unknown id fails with
// ErrHoldNotFound.
func (ix *Index) FinishRelease(ctx context.Context, id string, log func(released int) *Logged) (int, error) {
	var n int
	var logged *Logged
	err := ix.submit(ctx, func(tx *bolt.Tx) error {
		n = 0
		h, err := getHold(tx, id)
		if err != nil {
			return err
		}
		if h == nil {
			return ErrHoldNotFound
		}
		segs, err := ix.heldBy(tx, h)
		if err != nil {
			return err
		}
		if err := deleteHold(tx, id); err != nil {
			return err
		}
		released, err := tx.CreateBucketIfNotExists(bucketHoldsReleased)
		if err != nil {
			return err
		}
		if err := released.Put([]byte(id), []byte(time.Now().UTC().Format(time.RFC3339Nano))); err != nil {
			return err
		}
		for i := range segs {
			s := &segs[i]
			s.HeldBy = slices.DeleteFunc(slices.Clone(s.HeldBy), func(x string) bool { return x == id })
			if len(s.HeldBy) == 0 {
				s.HeldBy = nil
			}
			if err := putTx(tx, s, encodeSegment(s), false); err != nil {
				return err
			}
			n++
		}
		logged = log(n)
		return logged.writeTx(tx)
	})
	if err != nil {
		return 0, fmt.Errorf("index: release hold %s: %w", id, wrapCorrupt(err))
	}
	if logged.reported() {
		ix.notifyReports()
	}
	return n, nil
}

// heldBy returns the segments in the hold's span that list it in HeldBy.
func (ix *Index) heldBy(tx *bolt.Tx, h *Hold) ([]storage.Segment, error) {
	var out []storage.Segment
	for _, cam := range h.Cameras {
		segs, err := ix.listTx(tx, h.District, cam, h.From, h.To)
		if err != nil {
			return nil, err
		}
		for _, s := range segs {
			if slices.Contains(s.HeldBy, h.ID) {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// Covering returns the ids of the holds in force over the camera's span
// [from, to): what must not be deleted even outside the index (a spool
// file, a quarantined piece of footage).
func (ix *Index) Covering(district, camera string, from, to time.Time) ([]string, error) {
	var ids []string
	err := ix.view(func(tx *bolt.Tx) error {
		var err error
		ids, err = coveringHolds(tx, &storage.Segment{District: district, Camera: camera, Start: from, End: to})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("index: holds over %s/%s: %w", district, camera, err)
	}
	return ids, nil
}

// MarkReleased remembers a hold id as released without it ever having been
// applied here (its release arrived first): ApplyHold refuses it after.
func (ix *Index) MarkReleased(ctx context.Context, id string) error {
	err := ix.submit(ctx, func(tx *bolt.Tx) error {
		if h, err := getHold(tx, id); err != nil || h != nil {
			return err // known: released through BeginRelease/FinishRelease
		}
		b, err := tx.CreateBucketIfNotExists(bucketHoldsReleased)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), []byte(time.Now().UTC().Format(time.RFC3339Nano)))
	})
	if err != nil {
		return fmt.Errorf("index: hold %s: %w", id, err)
	}
	return nil
}
