package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/vigil-cctv/vigil/proto/actions"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"
)

func TestAppendAssignsSeqAndTime(t *testing.T) {
	clock := newClock(0)
	l := mustOpen(t, filepath.Join(t.TempDir(), "audit.db"), mustKey(t, "vigil-central"), func(o *Options) { o.Now = clock.Now })
	var got []Record
	for i := range 5 {
		got = append(got, mustAppend(t, l, i, 1)...)
		clock.Advance(time.Second)
	}
	for i, rec := range got {
		if rec.Seq != uint64(i) {
			t.Errorf("record %d has seq %d", i, rec.Seq)
		}
		if want := t0.Add(time.Duration(i) * time.Second); !rec.Time.Equal(want) || rec.Time.Location() != time.UTC {
			t.Errorf("record %d time %v, want %v UTC", i, rec.Time, want)
		}
		want := sample(i)
		want.Seq, want.Time = rec.Seq, rec.Time
		if rec != want {
			t.Errorf("record %d came back changed:\n got %+v\nwant %+v", i, rec, want)
		}
	}
	if l.Size() != 5 {
		t.Fatalf("Size %d, want 5", l.Size())
	}
	stored, err := l.Records(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(stored, got) {
		t.Fatalf("Records differ from what Append returned")
	}
	raw, err := l.RawRecords(1, 3)
	if err != nil {
		t.Fatal(err)
	}
	for j, b := range raw {
		want, _ := got[1+j].Marshal()
		if !bytes.Equal(b, want) {
			t.Errorf("raw record %d: %s, want %s", 1+j, b, want)
		}
	}
	if _, err := l.Records(3, 2); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Records(3, 2) = %v, want ErrOutOfRange", err)
	}
	if recs, err := l.Records(7, 9); err != nil || len(recs) != 0 {
		t.Errorf("Records beyond the end = %v, %v; want none", recs, err)
	}
}

func TestAppendRefusesBadRecords(t *testing.T) {
	l := mustOpen(t, filepath.Join(t.TempDir(), "audit.db"), mustKey(t, "vigil-central"), nil)
	mustAppend(t, l, 0, 1)
	for _, tc := range []struct {
		name string
		edit func(*Record)
	}{
		{"seq set", func(r *Record) { r.Seq = 1 }},
		{"time set", func(r *Record) { r.Time = t0 }},
		{"bad action", func(r *Record) { r.Action = "LIVE" }},
		{"bad outcome", func(r *Record) { r.Outcome = "" }},
		{"long reason", func(r *Record) { r.Reason = strings.Repeat("x", MaxText+1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sample(1)
			tc.edit(&r)
			if _, err := l.Append(context.Background(), r); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Append = %v, want ErrInvalid", err)
			}
			// A batch with one bad record records none of them.
			if _, err := l.AppendBatch(context.Background(), []Record{sample(2), r}); !errors.Is(err, ErrInvalid) {
				t.Fatalf("AppendBatch = %v, want ErrInvalid", err)
			}
			if l.Size() != 1 {
				t.Fatalf("Size %d after refused appends, want 1", l.Size())
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Append(ctx, sample(3)); !errors.Is(err, context.Canceled) {
		t.Errorf("Append with a cancelled context = %v", err)
	}
	if l.Size() != 1 {
		t.Errorf("Size %d after a cancelled append, want 1", l.Size())
	}
}

// TestConcurrentAppends: 100 goroutines append at once; every record gets
// one sequence number, none is lost or given twice, appends share commits,
// and the log verifies.
func TestConcurrentAppends(t *testing.T) {
	const goroutines, each = 100, 20
	k := mustKey(t, "vigil-central")
	l := mustOpen(t, filepath.Join(t.TempDir(), "audit.db"), k, func(o *Options) { o.CheckpointRecords = 64 })
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		bySeq = map[uint64]Record{}
		start = make(chan struct{})
	)
	for g := range goroutines {
		wg.Go(func() {
			<-start
			for i := range each {
				r := sample(g*each + i)
				r.Detail = fmt.Sprintf("g%d i%d", g, i)
				got, err := l.Append(context.Background(), r)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, dup := bySeq[got.Seq]; dup {
					t.Errorf("seq %d given twice: %q and %q", got.Seq, prev.Detail, got.Detail)
				}
				bySeq[got.Seq] = got
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	const n = goroutines * each
	if l.Size() != n || len(bySeq) != n {
		t.Fatalf("Size %d, %d distinct seqs; want %d", l.Size(), len(bySeq), n)
	}
	stored, err := l.Records(0, n)
	if err != nil {
		t.Fatal(err)
	}
	for seq, rec := range stored {
		if bySeq[uint64(seq)] != rec {
			t.Fatalf("stored record %d is not the one its appender was given", seq)
		}
	}
	if c := l.commits.Load(); c >= n {
		t.Errorf("%d commits for %d appends: no group commit", c, n)
	} else {
		t.Logf("%d appends in %d commits", n, c)
	}
	rep, err := Verify(l, k.verifier)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != n || rep.Checkpoints < n/64 {
		t.Fatalf("report %+v", rep)
	}
}

func TestCheckpointEveryNRecords(t *testing.T) {
	for _, tc := range []struct {
		name  string
		batch int
	}{
		{"one by one", 1},
		{"in one batch", 25},
		{"in batches of 7", 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := mustKey(t, "vigil-central")
			path := filepath.Join(t.TempDir(), "audit.db")
			l := mustOpen(t, path, k, func(o *Options) { o.CheckpointRecords = 10; o.Now = newClock(time.Millisecond).Now })
			for i := 0; i < 25; i += tc.batch {
				var recs []Record
				for j := i; j < min(i+tc.batch, 25); j++ {
					recs = append(recs, sample(j))
				}
				got, err := l.AppendBatch(context.Background(), recs)
				if err != nil {
					t.Fatal(err)
				}
				for j, r := range got {
					if r.Seq != uint64(i+j) {
						t.Fatalf("batch record %d has seq %d", i+j, r.Seq)
					}
				}
			}
			if got := checkpointSizes(t, l, k); !slices.Equal(got, []int64{10, 20}) {
				t.Fatalf("checkpoints %v, want [10 20]", got)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			ro := mustOpenRO(t, path)
			if got := checkpointSizes(t, ro, k); !slices.Equal(got, []int64{10, 20, 25}) {
				t.Fatalf("checkpoints after Close %v, want [10 20 25]", got)
			}
		})
	}
}

// checkpointSizes verifies every stored checkpoint of l and returns their
// sizes.
func checkpointSizes(t *testing.T, l *Log, k testKey) []int64 {
	t.Helper()
	cps, err := l.Checkpoints()
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int64
	for _, cp := range cps {
		tree, err := OpenCheckpoint(cp, k.verifier)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, tree.N)
	}
	return sizes
}

// TestCheckpointInterval: records that come slowly are covered within
// CheckpointEvery, by the timer or by the next batch, on a fake clock.
func TestCheckpointInterval(t *testing.T) {
	k := mustKey(t, "vigil-central")
	clock := newClock(0)
	tick := make(chan time.Time)
	l := mustOpen(t, filepath.Join(t.TempDir(), "audit.db"), k, func(o *Options) { o.Now = clock.Now; o.tick = tick })
	if _, err := l.Checkpoint(); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("Checkpoint of an empty log = %v", err)
	}
	mustAppend(t, l, 0, 3)
	if got := checkpointSizes(t, l, k); len(got) != 0 {
		t.Fatalf("checkpoints %v before the interval", got)
	}
	// The writer takes the second tick only once done with the first.
	tick <- t0
	tick <- t0
	if got := checkpointSizes(t, l, k); !slices.Equal(got, []int64{3}) {
		t.Fatalf("checkpoints %v after a tick, want [3]", got)
	}
	// No new records: a tick writes nothing.
	tick <- t0
	tick <- t0
	if got := checkpointSizes(t, l, k); !slices.Equal(got, []int64{3}) {
		t.Fatalf("checkpoints %v after an idle tick, want [3]", got)
	}
	// A batch that comes after the interval checkpoints itself.
	mustAppend(t, l, 3, 1)
	clock.Advance(DefaultCheckpointEvery)
	mustAppend(t, l, 4, 1)
	if got := checkpointSizes(t, l, k); !slices.Equal(got, []int64{3, 5}) {
		t.Fatalf("checkpoints %v, want [3 5]", got)
	}
	cp, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if tree, err := OpenCheckpoint(cp, k.verifier); err != nil || tree.N != 5 {
		t.Fatalf("latest checkpoint %v, %v", tree, err)
	}
}

func TestCheckpointNow(t *testing.T) {
	k := mustKey(t, "vigil-central")
	l := mustOpen(t, filepath.Join(t.TempDir(), "audit.db"), k, nil)
	if _, err := l.CheckpointNow(context.Background()); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("CheckpointNow of an empty log = %v", err)
	}
	mustAppend(t, l, 0, 7)
	cp, err := l.CheckpointNow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tree, err := OpenCheckpoint(cp, k.verifier)
	if err != nil || tree.N != 7 {
		t.Fatalf("checkpoint %+v, %v; want size 7", tree, err)
	}
	again, err := l.CheckpointNow(context.Background())
	if err != nil || !bytes.Equal(again, cp) {
		t.Fatalf("second CheckpointNow signed again: %v", err)
	}
	if got := checkpointSizes(t, l, k); !slices.Equal(got, []int64{7}) {
		t.Fatalf("checkpoints %v, want [7]", got)
	}
	text := strings.SplitN(string(cp), "\n", 2)[0]
	if text != "vigil-central/audit" {
		t.Errorf("origin line %q", text)
	}
}

func TestReopen(t *testing.T) {
	k := mustKey(t, "vigil-central")
	path := filepath.Join(t.TempDir(), "audit.db")
	clock := newClock(time.Second)
	open := func() *Log {
		return mustOpen(t, path, k, func(o *Options) { o.Now = clock.Now; o.CheckpointRecords = 4 })
	}
	l := open()
	first := mustAppend(t, l, 0, 10)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Append(context.Background(), sample(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	if _, err := l.Records(0, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Records after Close = %v, want ErrClosed", err)
	}

	l = open()
	if l.Size() != 10 {
		t.Fatalf("Size %d after reopening, want 10", l.Size())
	}
	got, err := l.Records(0, 10)
	if err != nil || !slices.Equal(got, first) {
		t.Fatalf("records changed across reopening: %v", err)
	}
	if sizes := checkpointSizes(t, l, k); !slices.Equal(sizes, []int64{4, 8, 10}) {
		t.Fatalf("checkpoints %v, want [4 8 10]", sizes)
	}
	kept, _ := l.Checkpoint()
	more := mustAppend(t, l, 10, 3)
	if more[0].Seq != 10 {
		t.Fatalf("first seq after reopening %d, want 10", more[0].Seq)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ro := mustOpenRO(t, path)
	rep, err := Verify(ro, k.verifier, kept)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 13 || rep.Checkpoints != 4 || rep.Kept != 1 || rep.Unanchored != 0 || !rep.HashesCompared {
		t.Fatalf("report %+v", rep)
	}
	if _, err := ro.Append(context.Background(), sample(0)); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Append on a read-only log = %v", err)
	}
}

func TestOpenRefuses(t *testing.T) {
	k := mustKey(t, "vigil-central")
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.db")
	l := mustOpen(t, path, k, nil)
	mustAppend(t, l, 0, 3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	other := mustKey(t, "vigil-central")
	if _, err := Open(path, Options{Signer: other.signer, Verifier: other.verifier}); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("Open with another key = %v, want ErrKeyMismatch", err)
	}
	if _, err := Open(path, Options{Signer: k.signer, Verifier: other.verifier}); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("Open with a verifier of another key = %v, want ErrKeyMismatch", err)
	}
	if _, err := Open(path, Options{}); err == nil {
		t.Error("Open for writing without keys succeeded")
	}
	if _, err := Open(filepath.Join(dir, "missing.db"), Options{ReadOnly: true}); err == nil {
		t.Error("read-only Open of a missing file succeeded")
	}
	// A bbolt file that is not an audit log.
	foreign := filepath.Join(dir, "other.db")
	db, err := bbolt.Open(foreign, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(foreign, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "not an audit log") {
		t.Errorf("read-only Open of a foreign file = %v", err)
	}
	// While a writer holds the file, a second writer gets an error, not a
	// hang.
	l = mustOpen(t, path, k, nil)
	if _, err := Open(path, Options{Signer: k.signer, Verifier: k.verifier}); err == nil {
		t.Error("second Open of a file in use succeeded")
	}
	l.Close()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %v, want 0600", info.Mode().Perm())
	}
}

// TestFailClosed: when the file cannot be written, every append of the
// batch fails, nothing is recorded, and the log refuses every later append
// until reopened; reopened, it has exactly what was committed before.
func TestFailClosed(t *testing.T) {
	k := mustKey(t, "vigil-central")
	path := filepath.Join(t.TempDir(), "audit.db")
	var broken atomic.Bool
	fault := errors.New("injected: no space left on device")
	l := mustOpen(t, path, k, func(o *Options) {
		o.CheckpointRecords = 4
		o.beforeCommit = func(*bbolt.Tx) error {
			if broken.Load() {
				return fault
			}
			return nil
		}
	})
	before := mustAppend(t, l, 0, 6)
	broken.Store(true)

	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 20 {
		wg.Go(func() {
			if _, err := l.Append(context.Background(), sample(100+i)); err != nil {
				if !errors.Is(err, fault) && !errors.Is(err, ErrFailed) {
					t.Errorf("append error %v is neither the fault nor ErrFailed", err)
				}
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 20 {
		t.Fatalf("%d of 20 appends failed, want all", failed.Load())
	}
	// The disk is fine again, but this process no longer knows what is on
	// it: it keeps refusing.
	broken.Store(false)
	if _, err := l.Append(context.Background(), sample(200)); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after a failed commit = %v, want ErrFailed", err)
	}
	if _, err := l.CheckpointNow(context.Background()); !errors.Is(err, ErrFailed) {
		t.Fatalf("CheckpointNow after a failed commit = %v, want ErrFailed", err)
	}
	if l.Size() != 6 {
		t.Fatalf("Size %d after failed appends, want 6", l.Size())
	}
	l.Close()

	l = mustOpen(t, path, k, nil)
	got, err := l.Records(0, 100)
	if err != nil || !slices.Equal(got, before) {
		t.Fatalf("after reopening: %d records (%v), want the 6 committed before the fault", len(got), err)
	}
	if _, err := l.Append(context.Background(), sample(300)); err != nil {
		t.Fatalf("append after reopening: %v", err)
	}
	if _, err := Verify(l, k.verifier); err != nil {
		t.Fatal(err)
	}
}

func TestQuery(t *testing.T) {
	k := mustKey(t, "vigil-central")
	clock := newClock(0)
	l := mustOpen(t, filepath.Join(t.TempDir(), "audit.db"), k, func(o *Options) { o.Now = clock.Now })
	// Record i is at t0 + i minutes.
	var recs []Record
	for i := range 60 {
		recs = append(recs, mustAppend(t, l, i, 1)...)
		clock.Advance(time.Minute)
	}
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	seqs := func(pred func(Record) bool) []uint64 {
		var out []uint64
		for _, r := range recs {
			if pred(r) {
				out = append(out, r.Seq)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    Filter
		want []uint64
	}{
		{"everything", Filter{}, seqs(func(Record) bool { return true })},
		{"since", Filter{Since: at(50)}, seqs(func(r Record) bool { return r.Seq >= 50 })},
		{"until excludes its instant", Filter{Until: at(3)}, []uint64{0, 1, 2}},
		{"since and until", Filter{Since: at(10), Until: at(13)}, []uint64{10, 11, 12}},
		{"between records", Filter{Since: at(10).Add(time.Second), Until: at(11).Add(time.Second)}, []uint64{11}},
		{"after the end", Filter{Since: at(61)}, nil},
		{"actor", Filter{Actor: "user3"}, seqs(func(r Record) bool { return r.Actor.User == "user3" })},
		{"action", Filter{Action: actions.HoldPlace}, seqs(func(r Record) bool { return r.Action == actions.HoldPlace })},
		{"action prefix", Filter{Action: "user.*"}, seqs(func(r Record) bool { return strings.HasPrefix(r.Action, "user.") })},
		{"district and camera", Filter{District: "district1", Camera: "cam4"}, seqs(func(r Record) bool {
			return r.Target.District == "district1" && r.Target.Camera == "cam4"
		})},
		{"everything combined", Filter{Since: at(5), Until: at(55), Actor: "user2", Action: "recording.*", Camera: "cam2"}, seqs(func(r Record) bool {
			return r.Seq >= 5 && r.Seq < 55 && r.Actor.User == "user2" && r.Action == actions.RecordingView && r.Target.Camera == "cam2"
		})},
		{"limit", Filter{Since: at(20), Limit: 4}, []uint64{20, 21, 22, 23}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.want) == 0 && tc.name != "after the end" {
				t.Fatal("the sample population selects nothing: the case tests nothing")
			}
			got, err := l.Query(tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var gotSeqs []uint64
			for _, r := range got {
				gotSeqs = append(gotSeqs, r.Seq)
				if r != recs[r.Seq] {
					t.Fatalf("record %d differs from the one appended", r.Seq)
				}
			}
			if !slices.Equal(gotSeqs, tc.want) {
				t.Fatalf("seqs %v, want %v", gotSeqs, tc.want)
			}
		})
	}
	for _, bad := range []Filter{
		{Action: "USER"},
		{Action: "*"},
		{Action: "user*"},
		{Since: at(5), Until: at(4)},
		{Limit: -1},
		{Limit: MaxQueryLimit + 1},
	} {
		if _, err := l.Query(bad); err == nil {
			t.Errorf("Query(%+v) succeeded", bad)
		}
	}
	n := 0
	if err := l.Scan(Filter{Action: actions.LiveStart}, func(Record) error { n++; return nil }); err != nil || n != 10 {
		t.Errorf("Scan counted %d live.start (%v), want 10", n, err)
	}
	stop := errors.New("enough")
	if err := l.Scan(Filter{}, func(Record) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Scan returned %v, want the callback's error", err)
	}
}

// TestQueryClockBackwards: records keep their order by time in the index
// even when the clock went back.
func TestQueryClockBackwards(t *testing.T) {
	clock := newClock(0)
	l := mustOpen(t, filepath.Join(t.TempDir(), "audit.db"), mustKey(t, "vigil-central"), func(o *Options) { o.Now = clock.Now })
	mustAppend(t, l, 0, 1)
	clock.Advance(-time.Hour)
	mustAppend(t, l, 1, 1)
	got, err := l.Query(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Seq != 1 || got[1].Seq != 0 {
		t.Fatalf("query order %v", got)
	}
	if got, _ := l.Query(Filter{Since: t0.Add(-time.Minute)}); len(got) != 1 || got[0].Seq != 0 {
		t.Fatalf("query since %v", got)
	}
}

// TestProofs: inclusion proofs of records and consistency proofs between
// checkpoints check with tlog against the signed roots.
func TestProofs(t *testing.T) {
	k := mustKey(t, "vigil-central")
	l := mustOpen(t, filepath.Join(t.TempDir(), "audit.db"), k, func(o *Options) { o.CheckpointRecords = 7 })
	mustAppend(t, l, 0, 50)
	if _, err := l.CheckpointNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	cps, err := l.Checkpoints()
	if err != nil {
		t.Fatal(err)
	}
	var trees []tlog.Tree
	for _, cp := range cps {
		tree, err := OpenCheckpoint(cp, k.verifier)
		if err != nil {
			t.Fatal(err)
		}
		trees = append(trees, tree)
	}
	if len(trees) != 8 || trees[7].N != 50 {
		t.Fatalf("checkpoints %v", trees)
	}
	raw, err := l.RawRecords(0, 50)
	if err != nil {
		t.Fatal(err)
	}
	for _, tree := range trees {
		for seq := int64(0); seq < tree.N; seq++ {
			p, err := l.InclusionProof(uint64(seq), uint64(tree.N))
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(p, tree.N, tree.Hash, seq, tlog.RecordHash(raw[seq])); err != nil {
				t.Fatalf("record %d in tree %d: %v", seq, tree.N, err)
			}
			// The proof does not fit another record.
			if err := tlog.CheckRecord(p, tree.N, tree.Hash, seq, tlog.RecordHash(raw[(seq+1)%50])); err == nil {
				t.Fatalf("proof of record %d accepted record %d", seq, (seq+1)%50)
			}
		}
	}
	for i := range trees {
		for j := i; j < len(trees); j++ {
			old, cur := trees[i], trees[j]
			p, err := l.ConsistencyProof(uint64(old.N), uint64(cur.N))
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckTree(p, cur.N, cur.Hash, old.N, old.Hash); err != nil {
				t.Fatalf("tree %d from %d: %v", cur.N, old.N, err)
			}
		}
	}
	for _, tc := range []struct{ seq, size uint64 }{{50, 50}, {0, 51}, {3, 3}} {
		if _, err := l.InclusionProof(tc.seq, tc.size); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("InclusionProof(%d, %d) = %v, want ErrOutOfRange", tc.seq, tc.size, err)
		}
	}
	for _, tc := range []struct{ old, cur uint64 }{{0, 5}, {6, 5}, {5, 51}} {
		if _, err := l.ConsistencyProof(tc.old, tc.cur); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("ConsistencyProof(%d, %d) = %v, want ErrOutOfRange", tc.old, tc.cur, err)
		}
	}
}
