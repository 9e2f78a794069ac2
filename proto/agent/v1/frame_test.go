package agentv1

import (
	"bytes"
	"testing"
)

func TestNALUFraming(t *testing.T) {
	in := [][]byte{{0x65, 1, 2, 3}, {0x41}, bytes.Repeat([]byte{7}, 70000)}
	out, err := SplitNALUs(AppendNALUs(nil, in))
	if err != nil || len(out) != 3 || !bytes.Equal(out[2], in[2]) || !bytes.Equal(out[0], in[0]) {
		t.Fatalf("round trip: %v %d", err, len(out))
	}
	for _, bad := range [][]byte{{0, 0}, {0, 0, 0, 5, 1}, {0, 0, 0, 0}, {0xff, 0xff, 0xff, 0xff, 1}} {
		if _, err := SplitNALUs(bad); err == nil {
			t.Errorf("%x accepted", bad)
		}
	}
	if out, err := SplitNALUs(nil); err != nil || len(out) != 0 {
		t.Errorf("empty payload: %v %v", out, err)
	}
}

// FuzzSplitNALUs: any payload either splits into NAL units that join back
// to it, or is refused.
func FuzzSplitNALUs(f *testing.F) {
	f.Add(AppendNALUs(nil, [][]byte{{1, 2}, {3}}))
	f.Add([]byte{0, 0, 0, 9, 1})
	f.Fuzz(func(t *testing.T, payload []byte) {
		nalus, err := SplitNALUs(payload)
		if err != nil {
			return
		}
		if !bytes.Equal(AppendNALUs(nil, nalus), payload) {
			t.Fatalf("%x split into NAL units that do not join back", payload)
		}
	})
}
