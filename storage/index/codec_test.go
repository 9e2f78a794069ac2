package index

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/storage"
)

// TestCodecCoversSegment fails when storage.Segment gains a field, so that
// whoever adds it also teaches encodeSegment and decodeSegment about it
// (and bumps the record format if old records must still decode).
func TestCodecCoversSegment(t *testing.T) {
	const known = 14
	if n := reflect.TypeFor[storage.Segment]().NumField(); n != known {
		t.Fatalf("storage.Segment has %d fields, the record codec knows %d: extend codec.go", n, known)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    storage.Segment
	}{
		{"zero", storage.Segment{Start: time.Unix(0, 0), End: time.Unix(0, 0), Expires: time.Unix(0, 0)}},
		{"full", func() storage.Segment {
			s := *seg(segID(7), "d/c", t0, 59*time.Second+time.Nanosecond)
			s.HeldBy = []string{"a", "", "ccc"}
			s.Missing, s.Recovered = true, true
			s.MotionScore = math.Inf(-1)
			return s
		}()},
		{"extremes", storage.Segment{
			ID: string([]byte{0, 0xff}), Bytes: math.MaxInt64, MotionScore: -0.0,
			Start: time.Unix(0, math.MaxInt64), End: time.Unix(0, math.MinInt64), Expires: time.Unix(0, 1),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := encodeSegment(&tc.s)
			got, err := decodeSegment(b)
			if err != nil {
				t.Fatal(err)
			}
			assertSame(t, got, tc.s)
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	valid := encodeSegment(seg(segID(1), "d/c", t0, time.Minute))
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown format", append([]byte{2}, valid[1:]...)},
		{"truncated", valid[:len(valid)-1]},
		{"trailing byte", append(bytes.Clone(valid), 0)},
		{"unknown flag", func() []byte { b := bytes.Clone(valid); b[len(b)-2] = 0x80; return b }()},
		{"huge hold count", append(bytes.Clone(valid[:len(valid)-1]), 0xff, 0xff, 0xff, 0xff, 0x0f)},
		{"string past end", []byte{1, 0x7f, 'a'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := decodeSegment(tc.b); !errors.Is(err, errRecord) {
				t.Errorf("decode = %+v, %v; want errRecord", s, err)
			}
		})
	}
}

// FuzzDecodeSegment feeds arbitrary bytes, as a damaged file would, to the
// record decoder: it must fail cleanly, and whatever it accepts must
// survive an encode/decode round trip unchanged.
func FuzzDecodeSegment(f *testing.F) {
	full := *seg(segID(1), "d/c", t0, time.Minute)
	full.HeldBy = []string{"h1", "h2"}
	full.Missing = true
	f.Add(encodeSegment(&full))
	f.Add(encodeSegment(&storage.Segment{}))
	f.Add([]byte{1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeSegment(b)
		if err != nil {
			return
		}
		// Compared as bytes: a NaN motion score is not equal to itself.
		enc := encodeSegment(&s)
		again, err := decodeSegment(enc)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !bytes.Equal(encodeSegment(&again), enc) {
			t.Fatalf("round trip changed the segment:\n%+v\n%+v", s, again)
		}
	})
}

// BenchmarkDecode compares the record format with the JSON it replaced.
func BenchmarkDecode(b *testing.B) {
	s := *seg(segID(1), "district-1/camera-01", t0, time.Minute)
	s.HeldBy = []string{"hold-1"}
	bin := encodeSegment(&s)
	js, err := json.Marshal(&s)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("binary", func(b *testing.B) {
		b.ReportMetric(float64(len(bin)), "bytes/record")
		for b.Loop() {
			if _, err := decodeSegment(bin); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportMetric(float64(len(js)), "bytes/record")
		for b.Loop() {
			var out storage.Segment
			if err := json.Unmarshal(js, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
