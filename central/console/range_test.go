package console

import (
	"testing"
)

func TestParseRange(t *testing.T) {
	const size = 1000
	for _, c := range []struct {
		h              string
		offset, length int64
		partial, ok    bool
	}{
		{"", 0, size, false, true},
		{"bytes=0-", 0, size, true, true},
		{"bytes=0-99", 0, 100, true, true},
		{"bytes=990-2000", 990, 10, true, true},
		{"bytes=-10", 990, 10, true, true},
		{"bytes=-5000", 0, size, true, true},
		{"bytes=999-999", 999, 1, true, true},
		{"bytes=1000-", 0, 0, false, false},
		{"bytes=5-4", 0, 0, false, false},
		{"bytes=-0", 0, 0, false, false},
		{"bytes=0-1,3-4", 0, 0, false, false},
		{"bytes=a-b", 0, 0, false, false},
		{"bytes=", 0, 0, false, false},
		{"bits=0-1", 0, 0, false, false},
		{"bytes=-", 0, 0, false, false},
		{"bytes=-1-2", 0, 0, false, false},
		{"bytes=99999999999999999999-", 0, 0, false, false},
	} {
		off, n, partial, err := parseRange(c.h, size)
		if (err == nil) != c.ok || c.ok && (off != c.offset || n != c.length || partial != c.partial) {
			t.Errorf("%q: %d+%d partial %v err %v; want %d+%d partial %v ok %v", c.h, off, n, partial, err, c.offset, c.length, c.partial, c.ok)
		}
	}
}

// FuzzParseRange: whatever a browser or an attacker sends as Range, the
// answer is an error or a range inside the object.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"", "bytes=0-", "bytes=-10", "bytes=5-9", "bytes=0-1,2-3", "bytes=9223372036854775807-"} {
		f.Add(s, int64(1000))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size <= 0 || size > 1<<40 {
			return
		}
		off, n, _, err := parseRange(h, size)
		if err != nil {
			return
		}
		if off < 0 || n <= 0 || off+n > size {
			t.Fatalf("%q on %d bytes: range %d+%d outside the object", h, size, off, n)
		}
	})
}

func TestSplitCamera(t *testing.T) {
	for in, ok := range map[string]bool{
		"north/cam1": true, "north": false, "/cam1": false, "north/": false,
		"north/cam1/x": false, "../x/cam": false, "nörth/cam1": false, "": false,
	} {
		if _, _, got := splitCamera(in); got != ok {
			t.Errorf("splitCamera(%q) ok=%v, want %v", in, got, ok)
		}
	}
}
