package eval

import (
	"cmp"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseGroundTruth(t *testing.T) {
	gt, err := ParseGroundTruth([]byte(`{"scene":"two walkers","events":[{"start":20,"end":23.5},{"start":6,"end":10}],
		"masks":[[[0,0],[100,0],[100,50.5]],[[600,300],[640,300],[640,360],[600,360]]]}`))
	if err != nil {
		t.Fatal(err)
	}
	wantEvents := []Interval{{6 * time.Second, 10 * time.Second}, {20 * time.Second, 23500 * time.Millisecond}}
	if !reflect.DeepEqual(gt.Events, wantEvents) {
		t.Errorf("events %v, want %v (sorted)", gt.Events, wantEvents)
	}
	if len(gt.Masks) != 2 || len(gt.Masks[0]) != 3 || gt.Masks[0][2] != (Point{100, 50.5}) || len(gt.Masks[1]) != 4 {
		t.Errorf("masks %v", gt.Masks)
	}
	if err := gt.Check(640, 360, 30*time.Second); err != nil {
		t.Errorf("check: %v", err)
	}
	if err := gt.Check(640, 360, 23*time.Second); err == nil || !strings.Contains(err.Error(), "event 1") {
		t.Errorf("an event past the end of the clip: %v", err)
	}
	if err := gt.Check(320, 180, 30*time.Second); err == nil || !strings.Contains(err.Error(), "mask 1 point 0") {
		t.Errorf("a mask outside the picture: %v", err)
	}

	empty, err := ParseGroundTruth([]byte(` {"events": []} `))
	if err != nil || len(empty.Events) != 0 || empty.Masks != nil {
		t.Errorf("empty ground truth: %+v %v", empty, err)
	}
}

func TestParseGroundTruthRejectsGarbage(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, "not a ground truth object"},
		{`null`, `"events" is required`},
		{`[]`, "not a ground truth object"},
		{`"events"`, "not a ground truth object"},
		{`{}`, `"events" is required`},
		{`{"events":null}`, `"events" is required`},
		{`{"events":{}}`, "not a ground truth object"},
		{`{"events":[1]}`, "not a ground truth object"},
		{`{"events":[{}]}`, "event 0: start and end are required"},
		{`{"events":[{"start":1}]}`, "event 0: start and end are required"},
		{`{"events":[{"start":"1","end":"2"}]}`, "not a ground truth object"},
		{`{"events":[{"start":-1,"end":2}]}`, "event 0: [-1, 2] is not a span"},
		{`{"events":[{"start":2,"end":2}]}`, "is not a span"},
		{`{"events":[{"start":3,"end":2}]}`, "is not a span"},
		{`{"events":[{"start":0,"end":1e300}]}`, "is not a span"},
		{`{"events":[{"start":0,"end":1e-12}]}`, "shorter than a nanosecond"},
		{`{"events":[{"start":0,"end":1e999}]}`, "not a ground truth object"},
		{`{"events":[{"start":1,"end":2}]} {"events":[]}`, "data after the closing brace"},
		{`{"events":[{"start":1,"end":2}]}]`, "data after the closing brace"},
		{`{"events":[{"start":1,"end":2}`, "not a ground truth object"},
		{`{"events":[],"masks":{}}`, "not a ground truth object"},
		{`{"events":[],"masks":[[[0,0],[1,1]]]}`, "mask 0: a polygon needs 3"},
		{`{"events":[],"masks":[[[0,0],[1,1],[2]]]}`, "mask 0 point 2: want [x, y]"},
		{`{"events":[],"masks":[[[0,0],[1,1],[2,2,2]]]}`, "mask 0 point 2: want [x, y]"},
		{`{"events":[],"masks":[[[0,0],[1,-1],[2,2]]]}`, "mask 0 point 1: [1, -1] is not a pixel position"},
		{`{"events":[],"masks":[[[0,0],[1,1e20],[2,2]]]}`, "is not a pixel position"},
		{`{"events":[],"masks":[[["a",0],[1,1],[2,2]]]}`, "not a ground truth object"},
		{"\x00\xff", "not a ground truth object"},
		{`{"events":[]}` + strings.Repeat(" ", maxTruthBytes), "larger than"},
	} {
		_, err := ParseGroundTruth([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.60q: got %v, want %q", tc.in, err, tc.want)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%.60q: multi-line error %q", tc.in, err)
		}
	}
}

// FuzzGroundTruth checks that no input panics the parser, that errors are
// one line, and that whatever is accepted is well formed and survives a
// round trip through its JSON form.
func FuzzGroundTruth(f *testing.F) {
	f.Add([]byte(`{"events":[{"start":6,"end":10},{"start":20,"end":23}]}`))
	f.Add([]byte(`{"events":[],"masks":[[[0,0],[100,0],[100,50]]]}`))
	f.Add([]byte(`{"events":[{"start":0.04,"end":1e-9}],"masks":[[[1,2],[3],[4,5,6]]]}`))
	f.Add([]byte(`{"events":[{"start":1,"end":2}]}]`))
	f.Add([]byte(`{"events":[{"start":null,"end":2}],"masks":null}`))
	f.Add([]byte(`[{"events":[]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		gt, err := ParseGroundTruth(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		if !slices.IsSortedFunc(gt.Events, func(a, b Interval) int { return cmp.Compare(a.Start, b.Start) }) {
			t.Fatalf("events not sorted: %v", gt.Events)
		}
		for _, e := range gt.Events {
			if e.Start < 0 || e.End <= e.Start {
				t.Fatalf("accepted event %v", e)
			}
		}
		for _, m := range gt.Masks {
			if len(m) < 3 {
				t.Fatalf("accepted mask %v", m)
			}
			for _, p := range m {
				if !(p.X >= 0 && p.Y >= 0) {
					t.Fatalf("accepted point %v", p)
				}
			}
		}
		// Round trip: what was accepted, written back, reads the same.
		type ev struct {
			Start float64 `json:"start"`
			End   float64 `json:"end"`
		}
		out := struct {
			Events []ev           `json:"events"`
			Masks  [][][2]float64 `json:"masks,omitempty"`
		}{Events: []ev{}}
		for _, e := range gt.Events {
			out.Events = append(out.Events, ev{e.Start.Seconds(), e.End.Seconds()})
		}
		for _, m := range gt.Masks {
			var poly [][2]float64
			for _, p := range m {
				poly = append(poly, [2]float64{p.X, p.Y})
			}
			out.Masks = append(out.Masks, poly)
		}
		data2, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		gt2, err := ParseGroundTruth(data2)
		if err != nil {
			t.Fatalf("accepted %q, rejected its round trip %s: %v", data, data2, err)
		}
		if !reflect.DeepEqual(gt.Events, gt2.Events) || !reflect.DeepEqual(gt.Masks, gt2.Masks) {
			t.Fatalf("round trip changed %+v into %+v", gt, gt2)
		}
	})
}
