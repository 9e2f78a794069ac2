package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// The tamper tests work on copies of a real log of tamperSize records with
// a checkpoint every tamperEvery records. The record tampered with is
// tamperSeq, so a problem that only a checkpoint can reveal is reported at
// the checkpoint before it, tamperPrev.
const (
	tamperSize  = 100
	tamperEvery = 10
	tamperSeq   = 37
	tamperPrev  = 30
)

// tamperLog is a closed log and the checkpoints an auditor kept of it.
type tamperLog struct {
	path    string
	key     testKey
	kept30  []byte // kept when the log had 30 records
	kept100 []byte // kept at the end
}

// buildTamperLog writes the log: record i is sample(i), changed by change
// if set, at t0 + i seconds, so that a rebuilt log can have exactly the
// same records but the ones changed.
func buildTamperLog(t *testing.T, dir string, key testKey, change func(i int, r *Record)) tamperLog {
	t.Helper()
	clock := newClock(0)
	path := filepath.Join(dir, "audit.db")
	l, err := Open(path, Options{Signer: key.signer, Verifier: key.verifier, Now: clock.Now, CheckpointRecords: tamperEvery})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tl := tamperLog{path: path, key: key}
	for i := range tamperSize {
		r := sample(i)
		if change != nil {
			change(i, &r)
		}
		if _, err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
		if i+1 == 30 {
			tl.kept30 = mustCheckpointOf(t, l, 30)
		}
	}
	tl.kept100 = mustCheckpointOf(t, l, tamperSize)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return tl
}

func mustCheckpointOf(t *testing.T, l *Log, size int64) []byte {
	t.Helper()
	cp, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if tree, err := OpenCheckpoint(cp, l.opts.Verifier); err != nil || tree.N != size {
		t.Fatalf("checkpoint %+v, %v; want size %d", tree, err, size)
	}
	return cp
}

// Edits of a copy's buckets, as someone with the file would make them.

func editRecord(seq uint64, edit func([]byte) []byte) func(*bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		v := b.Get(encodeU64(seq))
		if v == nil {
			return fmt.Errorf("no record %d", seq)
		}
		old := bytes.Clone(v)
		nv := edit(bytes.Clone(v))
		if bytes.Equal(old, nv) {
			return errors.New("the edit changed nothing")
		}
		return b.Put(encodeU64(seq), nv)
	}
}

// changeByte replaces the first occurrence of old, which must be one byte
// longer than nothing: old and new have the same length and differ in one
// byte.
func changeByte(old, new string) func([]byte) []byte {
	return func(b []byte) []byte {
		if len(old) != len(new) {
			panic("changeByte: lengths differ")
		}
		diff := 0
		for i := range old {
			if old[i] != new[i] {
				diff++
			}
		}
		if diff != 1 {
			panic("changeByte: not one byte")
		}
		return bytes.Replace(b, []byte(old), []byte(new), 1)
	}
}

// reencode decodes record seq, changes it, and stores its new canonical
// encoding: a tamperer who knows the format.
func reencode(seq uint64, change func(*Record)) func(*bbolt.Tx) error {
	return editRecord(seq, func(b []byte) []byte {
		r, err := Unmarshal(b)
		if err != nil {
			panic(err)
		}
		change(&r)
		out, err := r.Marshal()
		if err != nil {
			panic(err)
		}
		return out
	})
}

func deleteRecord(seq uint64) func(*bbolt.Tx) error {
	return func(tx *bbolt.Tx) error { return tx.Bucket(bucketRecords).Delete(encodeU64(seq)) }
}

func swapRecords(a, b uint64) func(*bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		bk := tx.Bucket(bucketRecords)
		va, vb := bytes.Clone(bk.Get(encodeU64(a))), bytes.Clone(bk.Get(encodeU64(b)))
		if err := bk.Put(encodeU64(a), vb); err != nil {
			return err
		}
		return bk.Put(encodeU64(b), va)
	}
}

// renumber gives every record the seq of its position, keys included, as a
// tamperer covering a deletion or a swap would.
func renumber(tx *bbolt.Tx) error {
	b := tx.Bucket(bucketRecords)
	var recs [][]byte
	b.ForEach(func(_, v []byte) error { recs = append(recs, bytes.Clone(v)); return nil })
	if err := tx.DeleteBucket(bucketRecords); err != nil {
		return err
	}
	b, err := tx.CreateBucket(bucketRecords)
	if err != nil {
		return err
	}
	for i, v := range recs {
		r, err := Unmarshal(v)
		if err != nil {
			return err
		}
		r.Seq = uint64(i)
		nv, err := r.Marshal()
		if err != nil {
			return err
		}
		if err := b.Put(encodeU64(uint64(i)), nv); err != nil {
			return err
		}
	}
	return nil
}

// rebuildHashes recomputes every stored hash from the records as they now
// are, so that the stored tree agrees with them: only the signed
// checkpoints can then tell.
func rebuildHashes(tx *bbolt.Tx) error {
	if err := tx.DeleteBucket(bucketHashes); err != nil {
		return err
	}
	hb, err := tx.CreateBucket(bucketHashes)
	if err != nil {
		return err
	}
	var all []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = all[x]
		}
		return out, nil
	})
	n := int64(0)
	return tx.Bucket(bucketRecords).ForEach(func(_, v []byte) error {
		hs, err := tlog.StoredHashes(n, v, reader)
		if err != nil {
			return err
		}
		for _, h := range hs {
			if err := hb.Put(encodeU64(uint64(len(all))), bytes.Clone(h[:])); err != nil {
				return err
			}
			all = append(all, h)
		}
		n++
		return nil
	})
}

// truncate removes records size.. and what belongs to them.
func truncate(size uint64, checkpointsToo bool) func(*bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		del := func(bucket []byte, gone func(k []byte) bool) error {
			b := tx.Bucket(bucket)
			var keys [][]byte
			b.ForEach(func(k, _ []byte) error {
				if gone(k) {
					keys = append(keys, bytes.Clone(k))
				}
				return nil
			})
			for _, k := range keys {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			return nil
		}
		hashes := uint64(tlog.StoredHashCount(int64(size)))
		if err := errors.Join(
			del(bucketRecords, func(k []byte) bool { return decodeU64(k) >= size }),
			del(bucketHashes, func(k []byte) bool { return decodeU64(k) >= hashes }),
			del(bucketTimes, func(k []byte) bool { return decodeU64(k[8:]) >= size }),
		); err != nil {
			return err
		}
		if checkpointsToo {
			return del(bucketCheckpoints, func(k []byte) bool { return decodeU64(k) > size })
		}
		return nil
	}
}

func editCheckpoint(size uint64, edit func(string) string) func(*bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketCheckpoints)
		v := b.Get(encodeU64(size))
		if v == nil {
			return fmt.Errorf("no checkpoint %d", size)
		}
		nv := edit(string(v))
		if nv == string(v) {
			return errors.New("the edit changed nothing")
		}
		return b.Put(encodeU64(size), []byte(nv))
	}
}

// flipSignature changes one base64 character of the signature, keeping it
// valid base64 of the same length.
func flipSignature(msg string) string {
	i := strings.LastIndex(msg, " ") + 10 // inside the signature's base64
	c := byte('A')
	if msg[i] == 'A' {
		c = 'B'
	}
	return msg[:i] + string(c) + msg[i+1:]
}

func editHash(index int64, tx *bbolt.Tx) error {
	b := tx.Bucket(bucketHashes)
	v := bytes.Clone(b.Get(encodeU64(uint64(index))))
	v[0] ^= 1
	return b.Put(encodeU64(uint64(index)), v)
}

func chain(edits ...func(*bbolt.Tx) error) func(*bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		for _, e := range edits {
			if err := e(tx); err != nil {
				return err
			}
		}
		return nil
	}
}

// pass means the check finds nothing wrong.
const pass = -1

// TestTamper is the "Must show": a copy of a real log is tampered
// with in each way, and verification detects it and names the first bad
// record. Each case is checked three ways:
//   - verify: Verify on the copy opened read-only (stored hashes compared);
//   - bundle: Verify on the copy's records and checkpoints as downloaded
//     over the API (no stored hashes: only records and signatures count);
//   - against: Verify of the copy against the checkpoint an auditor kept at
//     the end (VerifyAgainst).
func TestTamper(t *testing.T) {
	key := mustKey(t, "vigil-central")
	orig := buildTamperLog(t, t.TempDir(), key, nil)
	rec := uint64(tamperSeq)
	for _, tc := range []struct {
		name                    string
		edit                    func(*bbolt.Tx) error
		verify, bundle, against int64
		reason                  string // in the verify error
	}{
		// (a) One byte of a record changed.
		{"byte of the reason changed", editRecord(rec, changeByte("theft", "thefT")), tamperSeq, tamperPrev, tamperSeq, "leaf hash"},
		{"byte of the outcome changed", editRecord(rec, changeByte(`"outcome":"ok"`, `"outcome":"ox"`)), tamperSeq, tamperSeq, tamperSeq, "outcome"},
		{"byte of a field name changed", editRecord(rec, changeByte(`"reason"`, `"reasom"`)), tamperSeq, tamperSeq, tamperSeq, "not a canonical record"},
		{"byte of the seq changed", editRecord(rec, changeByte(`"seq":37`, `"seq":38`)), tamperSeq, tamperSeq, tamperSeq, "expected seq 37"},
		{"byte of the time changed", editRecord(rec, changeByte(`10:00:37.`, `10:00:38.`)), tamperSeq, tamperPrev, tamperSeq, "leaf hash"},
		{"byte turned into a space", editRecord(rec, changeByte(`,"client"`, ` "client"`)), tamperSeq, tamperSeq, tamperSeq, "not a canonical record"},
		{"record re-encoded, stored hashes rebuilt", chain(reencode(rec, func(r *Record) { r.Outcome = OutcomeDenied }), rebuildHashes),
			tamperPrev, tamperPrev, tamperPrev, "signed checkpoint"},
		// (b) A record deleted.
		{"record deleted", deleteRecord(rec), tamperSeq, tamperSeq, tamperSeq, "expected seq 37"},
		{"record deleted, renumbered, hashes rebuilt", chain(deleteRecord(rec), renumber, rebuildHashes), tamperPrev, tamperPrev, tamperPrev, "signed checkpoint"},
		{"last record deleted", deleteRecord(tamperSize - 1), tamperSize - 1, tamperSize - 1, tamperSize - 1, "removed from its end"},
		// (c) Two records swapped.
		{"two records swapped", swapRecords(rec, rec+1), tamperSeq, tamperSeq, tamperSeq, "expected seq 37"},
		{"two records swapped, renumbered, hashes rebuilt", chain(swapRecords(rec, rec+1), renumber, rebuildHashes), tamperPrev, tamperPrev, tamperPrev, "signed checkpoint"},
		// (d) The tail truncated.
		{"tail truncated", truncate(95, false), 95, 95, 95, "removed from its end"},
		{"tail truncated with its checkpoints", truncate(95, true), pass, pass, 95, ""},
		// (f) A checkpoint's signature altered.
		{"checkpoint signature altered", editCheckpoint(50, flipSignature), 40, 40, 40, "signature"},
		{"checkpoint root altered", editCheckpoint(50, func(s string) string {
			lines := strings.Split(s, "\n")
			lines[2] = tlog.Hash{1}.String()
			return strings.Join(lines, "\n")
		}), 40, 40, 40, "signature"},
		{"checkpoint unreadable", editCheckpoint(50, func(string) string { return "garbage" }), 40, 40, 40, "unreadable"},
		{"checkpoint beyond the end with a bad signature", func(tx *bbolt.Tx) error {
			b := tx.Bucket(bucketCheckpoints)
			forged := strings.Replace(string(b.Get(encodeU64(tamperSize))), "\n100\n", "\n200\n", 1)
			return b.Put(encodeU64(200), []byte(forged))
		}, tamperSize, tamperSize, tamperSize, "beyond the log's 100 records"},
		// The stored tree itself.
		{"stored leaf hash altered", func(tx *bbolt.Tx) error { return editHash(tlog.StoredHashIndex(0, tamperSeq), tx) }, tamperSeq, pass, tamperSeq, "leaf hash"},
		{"stored hash removed", func(tx *bbolt.Tx) error { return tx.Bucket(bucketHashes).Delete(encodeU64(5)) }, 3, pass, 3, "tree node 1 at level 1"},
		{"stored node hash altered", func(tx *bbolt.Tx) error { return editHash(tlog.StoredHashIndex(2, 9), tx) }, 39, pass, 39, "tree node 9 at level 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := editCopy(t, orig.path, tc.edit)
			l := mustOpenRO(t, path)
			_, err := Verify(l, key.verifier)
			checkResult(t, "verify", err, tc.verify)
			if tc.verify != pass && !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("verify: error %q does not say %q", err, tc.reason)
			}
			raw, err := l.RawRecords(0, l.Size())
			if err != nil {
				t.Fatal(err)
			}
			cps, err := l.Checkpoints()
			if err != nil {
				t.Fatal(err)
			}
			_, err = Verify(&Bundle{RecordBytes: raw, CheckpointNotes: cps}, key.verifier)
			checkResult(t, "bundle", err, tc.bundle)
			checkResult(t, "against", VerifyAgainst(l, key.verifier, orig.kept100), tc.against)
		})
	}
	t.Run("untouched copy", func(t *testing.T) {
		l := mustOpenRO(t, editCopy(t, orig.path, nil))
		rep, err := Verify(l, key.verifier, orig.kept30, orig.kept100)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Records != tamperSize || rep.Checkpoints != tamperSize/tamperEvery || rep.Kept != 2 || rep.Unanchored != 0 || !rep.HashesCompared {
			t.Fatalf("report %+v", rep)
		}
		tree, _ := OpenCheckpoint(orig.kept100, key.verifier)
		if rep.Root != tree.Hash {
			t.Fatalf("recomputed root %s, kept %s", rep.Root, tree.Hash)
		}
	})
}

func checkResult(t *testing.T, what string, err error, want int64) {
	t.Helper()
	if want == pass {
		if err != nil {
			t.Errorf("%s: %v, want no error", what, err)
		}
		return
	}
	var te *TamperError
	if !errors.As(err, &te) || !errors.Is(err, ErrTampered) {
		t.Errorf("%s: %v, want a *TamperError at seq %d", what, err, want)
		return
	}
	if te.Seq != uint64(want) {
		t.Errorf("%s: first bad record %d, want %d: %v", what, te.Seq, want, err)
	}
}

// TestTamperReplacedLog is case (e): the whole log replaced by one rebuilt
// from scratch, with record 37 changed and every hash and checkpoint
// recomputed and validly signed, with central's own key (which is on its
// disk) or a new one. A checkpoint kept outside catches both.
func TestTamperReplacedLog(t *testing.T) {
	key := mustKey(t, "vigil-central")
	orig := buildTamperLog(t, t.TempDir(), key, nil)
	change := func(i int, r *Record) {
		if i == tamperSeq {
			r.Outcome = OutcomeDenied
		}
	}

	t.Run("same key", func(t *testing.T) {
		forged := buildTamperLog(t, t.TempDir(), key, change)
		l := mustOpenRO(t, forged.path)
		// On its own the forgery is a valid log: whoever holds the key can
		// sign anything. This is why auditors keep checkpoints.
		if _, err := Verify(l, key.verifier); err != nil {
			t.Fatalf("Verify: %v", err)
		}
		checkResult(t, "against the last kept checkpoint", VerifyAgainst(l, key.verifier, orig.kept100), 0)
		// Records before the change still match an older kept checkpoint,
		// which narrows it down.
		_, err := Verify(l, key.verifier, orig.kept30, orig.kept100)
		checkResult(t, "against two kept checkpoints", err, tamperPrev)
		// A kept checkpoint from before the change is still extended: the
		// forgery is beyond what it vouches for.
		if err := VerifyAgainst(l, key.verifier, orig.kept30); err != nil {
			t.Errorf("against the checkpoint kept before the change: %v", err)
		}
	})

	t.Run("new key", func(t *testing.T) {
		newKey := mustKey(t, "vigil-central")
		forged := buildTamperLog(t, t.TempDir(), newKey, change)
		l := mustOpenRO(t, forged.path)
		_, err := Verify(l, key.verifier)
		checkResult(t, "verify with the original key", err, 0)
		checkResult(t, "against the kept checkpoint", VerifyAgainst(l, key.verifier, orig.kept100), 0)
		// With the forger's key everything stored verifies, but the kept
		// checkpoint does not.
		if _, err := Verify(l, newKey.verifier); err != nil {
			t.Fatalf("Verify with the new key: %v", err)
		}
		if err := VerifyAgainst(l, newKey.verifier, orig.kept100); !errors.Is(err, ErrBadCheckpoint) {
			t.Fatalf("against the kept checkpoint with the new key: %v, want ErrBadCheckpoint", err)
		}
		// And central refuses to keep writing a log its key did not sign.
		if _, err := Open(editCopy(t, forged.path, nil), Options{Signer: key.signer, Verifier: key.verifier}); !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("Open with the original key = %v, want ErrKeyMismatch", err)
		}
	})
}

// TestOpenRefusesTamperedLog: central does not resume writing a log whose
// latest checkpoint no longer matches it.
func TestOpenRefusesTamperedLog(t *testing.T) {
	key := mustKey(t, "vigil-central")
	orig := buildTamperLog(t, t.TempDir(), key, nil)
	for _, tc := range []struct {
		name string
		edit func(*bbolt.Tx) error
		want error
	}{
		{"tail truncated", truncate(95, false), ErrTampered},
		{"latest checkpoint's signature altered", editCheckpoint(tamperSize, flipSignature), ErrTampered},
		{"hashes rebuilt over a changed record", chain(reencode(rec37, func(r *Record) { r.Reason = "nothing" }), rebuildHashes), ErrTampered},
		{"the last stored hash removed", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketHashes).Delete(encodeU64(uint64(tlog.StoredHashCount(tamperSize) - 1)))
		}, ErrTampered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := editCopy(t, orig.path, tc.edit)
			l, err := Open(path, Options{Signer: key.signer, Verifier: key.verifier})
			if err == nil {
				l.Close()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open = %v, want %v", err, tc.want)
			}
		})
	}
}

const rec37 = uint64(tamperSeq)

// TestVerifyLive: Verify runs on a log being written, without false alarms
// from records and checkpoints committed while it reads.
func TestVerifyLive(t *testing.T) {
	key := mustKey(t, "vigil-central")
	l := mustOpen(t, filepath.Join(t.TempDir(), "audit.db"), key, func(o *Options) { o.CheckpointRecords = 5 })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := l.Append(ctx, sample(i)); err != nil && ctx.Err() == nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 50 {
		if _, err := Verify(l, key.verifier); err != nil {
			t.Fatal(err)
		}
	}
}

func TestVerifyArguments(t *testing.T) {
	key := mustKey(t, "vigil-central")
	if _, err := Verify(&Bundle{}, nil); err == nil {
		t.Error("Verify without a verifier succeeded")
	}
	rep, err := Verify(&Bundle{}, key.verifier)
	if err != nil || rep.Records != 0 {
		t.Errorf("empty log: %+v, %v", rep, err)
	}
	if err := VerifyAgainst(&Bundle{}, key.verifier, []byte("not a checkpoint")); !errors.Is(err, ErrBadCheckpoint) {
		t.Errorf("VerifyAgainst a malformed kept checkpoint = %v", err)
	}
	other := mustKey(t, "elsewhere")
	cp, _ := note.Sign(&note.Note{Text: string(formatCheckpoint(Origin("elsewhere"), tlog.Tree{}))}, other.signer)
	if err := VerifyAgainst(&Bundle{}, key.verifier, cp); !errors.Is(err, ErrBadCheckpoint) {
		t.Errorf("VerifyAgainst another log's checkpoint = %v", err)
	}
}

// TestReadsReportTampering: the reads that decode records refuse damaged
// ones with a *TamperError rather than return them.
func TestReadsReportTampering(t *testing.T) {
	key := mustKey(t, "vigil-central")
	orig := buildTamperLog(t, t.TempDir(), key, nil)
	l := mustOpenRO(t, editCopy(t, orig.path, editRecord(rec37, changeByte(`"outcome":"ok"`, `"outcome":"ox"`))))
	if _, err := l.Records(0, tamperSize); err == nil {
		t.Fatal("Records returned a damaged record")
	} else {
		wantTamper(t, err, tamperSeq)
	}
	if recs, err := l.Records(0, tamperSeq); err != nil || len(recs) != tamperSeq {
		t.Fatalf("records before the damage: %d, %v", len(recs), err)
	}
	_, err := l.Query(Filter{})
	wantTamper(t, err, tamperSeq)

	// A record moved to another key is refused too.
	l = mustOpenRO(t, editCopy(t, orig.path, swapRecords(rec37, rec37+1)))
	_, err = l.Records(30, 40)
	wantTamper(t, err, tamperSeq)
}

func TestBundle(t *testing.T) {
	key := mustKey(t, "vigil-central")
	l := mustOpen(t, filepath.Join(t.TempDir(), "audit.db"), key, func(o *Options) { o.CheckpointRecords = 4 })
	mustAppend(t, l, 0, 10)
	raw, _ := l.RawRecords(0, 10)
	cps, _ := l.Checkpoints()
	// As carried over the API and decoded by the auditor's CLI.
	data, err := json.Marshal(&Bundle{RecordBytes: raw, CheckpointNotes: cps})
	if err != nil {
		t.Fatal(err)
	}
	var b Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(&b, key.verifier)
	if err != nil || rep.Records != 10 || rep.Checkpoints != 2 || rep.Unanchored != 2 || rep.HashesCompared {
		t.Fatalf("Verify of the bundle: %+v, %v", rep, err)
	}
	if got, _ := b.RawRecords(8, 20); len(got) != 2 {
		t.Errorf("RawRecords past the end: %d records", len(got))
	}
	if _, err := b.RawRecords(5, 4); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("RawRecords(5, 4) = %v", err)
	}
}

// A record removed from, or moved in, the time index would vanish from
// every listing while the tree stays intact: Verify checks the index too.
func TestTamperTimeIndex(t *testing.T) {
	key := mustKey(t, "vigil-test")
	orig := buildTamperLog(t, t.TempDir(), key, nil)
	for name, edit := range map[string]func(tx *bbolt.Tx) error{
		"index entry removed": func(tx *bbolt.Tx) error {
			c := tx.Bucket(bucketTimes).Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				if decodeU64(k[8:]) == tamperSeq {
					return c.Delete()
				}
			}
			return errors.New("no index entry for the record")
		},
		"index entry moved": func(tx *bbolt.Tx) error {
			b := tx.Bucket(bucketTimes)
			c := b.Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				if decodeU64(k[8:]) == tamperSeq {
					moved := timeKey(t0.Add(-24*time.Hour), tamperSeq)
					if err := c.Delete(); err != nil {
						return err
					}
					return b.Put(moved, nil)
				}
			}
			return errors.New("no index entry for the record")
		},
	} {
		t.Run(name, func(t *testing.T) {
			l := mustOpenRO(t, editCopy(t, orig.path, edit))
			_, err := Verify(l, key.verifier)
			wantTamper(t, err, tamperSeq)
		})
	}
}
