package main

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent"
	"github.com/vigil-cctv/vigil/agent/camerasim"
	agentconfig "github.com/vigil-cctv/vigil/agent/config"
	"github.com/vigil-cctv/vigil/agent/enroll"
	"github.com/vigil-cctv/vigil/central/audit"
	centralconfig "github.com/vigil-cctv/vigil/central/config"
	"github.com/vigil-cctv/vigil/central/users"
	"github.com/vigil-cctv/vigil/proto/actions"
	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/index"
)

// startAgentProcessWith is startAgentProcess with the agent's options
// (the sweep interval) set by the test.
func startAgentProcessWith(t testing.TB, cfg *agentconfig.Config, opts agent.Options) *runningAgentProcess {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a, err := agent.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ra := &runningAgentProcess{Agent: a, cancel: cancel, done: make(chan error, 1)}
	go func() { ra.done <- a.Run(ctx) }()
	return ra
}

// indexSegments reads a running agent's index.
func indexSegments(t testing.TB, a *agent.Agent) map[string]storage.Segment {
	t.Helper()
	segs := map[string]storage.Segment{}
	if err := a.Index().ForEach(func(s storage.Segment) error { segs[s.ID] = s; return nil }); err != nil {
		t.Fatal(err)
	}
	return segs
}

// stoppedIndexSegments reads the index of a stopped agent from its file.
func stoppedIndexSegments(t testing.TB, dataDir string) []storage.Segment {
	t.Helper()
	ix, err := index.Open(filepath.Join(dataDir, "index.db"), index.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	var segs []storage.Segment
	if err := ix.ForEach(func(s storage.Segment) error { segs = append(segs, s); return nil }); err != nil {
		t.Fatal(err)
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].Start.Before(segs[j].Start) })
	return segs
}

// inStore reports whether the fs store has the segment's object.
func inStore(t testing.TB, root string, s storage.Segment) bool {
	t.Helper()
	_, err := os.Stat(filepath.Join(root, filepath.FromSlash(s.Key)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// TestHoldSurvivesRetentionEndToEnd: a real central, a real agent on the fs
// store and a simulated camera with a one-minute retention. The agent
// records and reports, then goes offline; an officer places a hold over
// part of what it recorded: pending, with when footage starts to expire.
// The agent comes back before any of it expires and applies the hold to
// exactly the segments of the span in its index. Past the retention, the
// held segments are still in the index and the store while older unheld
// ones are gone, reported to central's catalog and linked into the audit
// log as deletions by the agent; the retention report says compliant.
// Released, the held segments, long expired, go at the next sweeps.
func TestHoldSurvivesRetentionEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for over a minute")
	}
	began := time.Now()
	t.Setenv("VIGIL_HOME", t.TempDir())
	dir := t.TempDir()
	ccfg := &centralconfig.Config{DataDir: filepath.Join(dir, "central"), AgentListen: freeAddr(t), APIListen: freeAddr(t), ConsoleListen: "127.0.0.1:0"}
	if err := ccfg.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	central := startCentralProcess(t, ccfg)
	defer func() { central.stop(t) }()
	for _, u := range []struct {
		name string
		role users.Role
	}{{"otto", users.RoleOfficer}, {"aude", users.RoleAuditor}} {
		if _, err := central.Users().Add(u.name, u.role, nil, "act 8/2026", "a long password 1"); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	run := func(stdin string, args ...string) (string, error) {
		t.Helper()
		root := newRootCommand()
		var out, errOut strings.Builder
		root.SetOut(&out)
		root.SetErr(&errOut)
		root.SetIn(strings.NewReader(stdin))
		root.SetArgs(args)
		err := root.ExecuteContext(ctx)
		return out.String() + errOut.String(), err
	}
	login := func(user string) {
		t.Helper()
		if out, err := run("a long password 1\n", "login", "--central", central.APIAddr(), "--user", user,
			"--password-stdin", "--ca-fingerprint", central.Fingerprint()); err != nil {
			t.Fatalf("login %s: %v %s", user, err, out)
		}
	}

	clips, err := camerasim.EmbeddedClips()
	if err != nil {
		t.Fatal(err)
	}
	sim, err := camerasim.New(camerasim.Config{Listen: "127.0.0.1:0", Clips: clips[1:2]})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	const retention = time.Minute
	footage := filepath.Join(dir, "footage")
	acfg := &agentconfig.Config{
		District: "north", DataDir: filepath.Join(dir, "agent"), Retention: agentconfig.Duration(retention),
		Cameras: []agentconfig.Camera{{ID: "gate", URL: sim.URL(1), Mode: agentconfig.ModeContinuous,
			Transport: agentconfig.TransportTCP, MaxLength: agentconfig.Duration(time.Second)}},
		// A quota far above what the test writes: disk pressure on the
		// machine running the test must not delete anything.
		Storage: agentconfig.Storage{FS: &agentconfig.FSStorage{Path: footage}, QuotaBytes: 64 << 30},
	}
	if err := acfg.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	tok, _, err := central.Tokens().Create("north", time.Hour, central.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enroll.Enroll(ctx, enroll.Options{Central: central.AgentAddr(), Token: tok.String(), DataDir: acfg.DataDir, District: "north"}); err != nil {
		t.Fatal(err)
	}
	opts := agent.Options{SweepEvery: time.Second}

	// Record and report, then go offline.
	ag := startAgentProcessWith(t, acfg, opts)
	stopped := false
	defer func() {
		if !stopped {
			ag.stop(t)
		}
	}()
	waitUntil(t, 30*time.Second, "8 segments recorded and reported", func() bool {
		return len(indexIDs(t, ag.Agent)) >= 8 && ag.Status().ReportsPending == 0
	})
	ag.stop(t)
	stopped = true
	recorded := stoppedIndexSegments(t, acfg.DataDir)
	t.Logf("%d segments recorded before going offline (%v)", len(recorded), time.Since(began).Round(time.Millisecond))

	// The span starts on a whole second after at least two segments, so
	// that older footage outside it expires while the hold keeps the rest.
	var from time.Time
	var older, covered []storage.Segment
	for k := 2; k < len(recorded) && len(covered) == 0; k++ {
		from = recorded[k].Start.Truncate(time.Second).Add(time.Second)
		older, covered = nil, nil
		for _, s := range recorded {
			if s.End.After(from) {
				covered = append(covered, s)
			} else {
				older = append(older, s)
			}
		}
		if len(older) < 2 || len(covered) < 2 {
			covered = nil
		}
	}
	if len(covered) == 0 {
		t.Fatalf("no whole second splits the %d segments recorded", len(recorded))
	}

	// The hold, placed while the agent is away: pending, said plainly.
	login("otto")
	out, err := run("", "hold", "place", "--camera", "north/gate", "--from", from.Format(time.RFC3339), "--to", "now",
		"--authority", "Procura della Repubblica di Milano", "--case", "RG 77/2026", "--reason", "assault at the gate", "--wait", "0")
	if err != nil {
		t.Fatalf("hold place: %v\n%s", err, out)
	}
	placedOut, placedAt := out, time.Now()
	holdID := strings.Fields(out)[1]
	var shown holdJSON
	showJSON := func() holdJSON {
		t.Helper()
		out, err := run("", "hold", "show", holdID, "-o", "json")
		if err != nil {
			t.Fatalf("hold show: %v %s", err, out)
		}
		var h holdJSON
		if err := json.Unmarshal([]byte(out), &h); err != nil || len(h.Agents) != 1 {
			t.Fatalf("hold show json: %v %s", err, out)
		}
		return h
	}
	shown = showJSON()
	// Central rounds the span outward to the second: "now" keeps its
	// fraction, so every segment recorded before the hold is covered.
	to := shown.To
	if !shown.From.Equal(from) || to.Before(placedAt.Add(-time.Second)) || to.Sub(placedAt) > 2*time.Second {
		t.Fatalf("hold span %v → %v, placed as %v → now (%v)", shown.From, to, from, placedAt)
	}
	for _, s := range covered {
		if !s.Overlaps(from, to) {
			t.Errorf("segment %s (%v → %v), recorded before the hold was placed with --to now, is outside the span stored (to %v)",
				s.ID, s.Start.Format(time.StampMilli), s.End.Format(time.StampMilli), to.Format(time.StampMilli))
		}
	}
	firstExpiry := covered[0].Expires
	for _, s := range covered {
		if s.Expires.Before(firstExpiry) {
			firstExpiry = s.Expires
		}
	}
	if a := shown.Agents[0]; a.District != "north" || a.State != "pending" || a.FirstExpiry == nil || !a.FirstExpiry.Equal(firstExpiry) {
		t.Fatalf("hold show json while the agent is away: %+v (first expiry want %v)", a, firstExpiry)
	}
	wantPending := "PENDING at north: the agent has not confirmed yet; footage in the span may expire from " +
		firstExpiry.Local().Format(time.DateTime) + " unless it reconnects before"
	if !strings.Contains(placedOut, wantPending) {
		t.Fatalf("hold place output lacks %q:\n%s", wantPending, placedOut)
	}
	out, err = run("", "hold", "show", holdID)
	if err != nil || !strings.Contains(out, wantPending) {
		t.Fatalf("hold show while the agent is away: %v\n%s", err, out)
	}
	t.Logf("hold placed while offline, the covered footage expires from %s:\n%s", firstExpiry.Local().Format(time.TimeOnly), out)

	// Back before the covered footage expires: applied to exactly the
	// segments of the span in the index.
	if time.Until(firstExpiry) < 20*time.Second {
		t.Fatalf("too slow: the covered footage expires in %v, before the agent could be back", time.Until(firstExpiry))
	}
	ag = startAgentProcessWith(t, acfg, opts)
	stopped = false
	waitUntil(t, 20*time.Second, "hold applied", func() bool {
		shown = showJSON()
		return shown.Agents[0].State == "applied"
	})
	t.Logf("hold applied at north, %d segments, %v before the first covered segment expires (%v)",
		shown.Agents[0].Segments, time.Until(firstExpiry).Round(time.Second), time.Since(began).Round(time.Millisecond))
	inSpan := map[string]storage.Segment{}
	for id, s := range indexSegments(t, ag.Agent) {
		if s.Camera == "gate" && s.Overlaps(from, to) {
			inSpan[id] = s
		}
	}
	if n := shown.Agents[0].Segments; n <= 0 || n != int64(len(inSpan)) {
		t.Errorf("hold applied to %d segments; the index has %d in the span", n, len(inSpan))
	}
	for _, s := range covered {
		if _, ok := inSpan[s.ID]; !ok {
			t.Errorf("segment %s (%v → %v) recorded in the span is not in the index", s.ID, s.Start, s.End)
		}
	}
	for id, s := range inSpan {
		if len(s.HeldBy) != 1 || s.HeldBy[0] != holdID {
			t.Errorf("segment %s in the span held by %v, want [%s]", id, s.HeldBy, holdID)
		}
	}
	if out, err := run("", "hold", "show", holdID); err != nil || strings.Contains(out, "PENDING") || !strings.Contains(out, "applied") {
		t.Errorf("hold show once applied: %v\n%s", err, out)
	}
	// What an officer sees of the footage through central.
	out, err = run("", "recordings", "list", "--camera", "north/gate", "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339), "-o", "json")
	if err != nil {
		t.Fatalf("recordings list: %v %s", err, out)
	}
	var listed []recordingJSON
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatal(err)
	}
	heldListed := 0
	for _, r := range listed {
		if r.Held {
			heldListed++
		}
	}
	if heldListed != len(inSpan) {
		t.Errorf("recordings list through central: %d of %d segments in the span say held, want %d", heldListed, len(listed), len(inSpan))
	}
	// The agent's own view says held.
	out, err = run("", "recordings", "list", "--agent-data", acfg.DataDir, "--camera", "north/gate",
		"--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339), "-o", "json")
	listed = nil
	if err != nil || json.Unmarshal([]byte(out), &listed) != nil {
		t.Fatalf("recordings list --agent-data: %v %s", err, out)
	}
	heldListed = 0
	for _, r := range listed {
		if r.Held {
			heldListed++
		}
	}
	if heldListed != len(inSpan) || len(listed) != len(inSpan) {
		t.Errorf("recordings list --agent-data: %d of %d segments in the span say held, want %d", heldListed, len(listed), len(inSpan))
	}

	// The older footage goes within 60 s of its expiry (the sweeper runs
	// every second), from the index, the store and central's catalog.
	lastOlder := older[0].Expires
	for _, s := range older {
		if s.Expires.After(lastOlder) {
			lastOlder = s.Expires
		}
	}
	waitUntil(t, time.Until(lastOlder.Add(60*time.Second)), "older unheld footage deleted", func() bool {
		idx := indexSegments(t, ag.Agent)
		for _, s := range older {
			if _, ok := idx[s.ID]; ok || inStore(t, footage, s) {
				return false
			}
		}
		return true
	})
	t.Logf("older unheld footage gone %v after its last expiry", time.Since(lastOlder).Round(time.Millisecond))

	// Past the expiry of every held segment, and a few sweeps more, the
	// held footage is all there.
	lastHeld := firstExpiry
	for _, s := range inSpan {
		if s.Expires.After(lastHeld) {
			lastHeld = s.Expires
		}
	}
	time.Sleep(time.Until(lastHeld.Add(3 * time.Second)))
	idx := indexSegments(t, ag.Agent)
	for id, s := range inSpan {
		if _, ok := idx[id]; !ok {
			t.Errorf("held segment %s (expired %v ago) deleted from the index", id, time.Since(s.Expires).Round(time.Second))
		}
		if !inStore(t, footage, s) {
			t.Errorf("held segment %s (expired %v ago) deleted from the store", id, time.Since(s.Expires).Round(time.Second))
		}
	}
	// Footage recorded since the agent came back, outside the span,
	// expires as usual.
	for _, s := range idx {
		if !s.Overlaps(from, to) && time.Since(s.Expires) > 5*time.Second {
			t.Errorf("unheld segment %s expired %v ago is still indexed", s.ID, time.Since(s.Expires).Round(time.Second))
		}
	}

	// Central has the deletions: out of the catalog, in its deletion
	// record with the reason, and in the audit log by the agent.
	waitUntil(t, 10*time.Second, "deletions reported to central", func() bool {
		ids, err := central.Catalog().IDs("north")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range older {
			if ids[s.ID] {
				return false
			}
		}
		for id := range inSpan {
			if !ids[id] {
				t.Fatalf("held segment %s left central's catalog", id)
			}
		}
		return true
	})
	deletions, err := central.Catalog().Deletions("north", began)
	if err != nil {
		t.Fatal(err)
	}
	deleted := map[string]string{}
	for _, d := range deletions {
		deleted[d.ID] = d.Reason
	}
	for _, s := range older {
		if deleted[s.ID] != "retention" {
			t.Errorf("segment %s deleted at the agent: central's deletion record says %q", s.ID, deleted[s.ID])
		}
	}
	for id := range inSpan {
		if _, ok := deleted[id]; ok {
			t.Errorf("held segment %s in central's deletion record", id)
		}
	}
	waitUntil(t, 10*time.Second, "deletions linked into the audit log", func() bool {
		recs, err := central.Audit().Query(audit.Filter{Actor: "agent:north", Action: actions.SegmentDeleted, Limit: audit.MaxQueryLimit})
		if err != nil {
			t.Fatal(err)
		}
		audited := map[string]bool{}
		for _, r := range recs {
			audited[r.Target.Segment] = true
			if _, ok := inSpan[r.Target.Segment]; ok {
				t.Fatalf("held segment %s deleted in the audit log: %+v", r.Target.Segment, r)
			}
		}
		for _, s := range older {
			if !audited[s.ID] {
				return false
			}
		}
		return true
	})

	// The auditor's evidence: compliant, with the hold.
	login("aude")
	out, err = run("", "retention", "report", "--since", "-1h", "-o", "json")
	if err != nil {
		t.Fatalf("retention report: %v %s", err, out)
	}
	var rep retentionReportJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Cameras) != 1 {
		t.Fatalf("retention report json: %v %s", err, out)
	}
	if c := rep.Cameras[0]; !rep.Compliant || !c.Compliant || c.RetentionSeconds != 60 || c.OldestUnheldAgeSeconds > 60+60 ||
		c.HeldSegments != int64(len(inSpan)) || len(c.Holds) != 1 || c.Holds[0] != holdID {
		t.Errorf("retention report: %s", out)
	}
	if out, err := run("", "retention", "report", "--since", "-1h"); err != nil || !strings.Contains(out, "All 1 cameras compliant") {
		t.Errorf("retention report: %v\n%s", err, out)
	} else {
		t.Logf("retention report while held:\n%s", out)
	}

	// Released: the held footage, long expired, goes at the next sweeps.
	login("otto")
	out, err = run("", "hold", "release", holdID, "--reason", "the court no longer needs it")
	if err != nil || !strings.Contains(out, "hold "+holdID+" released") {
		t.Fatalf("hold release: %v\n%s", err, out)
	}
	t.Logf("hold release:\n%s", out)
	waitUntil(t, 20*time.Second, "release confirmed by the agent", func() bool {
		shown = showJSON()
		return shown.State == "released" && shown.Agents[0].State == "released"
	})
	released := time.Now()
	waitUntil(t, 60*time.Second, "formerly held footage deleted", func() bool {
		idx := indexSegments(t, ag.Agent)
		for id, s := range inSpan {
			if _, ok := idx[id]; ok || inStore(t, footage, s) {
				return false
			}
		}
		return true
	})
	t.Logf("formerly held footage gone %v after the release", time.Since(released).Round(time.Millisecond))
	waitUntil(t, 10*time.Second, "their deletions reported", func() bool {
		deletions, err := central.Catalog().Deletions("north", began)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, d := range deletions {
			if _, ok := inSpan[d.ID]; ok && d.Reason == "retention" {
				got++
			}
		}
		return got == len(inSpan)
	})
	ag.stop(t)
	stopped = true
	t.Logf("took %v", time.Since(began).Round(time.Millisecond))
}
