package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent/motion"
)

const validYAML = `
district: north
data_dir: /var/lib/vigil
retention: 7d
cameras:
  - id: gate
    url: rtsp://user:hunter2pw@10.0.0.5:554/stream1
    detect_url: rtsp://user:hunter2pw@10.0.0.5:554/stream2
  - id: lobby
    url: rtsp://10.0.0.6/live
    mode: continuous
    transport: tcp
    pre_roll: 3s
    post_roll: 20s
    max_length: 2m
    retention: 2d
storage:
  fs:
    path: /srv/footage
`

func TestParseValid(t *testing.T) {
	cfg, err := Parse([]byte(validYAML))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.District != "north" || len(cfg.Cameras) != 2 {
		t.Fatalf("got %+v", cfg)
	}
	gate, lobby := cfg.Cameras[0], cfg.Cameras[1]
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"retention", cfg.Retention.Std(), 7 * 24 * time.Hour},
		{"gate mode default", gate.Mode, ModeMotion},
		{"gate transport default", gate.Transport, TransportAuto},
		{"gate pre_roll default", gate.PreRoll.Std(), DefaultPreRoll},
		{"gate post_roll default", gate.PostRoll.Std(), DefaultPostRoll},
		{"gate max_length default", gate.MaxLength.Std(), DefaultMaxLength},
		{"gate retention inherits", gate.Retention.Std(), 7 * 24 * time.Hour},
		{"lobby mode", lobby.Mode, ModeContinuous},
		{"lobby transport", lobby.Transport, TransportTCP},
		{"lobby pre_roll", lobby.PreRoll.Std(), 3 * time.Second},
		{"lobby post_roll", lobby.PostRoll.Std(), 20 * time.Second},
		{"lobby max_length", lobby.MaxLength.Std(), 2 * time.Minute},
		{"lobby retention", lobby.Retention.Std(), 48 * time.Hour},
		{"fs path", cfg.Storage.FS.Path, "/srv/footage"},
		{"detector default", gate.Motion.Detector, "hybrid"},
		{"sensitivity default", gate.Motion.Sensitivity, 50},
		{"threshold from sensitivity", gate.Motion.Threshold, 0},
		{"min area default", gate.Motion.MinArea, 0.005},
		{"detect fps default (every frame)", gate.DetectFPS, 0.0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseRetentionDefault(t *testing.T) {
	cfg, err := Parse([]byte(strings.Replace(validYAML, "retention: 7d\n", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Retention.Std() != MaxRetention {
		t.Fatalf("retention default = %s, want 7d", cfg.Retention)
	}
}

// Each bad configuration must fail with one line that names the problem and
// never echoes a camera password.
func TestParseErrors(t *testing.T) {
	cases := []struct {
		name string
		edit func(string) string
		want string
	}{
		{"unknown top key", func(s string) string { return s + "colour: red\n" }, "field colour not found"},
		{"unknown camera key", func(s string) string {
			return strings.Replace(s, "    mode: continuous", "    mode: continuous\n    zoom: 3", 1)
		}, "field zoom not found"},
		{"quota negative", func(s string) string {
			return strings.Replace(s, "    path: /srv/footage\n", "    path: /srv/footage\n  quota_bytes: -5\n", 1)
		}, "quota_bytes: -5 is negative"},
		{"watermark above 1", func(s string) string {
			return strings.Replace(s, "    path: /srv/footage\n", "    path: /srv/footage\n  high_watermark: 90\n", 1)
		}, "watermarks are fractions"},
		{"watermarks inverted", func(s string) string {
			return strings.Replace(s, "    path: /srv/footage\n", "    path: /srv/footage\n  high_watermark: 0.5\n  low_watermark: 0.7\n", 1)
		}, "must be below high_watermark"},
		{"retention 8d", func(s string) string { return strings.Replace(s, "retention: 7d", "retention: 8d", 1) }, "above the legal maximum of 7d"},
		{"retention 169h", func(s string) string { return strings.Replace(s, "retention: 7d", "retention: 169h", 1) }, "above the legal maximum"},
		{"retention 7d1s", func(s string) string { return strings.Replace(s, "retention: 7d", "retention: 7d1s", 1) }, "above the legal maximum"},
		{"camera retention 8d", func(s string) string { return strings.Replace(s, "retention: 2d", "retention: 8d", 1) }, "above the legal maximum"},
		{"retention bare number", func(s string) string { return strings.Replace(s, "retention: 7d", "retention: 7", 1) }, "duration must be a string"},
		{"retention negative", func(s string) string { return strings.Replace(s, "retention: 7d", "retention: -1h", 1) }, "must be positive"},
		{"retention zero", func(s string) string { return strings.Replace(s, "retention: 7d", "retention: 0s", 1) }, "must be above zero"},
		{"pre_roll zero", func(s string) string { return strings.Replace(s, "pre_roll: 3s", "pre_roll: 0d", 1) }, "must be above zero"},
		{"s3 bad bucket", func(s string) string {
			return strings.Replace(s, "  fs:\n    path: /srv/footage\n", "  s3:\n    endpoint: minio:9000\n    bucket: Bad_Bucket\n    access_key: a\n    secret_key: s\n", 1)
		}, "bucket"},
		{"s3 missing secret", func(s string) string {
			return strings.Replace(s, "  fs:\n    path: /srv/footage\n", "  s3:\n    endpoint: minio:9000\n    bucket: footage\n    access_key: a\n", 1)
		}, "secret key is required"},
		{"s3 endpoint with scheme", func(s string) string {
			return strings.Replace(s, "  fs:\n    path: /srv/footage\n", "  s3:\n    endpoint: https://minio:9000\n    bucket: footage\n    access_key: a\n    secret_key: s\n", 1)
		}, "without a scheme"},
		{"retention garbage", func(s string) string { return strings.Replace(s, "retention: 7d", "retention: forever", 1) }, "invalid duration"},
		{"duplicate camera", func(s string) string { return strings.Replace(s, "id: lobby", "id: gate", 1) }, `duplicate camera id "gate"`},
		{"bad url scheme", func(s string) string {
			return strings.Replace(s, "rtsp://10.0.0.6/live", "http://10.0.0.6/live", 1)
		}, "scheme must be rtsp or rtsps"},
		{"url without host", func(s string) string {
			return strings.Replace(s, "rtsp://10.0.0.6/live", "rtsp:///live", 1)
		}, "missing host"},
		{"url bad port", func(s string) string {
			return strings.Replace(s, "rtsp://user:hunter2pw@10.0.0.5:554/stream1", "rtsp://user:hunter2pw@10.0.0.5:99999/stream1", 1)
		}, "bad port"},
		{"url unparsable", func(s string) string {
			return strings.Replace(s, "rtsp://user:hunter2pw@10.0.0.5:554/stream1", "\"rtsp://user:hunter2pw@[::1/x\"", 1)
		}, "not a valid URL"},
		{"bad detect url", func(s string) string {
			return strings.Replace(s, "rtsp://user:hunter2pw@10.0.0.5:554/stream2", "ftp://user:hunter2pw@x/", 1)
		}, "detect_url"},
		{"bad mode", func(s string) string { return strings.Replace(s, "mode: continuous", "mode: always", 1) }, "not one of motion, continuous"},
		{"bad transport", func(s string) string { return strings.Replace(s, "transport: tcp", "transport: sctp", 1) }, "not one of auto, tcp, udp"},
		{"bad camera id", func(s string) string { return strings.Replace(s, "id: lobby", "id: ../etc", 1) }, "camera id"},
		{"bad district", func(s string) string { return strings.Replace(s, "district: north", "district: North/East", 1) }, "district id"},
		{"no district", func(s string) string { return strings.Replace(s, "district: north\n", "", 1) }, "district: required"},
		{"no data dir", func(s string) string { return strings.Replace(s, "data_dir: /var/lib/vigil\n", "", 1) }, "data_dir: required"},
		{"no storage", func(s string) string { return s[:strings.Index(s, "storage:")] }, "storage: set fs or s3"},
		{"both storages", func(s string) string { return s + "  s3:\n    endpoint: x:9000\n" }, "not both"},
		{"huge max_length", func(s string) string { return strings.Replace(s, "max_length: 2m", "max_length: 1h", 1) }, "max_length"},
		{"camera retention longer", func(s string) string {
			s = strings.Replace(s, "retention: 7d", "retention: 1d", 1)
			return s
		}, "longer than the district retention"},
		{"not a map", func(string) string { return "- just\n- a list\n" }, "cannot unmarshal"},
		{"two documents", func(s string) string { return s + "---\ndistrict: south\n" }, "more than one YAML document"},
		{"empty", func(string) string { return "" }, "empty configuration"},
		{"unknown detector", motionEdit("detector: magic"), `motion.detector: unknown detector "magic" (known: hybrid, pixel, compressed)`},
		{"sensitivity and threshold", motionEdit("sensitivity: 60\n      threshold: 20"), "set sensitivity or threshold, not both"},
		{"sensitivity high", motionEdit("sensitivity: 101"), "motion.sensitivity: 101 is not within 1-100"},
		{"sensitivity negative", motionEdit("sensitivity: -1"), "motion.sensitivity"},
		{"sensitivity text", motionEdit("sensitivity: high"), "cannot unmarshal"},
		{"threshold high", motionEdit("threshold: 300"), "motion.threshold: 300 is not within 1-255"},
		{"min area above 1", motionEdit("min_area: 5"), "motion.min_area: 5 is not within (0, 1]"},
		{"min area nan", motionEdit("min_area: .nan"), "motion.min_area: NaN"},
		{"min blob negative", motionEdit("min_blob: -4"), "motion.min_blob: -4"},
		{"mask of two points", motionEdit("masks: [[[0, 0], [10, 10]]]"), "motion.masks[0]: 2 points, want 3-256"},
		{"mask point of three numbers", motionEdit("masks: [[[0, 0, 1], [10, 10], [0, 10]]]"), "motion.masks[0][0]: want [x, y], got 3 numbers"},
		{"mask point negative", motionEdit("masks: [[[0, 0], [10, -1], [0, 10]]]"), "motion.masks[0][1]: coordinate -1 is not within 0-65536 pixels"},
		{"mask point infinite", motionEdit("masks: [[[0, 0], [.inf, 1], [0, 10]]]"), "coordinate +Inf"},
		{"mask not a list", motionEdit("masks: {a: 1}"), "cannot unmarshal"},
		{"masks with compressed", motionEdit("detector: compressed\n      masks: [[[0, 0], [10, 0], [0, 10]]]"), "motion.masks: the compressed detector cannot apply masks"},
		{"detect fps negative", func(s string) string {
			return strings.Replace(s, "    mode: continuous", "    mode: continuous\n    detect_fps: -2", 1)
		}, "detect_fps: -2 is not within 0-120"},
		{"detect fps huge", func(s string) string {
			return strings.Replace(s, "    mode: continuous", "    mode: continuous\n    detect_fps: 1000", 1)
		}, "detect_fps: 1000"},
		{"no cameras", func(s string) string {
			return "district: north\ndata_dir: /x\nstorage:\n  fs:\n    path: /y\n"
		}, "at least one camera"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.edit(validYAML)))
			if err == nil {
				t.Fatalf("accepted; want error containing %q", c.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) {
				t.Fatalf("error %q does not contain %q", msg, c.want)
			}
			if strings.Contains(msg, "\n") {
				t.Fatalf("error is not one line: %q", msg)
			}
			if strings.Contains(msg, "hunter2pw") {
				t.Fatalf("error leaks the camera password: %q", msg)
			}
		})
	}
}

func TestLoadNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(path, []byte("district: north\nretention: 8d\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v does not name the file", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestDuration(t *testing.T) {
	good := map[string]time.Duration{
		"7d": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour, "90s": 90 * time.Second,
		"3m": 3 * time.Minute, "0d": 0, "1h30m": 90 * time.Minute,
	}
	for in, want := range good {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "7", "xd", "1d-1h", "7dd", "1.5d", "99999999d"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) accepted", in)
		}
	}
	if s := Duration(7 * 24 * time.Hour).String(); s != "7d" {
		t.Errorf("String = %q", s)
	}
	if s := Duration(36 * time.Hour).String(); s != "1d12h0m0s" {
		t.Errorf("String = %q", s)
	}
}

func TestCameraByID(t *testing.T) {
	cfg, err := Parse([]byte(validYAML))
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := cfg.CameraByID("lobby"); !ok || c.Mode != ModeContinuous {
		t.Fatal("lobby not found")
	}
	if _, ok := cfg.CameraByID("nope"); ok {
		t.Fatal("found a camera that does not exist")
	}
}

// The example shipped to operators must stay a valid configuration.
func TestDeployExampleParses(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "..", "deploy", "agent.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Cameras) == 0 || cfg.Retention.Std() != MaxRetention {
		t.Fatalf("example parsed as %+v", cfg)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	cfg, err := Parse([]byte(validYAML))
	if err != nil {
		t.Fatal(err)
	}
	data, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(data)
	if err != nil {
		t.Fatalf("marshalled config does not load: %v\n%s", err, data)
	}
	if !reflect.DeepEqual(cfg, again) {
		t.Fatalf("round trip changed the config:\n%+v\n%+v", cfg, again)
	}
}

// motionEdit adds lines to the lobby camera's motion section.
func motionEdit(lines string) func(string) string {
	return func(s string) string {
		return strings.Replace(s, "    mode: continuous", "    mode: continuous\n    motion:\n      "+lines, 1)
	}
}

// The motion settings reach the detector's configuration: masks in pixels
// of the detect stream, the detect rate, sensitivity or threshold.
func TestMotionConfig(t *testing.T) {
	cfg, err := Parse([]byte(strings.Replace(validYAML, "    detect_url: rtsp://user:hunter2pw@10.0.0.5:554/stream2\n",
		`    detect_url: rtsp://user:hunter2pw@10.0.0.5:554/stream2
    detect_fps: 5
    motion:
      detector: pixel
      threshold: 18
      min_area: 0.01
      min_blob: 150
      masks:
        - [[0, 0], [320, 0], [320, 40.5], [0, 40]]
        - [[600, 300], [640, 300], [640, 360]]
`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Cameras[0].MotionConfig()
	want := motion.Config{
		Name: "gate", Detector: motion.KindPixel, Threshold: 18, MinArea: 0.01, MinBlob: 150, FPS: 5,
		Masks: [][]motion.MaskPoint{{{X: 0, Y: 0}, {X: 320, Y: 0}, {X: 320, Y: 40.5}, {X: 0, Y: 40}}, {{X: 600, Y: 300}, {X: 640, Y: 300}, {X: 640, Y: 360}}},
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("got %+v\nwant %+v", m, want)
	}
	m.OnFrame = func(time.Time, float64, bool) {}
	if err := m.CheckAndSetDefaults(); err != nil {
		t.Fatalf("the detector refuses what the config accepted: %v", err)
	}
	// What is written back reads the same.
	data, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(data)
	if err != nil {
		t.Fatalf("marshalled config does not parse: %v\n%s", err, data)
	}
	if !reflect.DeepEqual(again.Cameras, cfg.Cameras) {
		t.Fatalf("round trip changed the cameras:\n%+v\n%+v", again.Cameras, cfg.Cameras)
	}
	// Sensitivity alone is the default knob.
	lobby := cfg.Cameras[1].MotionConfig()
	if lobby.Detector != motion.DefaultKind || lobby.Sensitivity != motion.DefaultSensitivity || lobby.Threshold != 0 {
		t.Errorf("lobby %+v", lobby)
	}
}
