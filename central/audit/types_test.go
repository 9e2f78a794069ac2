package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// golden is a record and its canonical encoding, written out by hand: if
// this test fails, the encoding changed, and every stored record with it.
var (
	goldenRecord = Record{
		Seq:     42,
		Time:    time.Date(2026, 3, 1, 11, 0, 0, 500_000_000, time.FixedZone("CET", 3600)),
		Actor:   Actor{User: "olga", Role: "operator", Designation: "det. 7/2026"},
		Action:  "recording.view",
		Target:  Target{District: "north", Camera: "gate", From: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), Segment: "s1"},
		Reason:  "theft \"report\"\n",
		Client:  "10.0.0.1:5000",
		Outcome: OutcomeOK,
		Detail:  "é\x01\\<>&\u2028",
	}
	goldenBytes = `{"v":1,"seq":42,"time":"2026-03-01T10:00:00.500000000Z",` +
		`"actor":{"user":"olga","role":"operator","designation":"det. 7/2026"},"action":"recording.view",` +
		`"target":{"district":"north","camera":"gate","from":"2026-03-01T09:00:00.000000000Z","to":"","segment":"s1","hold":"","user":""},` +
		`"reason":"theft \"report\"\u000a","client":"10.0.0.1:5000","outcome":"ok","detail":"é\u0001\\<>&` + "\u2028" + `"}`
)

func TestMarshalGolden(t *testing.T) {
	got, err := goldenRecord.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != goldenBytes {
		t.Fatalf("encoding changed:\n got %s\nwant %s", got, goldenBytes)
	}
	rec, err := Unmarshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Time.Equal(goldenRecord.Time) || rec.Time.Location() != time.UTC {
		t.Errorf("time %v, want %v in UTC", rec.Time, goldenRecord.Time)
	}
	rec.Time = goldenRecord.Time
	if rec != goldenRecord {
		t.Errorf("round trip:\n got %+v\nwant %+v", rec, goldenRecord)
	}
}

// TestEncodingIsJSON: an auditor's own tools read the records with any
// JSON decoder, and find the same values.
func TestEncodingIsJSON(t *testing.T) {
	var got struct {
		V      int    `json:"v"`
		Seq    uint64 `json:"seq"`
		Time   string `json:"time"`
		Detail string `json:"detail"`
		Reason string `json:"reason"`
		Target struct {
			From string `json:"from"`
			To   string `json:"to"`
		} `json:"target"`
	}
	if err := json.Unmarshal([]byte(goldenBytes), &got); err != nil {
		t.Fatal(err)
	}
	if got.V != 1 || got.Seq != 42 || got.Time != "2026-03-01T10:00:00.500000000Z" || got.Detail != goldenRecord.Detail ||
		got.Reason != goldenRecord.Reason || got.Target.From != "2026-03-01T09:00:00.000000000Z" || got.Target.To != "" {
		t.Fatalf("encoding/json reads %+v", got)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	long := strings.Repeat("\x00\"", MaxText/2)
	for _, tc := range []struct {
		name string
		rec  Record
	}{
		{"sample", func() Record { r := sample(3); r.Time = t0; return r }()},
		{"minimal", Record{Time: t0, Action: "logout", Outcome: OutcomeOK}},
		{"every field at its bound, all escaped", Record{
			Seq: ^uint64(0), Time: t0.Add(123456789),
			Actor:  Actor{User: long, Role: long, Designation: long},
			Action: strings.Repeat("a.", MaxAction/2-1) + "zz",
			Target: Target{District: long, Camera: long, From: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), To: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
				Segment: long, Hold: long, User: long},
			Reason: long, Client: long, Outcome: OutcomeError, Detail: strings.Repeat("\x1f", MaxDetail),
		}},
		{"unicode", Record{Time: t0, Action: "agent.gap", Outcome: OutcomeFailed, Reason: "città 日本 🎥 \u007f", Actor: Actor{User: "agent:nord-est", Role: "agent"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.rec.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(b) {
				t.Fatalf("not JSON: %s", b)
			}
			if len(b) > MaxEncoded {
				t.Fatalf("%d bytes, more than MaxEncoded %d", len(b), MaxEncoded)
			}
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Time.Equal(tc.rec.Time) || !got.Target.From.Equal(tc.rec.Target.From) || !got.Target.To.Equal(tc.rec.Target.To) {
				t.Fatalf("times changed: %v %v %v", got.Time, got.Target.From, got.Target.To)
			}
			got.Time, got.Target.From, got.Target.To = tc.rec.Time, tc.rec.Target.From, tc.rec.Target.To
			if got != tc.rec {
				t.Fatalf("round trip changed the record")
			}
			again, _ := got.Marshal()
			if !bytes.Equal(again, b) {
				t.Fatal("second encoding differs")
			}
		})
	}
}

// TestUnmarshalRejectsNonCanonical: every other spelling of the golden
// record, even one encoding/json reads as the same record, is refused.
func TestUnmarshalRejectsNonCanonical(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(string) string
	}{
		{"space after colon", func(s string) string { return strings.Replace(s, `"seq":42`, `"seq": 42`, 1) }},
		{"trailing newline", func(s string) string { return s + "\n" }},
		{"leading space", func(s string) string { return " " + s }},
		{"trailing data", func(s string) string { return s + "{}" }},
		{"fields reordered", func(s string) string {
			return strings.Replace(s, `"client":"10.0.0.1:5000","outcome":"ok"`, `"outcome":"ok","client":"10.0.0.1:5000"`, 1)
		}},
		{"letter escaped", func(s string) string { return strings.Replace(s, `"olga"`, `"\u006flga"`, 1) }},
		{"uppercase hex escape", func(s string) string { return strings.Replace(s, `\u000a`, `\u000A`, 1) }},
		{"short escape", func(s string) string { return strings.Replace(s, `\u000a`, `\n`, 1) }},
		{"escaped slash", func(s string) string { return strings.Replace(s, `det. 7/2026`, `det. 7\/2026`, 1) }},
		{"time with fewer digits", func(s string) string { return strings.Replace(s, `10:00:00.500000000Z`, `10:00:00.5Z`, 1) }},
		{"time with an offset", func(s string) string { return strings.Replace(s, `10:00:00.500000000Z`, `11:00:00.500000000+01:00`, 1) }},
		{"seq with leading zero", func(s string) string { return strings.Replace(s, `"seq":42`, `"seq":042`, 1) }},
		{"seq as float", func(s string) string { return strings.Replace(s, `"seq":42`, `"seq":42.0`, 1) }},
		{"seq with exponent", func(s string) string { return strings.Replace(s, `"seq":42`, `"seq":4.2e1`, 1) }},
		{"duplicate field", func(s string) string { return strings.Replace(s, `"seq":42,`, `"seq":41,"seq":42,`, 1) }},
		{"unknown field", func(s string) string { return strings.Replace(s, `"seq":42,`, `"seq":42,"x":1,`, 1) }},
		{"missing field", func(s string) string { return strings.Replace(s, `"hold":"",`, ``, 1) }},
		{"null field", func(s string) string { return strings.Replace(s, `"hold":""`, `"hold":null`, 1) }},
		{"other version", func(s string) string { return strings.Replace(s, `"v":1`, `"v":2`, 1) }},
		{"no time", func(s string) string { return strings.Replace(s, `"2026-03-01T10:00:00.500000000Z"`, `""`, 1) }},
		{"bad outcome", func(s string) string { return strings.Replace(s, `"ok"`, `"ox"`, 1) }},
		{"bad action", func(s string) string { return strings.Replace(s, `recording.view`, `Recording.view`, 1) }},
		{"invalid UTF-8", func(s string) string { return strings.Replace(s, `olga`, "ol\xffa", 1) }},
		{"not JSON", func(string) string { return "recording.view by olga" }},
		{"empty", func(string) string { return "" }},
		{"too long", func(s string) string { return s + strings.Repeat(" ", MaxEncoded) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.edit(goldenBytes)
			if in == goldenBytes {
				t.Fatal("edit changed nothing")
			}
			_, err := Unmarshal([]byte(in))
			if !errors.Is(err, ErrNonCanonical) {
				t.Fatalf("Unmarshal(%q) = %v, want ErrNonCanonical", in, err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := func() Record { r := sample(1); r.Time = t0; return r }
	for _, tc := range []struct {
		name string
		edit func(*Record)
	}{
		{"empty action", func(r *Record) { r.Action = "" }},
		{"uppercase action", func(r *Record) { r.Action = "Live.start" }},
		{"action with digit", func(r *Record) { r.Action = "live.start2" }},
		{"action with space", func(r *Record) { r.Action = "live start" }},
		{"action with leading dot", func(r *Record) { r.Action = ".live" }},
		{"action with trailing dot", func(r *Record) { r.Action = "live." }},
		{"action with double dot", func(r *Record) { r.Action = "live..start" }},
		{"action prefix pattern", func(r *Record) { r.Action = "user.*" }},
		{"action too long", func(r *Record) { r.Action = strings.Repeat("a", MaxAction+1) }},
		{"empty outcome", func(r *Record) { r.Outcome = "" }},
		{"unknown outcome", func(r *Record) { r.Outcome = "maybe" }},
		{"reason too long", func(r *Record) { r.Reason = strings.Repeat("x", MaxText+1) }},
		{"detail too long", func(r *Record) { r.Detail = strings.Repeat("x", MaxDetail+1) }},
		{"user not UTF-8", func(r *Record) { r.Actor.User = "\xc3" }},
		{"camera not UTF-8", func(r *Record) { r.Target.Camera = "\xff" }},
		{"year 10000", func(r *Record) { r.Target.To = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"year 0", func(r *Record) { r.Target.From = time.Date(0, 6, 1, 0, 0, 0, 0, time.UTC) }},
		{"no time", func(r *Record) { r.Time = time.Time{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ok()
			if _, err := r.Marshal(); err != nil {
				t.Fatalf("base record: %v", err)
			}
			tc.edit(&r)
			if _, err := r.Marshal(); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Marshal = %v, want ErrInvalid", err)
			}
		})
	}
	r := ok()
	r.Detail = strings.Repeat("é", MaxDetail/2)
	if _, err := r.Marshal(); err != nil {
		t.Errorf("detail at its bound: %v", err)
	}
}

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"}, // é is two bytes: not cut in half
		{"aé", 3, "aé"},
		{"a\xffb", 10, "a\uFFFDb"},
		{"🎥🎥", 5, "🎥"},
		{"x", 0, ""},
	} {
		got := Clip(tc.in, tc.n)
		if got != tc.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
		r := Record{Time: t0, Action: "login.fail", Outcome: OutcomeDenied, Reason: Clip(tc.in+strings.Repeat("é", MaxText), MaxText)}
		if _, err := r.Marshal(); err != nil {
			t.Errorf("clipped reason refused: %v", err)
		}
	}
}

// FuzzUnmarshal: whatever the input, Unmarshal accepts only bytes that are
// exactly the encoding of the record it returns.
func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte(goldenBytes))
	for i := range 6 {
		r := sample(i)
		r.Time = t0
		b, _ := r.Marshal()
		f.Add(b)
	}
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":1,"seq":0,"seq":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := Unmarshal(data)
		if err != nil {
			if !errors.Is(err, ErrNonCanonical) {
				t.Fatalf("error %v does not wrap ErrNonCanonical", err)
			}
			return
		}
		again, err := rec.Marshal()
		if err != nil {
			t.Fatalf("accepted record does not marshal: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("accepted non-canonical input %q (canonical %q)", data, again)
		}
		if !json.Valid(data) {
			t.Fatalf("accepted input that is not JSON: %q", data)
		}
	})
}
