package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAppendParallel is the rate of durable appends (each returns once
// its record is fsynced) with many goroutines appending at once, as the
// handlers of a busy central do: group commit shares each fsync among every
// append waiting for it.
func BenchmarkAppendParallel(b *testing.B) {
	for _, g := range []int{1, 16, 256, 1024} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			l := mustOpen(b, filepath.Join(b.TempDir(), "audit.db"), mustKey(b, "vigil-central"), nil)
			rec := sample(1)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range g {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if _, err := l.Append(context.Background(), rec); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
			if c := l.commits.Load(); c > 0 {
				b.ReportMetric(float64(l.committed.Load())/float64(c), "records/commit")
			}
		})
	}
}

// BenchmarkVerify1M is a full Verify of a log of a million records (set
// VIGIL_AUDIT_BENCH_RECORDS for another size), read from its file, and the
// size of the proofs an auditor downloads for such a log.
func BenchmarkVerify1M(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("VIGIL_AUDIT_BENCH_RECORDS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 2 {
			b.Fatalf("VIGIL_AUDIT_BENCH_RECORDS=%q: want a number of records, at least 2", s)
		}
	}
	key := mustKey(b, "vigil-central")
	path := filepath.Join(b.TempDir(), "audit.db")
	start := time.Now()
	buildFixture(b, path, key, n)
	info, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("fixture: %d records in %s, file of %d MiB", n, time.Since(start).Round(time.Millisecond), info.Size()>>20)

	l := mustOpenRO(b, path)
	proof, err := l.InclusionProof(uint64(n/2), uint64(n))
	if err != nil {
		b.Fatal(err)
	}
	consistency, err := l.ConsistencyProof(uint64(n/2), uint64(n))
	if err != nil {
		b.Fatal(err)
	}
	var rep Report
	for b.Loop() {
		if rep, err = Verify(l, key.verifier); err != nil {
			b.Fatal(err)
		}
	}
	if rep.Records != uint64(n) {
		b.Fatalf("verified %d records, want %d", rep.Records, n)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(len(proof)*32), "inclusion-proof-bytes")
	b.ReportMetric(float64(len(consistency)*32), "consistency-proof-bytes")
	b.ReportMetric(float64(rep.Checkpoints), "checkpoints")
}

// buildFixture writes a log of n varied records quickly: big batches and
// no fsync, which a fixture can afford and central never does.
func buildFixture(b *testing.B, path string, key testKey, n int) {
	b.Helper()
	clock := newClock(0)
	l, err := Open(path, Options{Signer: key.signer, Verifier: key.verifier, Now: clock.Now, noSync: true})
	if err != nil {
		b.Fatal(err)
	}
	const batch = 10000
	recs := make([]Record, 0, batch)
	for i := 0; i < n; i += batch {
		recs = recs[:0]
		for j := i; j < min(i+batch, n); j++ {
			recs = append(recs, sample(j))
		}
		if _, err := l.AppendBatch(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
		clock.Advance(time.Second)
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
}
