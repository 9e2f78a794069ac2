package audit

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Source is what Verify reads: a *Log (live, or a read-only copy of its
// file) or a Bundle downloaded from central.
type Source interface {
	// Checkpoints returns every stored signed checkpoint. Verify calls it
	// before Size, so that on a live log no checkpoint is beyond the size
	// it then reads (a checkpoint is committed with its records).
	Checkpoints() ([][]byte, error)
	// Size is the number of records.
	Size() uint64
	// RawRecords returns the stored bytes of records from..to-1.
	RawRecords(from, to uint64) ([][]byte, error)
}

// HashSource is implemented by sources that keep the tree's stored hashes
// (a *Log does). Verify then compares every one with the hash it
// recomputes, and names the first that differs.
type HashSource interface {
	// StoredHashes returns the hashes of tlog stored hash indexes
	// from..to-1.
	StoredHashes(from, to int64) ([]tlog.Hash, error)
}

var (
	_ Source     = (*Log)(nil)
	_ HashSource = (*Log)(nil)
	_ Source     = (*Bundle)(nil)
)

// Bundle is a log as downloaded over central's API (AuditRecords): the
// stored record bytes, in order from Seq 0, and the stored checkpoints.
type Bundle struct {
	RecordBytes     [][]byte `json:"records"`
	CheckpointNotes [][]byte `json:"checkpoints"`
}

// Size returns the number of records.
func (b *Bundle) Size() uint64 { return uint64(len(b.RecordBytes)) }

// RawRecords returns records from..to-1, to bounded by Size.
func (b *Bundle) RawRecords(from, to uint64) ([][]byte, error) {
	if from > to {
		return nil, fmt.Errorf("audit: raw records: %w: from %d after to %d", ErrOutOfRange, from, to)
	}
	to = min(to, b.Size())
	from = min(from, to)
	return b.RecordBytes[from:to], nil
}

// Checkpoints returns the checkpoints.
func (b *Bundle) Checkpoints() ([][]byte, error) { return b.CheckpointNotes, nil }

// Report is what a successful Verify checked.
type Report struct {
	// Records is the number of records verified, Root the root hash of
	// their tree, recomputed from their bytes.
	Records uint64
	Root    tlog.Hash
	// Checkpoints is the number of stored checkpoints verified; Latest the
	// size of the largest of them.
	Checkpoints int
	Latest      uint64
	// Kept is the number of kept checkpoints (VerifyAgainst) the log was
	// shown to extend.
	Kept int
	// Unanchored is the number of records after the largest checkpoint
	// verified, stored or kept: records that a signature does not cover
	// yet (at most Options.CheckpointEvery's worth on a live log, none on a
	// log closed cleanly).
	Unanchored uint64
	// HashesCompared says the source's stored hashes were compared too.
	HashesCompared bool
	Duration       time.Duration
}

// anchor is a checkpoint to check at its size.
type anchor struct {
	tree tlog.Tree
	kept bool
	// err is why a stored checkpoint cannot be trusted (malformed, bad
	// signature, other log); reported when the scan reaches its size.
	err error
}

// decoded is what the parallel stage learns of one record.
type decoded struct {
	seq  uint64
	leaf tlog.Hash
	err  error
}

// verifyChunk is how many records Verify reads at once.
const verifyChunk = 16384

// Verify checks the whole log of src from its bytes, trusting nothing that
// is stored but the signatures of the verifier's key:
//   - every record decodes canonically (Unmarshal) and carries its position
//     as Seq: a changed, deleted, inserted or swapped record is named;
//   - every leaf hash and the tree are recomputed with tlog; if src is a
//     HashSource, every stored hash is compared with the recomputed one;
//   - every stored checkpoint is a note signed by verifier, of this log
//     (Origin), whose root is the recomputed root at its size, and is
//     consistent with the previous one (tlog.ProveTree, tlog.CheckTree);
//     a checkpoint beyond the log means its tail was cut;
//   - every kept checkpoint (an auditor's, see VerifyAgainst) is treated
//     the same, which proves the log extends it.
//
// Problems are reported as a *TamperError naming the first bad record (see
// TamperError for which record that is for each kind of problem). Other
// errors are reading errors, or ErrBadCheckpoint for a kept checkpoint that
// does not verify with verifier.
//
// Verify holds the recomputed tree in memory: 64 bytes per record.
func Verify(src Source, verifier note.Verifier, kept ...[]byte) (Report, error) {
	start := time.Now()
	if verifier == nil {
		return Report{}, fmt.Errorf("audit: verify: no verifier")
	}
	var anchors []anchor
	for i, k := range kept {
		t, err := OpenCheckpoint(k, verifier)
		if err != nil {
			return Report{}, fmt.Errorf("audit: verify: kept checkpoint %d: %w", i+1, err)
		}
		anchors = append(anchors, anchor{tree: t, kept: true})
	}
	notes, err := src.Checkpoints()
	if err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	var prevN int64
	for i, msg := range notes {
		t, readable, err := inspectCheckpoint(msg, verifier)
		if !readable {
			// Its size is unknown: check it where the list has it, after
			// the previous one.
			t = tlog.Tree{N: prevN}
			err = fmt.Errorf("stored checkpoint %d of %d (after size %d) unreadable: %w", i+1, len(notes), prevN, err)
		}
		prevN = t.N
		anchors = append(anchors, anchor{tree: t, err: err})
	}
	slices.SortStableFunc(anchors, func(a, b anchor) int {
		switch {
		case a.tree.N < b.tree.N:
			return -1
		case a.tree.N > b.tree.N:
			return 1
		}
		return 0
	})

	n := src.Size()
	v := &verification{
		anchors: anchors,
		hashes:  make(memHashes, tlog.StoredHashCount(int64(n))),
	}
	hs, compare := src.(HashSource)
	dec := make([]decoded, 0, verifyChunk)
	for from := uint64(0); from < n; {
		to := min(from+verifyChunk, n)
		raw, err := src.RawRecords(from, to)
		if err != nil {
			return Report{}, fmt.Errorf("audit: verify: %w", err)
		}
		if uint64(len(raw)) > to-from {
			return Report{}, fmt.Errorf("audit: verify: source returned %d records for %d..%d", len(raw), from, to-1)
		}
		var stored []tlog.Hash
		base := tlog.StoredHashIndex(0, int64(from))
		if compare {
			if stored, err = hs.StoredHashes(base, tlog.StoredHashIndex(0, int64(to))); err != nil {
				return Report{}, fmt.Errorf("audit: verify: %w", err)
			}
		}
		dec = decodeAll(raw, dec[:len(raw)])
		for j, d := range dec {
			i := from + uint64(j)
			if err := v.anchorsAt(i); err != nil {
				return Report{}, err
			}
			if d.err != nil {
				return Report{}, tampered(i, "%v", d.err)
			}
			if d.seq != i {
				return Report{}, tampered(i, "expected seq %d here, found seq %d (a record deleted, inserted or moved)", i, d.seq)
			}
			sh, err := tlog.StoredHashesForRecordHash(int64(i), d.leaf, v.hashes)
			if err != nil {
				return Report{}, fmt.Errorf("audit: verify: %w", err)
			}
			idx := tlog.StoredHashIndex(0, int64(i))
			copy(v.hashes[idx:], sh)
			if !compare {
				continue
			}
			for k, h := range sh {
				pos := idx + int64(k) - base
				if pos < int64(len(stored)) && stored[pos] == h {
					continue
				}
				if k == 0 {
					return Report{}, tampered(i, "leaf hash differs from the stored one: the record's bytes changed")
				}
				level, node := tlog.SplitStoredHashIndex(idx + int64(k))
				return Report{}, tampered(i, "stored hash of tree node %d at level %d, written with this record, differs from the recomputed one", node, level)
			}
		}
		if got := uint64(len(raw)); got < to-from {
			return Report{}, tampered(from+got, "record missing")
		}
		from = to
	}
	if err := v.anchorsAt(n); err != nil {
		return Report{}, err
	}
	if v.next < len(anchors) {
		a := anchors[v.next]
		if a.err != nil {
			// Not evidence of a cut: the checkpoint itself is bad.
			return Report{}, tampered(uint64(v.prev.N), "checkpoint of size %d, beyond the log's %d records: %v", a.tree.N, n, a.err)
		}
		if a.kept {
			return Report{}, tampered(n, "the log has %d records, the kept checkpoint covers %d: records were removed from its end", n, a.tree.N)
		}
		return Report{}, tampered(n, "the log has %d records, a stored checkpoint covers %d: records were removed from its end", n, a.tree.N)
	}
	root, err := tlog.TreeHash(int64(n), v.hashes)
	if err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	// Query and Scan read the time index, not the records: a record
	// removed from the index would vanish from every listing while the tree
	// stays intact.
	if l, ok := src.(*Log); ok {
		if err := l.checkTimeIndex(n); err != nil {
			return Report{}, err
		}
	}
	return Report{
		Records:        n,
		Root:           root,
		Checkpoints:    v.stored,
		Latest:         v.latest,
		Kept:           v.kept,
		Unanchored:     n - uint64(v.prev.N),
		HashesCompared: compare,
		Duration:       time.Since(start),
	}, nil
}

// VerifyAgainst is Verify with a checkpoint kept outside the system: it
// fails unless kept verifies with verifier and the log recomputed at kept's
// size has kept's root. That proves the log extends what the auditor saw
// then, and catches a log rebuilt afterwards, even with new signatures by
// the same key (which lives on central's disk) or another one.
func VerifyAgainst(src Source, verifier note.Verifier, kept []byte) error {
	_, err := Verify(src, verifier, kept)
	return err
}

// verification is the state of one Verify.
type verification struct {
	anchors []anchor
	next    int
	hashes  memHashes
	// prev is the latest anchor verified; lastKept the size of the latest
	// kept one.
	prev     tlog.Tree
	lastKept uint64
	// counts for the report
	stored, kept int
	latest       uint64
}

// anchorsAt checks every anchor of size n, once records 0..n-1 are hashed.
func (v *verification) anchorsAt(n uint64) error {
	for v.next < len(v.anchors) && uint64(v.anchors[v.next].tree.N) == n {
		a := v.anchors[v.next]
		v.next++
		if a.err != nil {
			return tampered(uint64(v.prev.N), "checkpoint of size %d: %v", n, a.err)
		}
		root, err := tlog.TreeHash(int64(n), v.hashes)
		if err != nil {
			return fmt.Errorf("audit: verify: %w", err)
		}
		if root != a.tree.Hash {
			if a.kept {
				return tampered(v.lastKept, "the log does not extend the kept checkpoint: its root at size %d is %s, the kept checkpoint's %s", n, root, a.tree.Hash)
			}
			return tampered(uint64(v.prev.N), "the log's root at size %d is %s, its signed checkpoint's %s", n, root, a.tree.Hash)
		}
		if v.prev.N > 0 && a.tree.N > v.prev.N {
			proof, err := tlog.ProveTree(a.tree.N, v.prev.N, v.hashes)
			if err != nil {
				return fmt.Errorf("audit: verify: %w", err)
			}
			if err := tlog.CheckTree(proof, a.tree.N, a.tree.Hash, v.prev.N, v.prev.Hash); err != nil {
				return tampered(uint64(v.prev.N), "checkpoint of size %d is not consistent with the one of size %d: %v", n, v.prev.N, err)
			}
		}
		v.prev = a.tree
		if a.kept {
			v.kept++
			v.lastKept = n
		} else {
			v.stored++
			v.latest = n
		}
	}
	return nil
}

// decodeAll decodes raw into out, using every CPU: decoding is most of the
// cost of Verify, and records are independent until their hashes are
// chained.
func decodeAll(raw [][]byte, out []decoded) []decoded {
	one := func(lo, hi int) {
		for j := lo; j < hi; j++ {
			rec, err := Unmarshal(raw[j])
			out[j] = decoded{seq: rec.Seq, leaf: tlog.RecordHash(raw[j]), err: err}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), max(1, len(raw)/256))
	if workers == 1 {
		one(0, len(raw))
		return out
	}
	per := (len(raw) + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < len(raw); lo += per {
		wg.Go(func() { one(lo, min(lo+per, len(raw))) })
	}
	wg.Wait()
	return out
}

// memHashes is a recomputed tree: hashes by tlog stored hash index.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m)) {
			return nil, fmt.Errorf("audit: verify: hash %d outside the tree", x)
		}
		out[i] = m[x]
	}
	return out, nil
}
