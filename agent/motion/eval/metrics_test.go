package eval

import (
	"reflect"
	"testing"
	"time"
)

// s is seconds, for short tables.
func s(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }

func iv(a, b float64) Interval { return Interval{Start: s(a), End: s(b)} }

func TestIntervals(t *testing.T) {
	// frames at 10 fps; "m" moving, "." still.
	frames := func(pattern string) []Frame {
		var out []Frame
		for i, c := range pattern {
			out = append(out, Frame{At: s(float64(i) / 10), Moving: c == 'm'})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		pattern string
		gap     time.Duration
		want    []Interval
	}{
		{"nothing", "..........", 0, nil},
		{"no frames", "", time.Second, nil},
		{"one frame lasts a frame", "...m......", 0, []Interval{iv(0.3, 0.4)}},
		{"a run", "..mmm.....", 0, []Interval{iv(0.2, 0.5)}},
		{"run to the end of the clip", ".......mmm", 0, []Interval{iv(0.7, 2)}},
		{"from the first frame", "mm........", 0, []Interval{iv(0, 0.2)}},
		{"gap kept without merging", "mm.mm.....", 0, []Interval{iv(0, 0.2), iv(0.3, 0.5)}},
		{"gap of one frame merged", "mm.mm.....", s(0.1), []Interval{iv(0, 0.5)}},
		{"gap longer than the merge gap", "mm...mm...", s(0.2), []Interval{iv(0, 0.2), iv(0.5, 0.7)}},
		{"gap equal to the merge gap", "mm...mm...", s(0.3), []Interval{iv(0, 0.7)}},
		{"chain of merges", "m.m.m.m...", s(0.1), []Interval{iv(0, 0.7)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Intervals(frames(tc.pattern), 2*time.Second, tc.gap)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestScoreClip(t *testing.T) {
	const hour = float64(time.Hour / time.Second)
	type want struct {
		detected, hits, falseAlarms int
		still                       time.Duration
		ttd                         []time.Duration
		missed                      []Interval
	}
	for _, tc := range []struct {
		name     string
		events   []Interval
		detected []Interval
		duration time.Duration
		want     want
	}{
		{
			name:   "perfect",
			events: []Interval{iv(10, 20)}, detected: []Interval{iv(10.2, 20.5)}, duration: s(60),
			want: want{detected: 1, hits: 1, still: s(50), ttd: []time.Duration{s(0.2)}},
		},
		{
			name:   "missed and a false alarm",
			events: []Interval{iv(10, 20)}, detected: []Interval{iv(30, 31)}, duration: s(60),
			want: want{falseAlarms: 1, still: s(50), missed: []Interval{iv(10, 20)}},
		},
		{
			name: "touching is not overlapping",
			// Ends where the event starts, starts where it ends.
			events: []Interval{iv(10, 20)}, detected: []Interval{iv(5, 10), iv(20, 25)}, duration: s(60),
			want: want{falseAlarms: 2, still: s(50), missed: []Interval{iv(10, 20)}},
		},
		{
			name: "one interval over two events",
			// Detects both; counts once as a hit; the second event's
			// time to detect clamps at 0.
			events: []Interval{iv(10, 20), iv(22, 30)}, detected: []Interval{iv(11, 25)}, duration: s(60),
			want: want{detected: 2, hits: 1, still: s(42), ttd: []time.Duration{s(1), 0}},
		},
		{
			name: "first overlapping interval counts for time to detect",
			// Detected intervals in any order.
			events: []Interval{iv(10, 20)}, detected: []Interval{iv(15, 16), iv(12, 13), iv(40, 41)}, duration: s(60),
			want: want{detected: 1, hits: 2, falseAlarms: 1, still: s(50), ttd: []time.Duration{s(2)}},
		},
		{
			name:   "no events",
			events: nil, detected: []Interval{iv(1, 2), iv(3, 4)}, duration: s(60),
			want: want{falseAlarms: 2, still: s(60)},
		},
		{
			name:   "overlapping events count their union as event time",
			events: []Interval{iv(10, 20), iv(15, 25)}, detected: nil, duration: s(60),
			want: want{still: s(45), missed: []Interval{iv(10, 20), iv(15, 25)}},
		},
		{
			name:   "all event",
			events: []Interval{iv(0, 60)}, detected: []Interval{iv(0, 60)}, duration: s(60),
			want: want{detected: 1, hits: 1, ttd: []time.Duration{0}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ScoreClip(tc.events, tc.detected, tc.duration)
			if got.Events != len(tc.events) || got.Intervals != len(tc.detected) || got.Duration != tc.duration {
				t.Errorf("counts: %+v", got)
			}
			w := tc.want
			if got.Detected != w.detected || got.Hits != w.hits || got.FalseAlarms != w.falseAlarms || got.Still != w.still ||
				!reflect.DeepEqual(got.TimesToDetect, w.ttd) || !reflect.DeepEqual(got.Missed, w.missed) {
				t.Errorf("got %+v\nwant %+v", got, w)
			}
			if got.Hits+got.FalseAlarms != got.Intervals {
				t.Errorf("hits %d + false alarms %d != intervals %d", got.Hits, got.FalseAlarms, got.Intervals)
			}
		})
	}

	// Ratios, alone and added up.
	a := ScoreClip([]Interval{iv(10, 20), iv(30, 40)}, []Interval{iv(10.5, 12), iv(50, 51), iv(55, 56)}, s(3600))
	if r, ok := a.Recall(); !ok || r != 0.5 {
		t.Errorf("recall %v %v, want 0.5", r, ok)
	}
	if p, ok := a.Precision(); !ok || p != 1.0/3 {
		t.Errorf("precision %v %v, want 1/3", p, ok)
	}
	if f, ok := a.FalseAlarmsPerHour(); !ok || f != 2/((3600-20)/hour) {
		t.Errorf("false alarms per hour %v %v", f, ok)
	}
	if m, ok := a.MedianTimeToDetect(); !ok || m != s(0.5) {
		t.Errorf("median TTD %v %v, want 0.5s", m, ok)
	}
	still := ScoreClip(nil, nil, s(1800))
	if _, ok := still.Recall(); ok {
		t.Error("recall defined without events")
	}
	if _, ok := still.Precision(); ok {
		t.Error("precision defined without detections")
	}
	if f, ok := still.FalseAlarmsPerHour(); !ok || f != 0 {
		t.Errorf("false alarms per hour of a quiet still clip: %v %v", f, ok)
	}
	if _, ok := still.MedianTimeToDetect(); ok {
		t.Error("time to detect defined without detections")
	}
	b := ScoreClip([]Interval{iv(0, 10), iv(20, 30)}, []Interval{iv(1, 5), iv(24, 26)}, s(1800))
	total := a.Add(still).Add(b)
	if total.Events != 4 || total.Detected != 3 || total.Intervals != 5 || total.Hits != 3 || total.FalseAlarms != 2 {
		t.Errorf("total counts %+v", total)
	}
	if r, _ := total.Recall(); r != 0.75 {
		t.Errorf("total recall %v, want 0.75", r)
	}
	if f, _ := total.FalseAlarmsPerHour(); f != 2/((3600-20+1800+1800-20)/hour) {
		t.Errorf("total false alarms per hour %v", f)
	}
	// Median over every detected event (0.5, 1, 4), not of the medians.
	if m, _ := total.MedianTimeToDetect(); m != s(1) {
		t.Errorf("total median %v, want 1s", m)
	}
	if len(a.TimesToDetect) != 1 || len(b.TimesToDetect) != 2 {
		t.Error("Add changed its operands")
	}
	even := Score{TimesToDetect: []time.Duration{s(3), s(1)}}
	if m, _ := even.MedianTimeToDetect(); m != s(2) {
		t.Errorf("median of two %v, want 2s", m)
	}
	allEvent := ScoreClip([]Interval{iv(0, 60)}, []Interval{iv(70, 80)}, s(60))
	if _, ok := allEvent.FalseAlarmsPerHour(); ok {
		t.Error("false alarms per hour defined without still time")
	}
}
