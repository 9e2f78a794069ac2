package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent/config"
	"github.com/vigil-cctv/vigil/proto/actions"
	"github.com/vigil-cctv/vigil/storage/index"
)

func TestQuarantinedStart(t *testing.T) {
	for name, want := range map[string]struct {
		camera string
		ms     int64
		ok     bool
	}{
		"gate-1764320000123-0123456789abcdef.mp4.part": {"gate", 1764320000123, true},
		"back-door-1764320000123-0123456789abcdef.mp4": {"back-door", 1764320000123, true},
		"junk":                  {"", 0, false},
		"gate-notanumber-x.mp4": {"", 0, false},
	} {
		cam, start, ok := quarantinedStart(name)
		if ok != want.ok || cam != want.camera || (ok && !start.Equal(time.UnixMilli(want.ms))) {
			t.Errorf("%s: %q %v %v", name, cam, start, ok)
		}
	}
}

// Quarantined spool files are footage too: deleted once past retention,
// with an entry in the district log.
func TestQuarantineExpires(t *testing.T) {
	cfg := testConfig(t, config.Camera{ID: "cam", URL: "rtsp://127.0.0.1:1/x", Retention: config.Duration(time.Hour)})
	a, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.closeStorage()
	dir := filepath.Join(cfg.DataDir, quarantineDir)
	os.MkdirAll(dir, 0o700)
	old := fmt.Sprintf("cam-%d-0123456789abcdef.mp4.part", time.Now().Add(-61*time.Minute).UnixMilli())
	recent := fmt.Sprintf("cam-%d-0123456789abcdee.mp4.part", time.Now().Add(-59*time.Minute).UnixMilli())
	for _, n := range []string{old, recent} {
		os.WriteFile(filepath.Join(dir, n), []byte("junk"), 0o600)
	}
	a.sweepQuarantine(context.Background())
	if _, err := os.Stat(filepath.Join(dir, old)); !os.IsNotExist(err) {
		t.Errorf("quarantined file past retention kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, recent)); err != nil {
		t.Errorf("recent quarantined file deleted: %v", err)
	}
	entries, _ := a.index.JournalEntries(1, 10)
	if len(entries) != 1 || entries[0].Action != actions.SegmentDeleted || !strings.Contains(entries[0].Detail, old) {
		t.Fatalf("log %+v", entries)
	}
}

// A segment that waited in the spool past its retention (the store was
// down for days) is destroyed, not stored; one a hold covers is stored.
func TestSpooledPastRetention(t *testing.T) {
	cfg := testConfig(t, config.Camera{ID: "cam", URL: "rtsp://127.0.0.1:1/x", Retention: config.Duration(time.Minute)})
	a, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.closeStorage()
	ctx := context.Background()
	fins := recordSegments(t, 2) // recorded an hour ago
	if err := a.uploads.upload(ctx, &uploadJob{camera: "cam", fin: fins[0]}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fins[0].Path); !os.IsNotExist(err) {
		t.Fatalf("expired spool file kept: %v", err)
	}
	if n, _ := a.index.Count(); n != 0 {
		t.Fatal("expired segment stored")
	}
	entries, _ := a.index.JournalEntries(1, 10)
	if len(entries) != 1 || entries[0].Action != actions.SegmentDeleted || !strings.Contains(entries[0].Detail, "never stored") {
		t.Fatalf("log %+v", entries)
	}
	seg := fins[1].Segment(cfg.District, "cam")
	if _, err := a.holds.Apply(ctx, index.Hold{ID: "h1", District: cfg.District, Cameras: []string{"cam"}, From: seg.Start, To: seg.End}); err != nil {
		t.Fatal(err)
	}
	if err := a.uploads.upload(ctx, &uploadJob{camera: "cam", fin: fins[1]}); err != nil {
		t.Fatal(err)
	}
	got, err := a.index.Get(seg.ID)
	if err != nil || !slices.Equal(got.HeldBy, []string{"h1"}) {
		t.Fatalf("held spooled segment: %+v %v", got, err)
	}
	if on, _ := a.store.opened().LegalHold(ctx, got.Key); !on {
		t.Fatal("held segment stored without the store's legal hold")
	}
}
