package config

import (
	"strings"
	"testing"
	"time"
)

// FuzzParse checks that no input panics the parser, that errors are one line,
// and that whatever is accepted respects the legal retention maximum.
func FuzzParse(f *testing.F) {
	f.Add([]byte(validYAML))
	f.Add([]byte("district: a\ndata_dir: /d\nretention: 8d\ncameras: []\n"))
	f.Add([]byte("cameras:\n  - id: x\n    url: rtsp://h/\nstorage: {s3: {endpoint: h:1, bucket: b, access_key: a, secret_key: s}}\n"))
	f.Add([]byte("{{{{"))
	f.Add([]byte("retention: 99999999999999d"))
	f.Add([]byte(strings.Replace(validYAML, "    mode: continuous", "    mode: continuous\n    detect_fps: 2.5\n    motion: {detector: pixel, sensitivity: 70, min_blob: 30, masks: [[[0, 0], [9, 0], [9, 9]]]}", 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		if cfg.Retention.Std() > MaxRetention || cfg.Retention.Std() < time.Minute {
			t.Fatalf("accepted retention %s", cfg.Retention)
		}
		for _, c := range cfg.Cameras {
			if c.Retention.Std() > cfg.Retention.Std() {
				t.Fatalf("camera %s retention %s above district", c.ID, c.Retention)
			}
			if c.Mode != ModeMotion && c.Mode != ModeContinuous {
				t.Fatalf("accepted mode %q", c.Mode)
			}
			// Whatever motion settings are accepted, the detector takes.
			m := c.MotionConfig()
			m.OnFrame = func(time.Time, float64, bool) {}
			if err := m.CheckAndSetDefaults(); err != nil {
				t.Fatalf("camera %s: accepted motion settings the detector refuses: %v", c.ID, err)
			}
		}
		if (cfg.Storage.FS == nil) == (cfg.Storage.S3 == nil) {
			t.Fatal("accepted a config without exactly one store")
		}
	})
}
