package storage

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Segment is the metadata of one recorded fragmented-MP4 file: one motion
// episode or a slice of it.
type Segment struct {
	ID       string    `json:"id"`
	District string    `json:"district"`
	Camera   string    `json:"camera"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Bytes    int64     `json:"bytes"`
	SHA256   string    `json:"sha256"`
	Codec    string    `json:"codec"`
	// MotionScore is the highest motion score seen in the segment, 0 in
	// continuous mode without motion.
	MotionScore float64 `json:"motion_score"`
	Key         string  `json:"key"`
	// Expires is Start + the camera's retention when the segment was indexed.
	Expires time.Time `json:"expires"`
	// HeldBy lists the ids of the judicial holds covering the segment.
	HeldBy []string `json:"held_by,omitempty"`
	// Missing is set when the index has the segment but the store does not
	// (found at reconcile). A missing segment is reported, never deleted.
	Missing bool `json:"missing,omitempty"`
	// Recovered is set for segments rebuilt from a spool file after a crash.
	Recovered bool `json:"recovered,omitempty"`
}

// Held reports whether any hold covers the segment.
func (s *Segment) Held() bool { return len(s.HeldBy) > 0 }

// Duration is End - Start.
func (s *Segment) Duration() time.Duration { return s.End.Sub(s.Start) }

// Overlaps reports whether the segment shares any instant with [from, to).
func (s *Segment) Overlaps(from, to time.Time) bool {
	return s.Start.Before(to) && s.End.After(from)
}

// namePattern is what district and camera ids may contain: they become
// path elements of object keys, so nothing that could escape a directory.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidateName checks a district or camera id.
func ValidateName(kind, name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%s id %q: use 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit", kind, name)
	}
	return nil
}

// NewSegmentID returns a fresh random segment id (16 hex characters).
func NewSegmentID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("storage: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// SegmentKey is the object key of a segment:
// <district>/<camera>/<yyyy>/<mm>/<dd>/<start-unix-ms>-<id>.mp4, date in UTC.
func SegmentKey(district, camera string, start time.Time, id string) string {
	u := start.UTC()
	return fmt.Sprintf("%s/%s/%04d/%02d/%02d/%d-%s.mp4",
		district, camera, u.Year(), int(u.Month()), u.Day(), start.UnixMilli(), id)
}

// KeyParts is what a segment key says by itself.
type KeyParts struct {
	District string
	Camera   string
	Start    time.Time
	ID       string
}

// ErrNotSegmentKey is returned by ParseSegmentKey for keys that do not follow
// the segment layout.
var ErrNotSegmentKey = errors.New("not a segment key")

// ParseSegmentKey is the inverse of SegmentKey.
func ParseSegmentKey(key string) (KeyParts, error) {
	parts := strings.Split(key, "/")
	if len(parts) != 6 {
		return KeyParts{}, fmt.Errorf("%w: %q", ErrNotSegmentKey, key)
	}
	district, camera, file := parts[0], parts[1], parts[5]
	if ValidateName("district", district) != nil || ValidateName("camera", camera) != nil {
		return KeyParts{}, fmt.Errorf("%w: %q", ErrNotSegmentKey, key)
	}
	base, ok := strings.CutSuffix(file, ".mp4")
	if !ok {
		return KeyParts{}, fmt.Errorf("%w: %q", ErrNotSegmentKey, key)
	}
	msText, id, ok := strings.Cut(base, "-")
	if !ok || len(id) != 16 {
		return KeyParts{}, fmt.Errorf("%w: %q", ErrNotSegmentKey, key)
	}
	if _, err := hex.DecodeString(id); err != nil {
		return KeyParts{}, fmt.Errorf("%w: %q", ErrNotSegmentKey, key)
	}
	ms, err := strconv.ParseInt(msText, 10, 64)
	if err != nil || ms < 0 {
		return KeyParts{}, fmt.Errorf("%w: %q", ErrNotSegmentKey, key)
	}
	start := time.UnixMilli(ms).UTC()
	if SegmentKey(district, camera, start, id) != key {
		// The date folders must agree with the start time.
		return KeyParts{}, fmt.Errorf("%w: %q", ErrNotSegmentKey, key)
	}
	return KeyParts{District: district, Camera: camera, Start: start, ID: id}, nil
}
