package index

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/storage"
)

// The Put benchmarks run with fsync on, as in production: what they show is
// how many segments one fsync pair carries.

func BenchmarkPutSerial(b *testing.B) {
	ix := MustOpenTemp(b)
	ctx := context.Background()
	n := 0
	for b.Loop() {
		s := seg(segID(n), "d/c", t0.Add(time.Duration(n)*time.Second), time.Minute)
		if err := ix.Put(ctx, s); err != nil {
			b.Fatal(err)
		}
		n++
	}
	reportPuts(b, ix, n)
}

func BenchmarkPutParallel(b *testing.B) {
	ix := MustOpenTemp(b)
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(16) // 16 × GOMAXPROCS writers
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := int(next.Add(1))
			s := seg(segID(n), "d/c"+string(rune('0'+n%8)), t0.Add(time.Duration(n)*time.Second), time.Minute)
			if err := ix.Put(ctx, s); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportPuts(b, ix, int(next.Load()))
}

func reportPuts(b *testing.B, ix *Index, n int) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "segments/s")
	if c := ix.commits.Load(); c > 0 {
		b.ReportMetric(float64(n)/float64(c), "segments/commit")
	}
}

// BenchmarkList queries one hour of a camera holding a week of one-minute
// segments (10,080).
func BenchmarkList(b *testing.B) {
	ix := MustOpenTemp(b)
	MustPutMany(b, ix, minuteSegments("d/c", t0, 10_080))
	got := 0
	i := 0
	for b.Loop() {
		from := t0.Add(time.Duration(i%160) * time.Hour)
		l, err := ix.List("d", "c", from, from.Add(time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		got += len(l)
		i++
	}
	b.ReportMetric(float64(got)/float64(i), "segments/op")
}

// BenchmarkExpiring asks for a sweeper's batch of 100 expired segments from
// an index of 100 cameras × one day of one-minute segments (144,000), the
// first 1,000 of them expired.
func BenchmarkExpiring(b *testing.B) {
	ix := MustOpenTemp(b)
	segs := make([]*storage.Segment, 0, 144_000)
	for c := range 100 {
		cam := "d/c" + segID(c)[12:]
		for _, s := range minuteSegments(cam, t0, 1440) {
			s.ID = cam[2:] + s.ID
			segs = append(segs, s)
		}
	}
	MustPutMany(b, ix, segs)
	before := t0.Add(week + 10*time.Minute) // 10 minutes × 100 cameras expired
	for b.Loop() {
		l, err := ix.Expiring(before, 100)
		if err != nil {
			b.Fatal(err)
		}
		if len(l) != 100 {
			b.Fatalf("%d expiring", len(l))
		}
	}
}
