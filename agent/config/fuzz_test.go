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
		}
		if (cfg.Storage.FS == nil) == (cfg.Storage.S3 == nil) {
			t.Fatal("accepted a config without exactly one store")
		}
	})
}
