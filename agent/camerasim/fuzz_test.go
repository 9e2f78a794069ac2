package camerasim

import (
	"os"
	"testing"
)

// FuzzParseFMP4 feeds the direct fMP4 reader arbitrary bytes: users bring
// their own clips, and a damaged one must give an error, never a panic.
func FuzzParseFMP4(f *testing.F) {
	for _, name := range []string{"clips/walk-bframes.mp4", "clips/walk-h265.mp4"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data[:min(len(data), 2500)])
	}
	f.Add([]byte("\x00\x00\x00\x08moof"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, _, err := parseFMP4("fuzz", data)
		if err == nil && (len(c.AccessUnits) == 0 || c.Duration <= 0 || !c.AccessUnits[0].Key) {
			t.Fatalf("accepted a clip without playable frames: %d units, %v", len(c.AccessUnits), c.Duration)
		}
	})
}
