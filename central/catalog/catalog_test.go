package catalog

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/storage"
)

func mustCatalog(t testing.TB) *Catalog {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "central.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c, err := New(db)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func stored(district string, seq uint64, id string, start time.Time) *agentv1.Report {
	return &agentv1.Report{Seq: seq, At: timestamppb.New(start), Body: &agentv1.Report_SegmentStored{SegmentStored: &agentv1.SegmentStored{
		Segment: &agentv1.Segment{
			Id: id, Camera: "gate", Start: timestamppb.New(start), End: timestamppb.New(start.Add(time.Minute)),
			Bytes: 1000, Sha256: strings.Repeat("ab", 32), Codec: "h264", Key: storage.SegmentKey(district, "gate", start, id),
			Expires: timestamppb.New(start.Add(7 * 24 * time.Hour)),
		},
	}}}
}

func id(n int) string { return strings.Repeat("0", 15) + string(rune('a'+n)) }

func TestApplyExactlyOnce(t *testing.T) {
	c := mustCatalog(t)
	applied, reset, err := c.Begin("north", "outbox1")
	if err != nil || applied != 0 || reset {
		t.Fatalf("Begin = %d %v %v", applied, reset, err)
	}
	batch := []*agentv1.Report{stored("north", 1, id(0), t0), stored("north", 2, id(1), t0.Add(time.Minute))}
	if applied, _, err := c.Apply("north", "outbox1", batch, t0); err != nil || applied != 2 {
		t.Fatalf("Apply = %d %v", applied, err)
	}
	// Resent after a reconnection: nothing applied twice.
	batch = append(batch, stored("north", 3, id(2), t0.Add(2*time.Minute)))
	if applied, _, err := c.Apply("north", "outbox1", batch, t0); err != nil || applied != 3 {
		t.Fatalf("Apply again = %d %v", applied, err)
	}
	ids, _ := c.IDs("north")
	if len(ids) != 3 {
		t.Fatalf("ids %v", ids)
	}
	// A gap keeps what came before it.
	_, _, err = c.Apply("north", "outbox1", []*agentv1.Report{stored("north", 4, id(3), t0), stored("north", 6, id(4), t0)}, t0)
	if !errors.Is(err, ErrGap) {
		t.Fatalf("gap: %v", err)
	}
	if _, seq, _ := c.Applied("north"); seq != 4 {
		t.Fatalf("applied %d after the gap, want 4", seq)
	}
	// Deletion.
	del := &agentv1.Report{Seq: 5, At: timestamppb.New(t0), Body: &agentv1.Report_SegmentDeleted{SegmentDeleted: &agentv1.SegmentDeleted{
		Id: id(0), Camera: "gate", Reason: "retention", DeletedAt: timestamppb.New(t0.Add(time.Hour)),
	}}}
	if _, _, err := c.Apply("north", "outbox1", []*agentv1.Report{del}, t0); err != nil {
		t.Fatal(err)
	}
	if ids, _ := c.IDs("north"); ids[id(0)] || len(ids) != 3 {
		t.Fatalf("after deletion: %v", ids)
	}
	if dels, _ := c.Deletions("north", t0); len(dels) != 1 || dels[0].Reason != "retention" {
		t.Fatalf("deletions %+v", dels)
	}
	// The same outbox reconnecting resumes; a new one (lost index) resets.
	if applied, reset, _ := c.Begin("north", "outbox1"); applied != 5 || reset {
		t.Fatalf("resume: %d %v", applied, reset)
	}
	if applied, reset, _ := c.Begin("north", "outbox2"); applied != 0 || !reset {
		t.Fatalf("new outbox: %d %v", applied, reset)
	}
	// A connection still draining the old outbox applies nothing now.
	if _, _, err := c.Apply("north", "outbox1", []*agentv1.Report{stored("north", 1, id(5), t0)}, t0); !errors.Is(err, ErrOutboxChanged) {
		t.Fatalf("old outbox after a new one began: %v", err)
	}
	if ids, _ := c.IDs("north"); len(ids) != 0 {
		t.Fatalf("segments survived a new outbox: %v", ids)
	}
}

func TestInvalidReportsAreRejectedAndSkipped(t *testing.T) {
	c := mustCatalog(t)
	c.Begin("north", "outbox1")
	bad := stored("north", 1, id(0), t0)
	bad.GetSegmentStored().Segment.Key = storage.SegmentKey("south", "gate", t0, id(0)) // another district's object
	long := stored("north", 2, id(1), t0)
	long.GetSegmentStored().Segment.End = timestamppb.New(t0.Add(48 * time.Hour))
	good := stored("north", 3, id(2), t0)
	applied, rejected, err := c.Apply("north", "outbox1", []*agentv1.Report{bad, long, good}, t0)
	if err != nil || applied != 3 || len(rejected) != 2 {
		t.Fatalf("Apply = %d %v %v", applied, rejected, err)
	}
	if ids, _ := c.IDs("north"); len(ids) != 1 || !ids[id(2)] {
		t.Fatalf("ids %v", ids)
	}
	if rej, _ := c.Rejections("north"); len(rej) != 2 || !strings.Contains(rej[0].Error, "key") || !strings.Contains(rej[1].Error, "lasts") {
		t.Fatalf("rejections %+v", rej)
	}
}

func TestValidateReport(t *testing.T) {
	ok := stored("north", 1, id(0), t0)
	if err := ValidateReport("north", ok); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(r *agentv1.Report){
		"no seq":     func(r *agentv1.Report) { r.Seq = 0 },
		"no time":    func(r *agentv1.Report) { r.At = nil },
		"empty body": func(r *agentv1.Report) { r.Body = nil },
		"bad id":     func(r *agentv1.Report) { r.GetSegmentStored().Segment.Id = "xyz" },
		"bad camera": func(r *agentv1.Report) { r.GetSegmentStored().Segment.Camera = "../x" },
		"backwards":  func(r *agentv1.Report) { r.GetSegmentStored().Segment.End = timestamppb.New(t0.Add(-time.Second)) },
		"8d expiry": func(r *agentv1.Report) {
			r.GetSegmentStored().Segment.Expires = timestamppb.New(t0.Add(8 * 24 * time.Hour))
		},
		"bad codec":     func(r *agentv1.Report) { r.GetSegmentStored().Segment.Codec = "mjpeg" },
		"bad sha":       func(r *agentv1.Report) { r.GetSegmentStored().Segment.Sha256 = "00" },
		"negative size": func(r *agentv1.Report) { r.GetSegmentStored().Segment.Bytes = -1 },
		"year 1970":     func(r *agentv1.Report) { r.At = timestamppb.New(time.Unix(0, 0)) },
		"invalid ts":    func(r *agentv1.Report) { r.At = &timestamppb.Timestamp{Nanos: -5} },
		"nil segment":   func(r *agentv1.Report) { r.GetSegmentStored().Segment = nil },
	}
	for name, edit := range cases {
		r := proto.Clone(ok).(*agentv1.Report)
		edit(r)
		if err := ValidateReport("north", r); !errors.Is(err, ErrInvalidReport) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzApplyReport decodes arbitrary bytes as a report, as central receives
// them, and applies what validates: nothing panics, and whatever is stored
// is listable under its own district and camera only.
func FuzzApplyReport(f *testing.F) {
	for _, r := range []*agentv1.Report{stored("north", 1, id(0), t0)} {
		b, _ := proto.Marshal(r)
		f.Add(b)
	}
	st := &agentv1.Report{Seq: 1, At: timestamppb.New(t0), Body: &agentv1.Report_CameraStatus{CameraStatus: &agentv1.CameraStatus{Camera: "gate", State: "up", Since: timestamppb.New(t0)}}}
	b, _ := proto.Marshal(st)
	f.Add(b)
	c := mustCatalog(f)
	n := 0
	f.Fuzz(func(t *testing.T, data []byte) {
		var r agentv1.Report
		if proto.Unmarshal(data, &r) != nil {
			return
		}
		n++
		district := "fuzz" + strings.Repeat("x", n%3)
		c.Begin(district, "o")
		_, seq, _ := c.Applied(district)
		r.Seq = seq + 1
		if _, _, err := c.Apply(district, "o", []*agentv1.Report{&r}, t0); err != nil {
			t.Fatal(err)
		}
		if s := r.GetSegmentStored().GetSegment(); s != nil && ValidateReport(district, &r) == nil {
			got, err := c.List(district, s.GetCamera(), s.GetStart().AsTime(), s.GetEnd().AsTime().Add(time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, g := range got {
				found = found || g.GetId() == s.GetId()
			}
			if !found {
				t.Fatalf("valid segment %s not listed", s.GetId())
			}
		}
	})
}
