package index

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/storage"
	bolt "go.etcd.io/bbolt"
)

func TestPutGet(t *testing.T) {
	ix := MustOpenTemp(t)
	full := seg("0000000000000001", "d1/c1", t0, 42*time.Second)
	full.HeldBy = []string{"hold-1", "hold-2"}
	full.Missing = true
	full.Recovered = true
	full.MotionScore = 0.875
	zoned := seg("0000000000000002", "d1/c2", t0.In(time.FixedZone("CET", 3600)), time.Minute)
	empty := seg("0000000000000003", "d2/c1", t0, 0) // zero length is allowed

	for _, tc := range []struct {
		name string
		s    *storage.Segment
	}{
		{"all fields", full},
		{"non-UTC times", zoned},
		{"zero length", empty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			MustPut(t, ix, tc.s)
			got, err := ix.Get(tc.s.ID)
			if err != nil {
				t.Fatal(err)
			}
			assertSame(t, got, *tc.s)
			if got.Start.Location() != time.UTC {
				t.Errorf("start in %v, want UTC", got.Start.Location())
			}
		})
	}

	_, err := ix.Get("nope")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(missing) = %v, want ErrNotFound", err)
	}
	if want := "index: get nope: segment not found"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestPutCopiesInput(t *testing.T) {
	ix := MustOpenTemp(t)
	s := seg(segID(1), "d/c", t0, time.Minute)
	s.HeldBy = []string{"h1"}
	MustPut(t, ix, s)
	s.HeldBy[0] = "changed"
	s.Camera = "other"
	got, err := ix.Get(s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Camera != "c" || got.HeldBy[0] != "h1" {
		t.Errorf("stored segment follows caller's later changes: %+v", got)
	}
}

func TestRePutMovesSecondaryKeys(t *testing.T) {
	tests := []struct {
		name   string
		change func(*storage.Segment)
	}{
		{"same", func(*storage.Segment) {}},
		{"later start", func(s *storage.Segment) {
			s.Start = s.Start.Add(3 * time.Hour)
			s.End = s.Start.Add(time.Minute)
		}},
		{"earlier start and expiry", func(s *storage.Segment) {
			s.Start = s.Start.Add(-3 * time.Hour)
			s.End = s.Start.Add(time.Minute)
			s.Expires = s.Start.Add(24 * time.Hour)
		}},
		{"other camera", func(s *storage.Segment) { s.District, s.Camera = "d9", "c9" }},
		{"other size", func(s *storage.Segment) { s.Bytes = 7 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ix := MustOpenTemp(t)
			old := seg(segID(1), "d/c", t0, time.Minute)
			neighbour := seg(segID(2), "d/c", t0.Add(time.Minute), time.Minute)
			MustPut(t, ix, old, neighbour)

			changed := *old
			tc.change(&changed)
			MustPut(t, ix, &changed)

			assertEntries(t, ix, 2, 0)
			got, err := ix.Get(old.ID)
			if err != nil {
				t.Fatal(err)
			}
			assertSame(t, got, changed)

			// Only the new camera and window find it.
			wide := func(s *storage.Segment) []string {
				l, err := ix.List(s.District, s.Camera, s.Start.Add(-time.Second), s.End.Add(time.Second))
				if err != nil {
					t.Fatal(err)
				}
				return ids(l)
			}
			if l := wide(&changed); !slices.Contains(l, old.ID) {
				t.Errorf("List at new place = %v, missing %s", l, old.ID)
			}
			if changed.Start != old.Start || changed.Camera != old.Camera {
				if l := wide(old); slices.Contains(l, old.ID) {
					t.Errorf("List at old place = %v, still has %s", l, old.ID)
				}
			}
			exp, err := ix.Expiring(changed.Expires.Add(time.Millisecond), 0)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(ids(exp), old.ID) {
				t.Errorf("Expiring(new expiry) = %v, missing %s", ids(exp), old.ID)
			}
			if changed.Expires.Before(old.Expires) {
				early, _ := ix.Expiring(changed.Expires, 0)
				if slices.Contains(ids(early), old.ID) {
					t.Errorf("Expiring before new expiry returned %s", old.ID)
				}
			}
		})
	}
}

func TestRePutKeepsHolds(t *testing.T) {
	ix := MustOpenTemp(t)
	s := seg(segID(1), "d/c", t0, time.Minute)
	s.HeldBy = []string{"h1"}
	MustPut(t, ix, s)

	retry := seg(segID(1), "d/c", t0, time.Minute) // no holds, as from a spool
	retry.HeldBy = []string{"h2"}
	MustPut(t, ix, retry)

	got, err := ix.Get(s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"h2", "h1"}; !slices.Equal(got.HeldBy, want) {
		t.Errorf("HeldBy = %v, want %v", got.HeldBy, want)
	}
	assertEntries(t, ix, 1, 1)
}

func TestListOverlap(t *testing.T) {
	ix := MustOpenTemp(t)
	from := t0
	to := t0.Add(time.Hour)
	const cam = "d1/c1"
	segs := []struct {
		s    *storage.Segment
		want bool
	}{
		{seg("ends-at-from", cam, from.Add(-time.Minute), time.Minute), false},
		{seg("ends-just-after-from", cam, from.Add(-time.Minute), time.Minute+time.Nanosecond), true},
		{seg("starts-at-from", cam, from, time.Minute), true},
		{seg("inside", cam, from.Add(20*time.Minute), time.Minute), true},
		{seg("starts-just-before-to", cam, to.Add(-time.Nanosecond), time.Minute), true},
		{seg("starts-at-to", cam, to, time.Minute), false},
		{seg("after", cam, to.Add(time.Hour), time.Minute), false},
		{seg("long-across-from", cam, from.Add(-5*time.Hour), 5*time.Hour+time.Millisecond), true},
		{seg("long-ends-at-from", cam, from.Add(-6*time.Hour), 6*time.Hour), false},
		{seg("long-covers-all", cam, from.Add(-10*time.Hour), 20*time.Hour), true},
		{seg("zero-length-at-from", cam, from, 0), false},
		{seg("other-camera", "d1/c2", from.Add(time.Minute), time.Minute), false},
		{seg("other-district", "d2/c1", from.Add(time.Minute), time.Minute), false},
		{seg("prefix-camera", "d1/c1-b", from.Add(time.Minute), time.Minute), false},
	}
	var want []string
	for _, tc := range segs {
		MustPut(t, ix, tc.s)
		if tc.want {
			want = append(want, tc.s.ID)
		}
	}
	// Expected order is by start.
	slices.SortFunc(want, func(a, b string) int {
		var sa, sb time.Time
		for _, tc := range segs {
			switch tc.s.ID {
			case a:
				sa = tc.s.Start
			case b:
				sb = tc.s.Start
			}
		}
		return sa.Compare(sb)
	})

	got, err := ix.List("d1", "c1", from, to)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), want) {
		t.Errorf("List =\n %v\nwant\n %v", ids(got), want)
	}

	for _, tc := range []struct {
		name     string
		from, to time.Time
		want     []string
	}{
		{"empty window", from, from, nil},
		{"before everything", from.Add(-100 * time.Hour), from.Add(-99 * time.Hour), nil},
		{"1ns window at from", from, from.Add(time.Nanosecond), []string{"long-covers-all", "long-across-from", "ends-just-after-from", "starts-at-from"}},
		{"zero from", time.Time{}, from.Add(-9 * time.Hour), []string{"long-covers-all"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ix.List("d1", "c1", tc.from, tc.to)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tc.want) {
				t.Errorf("List = %v, want %v", ids(got), tc.want)
			}
		})
	}

	t.Run("bad arguments", func(t *testing.T) {
		for _, tc := range []struct {
			district, camera string
			from, to         time.Time
		}{
			{"d1", "c1", to, from},
			{"", "c1", from, to},
			{"d1", "C1", from, to},
			{"d1", "../x", from, to},
		} {
			if _, err := ix.List(tc.district, tc.camera, tc.from, tc.to); err == nil {
				t.Errorf("List(%q, %q, %v, %v) succeeded", tc.district, tc.camera, tc.from, tc.to)
			}
		}
	})
}

func TestListCost(t *testing.T) {
	ix := MustOpenTemp(t)
	MustPutMany(t, ix, minuteSegments("d/c", t0, 10_080))
	from := t0.Add(3 * 24 * time.Hour)

	ix.visited.Store(0)
	got, err := ix.List("d", "c", from, from.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 60 {
		t.Errorf("List returned %d segments, want 60", len(got))
	}
	// 60 in the window, one straddling from, one at the window's end and
	// the few the longest-span margin adds.
	if v := ix.visited.Load(); v > 65 {
		t.Errorf("List visited %d keys for 60 results", v)
	}

	// A long segment widens the scan by its length, and no more.
	MustPut(t, ix, seg("long", "d/c", t0.Add(-time.Hour), 2*time.Hour))
	ix.visited.Store(0)
	if _, err := ix.List("d", "c", from, from.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if v := ix.visited.Load(); v > 65+120 {
		t.Errorf("List visited %d keys with a 2h longest span", v)
	}
}

func TestExpiring(t *testing.T) {
	ix := MustOpenTemp(t)
	// Expiries at t0+i minutes, put in shuffled order.
	var segs []*storage.Segment
	for i := range 10 {
		s := seg(segID(i), "d/c", t0.Add(time.Duration(i)*time.Minute-week), time.Minute)
		segs = append(segs, s)
	}
	held := seg("held", "d/c", t0.Add(-2*week), time.Minute)
	held.HeldBy = []string{"h1"}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(segs), func(i, j int) { segs[i], segs[j] = segs[j], segs[i] })
	MustPut(t, ix, append(segs, held)...)

	for _, tc := range []struct {
		name   string
		before time.Time
		limit  int
		want   []string
	}{
		{"none yet", t0, 0, nil},
		{"exactly at expiry is not expired", t0.Add(time.Minute), 0, []string{segID(0)}},
		{"1ns after", t0.Add(time.Minute + time.Nanosecond), 0, []string{segID(0), segID(1)}},
		{"limit", t0.Add(time.Hour), 3, []string{segID(0), segID(1), segID(2)}},
		{"no limit", t0.Add(time.Hour), 0, []string{segID(0), segID(1), segID(2), segID(3), segID(4), segID(5), segID(6), segID(7), segID(8), segID(9)}},
		{"negative limit", t0.Add(2 * time.Minute), -1, []string{segID(0), segID(1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ix.Expiring(tc.before, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tc.want) {
				t.Errorf("Expiring = %v, want %v", ids(got), tc.want)
			}
		})
	}
}

func TestExpiringCost(t *testing.T) {
	ix := MustOpenTemp(t)
	// 10,000 segments over a week; the first 5 have already expired.
	now := t0
	segs := make([]*storage.Segment, 10_000)
	for i := range segs {
		start := now.Add(-week + time.Duration(i)*time.Minute - 5*time.Minute + time.Second)
		segs[i] = seg(segID(i), "d/c"+string(rune('0'+i%10)), start, time.Minute)
	}
	MustPutMany(t, ix, segs)

	for _, limit := range []int{0, 100, 3} {
		ix.visited.Store(0)
		got, err := ix.Expiring(now, limit)
		if err != nil {
			t.Fatal(err)
		}
		want := 5
		if limit > 0 && limit < want {
			want = limit
		}
		if len(got) != want {
			t.Errorf("limit %d: %d expiring, want %d", limit, len(got), want)
		}
		// The segments returned plus the first one that has not expired.
		if v := ix.visited.Load(); v > int64(want)+1 {
			t.Errorf("limit %d: visited %d keys for %d results among 10,000", limit, v, want)
		}
	}
}

func TestDelete(t *testing.T) {
	ix := MustOpenTemp(t)
	a := seg(segID(1), "d/c", t0, time.Minute)
	b := seg(segID(2), "d/c", t0.Add(time.Minute), time.Minute)
	h := seg(segID(3), "d/c", t0.Add(2*time.Minute), time.Minute)
	h.HeldBy = []string{"h"}
	MustPut(t, ix, a, b, h)
	assertEntries(t, ix, 3, 1)

	for _, id := range []string{a.ID, h.ID} {
		if err := ix.Delete(id); err != nil {
			t.Fatal(err)
		}
	}
	assertEntries(t, ix, 1, 0)
	if _, err := ix.Get(a.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
	l, _ := ix.List("d", "c", t0.Add(-time.Hour), t0.Add(time.Hour))
	if !slices.Equal(ids(l), []string{b.ID}) {
		t.Errorf("List after Delete = %v", ids(l))
	}
	if err := ix.Delete(a.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	if err := ix.Delete(b.ID); err != nil {
		t.Fatal(err)
	}
	if c, _ := ix.Cameras(); len(c) != 0 {
		t.Errorf("Cameras after deleting everything = %v", c)
	}
}

func TestSetMissing(t *testing.T) {
	ix := MustOpenTemp(t)
	s := seg(segID(1), "d/c", t0, time.Minute)
	MustPut(t, ix, s)
	for _, missing := range []bool{true, true, false} {
		if err := ix.SetMissing(s.ID, missing); err != nil {
			t.Fatal(err)
		}
		got, _ := ix.Get(s.ID)
		if got.Missing != missing {
			t.Errorf("Missing = %v, want %v", got.Missing, missing)
		}
		want := *s
		want.Missing = missing
		assertSame(t, got, want)
		assertEntries(t, ix, 1, 0)
	}
	if err := ix.SetMissing("nope", true); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetMissing(missing id) = %v", err)
	}
}

func TestUpdate(t *testing.T) {
	errFn := errors.New("fn failed")
	tests := []struct {
		name    string
		fn      func(*storage.Segment) error
		wantErr error
		check   func(t *testing.T, ix *Index, s storage.Segment)
	}{
		{
			name: "hold removes expiry entry",
			fn:   func(s *storage.Segment) error { s.HeldBy = append(s.HeldBy, "h1"); return nil },
			check: func(t *testing.T, ix *Index, s storage.Segment) {
				assertEntries(t, ix, 1, 1)
				if e, _ := ix.Expiring(s.Expires.Add(time.Hour), 0); len(e) != 0 {
					t.Errorf("held segment is expiring: %v", ids(e))
				}
			},
		},
		{
			name: "move start",
			fn: func(s *storage.Segment) error {
				s.Start = s.Start.Add(time.Hour)
				s.End = s.Start.Add(time.Minute)
				return nil
			},
			check: func(t *testing.T, ix *Index, s storage.Segment) {
				assertEntries(t, ix, 1, 0)
				l, _ := ix.List("d", "c", s.Start, s.End)
				if len(l) != 1 {
					t.Errorf("List at new start = %v", ids(l))
				}
			},
		},
		{name: "fn error", fn: func(s *storage.Segment) error { s.Bytes = 1; return errFn }, wantErr: errFn},
		{name: "id change", fn: func(s *storage.Segment) error { s.ID = "other"; return nil }, wantErr: ErrInvalidSegment},
		{name: "invalid result", fn: func(s *storage.Segment) error { s.End = s.Start.Add(-1); return nil }, wantErr: ErrInvalidSegment},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ix := MustOpenTemp(t)
			orig := seg(segID(1), "d/c", t0, time.Minute)
			MustPut(t, ix, orig)
			err := ix.Update(orig.ID, tc.fn)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Update = %v, want %v", err, tc.wantErr)
			}
			got, _ := ix.Get(orig.ID)
			if tc.wantErr != nil {
				assertSame(t, got, *orig)
				assertEntries(t, ix, 1, 0)
				return
			}
			want := *orig
			if err := tc.fn(&want); err != nil {
				t.Fatal(err)
			}
			assertSame(t, got, want)
			tc.check(t, ix, got)
		})
	}

	t.Run("release restores expiry", func(t *testing.T) {
		ix := MustOpenTemp(t)
		s := seg(segID(1), "d/c", t0, time.Minute)
		s.HeldBy = []string{"h1"}
		MustPut(t, ix, s)
		err := ix.Update(s.ID, func(s *storage.Segment) error {
			s.HeldBy = slices.DeleteFunc(s.HeldBy, func(h string) bool { return h == "h1" })
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		e, _ := ix.Expiring(s.Expires.Add(time.Millisecond), 0)
		if !slices.Equal(ids(e), []string{s.ID}) {
			t.Errorf("Expiring after release = %v", ids(e))
		}
	})

	t.Run("not found", func(t *testing.T) {
		ix := MustOpenTemp(t)
		called := false
		err := ix.Update("nope", func(*storage.Segment) error { called = true; return nil })
		if !errors.Is(err, ErrNotFound) || called {
			t.Errorf("Update(missing) = %v, fn called %v", err, called)
		}
	})
}

func TestUpdateRetriesOnConcurrentChange(t *testing.T) {
	ix := MustOpenTemp(t)
	s := seg(segID(1), "d/c", t0, time.Minute)
	MustPut(t, ix, s)
	calls := 0
	err := ix.Update(s.ID, func(u *storage.Segment) error {
		calls++
		if calls == 1 {
			// Another writer changes the segment while fn runs.
			if err := ix.SetMissing(s.ID, true); err != nil {
				return err
			}
		}
		u.HeldBy = append(u.HeldBy, "h1")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Errorf("fn called %d times, want 2", calls)
	}
	got, _ := ix.Get(s.ID)
	if !got.Missing || !slices.Equal(got.HeldBy, []string{"h1"}) {
		t.Errorf("lost a change: Missing=%v HeldBy=%v", got.Missing, got.HeldBy)
	}
}

func TestBadSegmentsRejected(t *testing.T) {
	good := func() *storage.Segment { return seg(segID(1), "d/c", t0, time.Minute) }
	tests := []struct {
		name   string
		change func(*storage.Segment)
	}{
		{"empty id", func(s *storage.Segment) { s.ID = "" }},
		{"long id", func(s *storage.Segment) { s.ID = strings.Repeat("a", 300) }},
		{"empty district", func(s *storage.Segment) { s.District = "" }},
		{"slash in district", func(s *storage.Segment) { s.District = "a/b" }},
		{"empty camera", func(s *storage.Segment) { s.Camera = "" }},
		{"nul in camera", func(s *storage.Segment) { s.Camera = "c\x00" }},
		{"empty key", func(s *storage.Segment) { s.Key = "" }},
		{"end before start", func(s *storage.Segment) { s.End = s.Start.Add(-time.Nanosecond) }},
		{"zero start", func(s *storage.Segment) { s.Start = time.Time{} }},
		{"zero expires", func(s *storage.Segment) { s.Expires = time.Time{} }},
		{"start before 1970", func(s *storage.Segment) { s.Start = time.Unix(-60, 0) }},
		{"end after 2262", func(s *storage.Segment) { s.End = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"negative size", func(s *storage.Segment) { s.Bytes = -1 }},
		{"empty hold id", func(s *storage.Segment) { s.HeldBy = []string{""} }},
	}
	ix := MustOpenTemp(t)
	stored := good()
	MustPut(t, ix, stored)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := good()
			s.Bytes = 99 // would show if the bad put changed anything
			tc.change(s)
			err := ix.Put(context.Background(), s)
			if !errors.Is(err, ErrInvalidSegment) {
				t.Fatalf("Put = %v, want ErrInvalidSegment", err)
			}
			if !strings.HasPrefix(err.Error(), "index: put ") {
				t.Errorf("error %q lacks the index: put prefix", err)
			}
			got, _ := ix.Get(stored.ID)
			assertSame(t, got, *stored)
			assertEntries(t, ix, 1, 0)
		})
	}
	if err := ix.Put(context.Background(), nil); !errors.Is(err, ErrInvalidSegment) {
		t.Errorf("Put(nil) = %v", err)
	}
}

func TestBadPutInBatchDoesNotFailNeighbours(t *testing.T) {
	ix := MustOpenTemp(t)
	// A corrupt stored record makes its re-put fail inside the transaction,
	// after validation; the other writes of the batch must still land.
	bad := seg(segID(0), "d/c", t0, time.Minute)
	MustPut(t, ix, bad)
	if err := ix.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSegments).Put([]byte(bad.ID), []byte{0xff})
	}); err != nil {
		t.Fatal(err)
	}
	entered, release := holdFirstCommit(ix)
	var wg sync.WaitGroup
	wg.Go(func() { putOrError(t, ix, seg(segID(100), "d/c", t0, time.Minute)) })
	<-entered
	errs := make([]error, 10)
	for i := range errs {
		wg.Go(func() {
			s := seg(segID(i), "d/c", t0.Add(time.Duration(i)*time.Minute), time.Minute)
			errs[i] = ix.Put(context.Background(), s)
		})
	}
	waitQueued(t, ix, 10)
	release()
	wg.Wait()
	for i, err := range errs {
		if i == 0 {
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("re-put over corrupt record = %v, want ErrCorrupt", err)
			}
		} else if err != nil {
			t.Errorf("put %d failed with its bad neighbour: %v", i, err)
		}
	}
	if n, _ := ix.Count(); n != 11 {
		t.Errorf("Count = %d, want 11", n)
	}
	if _, err := ix.Get(bad.ID); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Get(corrupt) = %v, want ErrCorrupt", err)
	}
}

// waitQueued waits until n operations wait in the writer's queue.
func waitQueued(t *testing.T, ix *Index, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(ix.ops) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d operations queued, want %d", len(ix.ops), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// putOrError is MustPut for other goroutines, where t.Fatal must not be
// called.
func putOrError(t *testing.T, ix *Index, s *storage.Segment) {
	if err := ix.Put(context.Background(), s); err != nil {
		t.Errorf("Put(%s): %v", s.ID, err)
	}
}

// holdFirstCommit makes the writer stop inside its next transaction, before
// commit: entered is closed when it has stopped there, and release lets it go
// on. Set it before any write so the hook is installed race-free.
func holdFirstCommit(ix *Index) (entered <-chan struct{}, release func()) {
	in := make(chan struct{})
	out := make(chan struct{})
	var once sync.Once
	ix.beforeCommit = func() {
		once.Do(func() {
			close(in)
			<-out
		})
	}
	return in, func() { close(out) }
}

func TestConcurrentPuts(t *testing.T) {
	ix := MustOpenTemp(t)
	const n = 100
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			s := seg(segID(i), "d/c"+string(rune('0'+i%4)), t0.Add(time.Duration(i)*time.Second), time.Minute)
			if err := ix.Put(context.Background(), s); err != nil {
				errs <- err
			}
			// Readers alongside the writers, for the race detector.
			if _, err := ix.Get(s.ID); err != nil {
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n2, _ := ix.Count(); n2 != n {
		t.Errorf("Count = %d, want %d", n2, n)
	}
	assertEntries(t, ix, n, 0)
	t.Logf("%d puts in %d commits", n, ix.commits.Load())
}

func TestGroupCommit(t *testing.T) {
	ix := MustOpenTemp(t)
	// Hold the first commit open until the other 99 puts have queued: they
	// must then all go out in one more commit.
	entered, release := holdFirstCommit(ix)
	var wg sync.WaitGroup
	wg.Go(func() { putOrError(t, ix, seg(segID(0), "d/c", t0, time.Minute)) })
	<-entered
	for i := 1; i < 100; i++ {
		wg.Go(func() { putOrError(t, ix, seg(segID(i), "d/c", t0, time.Minute)) })
	}
	waitQueued(t, ix, 99)
	release()
	wg.Wait()
	if c := ix.commits.Load(); c != 2 {
		t.Errorf("100 puts took %d commits, want 2", c)
	}
	assertEntries(t, ix, 100, 0)
}

func TestPutContext(t *testing.T) {
	ix := MustOpenTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := seg(segID(1), "d/c", t0, time.Minute)
	if err := ix.Put(ctx, s); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put(canceled) = %v", err)
	}
	if _, err := ix.Get(s.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("canceled Put wrote the segment: %v", err)
	}

	// A put whose context ends while it waits behind a stuck commit is
	// either abandoned (not written) or reports the commit's result.
	entered, release := holdFirstCommit(ix)
	done := make(chan struct{})
	go func() { defer close(done); putOrError(t, ix, seg(segID(2), "d/c", t0, time.Minute)) }()
	<-entered
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := ix.Put(ctx, s)
	release()
	<-done
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put behind a stuck commit = %v, want deadline exceeded", err)
	}
	if err := ix.Put(context.Background(), seg(segID(3), "d/c", t0, time.Minute)); err != nil {
		t.Fatal(err) // the writer skipped the abandoned put and goes on
	}
	if _, err := ix.Get(s.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("abandoned Put wrote the segment: %v", err)
	}
}

func TestForEach(t *testing.T) {
	ix := MustOpenTemp(t)
	const n = 2*forEachChunk + 7
	MustPutMany(t, ix, minuteSegments("d/c", t0, n))

	var seen []string
	if err := ix.ForEach(func(s storage.Segment) error {
		seen = append(seen, s.ID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != n || !slices.IsSorted(seen) || len(slices.Compact(slices.Clone(seen))) != n {
		t.Errorf("ForEach saw %d segments (sorted %v), want %d distinct in order", len(seen), slices.IsSorted(seen), n)
	}

	// fn may use the index, even write to it, without deadlocking.
	deleted := 0
	if err := ix.ForEach(func(s storage.Segment) error {
		deleted++
		return ix.Delete(s.ID)
	}); err != nil {
		t.Fatal(err)
	}
	if c, _ := ix.Count(); c != 0 || deleted != n {
		t.Errorf("after deleting in ForEach: Count %d, deleted %d", c, deleted)
	}

	MustPut(t, ix, minuteSegments("d/c", t0, 3)...)
	stop := errors.New("stop")
	calls := 0
	if err := ix.ForEach(func(storage.Segment) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("ForEach = %v after %d calls, want stop after 1", err, calls)
	}
}

func TestCamerasAndCount(t *testing.T) {
	ix := MustOpenTemp(t)
	if c, err := ix.Cameras(); err != nil || len(c) != 0 {
		t.Fatalf("empty Cameras = %v, %v", c, err)
	}
	for i, cam := range []string{"d2/c1", "d1/c1", "d1/c1-b", "d1/c1", "d1/c10", "d10/c1"} {
		MustPut(t, ix, seg(segID(i), cam, t0.Add(time.Duration(i)*time.Minute), time.Minute))
	}
	c, err := ix.Cameras()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"d1/c1", "d1/c1-b", "d1/c10", "d10/c1", "d2/c1"}; !slices.Equal(c, want) {
		t.Errorf("Cameras = %v, want %v", c, want)
	}
	if n, err := ix.Count(); err != nil || n != 6 {
		t.Errorf("Count = %d, %v, want 6", n, err)
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	ix, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !ix.Created() {
		t.Error("Created() = false for a new file")
	}
	segs := minuteSegments("d/c", t0.Add(-week), 50)
	segs[3].HeldBy = []string{"h"}
	MustPut(t, ix, segs...)
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ix.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := ix.Get(segs[0].ID); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close = %v, want ErrClosed", err)
	}
	if err := ix.Put(context.Background(), segs[0]); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close = %v, want ErrClosed", err)
	}

	ix = MustOpen(t, path, Options{})
	if ix.Created() {
		t.Error("Created() = true for an existing index")
	}
	for _, s := range segs {
		got, err := ix.Get(s.ID)
		if err != nil {
			t.Fatal(err)
		}
		assertSame(t, got, *s)
	}
	assertEntries(t, ix, 50, 1)
	l, _ := ix.List("d", "c", t0.Add(-week), t0)
	if len(l) != 50 {
		t.Errorf("List after reopen: %d", len(l))
	}
	e, _ := ix.Expiring(t0.Add(time.Hour), 0)
	if len(e) != 49 {
		t.Errorf("Expiring after reopen: %d, want 49", len(e))
	}
}

func TestOpenWhileHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	MustOpen(t, path, Options{})
	for _, ro := range []bool{false, true} {
		start := time.Now()
		_, err := Open(path, Options{Timeout: 100 * time.Millisecond, ReadOnly: ro})
		if !errors.Is(err, ErrInUse) {
			t.Fatalf("ReadOnly=%v: second Open = %v, want ErrInUse", ro, err)
		}
		if want := "index " + path + " is in use by another process (is the agent running?)"; err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("second Open took %v", d)
		}
	}
}

func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "index.db")
	rw := MustOpen(t, path, Options{})
	s := seg(segID(1), "d/c", t0, time.Minute)
	MustPut(t, rw, s)
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}

	// Readers share the lock.
	a := MustOpen(t, path, Options{ReadOnly: true})
	b := MustOpen(t, path, Options{ReadOnly: true, Timeout: 100 * time.Millisecond})
	for _, ix := range []*Index{a, b} {
		got, err := ix.Get(s.ID)
		if err != nil {
			t.Fatal(err)
		}
		assertSame(t, got, *s)
		if err := ix.Put(context.Background(), s); !errors.Is(err, ErrReadOnly) {
			t.Errorf("Put on read-only = %v, want ErrReadOnly", err)
		}
		for name, err := range map[string]error{
			"Delete":     ix.Delete(s.ID),
			"SetMissing": ix.SetMissing(s.ID, true),
			"Update":     ix.Update(s.ID, func(*storage.Segment) error { return nil }),
		} {
			if !errors.Is(err, ErrReadOnly) {
				t.Errorf("%s on read-only = %v, want ErrReadOnly", name, err)
			}
		}
	}
	if _, err := Open(path, Options{Timeout: 100 * time.Millisecond}); !errors.Is(err, ErrInUse) {
		t.Errorf("writable Open while readers hold it = %v, want ErrInUse", err)
	}

	t.Run("missing file", func(t *testing.T) {
		missing := filepath.Join(dir, "none.db")
		ix := MustOpen(t, missing, Options{ReadOnly: true})
		if !ix.Created() {
			t.Error("Created() = false")
		}
		if n, err := ix.Count(); err != nil || n != 0 {
			t.Errorf("Count = %d, %v", n, err)
		}
		if _, err := ix.Get("x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get = %v", err)
		}
		for _, f := range []func() error{
			func() error { _, err := ix.List("d", "c", t0, t0.Add(time.Hour)); return err },
			func() error { _, err := ix.Expiring(t0, 0); return err },
			func() error { _, err := ix.Cameras(); return err },
			func() error { return ix.ForEach(func(storage.Segment) error { return errors.New("called") }) },
		} {
			if err := f(); err != nil {
				t.Error(err)
			}
		}
		if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("read-only open created the file: %v", err)
		}
	})
}

func TestMissingOrEmptyFileIsEmptyIndex(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(path string) error
	}{
		{"missing", func(string) error { return nil }},
		{"empty", func(p string) error { return os.WriteFile(p, nil, 0o600) }},
		{"bbolt without buckets", func(p string) error {
			db, err := bolt.Open(p, 0o600, nil)
			if err != nil {
				return err
			}
			return db.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "index.db")
			if err := tc.prepare(path); err != nil {
				t.Fatal(err)
			}
			ix := MustOpen(t, path, Options{})
			if !ix.Created() {
				t.Error("Created() = false")
			}
			if n, err := ix.Count(); err != nil || n != 0 {
				t.Errorf("Count = %d, %v", n, err)
			}
			MustPut(t, ix, seg(segID(1), "d/c", t0, time.Minute))
		})
	}
}

func TestOpenRefusesBadFiles(t *testing.T) {
	random := make([]byte, 64<<10)
	rand.NewChaCha8([32]byte{3}).Read(random)
	validIndex := func(t *testing.T) []byte {
		path := filepath.Join(t.TempDir(), "v.db")
		ix, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		MustPut(t, ix, seg(segID(1), "d/c", t0, time.Minute))
		if err := ix.Close(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// truncatedIndex is an index of many segments whose file lost the last
	// 1/frac of its data, or its last page if frac is 0.
	truncatedIndex := func(t *testing.T, frac int) []byte {
		path := filepath.Join(t.TempDir(), "t.db")
		ix, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		MustPutMany(t, ix, minuteSegments("d/c", t0, 2000))
		if err := ix.Close(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		end := len(b) // bbolt grows files ahead of the data: find its end
		for end > 0 && b[end-1] == 0 {
			end--
		}
		if frac == 0 {
			return b[:(end-1)/4096*4096]
		}
		return b[:end-end/frac]
	}
	boltWith := func(t *testing.T, fn func(tx *bolt.Tx) error) []byte {
		path := filepath.Join(t.TempDir(), "b.db")
		ix, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := ix.Close(); err != nil {
			t.Fatal(err)
		}
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(fn); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		return b
	}
	foreign := func(t *testing.T) []byte {
		path := filepath.Join(t.TempDir(), "f.db")
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err }); err != nil {
			t.Fatal(err)
		}
		db.Close()
		b, _ := os.ReadFile(path)
		return b
	}

	for _, tc := range []struct {
		name    string
		content func(t *testing.T) []byte
		want    error
	}{
		{"short text", func(*testing.T) []byte { return []byte("hello, not a database\n") }, ErrCorrupt},
		{"random 64KiB", func(*testing.T) []byte { return random }, ErrCorrupt},
		{"zeros 32KiB", func(*testing.T) []byte { return make([]byte, 32<<10) }, ErrCorrupt},
		{"both meta pages damaged", func(t *testing.T) []byte {
			b := validIndex(t)
			for _, off := range []int{16, 4096 + 16} {
				b[off] ^= 0xff
			}
			return b
		}, ErrCorrupt},
		{"foreign bbolt file", foreign, ErrCorrupt},
		{"truncated to 6KiB", func(t *testing.T) []byte { return validIndex(t)[:6<<10] }, ErrCorrupt},
		{"truncated to half", func(t *testing.T) []byte { return truncatedIndex(t, 2) }, ErrCorrupt},
		{"truncated by a page", func(t *testing.T) []byte { return truncatedIndex(t, 0) }, ErrCorrupt},
		{"newer schema", func(t *testing.T) []byte {
			return boltWith(t, func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keySchema, []byte{0, 0, 0, schemaVersion + 1})
			})
		}, ErrSchemaTooNew},
		{"bad schema value", func(t *testing.T) []byte {
			return boltWith(t, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte("1")) })
		}, ErrCorrupt},
	} {
		for _, ro := range []bool{false, true} {
			name := tc.name
			if ro {
				name += "/read-only"
			}
			t.Run(name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "index.db")
				content := tc.content(t)
				if err := os.WriteFile(path, content, 0o600); err != nil {
					t.Fatal(err)
				}
				old := time.Now().Add(-time.Hour).Truncate(time.Second)
				if err := os.Chtimes(path, old, old); err != nil {
					t.Fatal(err)
				}
				ix, err := Open(path, Options{ReadOnly: ro})
				if err == nil {
					ix.Close()
					t.Fatal("Open succeeded")
				}
				if !errors.Is(err, tc.want) {
					t.Errorf("Open = %v, want %v", err, tc.want)
				}
				t.Logf("Open: %v", err)
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name the file", err)
				}
				after, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(after, content) {
					t.Error("Open modified the file")
				}
				if info, _ := os.Stat(path); !info.ModTime().Equal(old) {
					t.Errorf("Open touched the file: mtime %v", info.ModTime())
				}
			})
		}
	}
}
