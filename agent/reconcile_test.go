package agent

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent/config"
	"github.com/vigil-cctv/vigil/agent/internal/agenttest"
	"github.com/vigil-cctv/vigil/agent/segmenter"
	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/index"
)

// recordSegments writes n continuous segments of about 2 s into a spool dir
// and returns them finished.
func recordSegments(t *testing.T, n int) []*segmenter.Finished {
	t.Helper()
	var out []*segmenter.Finished
	s, err := segmenter.New(segmenter.Config{
		Camera: "cam", Mode: segmenter.Continuous, MaxLength: 2 * time.Second,
		SpoolDir: t.TempDir(), OnSegment: func(f *segmenter.Finished) { out = append(out, f) },
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, au := range agenttest.Units(t, agenttest.Clip(t, "walk"), 1, time.Now().Add(-time.Hour)) {
		if len(out) >= n {
			break
		}
		if err := s.WriteAccessUnit(au); err != nil {
			t.Fatal(err)
		}
	}
	return out[:n]
}

func putFile(t *testing.T, store storage.ObjectStore, key, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(context.Background(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

// TestReconcile covers the three disagreements between index and store: an
// object without an entry (indexed), an entry without an object (marked
// missing, alarmed), and an object that is not a playable segment (left
// alone, alarmed). Nothing is ever deleted.
func TestReconcile(t *testing.T) {
	cfg := testConfig(t, config.Camera{ID: "cam", URL: "rtsp://127.0.0.1:1/x"})
	a, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.closeStorage()
	ctx := context.Background()
	fins := recordSegments(t, 3)

	// fins[0]: stored and indexed (agrees). fins[1]: stored only (a crash
	// between store and index). fins[2]: indexed only (object lost).
	var segs []storage.Segment
	for _, f := range fins {
		s := f.Segment(cfg.District, "cam")
		s.Expires = s.Start.Add(cfg.Retention.Std())
		segs = append(segs, s)
	}
	putFile(t, a.store, segs[0].Key, fins[0].Path)
	putFile(t, a.store, segs[1].Key, fins[1].Path)
	if err := a.index.Put(ctx, &segs[0]); err != nil {
		t.Fatal(err)
	}
	if err := a.index.Put(ctx, &segs[2]); err != nil {
		t.Fatal(err)
	}
	// An unplayable object under a segment key, and a foreign object.
	junkKey := storage.SegmentKey(cfg.District, "cam", time.Now(), storage.NewSegmentID())
	junk := []byte("this is not a video")
	if err := a.store.Put(ctx, junkKey, bytes.NewReader(junk), int64(len(junk))); err != nil {
		t.Fatal(err)
	}
	if err := a.store.Put(ctx, cfg.District+"/README", bytes.NewReader(junk), int64(len(junk))); err != nil {
		t.Fatal(err)
	}

	res, err := a.reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Objects != 3 || res.Indexed != 1 || res.Missing != 1 || res.Unplayable != 1 {
		t.Fatalf("result %+v", res)
	}
	got, err := a.index.Get(segs[1].ID)
	if err != nil {
		t.Fatalf("orphan not indexed: %v", err)
	}
	if got.SHA256 != segs[1].SHA256 || got.Bytes != segs[1].Bytes || got.Codec != "h264" || !got.Recovered {
		t.Errorf("orphan indexed as %+v, want %+v", got, segs[1])
	}
	if d := got.End.Sub(segs[1].End); d > 50*time.Millisecond || d < -50*time.Millisecond {
		t.Errorf("orphan end %v, want %v", got.End, segs[1].End)
	}
	if !got.Expires.Equal(got.Start.Add(cfg.Retention.Std())) {
		t.Errorf("orphan expires %v", got.Expires)
	}
	lost, err := a.index.Get(segs[2].ID)
	if err != nil || !lost.Missing {
		t.Errorf("lost object not marked missing: %+v %v", lost, err)
	}
	junkParts, err := storage.ParseSegmentKey(junkKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.index.Get(junkParts.ID); err == nil {
		t.Error("unplayable object was indexed")
	}
	if _, err := a.store.Stat(ctx, junkKey); err != nil {
		t.Errorf("unplayable object was touched: %v", err)
	}
	codes := map[string]bool{}
	for _, al := range a.Status().Alarms {
		codes[al.Code] = true
	}
	if !codes[AlarmMissingObjects] || !codes[AlarmUnplayable] {
		t.Errorf("alarms %v", a.Status().Alarms)
	}

	// The object comes back (restored from a backup): the flag is cleared.
	putFile(t, a.store, segs[2].Key, fins[2].Path)
	if _, err := a.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := a.index.Get(segs[2].ID); s.Missing {
		t.Error("missing flag not cleared when the object came back")
	}
}

// TestLostIndexDeletesNothing is the field failure of a recorder that, started
// with a missing database, deleted every recording not in it: here the index
// file is removed, and the agent rebuilds it from the store without touching
// any object.
func TestLostIndexDeletesNothing(t *testing.T) {
	cfg := testConfig(t, config.Camera{ID: "cam", URL: "rtsp://127.0.0.1:1/x"})
	a, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fins := recordSegments(t, 4)
	for _, f := range fins {
		s := f.Segment(cfg.District, "cam")
		s.Expires = s.Start.Add(time.Minute) // long expired
		putFile(t, a.store, s.Key, f.Path)
		if err := a.index.Put(ctx, &s); err != nil {
			t.Fatal(err)
		}
	}
	a.closeStorage()
	if err := os.Remove(filepath.Join(cfg.DataDir, "index.db")); err != nil {
		t.Fatal(err)
	}

	a, err = New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.closeStorage()
	res, err := a.reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Indexed != 4 || res.Missing != 0 {
		t.Fatalf("result %+v", res)
	}
	n := 0
	a.store.List(ctx, "", func(storage.ObjectInfo) error { n++; return nil })
	if n != 4 {
		t.Fatalf("%d objects left of 4", n)
	}
	if c, _ := a.index.Count(); c != 4 {
		t.Fatalf("index holds %d segments", c)
	}
}

// TestSecondAgentOnSameDataDirRefused: two agents must not share an index.
func TestSecondAgentOnSameDataDirRefused(t *testing.T) {
	cfg := testConfig(t, config.Camera{ID: "cam", URL: "rtsp://127.0.0.1:1/x"})
	a, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.closeStorage()
	_, err = New(cfg, Options{})
	if !errors.Is(err, index.ErrInUse) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second agent on the same data dir: %v", err)
	}
}
