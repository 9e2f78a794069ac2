package eval

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent/config"
	"github.com/vigil-cctv/vigil/agent/motion"
)

// Detectors are scored with the settings the agent uses when a camera's
// config says nothing about motion.
func TestDefaultsAreTheAgents(t *testing.T) {
	cfg, err := config.Parse([]byte("district: north\ndata_dir: /d\ncameras:\n  - id: gate\n    url: rtsp://10.0.0.5/s\nstorage: {fs: {path: /f}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	agent := cfg.Cameras[0].MotionConfig()
	if string(agent.Detector) != DefaultDetector {
		t.Fatalf("agent's default detector %q, eval's %q", agent.Detector, DefaultDetector)
	}
	noop := func(time.Time, float64, bool) {}
	scored := AgentConfig(agent.Detector)
	for _, c := range []*motion.Config{&agent, &scored} {
		c.Name, c.OnFrame = "", noop
		if err := c.CheckAndSetDefaults(); err != nil {
			t.Fatal(err)
		}
		c.OnFrame, c.Logger = nil, nil
	}
	if !reflect.DeepEqual(agent, scored) {
		t.Fatalf("agent's settings\n%+v\nscored\n%+v", agent, scored)
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
	if err == nil || !strings.Contains(err.Error(), `unknown detector "Pixel" (known: compressed, hybrid, pixel)`) {
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
