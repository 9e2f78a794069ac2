package eval

import (
	"cmp"
	"slices"
	"time"
)

// Interval is a span of clip time, [Start, End): an interval ending where
// another starts does not overlap it.
type Interval struct {
	Start, End time.Duration
}

// Overlaps reports whether the two spans share some time.
func (i Interval) Overlaps(o Interval) bool {
	return i.Start < o.End && o.Start < i.End
}

// Frame is the detector's verdict on one frame: its presentation time in
// the clip and whether it saw motion.
type Frame struct {
	At     time.Duration
	Moving bool
}

// Intervals turns per-frame verdicts (sorted by time) into motion intervals,
// the detector-level notion of a motion episode:
//
//   - a run of consecutive moving frames spans from the first moving frame
//     to the next frame judged still (to the end of the clip when none), so
//     a single moving frame lasts one frame;
//   - runs separated by a still gap of at most mergeGap are merged.
//
// This is how the agent's segmenter groups motion with a post-roll equal to
// mergeGap (it records while the last motion is at most the post-roll
// behind the last judged frame), without the pre- and post-roll it adds to
// the recording around the episode.
func Intervals(frames []Frame, duration, mergeGap time.Duration) []Interval {
	var out []Interval
	for i := 0; i < len(frames); i++ {
		if !frames[i].Moving {
			continue
		}
		start := frames[i].At
		for i+1 < len(frames) && frames[i+1].Moving {
			i++
		}
		end := duration
		if i+1 < len(frames) {
			end = frames[i+1].At
		}
		iv := Interval{Start: start, End: max(end, start)}
		if n := len(out); n > 0 && iv.Start-out[n-1].End <= mergeGap {
			out[n-1].End = max(out[n-1].End, iv.End)
			continue
		}
		out = append(out, iv)
	}
	return out
}

// Score compares detected intervals with the ground truth of one clip, or
// of several added together.
type Score struct {
	// Events is the number of labelled events; Detected how many of them
	// some detected interval overlaps.
	Events, Detected int
	// Intervals is the number of detected intervals; Hits how many overlap
	// an event; FalseAlarms how many overlap none.
	Intervals, Hits, FalseAlarms int
	// Duration is the video scored; Still the part of it outside every
	// event.
	Duration, Still time.Duration
	// TimesToDetect holds, per detected event, the start of the first
	// interval overlapping it minus the event's start, at least 0.
	TimesToDetect []time.Duration
	// Missed lists the events no interval overlaps.
	Missed []Interval
}

// ScoreClip scores the intervals detected in a clip of the given duration
// against its events. An interval overlapping two events detects both and
// counts once as a hit.
func ScoreClip(events, detected []Interval, duration time.Duration) Score {
	s := Score{Events: len(events), Intervals: len(detected), Duration: duration}
	for _, e := range events {
		first := -1
		for j, d := range detected {
			if d.Overlaps(e) && (first < 0 || d.Start < detected[first].Start) {
				first = j
			}
		}
		if first < 0 {
			s.Missed = append(s.Missed, e)
			continue
		}
		s.Detected++
		s.TimesToDetect = append(s.TimesToDetect, max(0, detected[first].Start-e.Start))
	}
	for _, d := range detected {
		if slices.ContainsFunc(events, d.Overlaps) {
			s.Hits++
		} else {
			s.FalseAlarms++
		}
	}
	s.Still = max(0, duration-covered(events, duration))
	return s
}

// covered is the length of the union of the spans, clipped to [0, duration).
func covered(spans []Interval, duration time.Duration) time.Duration {
	sorted := slices.Clone(spans)
	slices.SortFunc(sorted, func(a, b Interval) int { return cmp.Compare(a.Start, b.Start) })
	var total time.Duration
	var cur Interval
	open := false
	for _, s := range sorted {
		s.Start, s.End = max(0, s.Start), min(duration, s.End)
		if s.End <= s.Start {
			continue
		}
		if open && s.Start <= cur.End {
			cur.End = max(cur.End, s.End)
			continue
		}
		if open {
			total += cur.End - cur.Start
		}
		cur, open = s, true
	}
	if open {
		total += cur.End - cur.Start
	}
	return total
}

// Add returns the sum of two scores: totals over clips.
func (s Score) Add(o Score) Score {
	return Score{
		Events: s.Events + o.Events, Detected: s.Detected + o.Detected,
		Intervals: s.Intervals + o.Intervals, Hits: s.Hits + o.Hits, FalseAlarms: s.FalseAlarms + o.FalseAlarms,
		Duration: s.Duration + o.Duration, Still: s.Still + o.Still,
		TimesToDetect: append(slices.Clone(s.TimesToDetect), o.TimesToDetect...),
		Missed:        append(slices.Clone(s.Missed), o.Missed...),
	}
}

// Recall is detected events / events; ok is false without events.
func (s Score) Recall() (r float64, ok bool) {
	if s.Events == 0 {
		return 0, false
	}
	return float64(s.Detected) / float64(s.Events), true
}

// Precision is intervals overlapping an event / intervals; ok is false
// when nothing was detected.
func (s Score) Precision() (p float64, ok bool) {
	if s.Intervals == 0 {
		return 0, false
	}
	return float64(s.Hits) / float64(s.Intervals), true
}

// FalseAlarmsPerHour is false alarms per hour of still video; ok is false
// when the video has no still time.
func (s Score) FalseAlarmsPerHour() (f float64, ok bool) {
	if s.Still <= 0 {
		return 0, false
	}
	return float64(s.FalseAlarms) / s.Still.Hours(), true
}

// MedianTimeToDetect is the median of TimesToDetect (the mean of the two
// middle ones for an even count); ok is false when no event was detected.
func (s Score) MedianTimeToDetect() (m time.Duration, ok bool) {
	n := len(s.TimesToDetect)
	if n == 0 {
		return 0, false
	}
	t := slices.Sorted(slices.Values(s.TimesToDetect))
	if n%2 == 1 {
		return t[n/2], true
	}
	return t[n/2-1] + (t[n/2]-t[n/2-1])/2, true
}
