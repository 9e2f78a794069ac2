// Package catalog is central's picture of every district's segments, built
// only from the agents' reports: what each agent has stored, and what it
// deleted and why. Central never stores footage; the catalog is how it
// knows what exists and where, to list recordings and (later) to fetch
// them from the agent that has them.
//
// Reports are applied exactly once: each district's agent numbers them, the
// catalog stores the last number applied in the same transaction as their
// effect, and skips what it has already applied when an agent resends after
// a reconnection.
package catalog

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
)

var (
	// "<district>/<camera>" 0x00 start-ms(8) id → agentv1.Segment
	bucketSegments = []byte("catalog.segments")
	// "<district>/" id → the segments key
	bucketIDs = []byte("catalog.ids")
	// district → appliedState (JSON)
	bucketApplied = []byte("catalog.applied")
	// "<district>/" deleted-ms(8) id → deletion (JSON)
	bucketDeleted = []byte("catalog.deleted")
	// "<district>/<camera>" → agentv1.CameraStatus
	bucketCameras = []byte("catalog.cameras")
	// "<district>/" seq(8) → rejected report (JSON), for operators to see
	bucketRejected = []byte("catalog.rejected")
)

// Errors of Apply.
var (
	// ErrGap means a report skips sequence numbers: the agent must resend
	// from the last applied one.
	ErrGap = errors.New("report sequence gap")
	// ErrOutboxChanged means the reports belong to an outbox that is no
	// longer the district's current one (a newer connection began another).
	ErrOutboxChanged = errors.New("reports of a replaced outbox")
)

// Catalog is safe for concurrent use.
type Catalog struct {
	db *bolt.DB
}

// New creates the catalog's buckets in db.
func New(db *bolt.DB) (*Catalog, error) {
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketSegments, bucketIDs, bucketApplied, bucketDeleted, bucketCameras, bucketRejected} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	return &Catalog{db: db}, nil
}

type appliedState struct {
	OutboxID string `json:"outbox_id"`
	Seq      uint64 `json:"seq"`
	// The last entry of the district's chained log linked into the audit
	// log. It survives a new outbox: the chain is the agent's, not the
	// outbox's.
	JournalSeq  uint64 `json:"journal_seq"`
	JournalHash string `json:"journal_hash"`
	// JournalFirst is the hash of the chain's first entry: a different
	// first entry means the agent's log began again.
	JournalFirst string `json:"journal_first"`
}

// Deletion is a deletion an agent reported.
type Deletion struct {
	ID        string    `json:"id"`
	Camera    string    `json:"camera"`
	Reason    string    `json:"reason"`
	DeletedAt time.Time `json:"deleted_at"`
}

// Rejection is a report central refused as invalid.
type Rejection struct {
	Seq   uint64    `json:"seq"`
	Error string    `json:"error"`
	At    time.Time `json:"at"`
}

// Begin is called when a district's agent connects with its outbox id. It
// returns the last sequence number applied from that outbox. A different
// outbox than before means the agent lost its index and starts over: the
// district's segments and camera states are forgotten (its deletion history
// is kept) and will be rebuilt from the new outbox, which begins with a
// report of every segment the agent has.
func (c *Catalog) Begin(district, outboxID string) (applied uint64, reset bool, err error) {
	err = c.db.Update(func(tx *bolt.Tx) error {
		st, err := getApplied(tx, district)
		if err != nil {
			return err
		}
		if st.OutboxID == outboxID {
			applied = st.Seq
			return nil
		}
		reset = st.OutboxID != ""
		for _, b := range [][]byte{bucketSegments, bucketCameras} {
			if err := deletePrefix(tx.Bucket(b), []byte(district+"/")); err != nil {
				return err
			}
		}
		if err := deletePrefix(tx.Bucket(bucketIDs), []byte(district+"/")); err != nil {
			return err
		}
		return putApplied(tx, district, appliedState{OutboxID: outboxID, JournalSeq: st.JournalSeq, JournalHash: st.JournalHash, JournalFirst: st.JournalFirst})
	})
	if err != nil {
		return 0, false, fmt.Errorf("catalog: begin %s: %w", district, err)
	}
	return applied, reset, nil
}

// Apply applies reports of district's outbox outboxID in order, in one transaction, and
// returns the last sequence number applied. Reports already applied are
// skipped; a gap fails with ErrGap and applies nothing after it. An invalid
// report is recorded as rejected and skipped, so that one bad report cannot
// block every later one of the district.
func (c *Catalog) Apply(district, outboxID string, reports []*agentv1.Report, now time.Time) (applied uint64, rejected []Rejection, err error) {
	var gap error
	err = c.db.Update(func(tx *bolt.Tx) error {
		rejected, gap = rejected[:0], nil
		st, err := getApplied(tx, district)
		if err != nil {
			return err
		}
		// Sequence numbers mean something only within their outbox.
		if st.OutboxID != outboxID {
			return fmt.Errorf("%w: %s is now at outbox %q", ErrOutboxChanged, district, st.OutboxID)
		}
		for _, r := range reports {
			seq := r.GetSeq()
			if seq <= st.Seq {
				continue
			}
			if seq != st.Seq+1 {
				// Keep what came before the gap; the agent resends the rest.
				gap = fmt.Errorf("%w: expected %d, got %d", ErrGap, st.Seq+1, seq)
				break
			}
			if verr := ValidateReport(district, r); verr != nil {
				rej := Rejection{Seq: seq, Error: verr.Error(), At: now}
				if err := putJSON(tx.Bucket(bucketRejected), seqKey(district, seq), rej); err != nil {
					return err
				}
				rejected = append(rejected, rej)
			} else if err := applyTx(tx, district, r); err != nil {
				return err
			} else if j := r.GetJournal(); j != nil {
				// The entry was linked into the audit log before Apply
				// (by the registry); here the chain's tip moves.
				switch {
				case j.GetSeq() == 1 && j.GetHash() != st.JournalFirst:
					st.JournalFirst, st.JournalSeq, st.JournalHash = j.GetHash(), 1, j.GetHash()
				case j.GetSeq() > st.JournalSeq:
					st.JournalSeq, st.JournalHash = j.GetSeq(), j.GetHash()
				}
			}
			st.Seq = seq
		}
		applied = st.Seq
		return putApplied(tx, district, st)
	})
	if err != nil {
		return 0, nil, fmt.Errorf("catalog: apply %s: %w", district, err)
	}
	return applied, rejected, gap
}

func applyTx(tx *bolt.Tx, district string, r *agentv1.Report) error {
	switch body := r.Body.(type) {
	case *agentv1.Report_SegmentStored:
		return putSegment(tx, district, body.SegmentStored.GetSegment())
	case *agentv1.Report_SegmentDeleted:
		d := body.SegmentDeleted
		if err := deleteSegment(tx, district, d.GetId()); err != nil {
			return err
		}
		del := Deletion{ID: d.GetId(), Camera: d.GetCamera(), Reason: d.GetReason(), DeletedAt: d.GetDeletedAt().AsTime()}
		key := append([]byte(district+"/"), binary.BigEndian.AppendUint64(nil, uint64(del.DeletedAt.UnixMilli()))...)
		return putJSON(tx.Bucket(bucketDeleted), append(key, d.GetId()...), del)
	case *agentv1.Report_CameraStatus:
		v, err := proto.Marshal(body.CameraStatus)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketCameras).Put([]byte(district+"/"+body.CameraStatus.GetCamera()), v)
	}
	return nil
}

func putSegment(tx *bolt.Tx, district string, s *agentv1.Segment) error {
	if err := deleteSegment(tx, district, s.GetId()); err != nil {
		return err
	}
	v, err := proto.Marshal(s)
	if err != nil {
		return err
	}
	key := segmentKey(district, s.GetCamera(), s.GetStart().AsTime(), s.GetId())
	if err := tx.Bucket(bucketSegments).Put(key, v); err != nil {
		return err
	}
	return tx.Bucket(bucketIDs).Put([]byte(district+"/"+s.GetId()), key)
}

func deleteSegment(tx *bolt.Tx, district, id string) error {
	ids := tx.Bucket(bucketIDs)
	idKey := []byte(district + "/" + id)
	key := ids.Get(idKey)
	if key == nil {
		return nil
	}
	if err := tx.Bucket(bucketSegments).Delete(bytes.Clone(key)); err != nil {
		return err
	}
	return ids.Delete(idKey)
}

func segmentKey(district, camera string, start time.Time, id string) []byte {
	k := append([]byte(district+"/"+camera), 0)
	k = binary.BigEndian.AppendUint64(k, uint64(start.UnixMilli()))
	return append(k, id...)
}

func seqKey(district string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(district+"/"), seq)
}

func getApplied(tx *bolt.Tx, district string) (appliedState, error) {
	var st appliedState
	if v := tx.Bucket(bucketApplied).Get([]byte(district)); v != nil {
		if err := json.Unmarshal(v, &st); err != nil {
			return st, fmt.Errorf("applied state of %s: %w", district, err)
		}
	}
	return st, nil
}

func putApplied(tx *bolt.Tx, district string, st appliedState) error {
	return putJSON(tx.Bucket(bucketApplied), []byte(district), st)
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

func deletePrefix(b *bolt.Bucket, prefix []byte) error {
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// JournalTip is where a district's chained log stands at central: the last
// entry linked (sequence number and hash) and the hash of its first entry.
type JournalTip struct {
	Seq         uint64
	Hash, First string
}

// JournalTip returns the district's chain state.
func (c *Catalog) JournalTip(district string) (JournalTip, error) {
	var tip JournalTip
	err := c.db.View(func(tx *bolt.Tx) error {
		st, err := getApplied(tx, district)
		tip = JournalTip{Seq: st.JournalSeq, Hash: st.JournalHash, First: st.JournalFirst}
		return err
	})
	return tip, err
}

// Applied returns the outbox id and the last sequence number applied for a
// district.
func (c *Catalog) Applied(district string) (outboxID string, seq uint64, err error) {
	err = c.db.View(func(tx *bolt.Tx) error {
		st, err := getApplied(tx, district)
		outboxID, seq = st.OutboxID, st.Seq
		return err
	})
	return outboxID, seq, err
}

// List returns the segments of a camera overlapping [from, to), by start.
func (c *Catalog) List(district, camera string, from, to time.Time) ([]*agentv1.Segment, error) {
	var out []*agentv1.Segment
	prefix := append([]byte(district+"/"+camera), 0)
	// Segments are at most maxSegmentSpan long (ValidateReport), so one that
	// overlaps from starts no earlier than from - maxSegmentSpan.
	seek := binary.BigEndian.AppendUint64(bytes.Clone(prefix), uint64(max(0, from.Add(-maxSegmentSpan).UnixMilli())))
	err := c.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketSegments).Cursor()
		for k, v := cur.Seek(seek); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			var s agentv1.Segment
			if err := proto.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("catalog entry %q: %w", k, err)
			}
			start, end := s.GetStart().AsTime(), s.GetEnd().AsTime()
			if !start.Before(to) {
				break
			}
			if end.After(from) {
				out = append(out, &s)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: list: %w", err)
	}
	return out, nil
}

// IDs returns the ids of every segment of a district (for checks and tests).
func (c *Catalog) IDs(district string) (map[string]bool, error) {
	ids := map[string]bool{}
	prefix := []byte(district + "/")
	err := c.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketIDs).Cursor()
		for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
			ids[string(k[len(prefix):])] = true
		}
		return nil
	})
	return ids, err
}

// Count returns the number of catalog rows of a district (not of ids: a
// duplicate row would show here).
func (c *Catalog) Count(district string) (int, error) {
	n := 0
	prefix := []byte(district + "/")
	err := c.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketSegments).Cursor()
		for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
			n++
		}
		return nil
	})
	return n, err
}

// Cameras returns the last reported status of each camera of a district.
func (c *Catalog) Cameras(district string) ([]*agentv1.CameraStatus, error) {
	var out []*agentv1.CameraStatus
	prefix := []byte(district + "/")
	err := c.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketCameras).Cursor()
		for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			var st agentv1.CameraStatus
			if err := proto.Unmarshal(v, &st); err != nil {
				return fmt.Errorf("camera status %q: %w", k, err)
			}
			out = append(out, &st)
		}
		return nil
	})
	return out, err
}

// Deletions returns the deletions of a district since a time.
func (c *Catalog) Deletions(district string, since time.Time) ([]Deletion, error) {
	var out []Deletion
	prefix := []byte(district + "/")
	seek := binary.BigEndian.AppendUint64(bytes.Clone(prefix), uint64(max(0, since.UnixMilli())))
	err := c.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketDeleted).Cursor()
		for k, v := cur.Seek(seek); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			var d Deletion
			if err := json.Unmarshal(v, &d); err != nil {
				return err
			}
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// Rejections returns the reports of a district central refused.
func (c *Catalog) Rejections(district string) ([]Rejection, error) {
	var out []Rejection
	prefix := []byte(district + "/")
	err := c.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketRejected).Cursor()
		for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			var r Rejection
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}
