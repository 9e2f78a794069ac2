package index

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/vigil-cctv/vigil/storage"
)

// The journal is the district's own chained log of what happens to footage
// and to the agent: deletions, holds, local accesses. Each entry carries the
// hash of the one before, so a removed, changed or reordered entry breaks
// the chain; entries are also reported to central (through the outbox, in
// the same transaction), which links them into its audit log.
var (
	bucketJournal = []byte("journal") // seq (8 bytes) → entry (JSON)
	keyJournalTip = []byte("journal_tip")
)

// JournalEntry is one entry of the district's chained log (storage holds the
// definition, which central shares to check the chain).
type JournalEntry = storage.JournalEntry

// ErrBadJournal means a journal entry is invalid or the chain is broken.
var ErrBadJournal = storage.ErrBadJournal

// JournalHash computes an entry's chained hash.
func JournalHash(e JournalEntry) (string, error) { return storage.JournalHash(e) }

type journalTip struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// journalTx chains e after the current tip and stores it; e's Seq, Prev and
// Hash are set here.
// maxJournalDetail is the longest detail central accepts.
const maxJournalDetail = 4096

func journalTx(tx *bolt.Tx, e *JournalEntry) error {
	// JSON replaces invalid UTF-8 when it encodes, so an entry hashed with
	// raw bytes would not verify once read back: make it valid first.
	for _, f := range []*string{&e.Action, &e.Camera, &e.Segment, &e.Detail} {
		*f = strings.ToValidUTF8(*f, "\uFFFD")
	}
	// A log line must never block what it records: a long detail is
	// clipped (at a character boundary), not refused.
	if len(e.Detail) > maxJournalDetail {
		cut := maxJournalDetail - len("…")
		for cut > 0 && !utf8.RuneStart(e.Detail[cut]) {
			cut--
		}
		e.Detail = e.Detail[:cut] + "…"
	}
	if e.Action == "" {
		return fmt.Errorf("%w: action %q, detail of %d bytes", ErrBadJournal, e.Action, len(e.Detail))
	}
	b, err := tx.CreateBucketIfNotExists(bucketJournal)
	if err != nil {
		return err
	}
	meta := tx.Bucket(bucketMeta)
	var tip journalTip
	if v := meta.Get(keyJournalTip); v != nil {
		if err := json.Unmarshal(v, &tip); err != nil {
			return fmt.Errorf("%w: journal tip: %w", ErrCorrupt, err)
		}
	}
	e.Seq, e.Prev, e.Time = tip.Seq+1, tip.Hash, e.Time.UTC()
	if e.Hash, err = JournalHash(*e); err != nil {
		return err
	}
	val, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := b.Put(binary.BigEndian.AppendUint64(nil, e.Seq), val); err != nil {
		return err
	}
	tipVal, err := json.Marshal(journalTip{Seq: e.Seq, Hash: e.Hash})
	if err != nil {
		return err
	}
	return meta.Put(keyJournalTip, tipVal)
}

// Journal appends an entry to the district's chained log and, when report
// is not nil, queues the report it makes of the chained entry in the outbox,
// in the same transaction.
func (ix *Index) Journal(ctx context.Context, e JournalEntry, report func(JournalEntry) ([]byte, error)) (JournalEntry, error) {
	err := ix.submit(ctx, func(tx *bolt.Tx) error {
		entry := e
		if err := journalTx(tx, &entry); err != nil {
			return err
		}
		if report != nil {
			p, err := report(entry)
			if err != nil {
				return err
			}
			if _, err := appendTx(tx, p); err != nil {
				return err
			}
		}
		e = entry
		return nil
	})
	if err != nil {
		return JournalEntry{}, fmt.Errorf("index: journal: %w", err)
	}
	if report != nil {
		ix.notifyReports()
	}
	return e, nil
}

// JournalEntries returns the entries from seq from on, up to max.
func (ix *Index) JournalEntries(from uint64, max int) ([]JournalEntry, error) {
	var out []JournalEntry
	err := ix.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJournal)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, from)); k != nil && len(out) < max; k, v = c.Next() {
			var e JournalEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("%w: journal entry %d: %w", ErrCorrupt, binary.BigEndian.Uint64(k), err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// VerifyJournal walks the chain from its first kept entry and returns the
// first broken entry's sequence number in the error.
func (ix *Index) VerifyJournal() (int, error) {
	n := 0
	first, err := ix.JournalEntries(0, 1)
	if err != nil || len(first) == 0 {
		return 0, err
	}
	prev, next := first[0].Prev, first[0].Seq
	if next != 1 && prev == "" {
		return 0, fmt.Errorf("%w: chain broken at entry %d", ErrBadJournal, next)
	}
	for {
		batch, err := ix.JournalEntries(next, 1024)
		if err != nil {
			return n, err
		}
		for _, e := range batch {
			want, err := JournalHash(e)
			if err != nil || e.Seq != next || e.Prev != prev || want != e.Hash {
				return n, fmt.Errorf("%w: chain broken at entry %d", ErrBadJournal, next)
			}
			prev, next = e.Hash, next+1
			n++
		}
		if len(batch) < 1024 {
			return n, nil
		}
	}
}

// PruneJournal forgets entries older than before (central has linked them
// into its audit log long since), always keeping the last one, which the
// next entry chains to. It returns how many it removed.
func (ix *Index) PruneJournal(before time.Time) (int, error) {
	n := 0
	err := ix.submit(context.Background(), func(tx *bolt.Tx) error {
		n = 0
		b := tx.Bucket(bucketJournal)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.First() {
			if next, _ := c.Next(); next == nil {
				return nil // the tip stays
			}
			var e JournalEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("%w: journal entry: %w", ErrCorrupt, err)
			}
			if !e.Time.Before(before) {
				return nil
			}
			if err := b.Delete(k); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("index: prune journal: %w", err)
	}
	return n, nil
}
