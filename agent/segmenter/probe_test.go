package segmenter

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// crashAfter writes n units of a continuous recording and abandons the
// segment without finishing it, as a kill -9 would.
func crashAfter(t *testing.T, n int) (spool string, part string) {
	t.Helper()
	s, col := newTestSegmenter(t, Continuous, 0, 0, time.Minute)
	for _, au := range clipUnits(t, mustClip(t, "walk"), 1, time.Now())[:n] {
		if err := s.WriteAccessUnit(au); err != nil {
			t.Fatal(err)
		}
	}
	if len(col.segs) != 0 {
		t.Fatal("segment finished early")
	}
	names := sortedSpool(t, s.cfg.SpoolDir)
	if len(names) != 1 || !strings.HasSuffix(names[0], PartSuffix) {
		t.Fatalf("spool: %v", names)
	}
	return s.cfg.SpoolDir, filepath.Join(s.cfg.SpoolDir, names[0])
}

func TestRecoverAfterCrash(t *testing.T) {
	spool, part := crashAfter(t, 260) // 10.4 s: ten fsynced 1 s fragments
	fin, err := RecoverFile(part)
	if err != nil {
		t.Fatal(err)
	}
	if fin == nil || !fin.Recovered {
		t.Fatalf("recovered %+v", fin)
	}
	// Ten complete GOPs survive; the unit held back and the open fragment
	// are the "last second or so" that a crash may cost.
	if fin.Samples != 250 {
		t.Errorf("recovered %d samples, want 250", fin.Samples)
	}
	r := checkPlayable(t, fin, "h264")
	if r.Duration < 9900*time.Millisecond {
		t.Errorf("recovered %v of video", r.Duration)
	}
	names := sortedSpool(t, spool)
	if len(names) != 1 || !strings.HasSuffix(names[0], CompleteSuffix) || strings.HasSuffix(names[0], PartSuffix) {
		t.Fatalf("spool after recovery: %v", names)
	}
	// Recovering the complete file again describes it identically.
	again, err := RecoverFile(fin.Path)
	if err != nil {
		t.Fatal(err)
	}
	if again.SHA256 != fin.SHA256 || again.Recovered || !again.End.Equal(fin.End) {
		t.Fatalf("second recovery differs: %+v vs %+v", again, fin)
	}
}

func TestRecoverTruncatedFiles(t *testing.T) {
	s, col := newTestSegmenter(t, Continuous, 0, 0, time.Minute)
	for _, au := range clipUnits(t, mustClip(t, "walk"), 1, time.Now())[:300] {
		s.WriteAccessUnit(au)
	}
	s.Close()
	data, err := os.ReadFile(col.segs[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	start, id, _, err := SpoolName(col.segs[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, cut := range []int{0, 10, 100, len(data) / 13, len(data) / 7, len(data) / 3, len(data) / 2, len(data) - 1} {
		path := filepath.Join(dir, spoolFileName(start, id, true))
		if err := os.WriteFile(path, data[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		fin, err := RecoverFile(path)
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if fin == nil {
			// Only acceptable when not one fragment was complete.
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatalf("cut at %d: empty file not removed", cut)
			}
			if cut > len(data)/7 {
				t.Fatalf("cut at %d of %d: nothing recovered", cut, len(data))
			}
			continue
		}
		checkPlayable(t, fin, "h264")
		if fin.End.After(col.segs[0].End) {
			t.Fatalf("cut at %d: recovered more than was written", cut)
		}
		os.Remove(fin.Path)
	}
}

func TestRecoverRefusesGarbage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, spoolFileName(time.Now(), "0123456789abcdef", true))
	garbage := bytes.Repeat([]byte("not a video "), 1000)
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := RecoverFile(path); err == nil {
		t.Fatal("garbage recovered")
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, garbage) {
		t.Fatal("garbage file was modified")
	}
	for _, name := range []string{"x.mp4", "123-abc.mp4", "abc-0123456789abcdef.mp4", "123-0123456789abcdef.txt", "-1-0123456789abcdef.mp4"} {
		if _, err := RecoverFile(filepath.Join(dir, name)); err == nil {
			t.Errorf("accepted name %q", name)
		}
	}
}

func TestProbeRejectsOtherFiles(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":   nil,
		"text":    []byte("hello world, this is not an mp4 file"),
		"ftyp":    {0, 0, 0, 16, 'f', 't', 'y', 'p', 'i', 's', 'o', 'm', 0, 0, 0, 1},
		"hugebox": {0xff, 0xff, 0xff, 0xff, 'm', 'o', 'o', 'v'},
	} {
		if _, err := Probe(bytes.NewReader(data), int64(len(data))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzProbe(f *testing.F) {
	s, err := New(Config{Camera: "f", Mode: Continuous, MaxLength: time.Minute, SpoolDir: f.TempDir(), OnSegment: func(fin *Finished) {
		data, err := os.ReadFile(fin.Path)
		if err == nil {
			f.Add(data[:min(len(data), 4096)])
			f.Add(data)
		}
	}})
	if err != nil {
		f.Fatal(err)
	}
	for _, au := range clipUnits(f, mustClip(f, "walk"), 1, time.Now())[:60] {
		s.WriteAccessUnit(au)
	}
	s.Close()
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := Probe(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		if info.ValidSize > int64(len(data)) || info.Samples <= 0 || info.Duration < 0 {
			t.Fatalf("inconsistent info %+v for %d bytes", info, len(data))
		}
	})
}

func TestProbeHashesValidPrefixAndClassifiesErrors(t *testing.T) {
	s, col := newTestSegmenter(t, Continuous, 0, 0, time.Minute)
	for _, au := range clipUnits(t, mustClip(t, "walk"), 1, time.Now())[:120] {
		s.WriteAccessUnit(au)
	}
	s.Close()
	data, err := os.ReadFile(col.segs[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := Probe(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if info.SHA256 != col.segs[0].SHA256 || !info.Complete {
		t.Fatalf("probe hash %s, writer hash %s", info.SHA256, col.segs[0].SHA256)
	}
	withTail := append(append([]byte(nil), data...), "garbage after a crash"...)
	info, err = Probe(bytes.NewReader(withTail), int64(len(withTail)))
	if err != nil || info.SHA256 != col.segs[0].SHA256 || info.Complete || info.ValidSize != int64(len(data)) {
		t.Fatalf("with a tail: %+v %v", info, err)
	}
	text := []byte("definitely not a video file at all")
	if _, err := Probe(bytes.NewReader(text), int64(len(text))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("garbage: %v, want ErrCorrupt", err)
	}
	if _, err := Probe(bytes.NewReader(data[:40]), 40); !errors.Is(err, ErrNoFootage) {
		t.Fatalf("torn init: %v, want ErrNoFootage", err)
	}
}
