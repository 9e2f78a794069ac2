package eval

import (
	"strings"
	"testing"

	"github.com/vigil-cctv/vigil/agent/config"
)

// The pixel detector is scored with the settings the agent uses when a
// camera's config says nothing about motion.
func TestPixelDefaultsAreTheAgents(t *testing.T) {
	cfg, err := config.Parse([]byte("district: north\ndata_dir: /d\ncameras:\n  - id: gate\n    url: rtsp://10.0.0.5/s\nstorage: {fs: {path: /f}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Cameras[0].Motion
	if m.Threshold != DefaultPixelThreshold || m.MinArea != DefaultPixelMinArea {
		t.Fatalf("agent defaults threshold %d min area %g; eval uses %d %g", m.Threshold, m.MinArea, DefaultPixelThreshold, DefaultPixelMinArea)
	}
}

func TestLookupDetector(t *testing.T) {
	if d, err := LookupDetector("pixel"); err != nil || d.Name != "pixel" || d.New == nil {
		t.Fatalf("pixel: %+v %v", d, err)
	}
	if _, err := LookupDetector(DefaultDetector); err != nil {
		t.Fatalf("default detector %q not registered: %v", DefaultDetector, err)
	}
	_, err := LookupDetector("Pixel")
	if err == nil || !strings.Contains(err.Error(), `unknown detector "Pixel" (known: pixel)`) {
		t.Fatalf("got %v", err)
	}
	seen := map[string]bool{}
	for _, d := range Detectors() {
		if d.Name == "" || d.New == nil || d.Description == "" || seen[d.Name] {
			t.Errorf("bad registry entry %+v", d)
		}
		seen[d.Name] = true
	}
}
