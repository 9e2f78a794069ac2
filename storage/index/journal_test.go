package index

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestJournalChain(t *testing.T) {
	ix := MustOpenTemp(t)
	ctx := context.Background()
	var reports []string
	for i := range 5 {
		e, err := ix.Journal(ctx, JournalEntry{Time: t0.Add(time.Duration(i) * time.Second), Action: "segment.deleted", Camera: "gate", Segment: segID(i), Detail: "retention"},
			func(e JournalEntry) ([]byte, error) { reports = append(reports, e.Hash); return []byte(e.Hash), nil })
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq != uint64(i+1) || len(e.Hash) != 64 || (i > 0 && e.Prev == "") {
			t.Fatalf("entry %d: %+v", i, e)
		}
	}
	if n, err := ix.VerifyJournal(); err != nil || n != 5 {
		t.Fatalf("verify: %d %v", n, err)
	}
	if got, _ := ix.Reports(0, 10); len(got) != 5 || string(got[4].Payload) != reports[4] {
		t.Fatalf("journal reports not queued with their entries: %d", len(got))
	}
	if _, err := ix.Journal(ctx, JournalEntry{Detail: "x"}, nil); !errors.Is(err, ErrBadJournal) {
		t.Fatalf("entry without action: %v", err)
	}
	// Pruning old entries keeps the tip and a chain that still verifies.
	if n, err := ix.PruneJournal(t0.Add(3 * time.Second)); err != nil || n != 3 {
		t.Fatalf("prune: %d %v", n, err)
	}
	if n, err := ix.VerifyJournal(); err != nil || n != 2 {
		t.Fatalf("verify after prune: %d %v", n, err)
	}
	if n, _ := ix.PruneJournal(t0.Add(time.Hour)); n != 1 {
		t.Fatalf("prune everything: removed %d, want all but the tip", n)
	}
	// Tampering: change an entry's detail, or remove one.
	for _, tamper := range []struct {
		name string
		edit func(b *bolt.Bucket) error
	}{
		{"changed", func(b *bolt.Bucket) error {
			k := binary.BigEndian.AppendUint64(nil, 3)
			return b.Put(k, []byte(strings.Replace(string(b.Get(k)), "retention", "pressure", 1)))
		}},
		{"removed", func(b *bolt.Bucket) error { return b.Delete(binary.BigEndian.AppendUint64(nil, 3)) }},
	} {
		t.Run(tamper.name, func(t *testing.T) {
			ix := MustOpenTemp(t)
			for i := range 5 {
				if _, err := ix.Journal(ctx, JournalEntry{Action: "segment.deleted", Detail: fmt.Sprint("retention ", i)}, nil); err != nil {
					t.Fatal(err)
				}
			}
			if err := ix.db.Update(func(tx *bolt.Tx) error { return tamper.edit(tx.Bucket(bucketJournal)) }); err != nil {
				t.Fatal(err)
			}
			if _, err := ix.VerifyJournal(); err == nil || !strings.Contains(err.Error(), "entry 3") {
				t.Fatalf("tampering not detected at entry 3: %v", err)
			}
		})
	}
}

// Bytes that are not UTF-8 (a camera name from a config, an error from a
// device) must not leave an entry whose hash no longer verifies once read
// back.
func TestJournalInvalidUTF8(t *testing.T) {
	ix := MustOpenTemp(t)
	e, err := ix.Journal(context.Background(), JournalEntry{Action: "maintenance.access", Camera: "g\xffate", Detail: "bad \xc3 byte"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.Camera != "g\uFFFDate" || e.Detail != "bad \uFFFD byte" {
		t.Fatalf("not made valid: %q %q", e.Camera, e.Detail)
	}
	if n, err := ix.VerifyJournal(); err != nil || n != 1 {
		t.Fatalf("verify: %d %v", n, err)
	}
	got, err := ix.JournalEntries(1, 1)
	if err != nil || len(got) != 1 {
		t.Fatal(err)
	}
	if h, _ := JournalHash(got[0]); h != e.Hash {
		t.Fatal("hash of the entry read back differs")
	}
}
