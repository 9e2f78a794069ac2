package retention

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/fs"
	"github.com/vigil-cctv/vigil/storage/index"
	"github.com/vigil-cctv/vigil/storage/s3"
	"github.com/vigil-cctv/vigil/storage/s3/miniotest"
)

// The figures of `make bench` for retention. The index is durable (fsync
// on every commit) wherever the timed part writes it, as in production:
// a deletion's log entry and a hold must survive a power cut. Only the
// fixtures are built without fsync.

const (
	benchCameras    = 100
	benchPerCamera  = 10_000 // one-minute segments: about a week per camera
	benchExpiredPer = 100    // per camera: 1% of the index
	benchObjectSize = 1024
)

// benchSegment is segment i of camera c: one minute long, a week of
// retention, consecutive per camera.
func benchSegment(c, i int) storage.Segment {
	cam := fmt.Sprintf("cam%03d", c)
	// Ids ascend with i, then c: building in that order appends to the
	// segments bucket instead of inserting all over it.
	id := fmt.Sprintf("%012x%04x", i, c)
	start := t0.Add(time.Duration(i) * time.Minute)
	return storage.Segment{ID: id, District: "north", Camera: cam, Start: start, End: start.Add(time.Minute),
		Bytes: benchObjectSize, SHA256: "00", Codec: "h264", Key: storage.SegmentKey("north", cam, start, id),
		Expires: start.Add(7 * day)}
}

// putAll indexes the segments from parallel writers, so that they share
// commits (group commit: one fsync pair per batch when durable).
func putAll(tb testing.TB, ix *index.Index, n int, seg func(int) storage.Segment) {
	tb.Helper()
	parallel(tb, n, 64, func(i int) error {
		s := seg(i)
		return ix.Put(context.Background(), &s)
	})
}

// parallel runs fn(0..n-1) on workers goroutines and fails tb on the
// first error.
func parallel(tb testing.TB, n, workers int, fn func(int) error) {
	tb.Helper()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	work := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range work {
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if first != nil {
		tb.Fatal(first)
	}
}

// writeObjects puts small objects for the segments straight into the fs
// store's directory tree (an object of the fs store is the file at its
// key, a documented contract), without the fsync of each Put: fixtures.
func writeObjects(tb testing.TB, st *fs.Store, segs []storage.Segment) {
	tb.Helper()
	data := make([]byte, benchObjectSize)
	parallel(tb, len(segs), 16, func(i int) error {
		p, err := st.Path(segs[i].Key)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		return os.WriteFile(p, data, 0o600)
	})
}

func openIndex(tb testing.TB, path string, noSync bool) *index.Index {
	tb.Helper()
	ix, err := index.Open(path, index.Options{NoSync: noSync})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ix.Close() })
	return ix
}

// BenchmarkSweep1MSegments1PercentExpire: an index of 1,000,000 segments
// (100 cameras × 10,000 one-minute segments), of which 10,000 have expired
// and have their objects in an fs store. The timed part is one Sweep that
// deletes them all, with a durable index. Between iterations the expired
// segments and their objects are put back, untimed.
func BenchmarkSweep1MSegments1PercentExpire(b *testing.B) {
	path := filepath.Join(b.TempDir(), "index.db")
	build := time.Now()
	func() {
		ix, err := index.Open(path, index.Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		defer ix.Close()
		putAll(b, ix, benchCameras*benchPerCamera, func(i int) storage.Segment {
			return benchSegment(i%benchCameras, i/benchCameras)
		})
	}()
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("built an index of %d segments (%d MB) in %v", benchCameras*benchPerCamera, fi.Size()>>20, time.Since(build).Round(time.Millisecond))

	ix := openIndex(b, path, false)
	if n, err := ix.Count(); err != nil || n != benchCameras*benchPerCamera {
		b.Fatalf("index has %d segments (%v)", n, err)
	}
	st, err := fs.Open(filepath.Join(b.TempDir(), "store"))
	if err != nil {
		b.Fatal(err)
	}
	var expired []storage.Segment
	for c := range benchCameras {
		for i := range benchExpiredPer {
			expired = append(expired, benchSegment(c, i))
		}
	}
	writeObjects(b, st, expired)
	// The fixtures were written without fsync: flush them now, or the
	// first durable commit of the sweep would pay for writing them back.
	syscall.Sync()
	// Segments 0..benchExpiredPer-1 of each camera have expired, the last
	// of them at this very instant (due at start + retention).
	clock := &fakeClock{now: t0.Add(7*day + (benchExpiredPer-1)*time.Minute)}
	sw, err := New(Config{
		Index: ix, Now: clock.Now,
		Store:  func(context.Context) (storage.ObjectStore, error) { return st, nil },
		Log:    func(e index.JournalEntry) *index.Logged { return &index.Logged{Entry: e} },
		Logger: slog.New(slog.DiscardHandler),
		Report: func(seg storage.Segment, reason string, at time.Time) ([]byte, error) {
			return fmt.Appendf(nil, "deleted %s %s %s", seg.ID, reason, at.Format(time.RFC3339Nano)), nil
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	deleted := 0
	first := true
	for b.Loop() {
		if !first {
			b.StopTimer()
			putAll(b, ix, len(expired), func(i int) storage.Segment { return expired[i] })
			writeObjects(b, st, expired)
			syscall.Sync()
			b.StartTimer()
		}
		first = false
		res, err := sw.Sweep(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if res.Deleted[ReasonRetention] != len(expired) || res.Failed != 0 {
			b.Fatalf("sweep: %+v, want %d deleted", res, len(expired))
		}
		deleted += res.Deleted[ReasonRetention]
	}
	b.StopTimer()
	if _, err := st.Stat(ctx, expired[0].Key); err == nil {
		b.Fatal("object of a swept segment still in the store")
	}
	if n, err := ix.Count(); err != nil || n != benchCameras*(benchPerCamera-benchExpiredPer) {
		b.Fatalf("index has %d segments after the sweep (%v)", n, err)
	}
	b.ReportMetric(float64(deleted)/b.Elapsed().Seconds(), "segments-deleted/s")
}

const holdSegments = 10_000

// benchApplyHold times Holds.Apply of one hold over 10,000 segments of one
// camera (a week of one-minute segments) whose objects are in the store,
// with a durable index; the hold is released between iterations, untimed.
func benchApplyHold(b *testing.B, store storage.ObjectStore) {
	ctx := context.Background()
	ix := openIndex(b, filepath.Join(b.TempDir(), "index.db"), false)
	segs := make([]storage.Segment, holdSegments)
	for i := range segs {
		segs[i] = benchSegment(0, i)
	}
	data := make([]byte, benchObjectSize)
	setup := time.Now()
	parallel(b, len(segs), 32, func(i int) error {
		return store.Put(ctx, segs[i].Key, bytes.NewReader(data), int64(len(data)))
	})
	putAll(b, ix, len(segs), func(i int) storage.Segment { return segs[i] })
	b.Logf("stored and indexed %d segments in %v", len(segs), time.Since(setup).Round(time.Millisecond))

	clock := &fakeClock{now: t0.Add(holdSegments * time.Minute)}
	hs := &Holds{Index: ix, Now: clock.Now,
		Store: func(context.Context) (storage.ObjectStore, error) { return store, nil },
		Log:   func(e index.JournalEntry) *index.Logged { return &index.Logged{Entry: e} },
	}
	h := index.Hold{District: "north", Cameras: []string{"cam000"}, From: t0, To: t0.Add(holdSegments * time.Minute),
		Authority: "court", Case: "bench"}
	iter := 0
	for b.Loop() {
		if iter > 0 {
			b.StopTimer()
			if n, err := hs.Release(ctx, h.ID, "bench"); err != nil || n != holdSegments {
				b.Fatalf("release: %d %v", n, err)
			}
			b.StartTimer()
		}
		// A released hold id cannot be applied again: a new hold each time.
		iter++
		h.ID = fmt.Sprintf("bench-hold-%d", iter)
		n, err := hs.Apply(ctx, h)
		if err != nil || n != holdSegments {
			b.Fatalf("apply: %d segments, %v; want %d", n, err, holdSegments)
		}
	}
	b.StopTimer()
	if got, err := ix.Hold(h.ID); err != nil || got.State != index.HoldApplied {
		b.Fatalf("hold %+v, %v; want applied", got, err)
	}
	for _, i := range []int{0, holdSegments / 2, holdSegments - 1} {
		if on, err := store.LegalHold(ctx, segs[i].Key); err != nil || !on {
			b.Fatalf("segment %d: legal hold %v, %v", i, on, err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/hold")
}

func BenchmarkApplyHold10kSegments_fs(b *testing.B) {
	st, err := fs.Open(filepath.Join(b.TempDir(), "store"))
	if err != nil {
		b.Fatal(err)
	}
	benchApplyHold(b, st)
}

func BenchmarkApplyHold10kSegments_minio(b *testing.B) {
	srv := miniotest.Start(b)
	st, err := s3.Open(context.Background(), srv.Config(b))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	benchApplyHold(b, st)
}
