package catalog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
)

// What the retention report and the holds need of one camera's footage.
// Segments are keyed by camera and start, so each of these reads the
// camera's rows only, from its oldest, and only as far as it must.

// errStopWalk ends a walk early without error.
var errStopWalk = errors.New("stop")

// CountSegments returns the number of segments of a camera, reading keys
// only.
func (c *Catalog) CountSegments(district, camera string) (int, error) {
	prefix := cameraPrefix(district, camera)
	n := 0
	err := c.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketSegments).Cursor()
		for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("catalog: count: %w", err)
	}
	return n, nil
}

// OldestSegment returns the camera's oldest segment (by start) for which
// skip is false, nil when there is none. skip may be nil. The walk stops at
// the first segment not skipped: it costs the segments skipped (held
// footage, say), not the camera's whole history.
func (c *Catalog) OldestSegment(district, camera string, skip func(*agentv1.Segment) bool) (*agentv1.Segment, error) {
	var found *agentv1.Segment
	err := c.walk(cameraPrefix(district, camera), nil, func(s *agentv1.Segment) error {
		if skip != nil && skip(s) {
			return nil
		}
		found = s
		return errStopWalk
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: oldest segment: %w", err)
	}
	return found, nil
}

// EachInSpan calls fn with each segment of a camera overlapping [from, to),
// by start, until fn returns an error (returned as is).
func (c *Catalog) EachInSpan(district, camera string, from, to time.Time, fn func(*agentv1.Segment) error) error {
	prefix := cameraPrefix(district, camera)
	// Segments last at most maxSegmentSpan (ValidateReport): one that
	// overlaps from starts no earlier than from - maxSegmentSpan.
	seek := binary.BigEndian.AppendUint64(bytes.Clone(prefix), uint64(max(0, from.Add(-maxSegmentSpan).UnixMilli())))
	return c.walk(prefix, seek, func(s *agentv1.Segment) error {
		if !s.GetStart().AsTime().Before(to) {
			return errStopWalk
		}
		if s.GetEnd().AsTime().After(from) {
			return fn(s)
		}
		return nil
	})
}

// EarliestExpiry returns the earliest expiry of a camera's segments that
// overlap [from, to), and false when there are none.
func (c *Catalog) EarliestExpiry(district, camera string, from, to time.Time) (time.Time, bool, error) {
	var earliest time.Time
	found := false
	err := c.EachInSpan(district, camera, from, to, func(s *agentv1.Segment) error {
		if e := s.GetExpires().AsTime(); !found || e.Before(earliest) {
			earliest, found = e, true
		}
		return nil
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("catalog: earliest expiry: %w", err)
	}
	return earliest, found, nil
}

// walk calls fn with the segments under prefix from seek (the prefix when
// nil), by start; errStopWalk from fn ends it without error.
func (c *Catalog) walk(prefix, seek []byte, fn func(*agentv1.Segment) error) error {
	if seek == nil {
		seek = prefix
	}
	err := c.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketSegments).Cursor()
		for k, v := cur.Seek(seek); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			var s agentv1.Segment
			if err := proto.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("catalog entry %q: %w", k, err)
			}
			if err := fn(&s); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, errStopWalk) {
		return nil
	}
	return err
}

// cameraPrefix is the key prefix of a camera's segments.
func cameraPrefix(district, camera string) []byte {
	return append([]byte(district+"/"+camera), 0)
}

// ErrNoSegment means the catalog has no such segment.
var ErrNoSegment = errors.New("no such recording")

// Find returns a camera's segment by id.
func (c *Catalog) Find(district, camera, id string) (*agentv1.Segment, error) {
	var found *agentv1.Segment
	err := c.walk(cameraPrefix(district, camera), nil, func(s *agentv1.Segment) error {
		if s.GetId() == id {
			found = s
			return errStopWalk
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: find: %w", err)
	}
	if found == nil {
		return nil, ErrNoSegment
	}
	return found, nil
}
