package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent/config"
	"github.com/vigil-cctv/vigil/agent/internal/agenttest"
	"github.com/vigil-cctv/vigil/agent/segmenter"
	"github.com/vigil-cctv/vigil/storage"
	storefs "github.com/vigil-cctv/vigil/storage/fs"
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
// alone, alarmed; indexed as unplayable so that it expires). Nothing is ever
// deleted.
func TestReconcile(t *testing.T) {
	cfg := testConfig(t, config.Camera{ID: "cam", URL: "rtsp://127.0.0.1:1/x"})
	a, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.closeStorage()
	ctx := context.Background()
	fins := recordSegments(t, 3)

	// The camera's retention was shortened to 1 day since fins[0] was
	// indexed with 7.
	cfg.Cameras[0].Retention = config.Duration(24 * time.Hour)
	// fins[0]: stored and indexed (agrees). fins[1]: stored only (a crash
	// between store and index). fins[2]: indexed only (object lost).
	var segs []storage.Segment
	for _, f := range fins {
		s := f.Segment(cfg.District, "cam")
		s.Expires = s.Start.Add(cfg.Retention.Std())
		segs = append(segs, s)
	}
	putFile(t, a.store.opened(), segs[0].Key, fins[0].Path)
	putFile(t, a.store.opened(), segs[1].Key, fins[1].Path)
	if err := a.index.Put(ctx, &segs[0]); err != nil {
		t.Fatal(err)
	}
	if err := a.index.Put(ctx, &segs[2]); err != nil {
		t.Fatal(err)
	}
	// An unplayable object under a segment key, and a foreign object.
	junkKey := storage.SegmentKey(cfg.District, "cam", time.Now(), storage.NewSegmentID())
	junk := []byte("this is not a video")
	if err := a.store.opened().Put(ctx, junkKey, bytes.NewReader(junk), int64(len(junk))); err != nil {
		t.Fatal(err)
	}
	if err := a.store.opened().Put(ctx, cfg.District+"/README", bytes.NewReader(junk), int64(len(junk))); err != nil {
		t.Fatal(err)
	}

	// The orphan's object carries a legal hold: the hold that placed it
	// was in the index that was lost.
	if err := a.store.opened().SetLegalHold(ctx, segs[1].Key, true); err != nil {
		t.Fatal(err)
	}
	res, err := a.reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Objects != 3 || res.Indexed != 1 || res.Missing != 1 || res.Unplayable != 1 || res.Shortened != 2 {
		t.Fatalf("result %+v", res)
	}
	got, err := a.index.Get(segs[1].ID)
	if err != nil {
		t.Fatalf("orphan not indexed: %v", err)
	}
	if !slices.Equal(got.HeldBy, []string{index.PlaceholderHold}) {
		t.Errorf("orphan under a store legal hold indexed as held by %v", got.HeldBy)
	}
	if got.SHA256 != segs[1].SHA256 || got.Bytes != segs[1].Bytes || got.Codec != "h264" || !got.Recovered {
		t.Errorf("orphan indexed as %+v, want %+v", got, segs[1])
	}
	if d := got.End.Sub(segs[1].End); d > 50*time.Millisecond || d < -50*time.Millisecond {
		t.Errorf("orphan end %v, want %v", got.End, segs[1].End)
	}
	if !got.Expires.Equal(got.Start.Add(24 * time.Hour)) {
		t.Errorf("orphan expires %v", got.Expires)
	}
	if s0, _ := a.index.Get(segs[0].ID); !s0.Expires.Equal(s0.Start.Add(24 * time.Hour)) {
		t.Errorf("expiry not shortened to the new retention: %v", s0.Expires.Sub(s0.Start))
	}
	lost, err := a.index.Get(segs[2].ID)
	if err != nil || !lost.Missing {
		t.Errorf("lost object not marked missing: %+v %v", lost, err)
	}
	junkParts, err := storage.ParseSegmentKey(junkKey)
	if err != nil {
		t.Fatal(err)
	}
	// Indexed as unplayable so that retention reaches it, never deleted
	// by reconciliation.
	junkSeg, err := a.index.Get(junkParts.ID)
	if err != nil || junkSeg.Codec != CodecUnplayable || junkSeg.Bytes != int64(len(junk)) ||
		!junkSeg.Expires.Equal(junkSeg.Start.Add(24*time.Hour)) || !junkSeg.Start.Equal(junkParts.Start) {
		t.Errorf("unplayable object indexed as %+v (%v)", junkSeg, err)
	}
	if _, err := a.store.opened().Stat(ctx, junkKey); err != nil {
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
	putFile(t, a.store.opened(), segs[2].Key, fins[2].Path)
	if _, err := a.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := a.index.Get(segs[2].ID); s.Missing {
		t.Error("missing flag not cleared when the object came back")
	}
}

// noDeleteStore fails the test on any deletion.
type noDeleteStore struct {
	storage.ObjectStore
	t *testing.T
}

func (s noDeleteStore) Delete(_ context.Context, key string) error {
	s.t.Errorf("the agent deleted %s", key)
	return errors.New("deletion refused by the test")
}

// TestLostIndexDeletesNothing is the field failure of a recorder that, started
// with a missing database, deleted every recording not in it: here the index
// file is removed and a whole agent runs on the store (with long expired
// footage in it); it rebuilds the index and deletes nothing.
func TestLostIndexDeletesNothing(t *testing.T) {
	cfg := testConfig(t, config.Camera{ID: "cam", URL: "rtsp://127.0.0.1:1/x"})
	store, err := storefs.Open(cfg.Storage.FS.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	fins := recordSegments(t, 4)
	for _, f := range fins {
		s := f.Segment(cfg.District, "cam")
		putFile(t, store, s.Key, f.Path)
	}
	for _, name := range []string{"missing", "empty"} {
		if name == "empty" {
			if err := os.WriteFile(filepath.Join(cfg.DataDir, "index.db"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		ra := startAgent(t, cfg, Options{Store: noDeleteStore{store, t}})
		agenttest.WaitFor(t, 10*time.Second, "index rebuilt", func() bool {
			n, err := ra.Index().Count()
			return err == nil && n == 4
		})
		ra.stop(t)
		n := 0
		store.List(ctx, "", func(storage.ObjectInfo) error { n++; return nil })
		if n != 4 {
			t.Fatalf("index %s: %d objects left of 4", name, n)
		}
		if err := os.Remove(filepath.Join(cfg.DataDir, "index.db")); err != nil {
			t.Fatal(err)
		}
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

// A spool file that is not a segment is moved aside with an alarm; valid
// leftovers are queued.
func TestRecoverSpoolQuarantinesGarbage(t *testing.T) {
	cfg := testConfig(t, config.Camera{ID: "cam", URL: "rtsp://127.0.0.1:1/x"})
	a, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.closeStorage()
	dir := filepath.Join(a.spoolDir, "cam")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, fmt.Sprintf("%d-%s%s", time.Now().UnixMilli(), storage.NewSegmentID(), segmenter.PartSuffix))
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("junk"), 500), 0o600); err != nil {
		t.Fatal(err)
	}
	fin := recordSegments(t, 1)[0]
	good := filepath.Join(dir, filepath.Base(fin.Path))
	if err := os.Rename(fin.Path, good); err != nil {
		t.Fatal(err)
	}
	a.recoverSpool(a.listSpool())
	if _, err := os.Stat(filepath.Join(cfg.DataDir, quarantineDir, "cam-"+filepath.Base(garbage))); err != nil {
		t.Errorf("garbage not quarantined: %v", err)
	}
	if a.uploads.pending() != 1 || !a.uploads.handling(fin.ID) {
		t.Errorf("valid leftover not queued (pending %d)", a.uploads.pending())
	}
	if !hasAlarm(a, AlarmSpoolRecovery) {
		t.Error("no alarm for the quarantined file")
	}
}

func hasAlarm(a *Agent, code string) bool {
	for _, al := range a.Status().Alarms {
		if al.Code == code {
			return true
		}
	}
	return false
}

// A store that cannot be opened at boot does not stop recording: segments
// wait in the spool, an alarm says so, and they are stored once it answers.
func TestStoreDownAtBoot(t *testing.T) {
	t.Parallel()
	sim := agenttest.StartSim(t, "127.0.0.1:0", clipsNamed(t, "walk")...)
	cfg := testConfig(t, config.Camera{ID: "cam", URL: sim.URL(1), Mode: config.ModeContinuous, MaxLength: config.Duration(2 * time.Second)})
	var mu sync.Mutex
	down := true
	ra := startAgentWith(t, cfg, Options{}, func(a *Agent) {
		real := a.store.open
		a.store = &lazyStore{open: func(ctx context.Context) (storage.ObjectStore, error) {
			mu.Lock()
			defer mu.Unlock()
			if down {
				return nil, errors.New("connection refused")
			}
			return real(ctx)
		}}
	})
	agenttest.WaitFor(t, 20*time.Second, "segments waiting in the spool", func() bool { return ra.Status().Spooled >= 2 })
	if !hasAlarm(ra.Agent, AlarmStoreFailing) {
		t.Error("no alarm while the store is down")
	}
	mu.Lock()
	down = false
	mu.Unlock()
	agenttest.WaitFor(t, 30*time.Second, "spooled segments stored", func() bool {
		return len(ra.segments()) >= 2 && ra.Status().Spooled <= 1
	})
	agenttest.WaitFor(t, 10*time.Second, "alarm cleared", func() bool { return !hasAlarm(ra.Agent, AlarmStoreFailing) })
	for _, s := range ra.segments() {
		checkStoredSegment(t, cfg, s, "h264")
	}
}

// A spool file that vanished is reported once, not retried forever.
func TestVanishedSpoolFile(t *testing.T) {
	cfg := testConfig(t, config.Camera{ID: "cam", URL: "rtsp://127.0.0.1:1/x"})
	ra := startAgent(t, cfg, Options{})
	ra.uploads.enqueue("cam", &segmenter.Finished{ID: storage.NewSegmentID(), Path: filepath.Join(t.TempDir(), "gone.mp4"),
		Start: time.Now(), End: time.Now().Add(time.Second), Codec: "h264"})
	agenttest.WaitFor(t, 5*time.Second, "alarm", func() bool { return hasAlarm(ra.Agent, AlarmSpoolLost) })
	agenttest.WaitFor(t, 5*time.Second, "queue empty", func() bool { return ra.Status().Spooled == 0 })
}
