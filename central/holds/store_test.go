package holds

import (
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// mustStore opens a store in a fresh database, with north's cameras gate
// and yard and south's dock known.
func mustStore(t *testing.T) (*Store, *fakeClock) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "central.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clock := &fakeClock{t: testNow}
	known := map[string][]string{"north": {"gate", "yard"}, "south": {"dock"}}
	s, err := New(Config{
		DB: db, Now: clock.Now, Logger: slog.New(slog.DiscardHandler),
		KnownCameras: func(d string) ([]string, error) { return known[d], nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, clock
}

func goodRequest() Request {
	return Request{
		Cameras: []string{"north/yard", "south/dock", "north/gate"},
		From:    testNow.Add(-2*time.Hour + 300*time.Millisecond), To: testNow.Add(time.Hour),
		Authority: "  Procura della Repubblica di Milano ", Case: "RG 1234/2026", Reason: "theft at the gate", Officer: "otto",
	}
}

func TestPrepareValidates(t *testing.T) {
	s, _ := mustStore(t)
	cases := []struct {
		name string
		edit func(*Request)
		want error
		text string
	}{
		{"no camera", func(r *Request) { r.Cameras = nil }, ErrInvalid, "at least one camera"},
		{"camera without district", func(r *Request) { r.Cameras = []string{"gate"} }, ErrInvalid, "DISTRICT/CAMERA"},
		{"bad district name", func(r *Request) { r.Cameras = []string{"North/gate"} }, ErrInvalid, "district id"},
		{"bad camera name", func(r *Request) { r.Cameras = []string{"north/../x"} }, ErrInvalid, "camera id"},
		{"unknown camera", func(r *Request) { r.Cameras = []string{"north/roof"} }, ErrUnknownCamera, "central knows north: gate, yard"},
		{"unknown district", func(r *Request) { r.Cameras = []string{"east/gate"} }, ErrUnknownCamera, `no camera of district "east"`},
		{"too many cameras", func(r *Request) {
			r.Cameras = nil
			for range MaxCameras + 1 {
				r.Cameras = append(r.Cameras, "north/gate")
			}
		}, ErrInvalid, "at most 64"},
		{"inverted span", func(r *Request) { r.From, r.To = r.To, r.From }, ErrInvalid, "inverted span"},
		{"empty span", func(r *Request) { r.To = r.From }, ErrInvalid, "empty or inverted"},
		{"span inverted within a second", func(r *Request) { r.From, r.To = testNow.Add(900*time.Millisecond), testNow.Add(100*time.Millisecond) }, ErrInvalid, "empty or inverted"},
		{"no from", func(r *Request) { r.From = time.Time{} }, ErrInvalid, "both from and to"},
		{"ancient from", func(r *Request) { r.From = time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC) }, ErrInvalid, "before any footage"},
		{"to beyond 30 days", func(r *Request) { r.To = testNow.Add(MaxAhead + time.Second) }, ErrInvalid, "more than 30 days ahead"},
		{"empty authority", func(r *Request) { r.Authority = "   " }, ErrInvalid, "authority is required"},
		{"empty case", func(r *Request) { r.Case = "" }, ErrInvalid, "case is required"},
		{"empty reason", func(r *Request) { r.Reason = "\t" }, ErrInvalid, "reason is required"},
		{"long case", func(r *Request) { r.Case = strings.Repeat("x", MaxCase+1) }, ErrInvalid, "case too long"},
		{"control characters", func(r *Request) { r.Authority = "Procura\x1b[31m" }, ErrInvalid, "printable"},
		{"two lines", func(r *Request) { r.Reason = "one\ntwo" }, ErrInvalid, "printable"},
		{"no officer", func(r *Request) { r.Officer = "" }, ErrInvalid, "officer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := goodRequest()
			c.edit(&req)
			_, err := s.Prepare(req)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("got %v, want %v with %q", err, c.want, c.text)
			}
		})
	}
	if list, _ := s.List(true); len(list) != 0 {
		t.Fatalf("refused requests left holds: %+v", list)
	}
}

func TestPrepareNormalises(t *testing.T) {
	s, _ := mustStore(t)
	req := goodRequest()
	req.Cameras = append(req.Cameras, "north/gate")
	req.To = testNow.Add(MaxAhead) // exactly 30 days is allowed
	p, err := s.Prepare(req)
	if err != nil {
		t.Fatal(err)
	}
	h := p.Hold()
	if !ValidID(h.ID) || h.State != StateActive || h.Officer != "otto" || !h.PlacedAt.Equal(testNow) {
		t.Fatalf("hold %+v", h)
	}
	if got := strings.Join(h.Cameras, ","); got != "north/gate,north/yard,south/dock" {
		t.Fatalf("cameras %s", got)
	}
	if h.Authority != "Procura della Repubblica di Milano" {
		t.Fatalf("authority not trimmed: %q", h.Authority)
	}
	if !h.From.Equal(testNow.Add(-2*time.Hour)) || h.From.Nanosecond() != 0 {
		t.Fatalf("from not truncated to the second: %v", h.From)
	}
	if got := strings.Join(h.Districts(), ","); got != "north,south" {
		t.Fatalf("districts %s", got)
	}
	for _, a := range h.Agents {
		if a.State != AgentPending {
			t.Fatalf("agent %+v", a)
		}
	}
	if got := strings.Join(h.CamerasOf("north"), ","); got != "gate,yard" {
		t.Fatalf("north cameras %s", got)
	}
	if list, _ := s.List(true); len(list) != 0 {
		t.Fatal("Prepare stored something")
	}
}

// A hold goes pending → applied per district; released → releasing →
// released; late or stale acknowledgements change nothing.
func TestHoldLifecycle(t *testing.T) {
	s, clock := mustStore(t)
	p, err := s.Prepare(goodRequest())
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Place(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Place(p); !errors.Is(err, ErrExists) {
		t.Fatalf("placed twice: %v", err)
	}
	if w, _ := s.WaitingDistricts(); strings.Join(w, ",") != "north,south" {
		t.Fatalf("waiting districts %v", w)
	}
	if err := s.DeliveryFailed(h.ID, "south", "not delivered: agent not connected"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if _, err := s.Delivered(h.ID, "north", AgentPending, 42); err != nil {
		t.Fatal(err)
	}
	h, _ = s.Get(h.ID)
	north, _ := h.Agent("north")
	south, _ := h.Agent("south")
	if north.State != AgentApplied || north.Segments != 42 || !north.UpdatedAt.Equal(testNow.Add(time.Minute)) {
		t.Fatalf("north %+v", north)
	}
	if south.State != AgentPending || !strings.Contains(south.Error, "not connected") {
		t.Fatalf("south %+v", south)
	}
	if w, _ := s.Waiting("north"); len(w) != 0 {
		t.Fatalf("north still waits: %+v", w)
	}

	// The agent lost its index: the hold is sent again.
	if n, err := s.ResetDistrict("north"); err != nil || n != 1 {
		t.Fatalf("reset: %d %v", n, err)
	}
	if w, _ := s.Waiting("north"); len(w) != 1 {
		t.Fatal("north does not wait after its reset")
	}
	s.Delivered(h.ID, "north", AgentPending, 40)

	if _, err := s.CheckRelease(h.ID, " "); !errors.Is(err, ErrInvalid) {
		t.Fatalf("release without reason: %v", err)
	}
	if _, err := s.CheckRelease("h-000000000000", "done"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown hold: %v", err)
	}
	h, err = s.Release(h.ID, "otto", "case closed")
	if err != nil {
		t.Fatal(err)
	}
	if h.State != StateReleased || h.ReleasedBy != "otto" || h.ReleaseReason != "case closed" || !h.ReleasedAt.Equal(clock.Now()) {
		t.Fatalf("released %+v", h)
	}
	for _, a := range h.Agents {
		if a.State != AgentReleasing {
			t.Fatalf("agent %+v after release", a)
		}
	}
	// The application that was on its way when the hold was released.
	if h, _ := s.Delivered(h.ID, "south", AgentPending, 7); h.Agents[1].State != AgentReleasing {
		t.Fatalf("stale apply ack changed the hold: %+v", h.Agents[1])
	}
	if _, err := s.Release(h.ID, "otto", "again"); !errors.Is(err, ErrReleased) {
		t.Fatalf("released twice: %v", err)
	}
	if _, err := s.CheckRelease(h.ID, "again"); !errors.Is(err, ErrReleased) {
		t.Fatalf("check release of a released hold: %v", err)
	}
	if n, _ := s.ResetDistrict("north"); n != 0 {
		t.Fatal("a released hold was reset")
	}
	s.Delivered(h.ID, "north", AgentReleasing, 0)
	s.Delivered(h.ID, "south", AgentReleasing, 0)
	h, _ = s.Get(h.ID)
	for _, a := range h.Agents {
		if a.State != AgentReleased {
			t.Fatalf("agent %+v after the release acks", a)
		}
	}
	if w, _ := s.WaitingDistricts(); len(w) != 0 {
		t.Fatalf("still waiting: %v", w)
	}
	if active, _ := s.List(false); len(active) != 0 {
		t.Fatal("a released hold is listed as active")
	}
	if all, _ := s.List(true); len(all) != 1 {
		t.Fatal("the released hold is not listed with --all")
	}
	if rel, _ := s.Relevant(clock.Now().Add(time.Second)); len(rel) != 0 {
		t.Fatal("a hold released before since is relevant")
	}
	if rel, _ := s.Relevant(clock.Now().Add(-time.Hour)); len(rel) != 1 {
		t.Fatal("a hold released after since is not relevant")
	}
}

func TestScopedAndCovers(t *testing.T) {
	s, _ := mustStore(t)
	p, err := s.Prepare(goodRequest())
	if err != nil {
		t.Fatal(err)
	}
	h := p.Hold()
	north, ok := h.Scoped(func(d string) bool { return d == "north" })
	if !ok || strings.Join(north.Cameras, ",") != "north/gate,north/yard" || len(north.Agents) != 1 {
		t.Fatalf("scoped %+v", north)
	}
	if _, ok := h.Scoped(func(d string) bool { return d == "east" }); ok {
		t.Fatal("a hold of north and south visible to east")
	}
	from := h.From
	for _, c := range []struct {
		camera     string
		start, end time.Time
		want       bool
	}{
		{"gate", from.Add(-time.Minute), from.Add(time.Second), true}, // overlaps the start
		{"gate", from.Add(-time.Minute), from, false},                 // ends as the span begins
		{"gate", h.To, h.To.Add(time.Minute), false},                  // begins as it ends
		{"gate", h.To.Add(-time.Second), h.To.Add(time.Minute), true},
		{"roof", from, from.Add(time.Minute), false},
	} {
		if got := h.Covers("north", c.camera, c.start, c.end); got != c.want {
			t.Errorf("Covers(%s, %v-%v) = %v", c.camera, c.start, c.end, got)
		}
	}
	for id, want := range map[string]bool{h.ID: true, "h-0123456789ab": true, "h-0123456789AB": false, "h-123": false, "x-0123456789ab": false, "": false} {
		if ValidID(id) != want {
			t.Errorf("ValidID(%q) = %v", id, !want)
		}
	}
}

// A span is rounded outward to whole seconds: a hold "to now" keeps the
// last fraction of a second, and a span within one second is one second.
func TestSpanRoundsOutward(t *testing.T) {
	from, to, err := checkSpan(testNow.Add(100*time.Millisecond), testNow.Add(900*time.Millisecond), testNow)
	if err != nil || !from.Equal(testNow.Truncate(time.Second)) || !to.Equal(testNow.Truncate(time.Second).Add(time.Second)) {
		t.Fatalf("%v %v %v", from, to, err)
	}
	_, to, _ = checkSpan(testNow.Add(-time.Hour), testNow.Add(2*time.Second), testNow)
	if !to.Equal(testNow.Add(2 * time.Second).Truncate(time.Second)) {
		t.Fatalf("whole second moved: %v", to)
	}
}

// An agent whose index was restored from an older copy says which holds it
// keeps: an active hold it lacks is sent again, a released one it still
// keeps is released again, one central does not know is left alone.
func TestReconcileAgent(t *testing.T) {
	s, _ := mustStore(t)
	place := func() Hold {
		p, err := s.Prepare(goodRequest())
		if err != nil {
			t.Fatal(err)
		}
		h, err := s.Place(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Delivered(h.ID, "north", AgentPending, 3); err != nil {
			t.Fatal(err)
		}
		return h
	}
	active, released := place(), place()
	if _, err := s.Release(released.ID, "otto", "case closed"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delivered(released.ID, "north", AgentReleasing, 0); err != nil {
		t.Fatal(err)
	}
	// In step: nothing to do.
	if n, err := s.ReconcileAgent("north", []string{active.ID}); err != nil || n != 0 {
		t.Fatalf("in step: %d %v", n, err)
	}
	// Restored from a copy older than both the apply of one and the
	// release of the other.
	n, err := s.ReconcileAgent("north", []string{released.ID, "h-unknown00000"})
	if err != nil || n != 2 {
		t.Fatalf("out of step: %d %v", n, err)
	}
	a, _ := mustGet(t, s, active.ID).Agent("north")
	r, _ := mustGet(t, s, released.ID).Agent("north")
	if a.State != AgentPending || r.State != AgentReleasing {
		t.Fatalf("active %+v, released %+v", a, r)
	}
	if w, _ := s.Waiting("north"); len(w) != 2 {
		t.Fatalf("waiting %d, want both", len(w))
	}
}

func mustGet(t *testing.T, s *Store, id string) Hold {
	t.Helper()
	h, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
