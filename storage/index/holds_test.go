package index

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigil-cctv/vigil/storage"
	bolt "go.etcd.io/bbolt"
)

func noLog([]storage.Segment) *Logged { return nil }
func noReleaseLog(int) *Logged        { return nil }

// A hold covers what is indexed in its span, what is indexed later in its
// span, never what is outside; released, its segments expire again.
func TestHoldLifecycle(t *testing.T) {
	ix := MustOpenTemp(t)
	ctx := context.Background()
	segs := minuteSegments("north/gate", t0, 10) // t0 .. t0+10m
	MustPut(t, ix, segs...)
	MustPut(t, ix, seg(segID(100), "north/yard", t0, time.Minute))

	h := Hold{ID: "h1", District: "north", Cameras: []string{"gate"}, From: t0.Add(2 * time.Minute), To: t0.Add(5 * time.Minute)}
	var logged []int
	app, err := ix.ApplyHold(ctx, h, func(c []storage.Segment) *Logged {
		logged = append(logged, len(c))
		return &Logged{Entry: JournalEntry{Action: "hold.applied", Detail: "h1"}}
	})
	if err != nil {
		t.Fatal(err)
	}
	covered := app.Covered
	if got := ids(covered); !slices.Equal(got, []string{segID(2), segID(3), segID(4)}) {
		t.Fatalf("covered %v", got)
	}
	if len(logged) == 0 || logged[len(logged)-1] != 3 {
		t.Fatalf("log entry made of %v", logged)
	}
	if n, err := ix.VerifyJournal(); err != nil || n != 1 {
		t.Fatalf("journal: %d %v", n, err)
	}
	exp, _ := ix.Expiring(t0.Add(2*week), 0)
	for _, s := range exp {
		if s.Camera == "gate" && s.Start.After(t0.Add(time.Minute)) && s.Start.Before(t0.Add(5*time.Minute)) {
			t.Fatalf("held segment %s still expiring", s.ID)
		}
	}
	if len(exp) != 8 {
		t.Fatalf("%d expiring, want 8", len(exp))
	}
	// Recorded later within the span (a segment being written when the
	// hold came): held at once.
	late := seg(segID(50), "north/gate", t0.Add(4*time.Minute+30*time.Second), 20*time.Second)
	MustPut(t, ix, late)
	if got, _ := ix.Get(late.ID); !slices.Equal(got.HeldBy, []string{"h1"}) {
		t.Fatalf("late segment held by %v", got.HeldBy)
	}
	// Applying again (central resends) changes nothing and counts the late one.
	app, err = ix.ApplyHold(ctx, h, noLog)
	if err != nil || len(app.Covered) != 4 || len(app.Added) != 0 || app.WasApplied {
		t.Fatalf("reapply: %+v %v", app, err)
	}
	if got, _ := ix.Get(segID(3)); !slices.Equal(got.HeldBy, []string{"h1"}) {
		t.Fatalf("held by %v after reapply", got.HeldBy)
	}
	if err := ix.SetHoldState(ctx, "h1", HoldApplied); err != nil {
		t.Fatal(err)
	}

	// A second hold over part of the span keeps those when h1 goes.
	h2 := Hold{ID: "h2", District: "north", Cameras: []string{"gate", "yard"}, From: t0.Add(4 * time.Minute), To: t0.Add(4*time.Minute + time.Second)}
	if _, err := ix.ApplyHold(ctx, h2, noLog); err != nil {
		t.Fatal(err)
	}
	only, err := ix.BeginRelease(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(only); !slices.Equal(got, []string{segID(2), segID(3), late.ID}) {
		t.Fatalf("kept by h1 alone: %v", got)
	}
	// Releasing: still held, and new segments no longer join h1.
	if got, _ := ix.Get(segID(2)); !got.Held() {
		t.Fatal("released before FinishRelease")
	}
	n, err := ix.FinishRelease(ctx, "h1", noReleaseLog)
	if err != nil || n != 4 {
		t.Fatalf("finish release: %d %v", n, err)
	}
	for id, want := range map[string][]string{segID(2): nil, segID(3): nil, segID(4): {"h2"}, late.ID: nil} {
		if got, _ := ix.Get(id); !slices.Equal(got.HeldBy, want) {
			t.Errorf("%s held by %v, want %v", id, got.HeldBy, want)
		}
	}
	if exp, _ := ix.Expiring(t0.Add(2*week), 0); len(exp) != 11 {
		t.Fatalf("%d expiring after release, want 11", len(exp))
	}
	if _, err := ix.FinishRelease(ctx, "h1", noReleaseLog); !errors.Is(err, ErrHoldNotFound) {
		t.Fatalf("second release: %v", err)
	}
	// An apply arriving after the release (resent, reordered) cannot bring
	// the hold back.
	if _, err := ix.ApplyHold(ctx, h, noLog); !errors.Is(err, ErrHoldReleased) {
		t.Fatalf("released hold applied again: %v", err)
	}
	if ids, _ := ix.Covering("north", "gate", t0.Add(4*time.Minute), t0.Add(5*time.Minute)); !slices.Equal(ids, []string{"h2"}) {
		t.Fatalf("covering %v", ids)
	}
	if hs, _ := ix.Holds(); len(hs) != 1 || hs[0].ID != "h2" {
		t.Fatalf("holds %+v", hs)
	}
}

func TestApplyHoldRefusesBadHolds(t *testing.T) {
	ix := MustOpenTemp(t)
	for _, h := range []Hold{
		{District: "north", Cameras: []string{"gate"}, From: t0, To: t0.Add(time.Hour)},
		{ID: "h", District: "north", From: t0, To: t0.Add(time.Hour)},
		{ID: "h", District: "north", Cameras: []string{"../x"}, From: t0, To: t0.Add(time.Hour)},
		{ID: "h", District: "north", Cameras: []string{"gate"}, From: t0, To: t0},
		{ID: "h", District: "", Cameras: []string{"gate"}, From: t0, To: t0.Add(time.Hour)},
	} {
		if _, err := ix.ApplyHold(context.Background(), h, noLog); !errors.Is(err, ErrInvalidHold) {
			t.Errorf("%+v: %v", h, err)
		}
	}
	if hs, _ := ix.Holds(); len(hs) != 0 {
		t.Fatalf("bad holds stored: %+v", hs)
	}
}

// A claimed segment is past saving: a hold that comes after the claim does
// not cover it; a hold that comes first keeps it from being claimed.
func TestClaimAndHoldAreOrdered(t *testing.T) {
	ix := MustOpenTemp(t)
	ctx := context.Background()
	segs := minuteSegments("north/gate", t0, 4)
	MustPut(t, ix, segs...)
	if _, err := ix.ApplyHold(ctx, Hold{ID: "h1", District: "north", Cameras: []string{"gate"}, From: t0, To: t0.Add(time.Minute)}, noLog); err != nil {
		t.Fatal(err)
	}
	claimed, err := ix.ClaimExpiring(ctx, ClaimRequest{Before: t0.Add(week + 3*time.Minute), Reason: "retention"})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(claimed); !slices.Equal(got, []string{segID(1), segID(2)}) {
		t.Fatalf("claimed %v", got)
	}
	app, err := ix.ApplyHold(ctx, Hold{ID: "h2", District: "north", Cameras: []string{"gate"}, From: t0, To: t0.Add(time.Hour)}, noLog)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(app.Covered); !slices.Equal(got, []string{segID(0), segID(3)}) {
		t.Fatalf("hold after the claim covers %v", got)
	}
	// A claimed segment put again (an upload retried) stays claimed and
	// out of the expiry index.
	MustPut(t, ix, segs[1])
	if exp, _ := ix.Expiring(t0.Add(2*week), 0); len(exp) != 0 {
		t.Fatalf("expiring %v", ids(exp))
	}
	cl, err := ix.Claims()
	if err != nil || len(cl) != 2 || cl[0].Reason != "retention" {
		t.Fatalf("claims %+v %v", cl, err)
	}
	used, _ := ix.Usage()
	if err := ix.DeleteClaimed(ctx, segID(1), &Logged{Entry: JournalEntry{Action: "segment.deleted", Segment: segID(1)}}, []byte("report")); err != nil {
		t.Fatal(err)
	}
	if after, _ := ix.Usage(); after != used-segs[1].Bytes {
		t.Fatalf("usage %d after deleting %d of %d", after, segs[1].Bytes, used)
	}
	if _, err := ix.Get(segID(1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted segment still indexed: %v", err)
	}
	if got, _ := ix.Reports(0, 10); len(got) != 1 || string(got[0].Payload) != "report" {
		t.Fatalf("reports %v", got)
	}
	if err := ix.DeleteClaimed(ctx, segID(0), nil, nil); !errors.Is(err, ErrNotClaimed) {
		t.Fatalf("held segment deleted: %v", err)
	}
	if err := ix.DeleteClaimed(ctx, segID(3), nil, nil); !errors.Is(err, ErrNotClaimed) {
		t.Fatalf("unclaimed segment deleted: %v", err)
	}
}

func TestUsageOfAnOlderIndex(t *testing.T) {
	path := t.TempDir() + "/index.db"
	ix, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	MustPut(t, ix, minuteSegments("north/gate", t0, 3)...)
	// An index written before the count was kept.
	if err := ix.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyUsage) }); err != nil {
		t.Fatal(err)
	}
	ix.Close()
	ix = MustOpen(t, path, Options{})
	if u, _ := ix.Usage(); u != 3<<20 {
		t.Fatalf("usage %d", u)
	}
}

// A deletion the store refused goes back: to the expiry index, or, when
// the store holds the object, held by the placeholder until a real hold
// takes its place.
func TestUnclaim(t *testing.T) {
	ix := MustOpenTemp(t)
	ctx := context.Background()
	MustPut(t, ix, minuteSegments("north/gate", t0, 2)...)
	if c, _ := ix.ClaimExpiring(ctx, ClaimRequest{Before: t0.Add(2 * week), Reason: "retention"}); len(c) != 2 {
		t.Fatalf("claimed %d", len(c))
	}
	if err := ix.Unclaim(ctx, segID(0), false); err != nil {
		t.Fatal(err)
	}
	if err := ix.Unclaim(ctx, segID(1), true); err != nil {
		t.Fatal(err)
	}
	if exp, _ := ix.Expiring(t0.Add(2*week), 0); len(exp) != 1 || exp[0].ID != segID(0) {
		t.Fatalf("expiring %v", ids(exp))
	}
	if s, _ := ix.Get(segID(1)); !slices.Equal(s.HeldBy, []string{PlaceholderHold}) {
		t.Fatalf("held by %v", s.HeldBy)
	}
	if cl, _ := ix.Claims(); len(cl) != 0 {
		t.Fatalf("claims left %v", cl)
	}
	app, err := ix.ApplyHold(ctx, Hold{ID: "h1", District: "north", Cameras: []string{"gate"}, From: t0, To: t0.Add(time.Hour)}, noLog)
	if err != nil || len(app.Covered) != 2 {
		t.Fatalf("%+v %v", app, err)
	}
	if s, _ := ix.Get(segID(1)); !slices.Equal(s.HeldBy, []string{"h1"}) {
		t.Fatalf("placeholder not replaced: %v", s.HeldBy)
	}
}

func TestJournalDetailClipped(t *testing.T) {
	ix := MustOpenTemp(t)
	long := strings.Repeat("é", 3000) // 6000 bytes
	e, err := ix.Journal(context.Background(), JournalEntry{Action: "hold.applied", Detail: long}, nil)
	if err != nil || len(e.Detail) > 4096 || !utf8.ValidString(e.Detail) || !strings.HasSuffix(e.Detail, "…") {
		t.Fatalf("%d bytes, valid %v, %v", len(e.Detail), utf8.ValidString(e.Detail), err)
	}
}
