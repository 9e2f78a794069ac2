package index

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/storage"
)

func TestOutbox(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	ix, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Segments indexed before reporting starts are reported by StartOutbox.
	MustPut(t, ix, seg("a", "n/c", t0, time.Minute), seg("b", "n/c", t0.Add(time.Minute), time.Minute))
	if id, _ := ix.OutboxID(); id != "" {
		t.Fatal("outbox started by itself")
	}
	n, err := ix.StartOutbox(ctx, func(s storage.Segment) ([]byte, error) { return []byte("stored " + s.ID), nil })
	if err != nil || n != 2 {
		t.Fatalf("StartOutbox = %d, %v", n, err)
	}
	if _, err := ix.StartOutbox(ctx, nil); !errors.Is(err, ErrOutboxStarted) {
		t.Fatalf("second StartOutbox: %v", err)
	}
	select {
	case <-ix.ReportsAdded():
	default:
		t.Fatal("no notification")
	}
	s := seg("c", "n/c", t0.Add(2*time.Minute), time.Minute)
	seq, err := ix.PutReported(ctx, s, []byte("stored c"))
	if err != nil || seq != 3 {
		t.Fatalf("PutReported = %d, %v", seq, err)
	}
	if _, err := ix.Get("c"); err != nil {
		t.Fatalf("segment not indexed with its report: %v", err)
	}
	if seq, err := ix.AppendReport(ctx, []byte("status")); err != nil || seq != 4 {
		t.Fatalf("AppendReport = %d, %v", seq, err)
	}
	// A bad segment queues no report either.
	bad := seg("d", "n/c", t0, time.Minute)
	bad.Camera = "../x"
	if _, err := ix.PutReported(ctx, bad, []byte("stored d")); err == nil {
		t.Fatal("bad segment accepted")
	}
	got, err := ix.Reports(1, 10)
	if err != nil || len(got) != 3 || got[0].Seq != 2 || string(got[2].Payload) != "status" {
		t.Fatalf("Reports(1) = %+v, %v", got, err)
	}
	if err := ix.AckReports(3); err != nil {
		t.Fatal(err)
	}
	if pending, last, err := ix.OutboxState(); err != nil || pending != 1 || last != 4 {
		t.Fatalf("state %d %d %v", pending, last, err)
	}
	// Sequence numbers never go back, across a reopen and a fully acked
	// outbox.
	ix.AckReports(4)
	ix.Close()
	ix = MustOpen(t, path, Options{})
	if seq, err := ix.AppendReport(ctx, []byte("after")); err != nil || seq != 5 {
		t.Fatalf("after reopen: %d, %v", seq, err)
	}
	if id, _ := ix.OutboxID(); len(id) != 16 {
		t.Fatalf("outbox id %q lost", id)
	}
}

func TestOutboxConcurrentAppendsAreDense(t *testing.T) {
	ix := MustOpenTemp(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	seqs := make([]uint64, 200)
	for i := range seqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := seg(segID(i), "n/c", t0.Add(time.Duration(i)*time.Minute), time.Minute)
			seq, err := ix.PutReported(ctx, s, []byte(s.ID))
			if err != nil {
				t.Error(err)
			}
			seqs[i] = seq
		}()
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for _, s := range seqs {
		if s < 1 || s > 200 || seen[s] {
			t.Fatalf("sequence %d duplicated or out of range", s)
		}
		seen[s] = true
	}
	reports, _ := ix.Reports(0, 1000)
	if len(reports) != 200 {
		t.Fatalf("%d reports", len(reports))
	}
}

func TestRestartOutbox(t *testing.T) {
	ix := MustOpenTemp(t)
	ctx := context.Background()
	MustPut(t, ix, seg("a", "n/c", t0, time.Minute))
	payload := func(s storage.Segment) ([]byte, error) { return []byte("stored " + s.ID), nil }
	if _, err := ix.StartOutbox(ctx, payload); err != nil {
		t.Fatal(err)
	}
	first, _ := ix.OutboxID()
	for range 5 {
		ix.AppendReport(ctx, []byte("status"))
	}
	ix.AckReports(3)
	if f, l, _ := ix.OutboxRange(); f != 4 || l != 6 {
		t.Fatalf("range %d-%d", f, l)
	}
	MustPut(t, ix, seg("b", "n/c", t0.Add(time.Minute), time.Minute))
	n, err := ix.RestartOutbox(ctx, payload, []byte("camera"))
	if err != nil || n != 2 {
		t.Fatalf("RestartOutbox = %d, %v", n, err)
	}
	if id, _ := ix.OutboxID(); id == first || len(id) != 16 {
		t.Fatalf("outbox id %q after restart (was %q)", id, first)
	}
	got, _ := ix.Reports(0, 10)
	if len(got) != 3 || got[0].Seq != 1 || string(got[0].Payload) != "stored a" || string(got[2].Payload) != "camera" {
		t.Fatalf("new outbox holds %+v", got)
	}
	// UpdateReported changes the segment and queues its report together.
	err = ix.UpdateReported("a", func(s *storage.Segment) error { s.Missing = true; return nil }, payload)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := ix.Get("a"); !s.Missing {
		t.Fatal("update not applied")
	}
	if got, _ := ix.Reports(3, 10); len(got) != 1 || string(got[0].Payload) != "stored a" {
		t.Fatalf("update not reported: %+v", got)
	}
}
