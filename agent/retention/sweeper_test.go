package retention

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/proto/actions"
	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/fs"
	"github.com/vigil-cctv/vigil/storage/index"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// fakeClock is the injected time: retention is tested without sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

type fixture struct {
	ix      *index.Index
	store   storage.ObjectStore
	clock   *fakeClock
	sweeper *Sweeper
	holds   *Holds
	alarms  map[string]string
	amu     sync.Mutex
}

func newFixture(t testing.TB, store storage.ObjectStore, capacity func(context.Context) (Capacity, error)) *fixture {
	t.Helper()
	// Durability is not what these tests are about: the order of claims and
	// holds is, and bbolt's single writer decides it with or without fsync.
	ix, err := index.Open(filepath.Join(t.TempDir(), "index.db"), index.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	if store == nil {
		st, err := fs.Open(filepath.Join(t.TempDir(), "store"))
		if err != nil {
			t.Fatal(err)
		}
		store = st
	}
	f := &fixture{ix: ix, store: store, clock: &fakeClock{now: t0}, alarms: map[string]string{}}
	getStore := func(context.Context) (storage.ObjectStore, error) { return store, nil }
	logEntry := func(e index.JournalEntry) *index.Logged { return &index.Logged{Entry: e} }
	f.sweeper, err = New(Config{
		Index: ix, Store: getStore, Now: f.clock.Now, Capacity: capacity, Log: logEntry,
		Report: func(seg storage.Segment, reason string, at time.Time) ([]byte, error) {
			return fmt.Appendf(nil, "deleted %s %s", seg.ID, reason), nil
		},
		Raise:  func(code, msg string) { f.amu.Lock(); f.alarms[code] = msg; f.amu.Unlock() },
		Clear:  func(code string) { f.amu.Lock(); delete(f.alarms, code); f.amu.Unlock() },
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.holds = &Holds{Index: ix, Store: getStore, Log: logEntry, Now: f.clock.Now}
	return f
}

func (f *fixture) alarm(code string) string {
	f.amu.Lock()
	defer f.amu.Unlock()
	return f.alarms[code]
}

// record stores and indexes a segment of camera cam as the agent does.
func (f *fixture) record(t testing.TB, cam string, start time.Time, d, retention time.Duration, size int) storage.Segment {
	t.Helper()
	seg, err := f.recordE(cam, start, d, retention, size)
	if err != nil {
		t.Fatal(err)
	}
	return seg
}

func (f *fixture) recordE(cam string, start time.Time, d, retention time.Duration, size int) (storage.Segment, error) {
	id := storage.NewSegmentID()
	seg := storage.Segment{ID: id, District: "north", Camera: cam, Start: start, End: start.Add(d), Bytes: int64(size),
		SHA256: "00", Codec: "h264", Key: storage.SegmentKey("north", cam, start, id), Expires: start.Add(retention)}
	if err := f.store.Put(context.Background(), seg.Key, bytes.NewReader(make([]byte, size)), int64(size)); err != nil {
		return seg, err
	}
	if err := f.ix.Put(context.Background(), &seg); err != nil {
		return seg, err
	}
	got, err := f.ix.Get(id)
	if err != nil {
		return seg, err
	}
	return got, f.holds.Protect(context.Background(), got)
}

func (f *fixture) exists(t testing.TB, seg storage.Segment) bool {
	t.Helper()
	_, err := f.store.Stat(context.Background(), seg.Key)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	_, ierr := f.ix.Get(seg.ID)
	if (err == nil) != (ierr == nil) {
		t.Fatalf("store and index disagree on %s: store %v, index %v", seg.ID, err, ierr)
	}
	return err == nil
}

func (f *fixture) sweep(t testing.TB) Result {
	t.Helper()
	res, err := f.sweeper.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// A segment expires at exactly start + retention: kept the instant before,
// deleted at it; one spanning the boundary goes by its start, though it
// ends inside the retention.
func TestExpiryAtStartPlusRetention(t *testing.T) {
	f := newFixture(t, nil, nil)
	week := 7 * day
	a := f.record(t, "gate", t0, time.Minute, week, 100)
	spanning := f.record(t, "gate", t0.Add(time.Hour-30*time.Second), time.Minute, week, 100)
	f.clock.Set(t0.Add(week - time.Nanosecond))
	if res := f.sweep(t); res.Deleted[ReasonRetention] != 0 || !f.exists(t, a) {
		t.Fatalf("deleted before expiry: %+v", res)
	}
	f.clock.Set(t0.Add(week))
	if res := f.sweep(t); res.Deleted[ReasonRetention] != 1 || f.exists(t, a) {
		t.Fatalf("not deleted at expiry: %+v", res)
	}
	// The spanning segment's end is still within the week at its expiry.
	f.clock.Set(spanning.Start.Add(week))
	if !spanning.End.After(f.clock.Now().Add(-week)) {
		t.Fatal("fixture: the segment must end inside the retention")
	}
	if res := f.sweep(t); res.Deleted[ReasonRetention] != 1 || f.exists(t, spanning) {
		t.Fatalf("spanning segment kept past start + retention: %+v", res)
	}
	// Each deletion is in the district log with what an inspector needs,
	// and reported in the same transaction.
	entries, _ := f.ix.JournalEntries(1, 10)
	if len(entries) != 2 || entries[0].Action != actions.SegmentDeleted || entries[0].Segment != a.ID {
		t.Fatalf("log %+v", entries)
	}
	for _, want := range []string{"reason retention", "sha256 00", "start 2026-11-20T10:00:00Z", "expires 2026-11-27T10:00:00Z", "deleted 2026-11-27T10:00:00Z"} {
		if !bytes.Contains([]byte(entries[0].Detail), []byte(want)) {
			t.Errorf("log detail %q lacks %q", entries[0].Detail, want)
		}
	}
	if reps, _ := f.ix.Reports(0, 10); len(reps) != 2 || string(reps[0].Payload) != "deleted "+a.ID+" retention" {
		t.Fatalf("reports %v", reps)
	}
}

// A retention shortened in the configuration applies to what is recorded.
func TestShorterRetentionAppliesToExistingFootage(t *testing.T) {
	f := newFixture(t, nil, nil)
	old := f.record(t, "gate", t0, time.Minute, 7*day, 100)
	recent := f.record(t, "gate", t0.Add(2*day), time.Minute, 7*day, 100)
	f.clock.Set(t0.Add(3 * day))
	if res := f.sweep(t); res.Deleted[ReasonRetention] != 0 {
		t.Fatalf("%+v", res)
	}
	// What reconciliation does at start when the configured retention
	// was shortened: each segment's expiry moves to start + the new one.
	for _, s := range []storage.Segment{old, recent} {
		if err := f.ix.Update(s.ID, func(seg *storage.Segment) error { seg.Expires = seg.Start.Add(2 * day); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	f.sweep(t)
	if f.exists(t, old) || !f.exists(t, recent) {
		t.Fatal("the shorter retention did not apply to existing footage")
	}
	f.clock.Set(t0.Add(4 * day))
	f.sweep(t)
	if f.exists(t, recent) {
		t.Fatal("kept past the shorter retention")
	}
}

// A held segment is never deleted; once released, an expired one goes at
// the next sweep.
func TestHeldSegmentsOutliveRetention(t *testing.T) {
	f := newFixture(t, nil, nil)
	ctx := context.Background()
	held := f.record(t, "gate", t0, time.Minute, day, 100)
	free := f.record(t, "gate", t0.Add(time.Hour), time.Minute, day, 100)
	n, err := f.holds.Apply(ctx, index.Hold{ID: "h1", District: "north", Cameras: []string{"gate"}, From: t0, To: t0.Add(time.Minute)})
	if err != nil || n != 1 {
		t.Fatalf("apply: %d %v", n, err)
	}
	if on, _ := f.store.LegalHold(ctx, held.Key); !on {
		t.Fatal("no legal hold in the store")
	}
	f.clock.Set(t0.Add(30 * day))
	f.sweep(t)
	if !f.exists(t, held) || f.exists(t, free) {
		t.Fatal("held segment deleted or free one kept")
	}
	if err := f.store.Delete(ctx, held.Key); !errors.Is(err, storage.ErrHeld) {
		t.Fatalf("the store deleted a held object: %v", err)
	}
	if n, err := f.holds.Release(ctx, "h1", "case closed"); err != nil || n != 1 {
		t.Fatalf("release: %d %v", n, err)
	}
	f.sweep(t)
	if f.exists(t, held) {
		t.Fatal("released expired segment kept")
	}
}

// A failed deletion is retried and alarmed, never dropped.
func TestFailedDeletionAlarmsAndRetries(t *testing.T) {
	st, err := fs.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	flaky := &failingStore{ObjectStore: st}
	f := newFixture(t, flaky, nil)
	seg := f.record(t, "gate", t0, time.Minute, day, 100)
	f.clock.Set(t0.Add(2 * day))
	flaky.fail.Store(true)
	if res := f.sweep(t); res.Failed != 1 || res.Deleted[ReasonRetention] != 0 {
		t.Fatalf("%+v", res)
	}
	if f.alarm(AlarmDeletionFailed) == "" {
		t.Fatal("no alarm")
	}
	f.sweep(t) // retried, logged once
	entries, _ := f.ix.JournalEntries(1, 10)
	if len(entries) != 1 || entries[0].Action != actions.SegmentDeleteFailed {
		t.Fatalf("log %+v", entries)
	}
	flaky.fail.Store(false)
	if res := f.sweep(t); res.Deleted[ReasonRetention] != 1 || f.exists(t, seg) {
		t.Fatalf("not deleted on retry: %+v", res)
	}
	if f.alarm(AlarmDeletionFailed) != "" {
		t.Fatal("alarm not cleared")
	}
}

// Disk pressure: above the high watermark the oldest unheld go first, down
// to the low watermark; held ones are untouched; with only held footage
// left the store is full and the alarm says so.
func TestDiskPressure(t *testing.T) {
	const quota = 10_000
	var f *fixture
	f = newFixture(t, nil, func(context.Context) (Capacity, error) {
		used, err := f.ix.Usage()
		return Capacity{Used: used, Total: quota}, err
	})
	ctx := context.Background()
	var segs []storage.Segment
	for i := range 10 {
		segs = append(segs, f.record(t, "gate", t0.Add(time.Duration(i)*time.Minute), time.Minute, 7*day, 1000))
	}
	// The two oldest are held.
	if _, err := f.holds.Apply(ctx, index.Hold{ID: "h1", District: "north", Cameras: []string{"gate"}, From: t0, To: t0.Add(2 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(t0.Add(time.Hour)) // nothing expired
	res := f.sweep(t)
	// 100% full: down below 85% means 2 deleted (8,000 = 80%).
	if res.Deleted[ReasonPressure] != 2 {
		t.Fatalf("%+v", res)
	}
	for i, s := range segs {
		want := i != 2 && i != 3
		if f.exists(t, s) != want {
			t.Errorf("segment %d: exists %v, want %v", i, !want, want)
		}
	}
	if f.sweeper.Full() || f.alarm(AlarmStorageFull) != "" {
		t.Fatal("full while unheld footage remained")
	}
	// Fill with held footage only.
	if _, err := f.holds.Apply(ctx, index.Hold{ID: "h2", District: "north", Cameras: []string{"gate"}, From: t0, To: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	f.record(t, "gate", t0.Add(20*time.Minute), time.Minute, 7*day, 1000)
	f.record(t, "gate", t0.Add(21*time.Minute), time.Minute, 7*day, 1000)
	res = f.sweep(t)
	if res.Deleted[ReasonPressure] != 0 || !res.Full || !f.sweeper.Full() || f.alarm(AlarmStorageFull) == "" {
		t.Fatalf("held-only store: %+v, alarm %q", res, f.alarm(AlarmStorageFull))
	}
	if n, _ := f.ix.Count(); n != 10 {
		t.Fatalf("%d segments left, want 10", n)
	}
	// Released: writing resumes after pressure deletes.
	if _, err := f.holds.Release(ctx, "h2", "done"); err != nil {
		t.Fatal(err)
	}
	res = f.sweep(t)
	if res.Full || f.sweeper.Full() || res.Deleted[ReasonPressure] == 0 {
		t.Fatalf("after release: %+v", res)
	}
	for _, s := range segs[:2] {
		if !f.exists(t, s) {
			t.Fatal("segment under h1 deleted")
		}
	}
}

// Holds placed just before expiry while the sweeper runs: 10,000 trials,
// each a segment raced by a hold and a sweep. Every segment a hold covered
// is still there; every deleted one was not covered.
func TestHoldVersusSweepRace(t *testing.T) {
	trials, rounds := 10_000, 100
	if testing.Short() {
		trials, rounds = 1000, 10
	}
	f := newFixture(t, nil, nil)
	ctx := context.Background()
	per := trials / rounds
	f.sweeper.cfg.Batch = 7 // many claims, interleaved with the holds
	coveredTotal, deletedTotal := 0, 0
	for r := range rounds {
		start := t0.Add(time.Duration(r) * time.Hour)
		segs := make([]storage.Segment, per)
		var rec sync.WaitGroup
		for i := range segs {
			rec.Go(func() {
				var err error
				segs[i], err = f.recordE(fmt.Sprintf("cam%d", i%4), start.Add(time.Duration(i)*time.Second), time.Second, day, 16)
				if err != nil {
					t.Error(err)
				}
			})
		}
		rec.Wait()
		if t.Failed() {
			t.FailNow()
		}
		f.clock.Set(start.Add(day + time.Duration(per)*time.Second)) // all expired
		var wg sync.WaitGroup
		covered := make([]bool, per)
		order := rand.Perm(per)
		wg.Go(func() {
			for _, i := range order {
				s := segs[i]
				n, err := f.holds.Apply(ctx, index.Hold{ID: "h-" + s.ID, District: "north", Cameras: []string{s.Camera}, From: s.Start, To: s.End})
				if err != nil {
					t.Error(err)
					return
				}
				covered[i] = n == 1
			}
		})
		wg.Go(func() {
			for {
				res, err := f.sweeper.Sweep(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Deleted[ReasonRetention] == 0 && res.Failed == 0 {
					return
				}
			}
		})
		wg.Wait()
		for i, s := range segs {
			exists := f.exists(t, s)
			if covered[i] && !exists {
				t.Fatalf("round %d: held segment %s deleted", r, s.ID)
			}
			if !covered[i] && exists {
				t.Fatalf("round %d: segment %s neither held nor deleted", r, s.ID)
			}
			if covered[i] {
				coveredTotal++
				if on, _ := f.store.LegalHold(ctx, s.Key); !on {
					t.Fatalf("held segment %s without the store's legal hold", s.ID)
				}
			} else {
				deletedTotal++
			}
		}
	}
	t.Logf("%d trials: %d held and kept, %d deleted before their hold, 0 held deleted", trials, coveredTotal, deletedTotal)
	if coveredTotal == 0 || deletedTotal == 0 {
		t.Logf("note: the race did not interleave both ways (%d held, %d deleted)", coveredTotal, deletedTotal)
	}
	if hs, _ := f.ix.Holds(); !slices.ContainsFunc(hs, func(h index.Hold) bool { return h.State == index.HoldApplied }) && coveredTotal > 0 {
		t.Fatal("no hold reached applied")
	}
}

// failingStore refuses deletions while fail is set.
type failingStore struct {
	storage.ObjectStore
	fail atomic.Bool
}

func (s *failingStore) Delete(ctx context.Context, key string) error {
	if s.fail.Load() {
		return errors.New("disk on fire")
	}
	return s.ObjectStore.Delete(ctx, key)
}

// An object the store holds under a legal hold the index does not know
// (the index was lost and rebuilt) is kept, never deleted; the first hold
// applied over it takes over, and its release lets it go.
func TestStoreHeldObjectIsKept(t *testing.T) {
	f := newFixture(t, nil, nil)
	ctx := context.Background()
	seg := f.record(t, "gate", t0, time.Minute, day, 100)
	if err := f.store.SetLegalHold(ctx, seg.Key, true); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(t0.Add(2 * day))
	f.sweep(t)
	f.sweep(t)
	if !f.exists(t, seg) || f.alarm(AlarmUnknownHold) == "" {
		t.Fatalf("store-held object: exists %v, alarm %q", f.exists(t, seg), f.alarm(AlarmUnknownHold))
	}
	if got, _ := f.ix.Get(seg.ID); !slices.Equal(got.HeldBy, []string{index.PlaceholderHold}) {
		t.Fatalf("held by %v", got.HeldBy)
	}
	// Central resends its hold: it takes the placeholder's place.
	if n, err := f.holds.Apply(ctx, index.Hold{ID: "h1", District: "north", Cameras: []string{"gate"}, From: t0, To: t0.Add(time.Hour)}); err != nil || n != 1 {
		t.Fatalf("apply: %d %v", n, err)
	}
	if _, err := f.holds.Release(ctx, "h1", "case closed"); err != nil {
		t.Fatal(err)
	}
	f.sweep(t)
	if f.exists(t, seg) {
		t.Fatal("released, expired segment kept")
	}
}

// A failed deletion whose segment a hold then covers does not leave the
// deletion alarm up for ever.
func TestDeletionAlarmClearsWhenHeld(t *testing.T) {
	st, err := fs.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	flaky := &failingStore{ObjectStore: st}
	f := newFixture(t, flaky, nil)
	ctx := context.Background()
	seg := f.record(t, "gate", t0, time.Minute, day, 100)
	f.clock.Set(t0.Add(2 * day))
	flaky.fail.Store(true)
	f.sweep(t)
	if f.alarm(AlarmDeletionFailed) == "" {
		t.Fatal("no alarm")
	}
	if n, err := f.holds.Apply(ctx, index.Hold{ID: "h1", District: "north", Cameras: []string{"gate"}, From: t0, To: t0.Add(time.Minute)}); err != nil || n != 1 {
		t.Fatalf("a hold after a failed deletion covers %d (%v)", n, err)
	}
	flaky.fail.Store(false)
	f.sweep(t)
	if f.alarm(AlarmDeletionFailed) != "" || !f.exists(t, seg) {
		t.Fatalf("alarm %q, exists %v", f.alarm(AlarmDeletionFailed), f.exists(t, seg))
	}
}

// A disk filled by other data than footage: deleting footage would not
// make room, so none is deleted, and the alarm says why.
func TestPressureFromOtherDataShedsNothing(t *testing.T) {
	var f *fixture
	f = newFixture(t, nil, func(context.Context) (Capacity, error) {
		used, err := f.ix.Usage()
		return Capacity{Used: used + 9_000, Total: 10_000}, err // 90% other data
	})
	seg := f.record(t, "gate", t0, time.Minute, 7*day, 500)
	f.clock.Set(t0.Add(time.Hour))
	if res := f.sweep(t); res.Deleted[ReasonPressure] != 0 || !f.exists(t, seg) {
		t.Fatalf("footage shed for a disk full of other data: %+v", res)
	}
	if a := f.alarm(AlarmPressure); !strings.Contains(a, "not footage") {
		t.Fatalf("alarm %q", a)
	}
}
