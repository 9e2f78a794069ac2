package index

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/storage"
	bolt "go.etcd.io/bbolt"
)

// t0 is a fixed, ms-unaligned instant so that truncation to milliseconds in
// keys is exercised everywhere.
var t0 = time.Date(2026, 11, 28, 10, 0, 0, 123_456_789, time.UTC)

const week = 7 * 24 * time.Hour

// MustOpen opens an index at path and closes it when the test ends.
func MustOpen(tb testing.TB, path string, opts Options) *Index {
	tb.Helper()
	ix, err := Open(path, opts)
	if err != nil {
		tb.Fatalf("Open(%s): %v", path, err)
	}
	tb.Cleanup(func() {
		if err := ix.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return ix
}

// MustOpenTemp opens a fresh index in a temporary directory.
func MustOpenTemp(tb testing.TB) *Index {
	tb.Helper()
	return MustOpen(tb, filepath.Join(tb.TempDir(), "index.db"), Options{})
}

// MustPut puts the segments one by one.
func MustPut(tb testing.TB, ix *Index, segs ...*storage.Segment) {
	tb.Helper()
	for _, s := range segs {
		if err := ix.Put(context.Background(), s); err != nil {
			tb.Fatalf("Put(%s): %v", s.ID, err)
		}
	}
}

// MustPutMany puts many segments fast for fixtures: without fsync and from
// parallel goroutines so that they share commits. Durability is not what
// such tests are about.
func MustPutMany(tb testing.TB, ix *Index, segs []*storage.Segment) {
	tb.Helper()
	ix.db.NoSync = true
	defer func() { ix.db.NoSync = false }()
	var wg sync.WaitGroup
	errs := make(chan error, len(segs))
	work := make(chan *storage.Segment)
	for range 32 {
		wg.Go(func() {
			for s := range work {
				if err := ix.Put(context.Background(), s); err != nil {
					errs <- err
				}
			}
		})
	}
	for _, s := range segs {
		work <- s
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	// One synced commit makes the fixture durable for reopen tests.
	if err := ix.db.Sync(); err != nil {
		tb.Fatal(err)
	}
}

func segID(i int) string { return fmt.Sprintf("%016x", i) }

// seg builds a valid segment of camera "district/camera".
func seg(id, cam string, start time.Time, d time.Duration) *storage.Segment {
	district, camera, _ := strings.Cut(cam, "/")
	return &storage.Segment{
		ID:          id,
		District:    district,
		Camera:      camera,
		Start:       start,
		End:         start.Add(d),
		Bytes:       1 << 20,
		SHA256:      strings.Repeat("ab", 32),
		Codec:       "h264",
		MotionScore: 0.25,
		Key:         storage.SegmentKey(district, camera, start, id),
		Expires:     start.Add(week),
	}
}

// minuteSegments is n consecutive one-minute segments of cam from start.
func minuteSegments(cam string, start time.Time, n int) []*storage.Segment {
	out := make([]*storage.Segment, n)
	for i := range out {
		out[i] = seg(segID(i), cam, start.Add(time.Duration(i)*time.Minute), time.Minute)
	}
	return out
}

// normal makes segments comparable with reflect.DeepEqual: the index returns
// times in UTC without monotonic readings.
func normal(s storage.Segment) storage.Segment {
	s.Start = s.Start.UTC().Round(0)
	s.End = s.End.UTC().Round(0)
	s.Expires = s.Expires.UTC().Round(0)
	if len(s.HeldBy) == 0 {
		s.HeldBy = nil
	}
	return s
}

func assertSame(tb testing.TB, got, want storage.Segment) {
	tb.Helper()
	if g, w := normal(got), normal(want); !reflect.DeepEqual(g, w) {
		tb.Errorf("segment differs:\n got %+v\nwant %+v", g, w)
	}
}

func ids(segs []storage.Segment) []string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = s.ID
	}
	return out
}

// bucketLen counts the keys of a bucket, to check secondary entries.
func bucketLen(tb testing.TB, ix *Index, name []byte) int {
	tb.Helper()
	n := 0
	err := ix.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(name).ForEach(func(_, _ []byte) error { n++; return nil })
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// assertEntries checks the three buckets hold n entries each, held of
// which have no expiry entry.
func assertEntries(tb testing.TB, ix *Index, n, held int) {
	tb.Helper()
	if got := bucketLen(tb, ix, bucketSegments); got != n {
		tb.Errorf("segments bucket has %d keys, want %d", got, n)
	}
	if got := bucketLen(tb, ix, bucketCamera); got != n {
		tb.Errorf("by_camera bucket has %d keys, want %d", got, n)
	}
	if got := bucketLen(tb, ix, bucketExpiry); got != n-held {
		tb.Errorf("by_expiry bucket has %d keys, want %d", got, n-held)
	}
}
