// Package config loads and validates the district agent's YAML
// configuration. Loading is strict: unknown keys, a retention above the legal
// maximum of seven days, duplicate camera ids and malformed camera URLs are
// refused with one clear line, before anything is started.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-cctv/vigil/agent/motion"
	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/s3"
)

// MaxRetention is the legal maximum: footage older than this is destroyed
// unless a judicial hold covers it. A longer retention is refused at load.
const MaxRetention = 7 * 24 * time.Hour

// Defaults applied by CheckAndSetDefaults.
const (
	DefaultPreRoll   = 5 * time.Second
	DefaultPostRoll  = 10 * time.Second
	DefaultMaxLength = 60 * time.Second
	// MaxSegmentLength bounds max_length: a segment is the unit of deletion,
	// so a huge one would keep footage past its expiry for too long.
	MaxSegmentLength = 10 * time.Minute
	maxRoll          = 60 * time.Second
)

// Mode is a camera's recording mode.
type Mode string

// Recording modes.
const (
	ModeMotion     Mode = "motion"
	ModeContinuous Mode = "continuous"
)

// Transport is the RTSP transport used to reach a camera.
type Transport string

// RTSP transports. Auto tries UDP first and falls back to TCP.
const (
	TransportAuto Transport = "auto"
	TransportTCP  Transport = "tcp"
	TransportUDP  Transport = "udp"
)

// Config is the agent's configuration file.
type Config struct {
	// District is this agent's district id; it prefixes every object key.
	District string `yaml:"district"`
	// DataDir holds the index, the spool of segments being written and the
	// agent's local state.
	DataDir string `yaml:"data_dir"`
	// Retention is how long footage is kept (default and maximum 7d).
	Retention Duration `yaml:"retention"`
	Cameras   []Camera `yaml:"cameras"`
	Storage   Storage  `yaml:"storage"`
}

// Camera is one RTSP camera of the district.
type Camera struct {
	ID  string `yaml:"id"`
	URL string `yaml:"url"`
	// DetectURL is an optional low-resolution stream used only for motion
	// detection; the main stream is what is recorded.
	DetectURL string `yaml:"detect_url,omitempty"`
	// DetectFPS caps the frames per second the motion detector analyses
	// (0: every frame decoded). Decoding is not reduced: predicted frames
	// need the ones before them; set the camera's detect stream to a lower
	// rate for that.
	DetectFPS float64   `yaml:"detect_fps,omitempty"`
	Mode      Mode      `yaml:"mode"`
	Transport Transport `yaml:"transport"`
	PreRoll   Duration  `yaml:"pre_roll"`
	PostRoll  Duration  `yaml:"post_roll"`
	MaxLength Duration  `yaml:"max_length"`
	// Retention, when set, shortens the district retention for this camera.
	Retention Duration `yaml:"retention"`
	Motion    Motion   `yaml:"motion"`
}

// Motion tunes the motion detector of a camera (see package motion).
type Motion struct {
	// Detector is hybrid (the default), pixel or compressed.
	Detector string `yaml:"detector,omitempty"`
	// Sensitivity, 1-100 (default 50): higher sees smaller changes. It
	// sets the per-pixel threshold, unless Threshold is given instead.
	Sensitivity int `yaml:"sensitivity,omitempty"`
	// Threshold is the per-pixel difference (1-255) from the background
	// that counts as changed; for experts, instead of Sensitivity.
	Threshold int `yaml:"threshold,omitempty"`
	// MinArea is the fraction of the picture (0-1) whose change is motion
	// however broken up (rain, snow, a crowd).
	MinArea float64 `yaml:"min_area"`
	// MinBlob is the least area, in pixels of the detect stream's picture,
	// of one moving object (0: about a distant person, 0.08% of the
	// picture).
	MinBlob int `yaml:"min_blob,omitempty"`
	// Masks are polygons, [[x, y], …] in pixels of the detect stream's
	// picture (the main stream's without a detect_url), inside which
	// nothing counts as motion.
	Masks []Polygon `yaml:"masks,omitempty"`
}

// Polygon is a list of [x, y] points.
type Polygon [][]float64

// maxMinBlob bounds min_blob: a 4K picture has 8.3 million pixels.
const maxMinBlob = 1 << 24

// Storage selects exactly one object store.
type Storage struct {
	FS *FSStorage `yaml:"fs,omitempty"`
	S3 *S3Storage `yaml:"s3,omitempty"`
	// QuotaBytes caps what the district's footage may take. Required for
	// disk-pressure shedding on s3; on fs the filesystem's own size and
	// free space are used when it is zero.
	QuotaBytes int64 `yaml:"quota_bytes,omitempty"`
	// HighWatermark and LowWatermark are fractions of the capacity: above
	// the high one the oldest unheld footage is deleted early, down to the
	// low one (defaults 0.90 and 0.85).
	HighWatermark float64 `yaml:"high_watermark,omitempty"`
	LowWatermark  float64 `yaml:"low_watermark,omitempty"`
}

// FSStorage is the embedded filesystem store.
type FSStorage struct {
	Path string `yaml:"path"`
}

// S3Storage is an S3-compatible store with Object Lock (MinIO or a service).
type S3Storage struct {
	Endpoint  string `yaml:"endpoint"`
	Bucket    string `yaml:"bucket"`
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
	TLS       bool   `yaml:"tls,omitempty"`
	Region    string `yaml:"region,omitempty"`
}

// StoreConfig is the s3 store's configuration.
func (s *S3Storage) StoreConfig() s3.Config {
	return s3.Config{Endpoint: s.Endpoint, Bucket: s.Bucket, AccessKey: s.AccessKey, SecretKey: s.SecretKey, TLS: s.TLS, Region: s.Region}
}

// Load reads and validates the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML strictly and validates the result, applying defaults.
func Parse(data []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty configuration")
		}
		return nil, fmt.Errorf("%s", oneLine(err.Error()))
	}
	// A second document would be silently ignored: refuse it.
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// oneLine folds yaml.v3's multi-line type errors into one line.
func oneLine(s string) string {
	s = strings.TrimPrefix(s, "yaml: ")
	s = strings.ReplaceAll(s, "unmarshal errors:\n  ", "")
	return strings.Join(strings.Fields(s), " ")
}

// CheckAndSetDefaults validates the configuration and fills in defaults. The
// first problem found is returned as one clear line.
func (c *Config) CheckAndSetDefaults() error {
	if c.District == "" {
		return errors.New("district: required")
	}
	if err := storage.ValidateName("district", c.District); err != nil {
		return fmt.Errorf("district: %w", err)
	}
	if c.DataDir == "" {
		return errors.New("data_dir: required")
	}
	c.DataDir = filepath.Clean(c.DataDir)
	if c.Retention == 0 {
		c.Retention = Duration(MaxRetention)
	}
	if err := checkRetention("retention", c.Retention); err != nil {
		return err
	}
	if len(c.Cameras) == 0 {
		return errors.New("cameras: at least one camera is required")
	}
	seen := make(map[string]bool, len(c.Cameras))
	for i := range c.Cameras {
		cam := &c.Cameras[i]
		if err := cam.checkAndSetDefaults(c.Retention); err != nil {
			if cam.ID != "" {
				return fmt.Errorf("cameras[%d] (%s): %w", i, cam.ID, err)
			}
			return fmt.Errorf("cameras[%d]: %w", i, err)
		}
		if seen[cam.ID] {
			return fmt.Errorf("cameras[%d]: duplicate camera id %q", i, cam.ID)
		}
		seen[cam.ID] = true
	}
	return c.Storage.check()
}

func checkRetention(field string, d Duration) error {
	switch {
	case d < 0:
		return fmt.Errorf("%s: must be positive, got %s", field, d)
	case time.Duration(d) > MaxRetention:
		return fmt.Errorf("%s: %s is above the legal maximum of 7d", field, d)
	case time.Duration(d) < time.Minute:
		return fmt.Errorf("%s: %s is below the minimum of 1m", field, d)
	}
	return nil
}

func (cam *Camera) checkAndSetDefaults(districtRetention Duration) error {
	if cam.ID == "" {
		return errors.New("id: required")
	}
	if err := storage.ValidateName("camera", cam.ID); err != nil {
		return err
	}
	if err := checkCameraURL("url", cam.URL, true); err != nil {
		return err
	}
	if err := checkCameraURL("detect_url", cam.DetectURL, false); err != nil {
		return err
	}
	switch cam.Mode {
	case "":
		cam.Mode = ModeMotion
	case ModeMotion, ModeContinuous:
	default:
		return fmt.Errorf("mode: %q is not one of motion, continuous", cam.Mode)
	}
	switch cam.Transport {
	case "":
		cam.Transport = TransportAuto
	case TransportAuto, TransportTCP, TransportUDP:
	default:
		return fmt.Errorf("transport: %q is not one of auto, tcp, udp", cam.Transport)
	}
	if err := defaultDuration("pre_roll", &cam.PreRoll, DefaultPreRoll, 0, maxRoll); err != nil {
		return err
	}
	if err := defaultDuration("post_roll", &cam.PostRoll, DefaultPostRoll, 0, maxRoll); err != nil {
		return err
	}
	if err := defaultDuration("max_length", &cam.MaxLength, DefaultMaxLength, time.Second, MaxSegmentLength); err != nil {
		return err
	}
	if cam.Retention == 0 {
		cam.Retention = districtRetention
	}
	if err := checkRetention("retention", cam.Retention); err != nil {
		return err
	}
	if cam.Retention > districtRetention {
		return fmt.Errorf("retention: %s is longer than the district retention %s", cam.Retention, districtRetention)
	}
	if !(cam.DetectFPS >= 0 && cam.DetectFPS <= motion.MaxFPS) {
		return fmt.Errorf("detect_fps: %g is not within 0-%d (0: every frame)", cam.DetectFPS, motion.MaxFPS)
	}
	return cam.Motion.checkAndSetDefaults()
}

func (m *Motion) checkAndSetDefaults() error {
	if m.Detector == "" {
		m.Detector = string(motion.DefaultKind)
	}
	kind, err := motion.ParseKind(m.Detector)
	if err != nil {
		return fmt.Errorf("motion.detector: %w", err)
	}
	switch {
	case m.Sensitivity != 0 && m.Threshold != 0:
		return errors.New("motion: set sensitivity or threshold, not both")
	case m.Sensitivity == 0 && m.Threshold == 0:
		m.Sensitivity = motion.DefaultSensitivity
	}
	if m.Sensitivity < 0 || m.Sensitivity > 100 {
		return fmt.Errorf("motion.sensitivity: %d is not within 1-100", m.Sensitivity)
	}
	if m.Threshold < 0 || m.Threshold > 255 {
		return fmt.Errorf("motion.threshold: %d is not within 1-255", m.Threshold)
	}
	if m.MinArea == 0 {
		m.MinArea = motion.DefaultMinArea
	}
	if !(m.MinArea > 0 && m.MinArea <= 1) {
		return fmt.Errorf("motion.min_area: %g is not within (0, 1]", m.MinArea)
	}
	if m.MinBlob < 0 || m.MinBlob > maxMinBlob {
		return fmt.Errorf("motion.min_blob: %d is not within 0-%d pixels", m.MinBlob, maxMinBlob)
	}
	if len(m.Masks) > 0 && kind == motion.KindCompressed {
		return fmt.Errorf("motion.masks: the %s detector cannot apply masks; use %s or %s", kind, motion.KindHybrid, motion.KindPixel)
	}
	if len(m.Masks) > motion.MaxMasks {
		return fmt.Errorf("motion.masks: %d polygons, at most %d", len(m.Masks), motion.MaxMasks)
	}
	for i, poly := range m.Masks {
		if len(poly) < 3 || len(poly) > motion.MaxMaskPoints {
			return fmt.Errorf("motion.masks[%d]: %d points, want 3-%d", i, len(poly), motion.MaxMaskPoints)
		}
		for j, pt := range poly {
			if len(pt) != 2 {
				return fmt.Errorf("motion.masks[%d][%d]: want [x, y], got %d numbers", i, j, len(pt))
			}
			for _, v := range pt {
				if !(v >= 0 && v <= motion.MaxMaskCoord) {
					return fmt.Errorf("motion.masks[%d][%d]: coordinate %g is not within 0-%d pixels", i, j, v, motion.MaxMaskCoord)
				}
			}
		}
	}
	return nil
}

// MotionConfig returns the camera's motion detector settings; the caller
// adds where verdicts go and how to decode.
func (cam *Camera) MotionConfig() motion.Config {
	m := cam.Motion
	cfg := motion.Config{
		Name: cam.ID, Detector: motion.Kind(m.Detector), Sensitivity: m.Sensitivity, Threshold: m.Threshold,
		MinArea: m.MinArea, MinBlob: m.MinBlob, FPS: cam.DetectFPS,
	}
	for _, poly := range m.Masks {
		var pts []motion.MaskPoint
		for _, pt := range poly {
			if len(pt) == 2 {
				pts = append(pts, motion.MaskPoint{X: pt[0], Y: pt[1]})
			}
		}
		cfg.Masks = append(cfg.Masks, pts)
	}
	return cfg
}

// defaultDuration sets *d to def when zero ("0s" explicitly is also zero,
// which for rolls means the default; write a tiny value to mean "none").
func defaultDuration(field string, d *Duration, def, lo, hi time.Duration) error {
	if *d == 0 {
		*d = Duration(def)
	}
	v := time.Duration(*d)
	if v < lo || v > hi {
		return fmt.Errorf("%s: %s is not within %s-%s", field, *d, Duration(lo), Duration(hi))
	}
	return nil
}

// checkCameraURL accepts rtsp:// and rtsps:// URLs with a host. Errors never
// repeat the URL: it may carry the camera's password.
func checkCameraURL(field, raw string, required bool) error {
	if raw == "" {
		if required {
			return fmt.Errorf("%s: required", field)
		}
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: not a valid URL", field)
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		return fmt.Errorf("%s: scheme must be rtsp or rtsps, got %q", field, u.Scheme)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%s: missing host", field)
	}
	if p := u.Port(); p != "" {
		var n int
		if _, err := fmt.Sscanf(p, "%d", &n); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%s: bad port %q", field, p)
		}
	}
	return nil
}

func (s *Storage) check() error {
	switch {
	case s.FS != nil && s.S3 != nil:
		return errors.New("storage: set either fs or s3, not both")
	case s.FS == nil && s.S3 == nil:
		return errors.New("storage: set fs or s3")
	case s.QuotaBytes < 0:
		return fmt.Errorf("storage.quota_bytes: %d is negative", s.QuotaBytes)
	case s.HighWatermark < 0 || s.HighWatermark > 1 || s.LowWatermark < 0 || s.LowWatermark > 1:
		return fmt.Errorf("storage: watermarks are fractions between 0 and 1 (got high %v, low %v)", s.HighWatermark, s.LowWatermark)
	case s.HighWatermark != 0 && s.LowWatermark != 0 && s.LowWatermark >= s.HighWatermark:
		return fmt.Errorf("storage: low_watermark %v must be below high_watermark %v", s.LowWatermark, s.HighWatermark)
	case s.FS != nil:
		if s.FS.Path == "" {
			return errors.New("storage.fs.path: required")
		}
		s.FS.Path = filepath.Clean(s.FS.Path)
	default:
		// One validation for both: the s3 store's own.
		sc := s.S3.StoreConfig()
		if err := sc.CheckAndSetDefaults(); err != nil {
			return fmt.Errorf("storage.s3: %s", strings.TrimPrefix(err.Error(), "s3: config: "))
		}
	}
	return nil
}

// Marshal writes the configuration as YAML that Parse reads back.
func (c *Config) Marshal() ([]byte, error) {
	data, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return data, nil
}

// CameraByID returns the camera with the given id.
func (c *Config) CameraByID(id string) (*Camera, bool) {
	for i := range c.Cameras {
		if c.Cameras[i].ID == id {
			return &c.Cameras[i], true
		}
	}
	return nil, false
}
