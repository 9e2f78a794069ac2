package eval

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// Limits on a ground truth file: it is outside input, and a label file a
// thousand times larger than any real one is a mistake, not a clip.
const (
	maxTruthBytes  = 1 << 20
	maxEvents      = 10000
	maxMasks       = 100
	maxMaskPoints  = 1000
	maxTruthSecond = 7 * 24 * 3600 // a week of clip is far beyond any label
)

// GroundTruth is what NAME.json says of NAME.mp4:
//
//	{"events":[{"start":S,"end":E}], "masks":[[[x,y],…]]}
//
// Events are spans of clip time, in seconds from the start of the clip, when
// something moves that a detector must see. Masks, optional, are polygons in
// the clip's pixel coordinates where motion must be ignored (swaying trees,
// a road outside the premises). Other keys are allowed and ignored, so a
// generator may describe its scenes.
type GroundTruth struct {
	// Events sorted by start; they may overlap (two objects at once).
	Events []Interval
	Masks  [][]Point
}

// Point is a polygon vertex in pixels of the clip.
type Point struct{ X, Y float64 }

// truthJSON is the wire form. Pointers tell a missing key from a zero.
type truthJSON struct {
	Events *[]struct {
		Start *float64 `json:"start"`
		End   *float64 `json:"end"`
	} `json:"events"`
	Masks [][][]float64 `json:"masks"`
}

// ParseGroundTruth reads a ground truth file. It checks what can be checked
// without the clip: shapes, types, spans with start ≥ 0 and end > start,
// polygons of at least three points with coordinates ≥ 0. Check adds what
// needs the clip. Errors are one line.
func ParseGroundTruth(data []byte) (*GroundTruth, error) {
	if len(data) > maxTruthBytes {
		return nil, fmt.Errorf("ground truth larger than %d bytes", maxTruthBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var tj truthJSON
	if err := dec.Decode(&tj); err != nil {
		return nil, fmt.Errorf("not a ground truth object: %s", oneLine(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("not a ground truth object: data after the closing brace")
	}
	if tj.Events == nil {
		return nil, errors.New(`"events" is required (an empty list when nothing moves)`)
	}
	if len(*tj.Events) > maxEvents {
		return nil, fmt.Errorf("more than %d events", maxEvents)
	}
	gt := &GroundTruth{Events: make([]Interval, 0, len(*tj.Events))}
	for i, e := range *tj.Events {
		if e.Start == nil || e.End == nil {
			return nil, fmt.Errorf("event %d: start and end are required", i)
		}
		s, en := *e.Start, *e.End
		if !(s >= 0 && en > s && en <= maxTruthSecond) {
			return nil, fmt.Errorf("event %d: [%g, %g] is not a span of clip time (0 ≤ start < end, seconds)", i, s, en)
		}
		gt.Events = append(gt.Events, Interval{Start: seconds(s), End: seconds(en)})
		if gt.Events[i].End <= gt.Events[i].Start {
			return nil, fmt.Errorf("event %d: [%g, %g] is shorter than a nanosecond", i, s, en)
		}
	}
	slices.SortStableFunc(gt.Events, func(a, b Interval) int { return cmp.Compare(a.Start, b.Start) })
	if len(tj.Masks) > maxMasks {
		return nil, fmt.Errorf("more than %d masks", maxMasks)
	}
	for i, poly := range tj.Masks {
		if len(poly) < 3 || len(poly) > maxMaskPoints {
			return nil, fmt.Errorf("mask %d: a polygon needs 3 to %d points, got %d", i, maxMaskPoints, len(poly))
		}
		pts := make([]Point, 0, len(poly))
		for j, p := range poly {
			if len(p) != 2 {
				return nil, fmt.Errorf("mask %d point %d: want [x, y], got %d numbers", i, j, len(p))
			}
			if !(p[0] >= 0 && p[1] >= 0 && p[0] <= math.MaxInt32 && p[1] <= math.MaxInt32) {
				return nil, fmt.Errorf("mask %d point %d: [%g, %g] is not a pixel position", i, j, p[0], p[1])
			}
			pts = append(pts, Point{X: p[0], Y: p[1]})
		}
		gt.Masks = append(gt.Masks, pts)
	}
	return gt, nil
}

// Check verifies the ground truth against its clip: every event within the
// clip's duration, every mask vertex within its picture (the right and
// bottom borders included).
func (g *GroundTruth) Check(width, height int, duration time.Duration) error {
	for i, e := range g.Events {
		if e.End > duration {
			return fmt.Errorf("event %d: [%v, %v] ends after the clip's %v", i, e.Start, e.End, duration)
		}
	}
	for i, poly := range g.Masks {
		for j, p := range poly {
			if p.X > float64(width) || p.Y > float64(height) {
				return fmt.Errorf("mask %d point %d: [%g, %g] is outside the %dx%d picture", i, j, p.X, p.Y, width, height)
			}
		}
	}
	return nil
}

func seconds(s float64) time.Duration {
	return time.Duration(math.Round(s * float64(time.Second)))
}

// oneLine keeps an error on one line: JSON errors may quote input.
func oneLine(err error) string {
	b := []byte(err.Error())
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	return string(b)
}
