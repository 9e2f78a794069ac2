package catalog

import (
	"testing"
	"time"

	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/storage"
)

// Five one-minute segments of north/gate from t0, one of north/gate2 (a
// camera whose name extends gate's) and one of south/gate: each query
// stays within its camera.
func TestFootageQueries(t *testing.T) {
	c := mustCatalog(t)
	for _, d := range []string{"north", "south"} {
		if _, _, err := c.Begin(d, "outbox1"); err != nil {
			t.Fatal(err)
		}
	}
	var reports []*agentv1.Report
	for i := range 5 {
		reports = append(reports, stored("north", uint64(i+1), id(i), t0.Add(time.Duration(i)*time.Minute)))
	}
	other := stored("north", 6, id(5), t0.Add(-time.Hour))
	seg := other.GetSegmentStored().GetSegment()
	seg.Camera, seg.Key = "gate2", storage.SegmentKey("north", "gate2", seg.GetStart().AsTime(), seg.GetId())
	reports = append(reports, other)
	if _, rej, err := c.Apply("north", "outbox1", reports, t0); err != nil || len(rej) != 0 {
		t.Fatalf("apply: %v %v", rej, err)
	}
	if _, _, err := c.Apply("south", "outbox1", []*agentv1.Report{stored("south", 1, id(0), t0.Add(-2*time.Hour))}, t0); err != nil {
		t.Fatal(err)
	}

	if n, err := c.CountSegments("north", "gate"); err != nil || n != 5 {
		t.Fatalf("count %d %v", n, err)
	}
	if n, _ := c.CountSegments("north", "roof"); n != 0 {
		t.Fatalf("count of an unknown camera %d", n)
	}
	oldest, err := c.OldestSegment("north", "gate", nil)
	if err != nil || oldest.GetId() != id(0) {
		t.Fatalf("oldest %v %v", oldest, err)
	}
	// The first two are held: the oldest unheld is the third.
	visited := 0
	oldest, _ = c.OldestSegment("north", "gate", func(s *agentv1.Segment) bool {
		visited++
		return s.GetStart().AsTime().Before(t0.Add(2 * time.Minute))
	})
	if oldest.GetId() != id(2) || visited != 3 {
		t.Fatalf("oldest unheld %v after %d segments", oldest.GetId(), visited)
	}
	if none, _ := c.OldestSegment("north", "gate", func(*agentv1.Segment) bool { return true }); none != nil {
		t.Fatalf("everything skipped, got %v", none)
	}

	// [t0+1m30s, t0+3m) overlaps the segments starting at 1m and 2m.
	var got []string
	err = c.EachInSpan("north", "gate", t0.Add(90*time.Second), t0.Add(3*time.Minute), func(s *agentv1.Segment) error {
		got = append(got, s.GetId())
		return nil
	})
	if err != nil || len(got) != 2 || got[0] != id(1) || got[1] != id(2) {
		t.Fatalf("in span %v %v", got, err)
	}
	first, ok, err := c.EarliestExpiry("north", "gate", t0.Add(90*time.Second), t0.Add(time.Hour))
	if err != nil || !ok || !first.Equal(t0.Add(time.Minute+7*24*time.Hour)) {
		t.Fatalf("earliest expiry %v %v %v", first, ok, err)
	}
	if _, ok, _ := c.EarliestExpiry("north", "gate", t0.Add(time.Hour), t0.Add(2*time.Hour)); ok {
		t.Fatal("earliest expiry of an empty span")
	}
}
