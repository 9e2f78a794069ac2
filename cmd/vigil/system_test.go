package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent"
	"github.com/vigil-cctv/vigil/agent/camerasim"
	agentconfig "github.com/vigil-cctv/vigil/agent/config"
	"github.com/vigil-cctv/vigil/agent/enroll"
	"github.com/vigil-cctv/vigil/central/audit"
	centralconfig "github.com/vigil-cctv/vigil/central/config"
	"github.com/vigil-cctv/vigil/central/server"
	"github.com/vigil-cctv/vigil/central/users"
	"github.com/vigil-cctv/vigil/proto/actions"
	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/storage"
)

// The system tests run central and agents in this process, wired as in
// production: real gRPC over loopback with TLS, real RTSP cameras.

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type runningCentral struct {
	*server.Server
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startCentralProcess(t testing.TB, cfg *centralconfig.Config) *runningCentral {
	t.Helper()
	return startCentralProcessWith(t, cfg, false)
}

// startCentralProcessWith runs central; realHashing keeps the production
// argon2 cost (tests otherwise use a cheap one).
func startCentralProcessWith(t testing.TB, cfg *centralconfig.Config, realHashing bool) *runningCentral {
	t.Helper()
	opts := server.Options{Logger: slog.New(slog.DiscardHandler)}
	if !realHashing {
		opts.Users = users.Options{Argon2: users.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}}
	}
	srv, err := server.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rc := &runningCentral{Server: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { rc.done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-rc.done:
		t.Fatalf("central: %v", err)
	}
	return rc
}

func (rc *runningCentral) stop(t testing.TB) {
	rc.once.Do(func() {
		rc.cancel()
		if err := <-rc.done; err != nil {
			t.Errorf("central: %v", err)
		}
	})
}

type runningAgentProcess struct {
	*agent.Agent
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startAgentProcess(t testing.TB, cfg *agentconfig.Config) *runningAgentProcess {
	t.Helper()
	a, err := agent.New(cfg, agent.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ra := &runningAgentProcess{Agent: a, cancel: cancel, done: make(chan error, 1)}
	go func() { ra.done <- a.Run(ctx) }()
	return ra
}

func (ra *runningAgentProcess) stop(t testing.TB) {
	ra.once.Do(func() {
		ra.cancel()
		if err := <-ra.done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
}

// indexIDs lists the ids in a running agent's index.
func indexIDs(t testing.TB, a *agent.Agent) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	if err := a.Index().ForEach(func(s storage.Segment) error { ids[s.ID] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	return ids
}

func sameIDs(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for id := range a {
		if !b[id] {
			return false
		}
	}
	return true
}

func keys(m map[string]bool) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// TestCatalogSurvivesCentralOutage: an enrolled agent records while central
// is stopped, and is itself restarted during the outage; when central comes
// back, its catalog holds exactly the agent's segments (same ids, same
// count, no duplicates).
func TestCatalogSurvivesCentralOutage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ccfg := &centralconfig.Config{DataDir: filepath.Join(dir, "central"), AgentListen: freeAddr(t), APIListen: freeAddr(t), ConsoleListen: "127.0.0.1:0"}
	if err := ccfg.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	central := startCentralProcess(t, ccfg)
	tok, _, err := central.Tokens().Create("north", time.Hour, central.Fingerprint())
	if err != nil {
		t.Fatal(err)
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
	acfg := &agentconfig.Config{
		District: "north", DataDir: filepath.Join(dir, "agent"),
		Cameras: []agentconfig.Camera{{ID: "gate", URL: sim.URL(1), Mode: agentconfig.ModeContinuous,
			Transport: agentconfig.TransportTCP, MaxLength: agentconfig.Duration(time.Second)}},
		Storage: agentconfig.Storage{FS: &agentconfig.FSStorage{Path: filepath.Join(dir, "footage")}},
	}
	if err := acfg.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	if _, err := enroll.Enroll(context.Background(), enroll.Options{Central: central.AgentAddr(), Token: tok.String(), DataDir: acfg.DataDir, District: "north"}); err != nil {
		t.Fatal(err)
	}
	ag := startAgentProcess(t, acfg)
	catalogIDs := func(c *runningCentral) map[string]bool {
		ids, err := c.Catalog().IDs("north")
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	waitUntil(t, 20*time.Second, "3 segments in central's catalog", func() bool { return len(catalogIDs(central)) >= 3 })

	central.stop(t)
	before := len(indexIDs(t, ag.Agent))
	waitUntil(t, 20*time.Second, "recording during the outage", func() bool { return len(indexIDs(t, ag.Agent)) >= before+3 })
	ag.stop(t)
	ag = startAgentProcess(t, acfg)
	defer func() { ag.stop(t) }()
	before = len(indexIDs(t, ag.Agent))
	waitUntil(t, 20*time.Second, "recording after the agent restart", func() bool { return len(indexIDs(t, ag.Agent)) >= before+3 })
	if st := ag.Status(); st.ReportsPending == 0 || st.Central == nil || st.Central.Connected {
		t.Fatalf("during the outage: %d reports pending, link %+v", st.ReportsPending, st.Central)
	}

	central = startCentralProcess(t, ccfg)
	defer func() { central.stop(t) }()
	// Equal at a moment when nothing is in flight.
	waitUntil(t, 30*time.Second, "catalog equal to the index", func() bool {
		if ag.Status().ReportsPending != 0 {
			return false
		}
		return sameIDs(indexIDs(t, ag.Agent), catalogIDs(central))
	})
	// And it stays equal as recording goes on.
	time.Sleep(3 * time.Second)
	waitUntil(t, 10*time.Second, "catalog still equal", func() bool {
		idx, cat := indexIDs(t, ag.Agent), catalogIDs(central)
		return ag.Status().ReportsPending == 0 && sameIDs(idx, cat)
	})
	if rows, err := central.Catalog().Count("north"); err != nil || rows != len(catalogIDs(central)) {
		t.Fatalf("catalog has %d rows for %d ids (%v): duplicates", rows, len(catalogIDs(central)), err)
	}
	t.Logf("catalog and index agree on %d segments", len(catalogIDs(central)))
	// The district's chained log is linked into central's audit log: both
	// agent starts are there, with the agent as actor and no chain break.
	recs, err := central.Audit().Query(audit.Filter{Actor: "agent:north"})
	if err != nil {
		t.Fatal(err)
	}
	starts := 0
	for _, r := range recs {
		switch r.Action {
		case actions.AgentStarted:
			starts++
		case actions.AgentChain:
			t.Errorf("chain break recorded: %s", r.Detail)
		}
	}
	if starts != 2 {
		t.Errorf("%d agent starts linked into the audit log, want 2 (%d agent records)", starts, len(recs))
	}
	// Commands reach the agent down the same stream and are acknowledged.
	ack, err := central.Registry().Command(context.Background(), "north", &agentv1.Command{Body: &agentv1.Command_Ping{Ping: &agentv1.Ping{}}})
	if err != nil || !ack.GetOk() || ack.GetRequestId() == "" {
		t.Fatalf("ping: %+v %v", ack, err)
	}
	if _, err := central.Registry().Command(context.Background(), "south", &agentv1.Command{Body: &agentv1.Command_Ping{Ping: &agentv1.Ping{}}}); err == nil {
		t.Fatal("command to a district without an agent succeeded")
	}
	agents, err := central.Registry().Agents()
	if err != nil || len(agents) != 1 || !agents[0].Connected || agents[0].District != "north" {
		t.Fatalf("agents %+v %v", agents, err)
	}
	if len(agents[0].Cameras) != 1 || agents[0].Cameras[0].GetState() != "up" {
		t.Fatalf("camera status at central: %+v", agents[0].Cameras)
	}

	// Central restored from an older copy of its database: it has applied
	// less than the agent already forgot. The agent notices and sends its
	// whole state again; the catalog ends up equal to the index.
	central.stop(t)
	dbPath := filepath.Join(ccfg.DataDir, "central.db")
	backup, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	central = startCentralProcess(t, ccfg)
	before = len(indexIDs(t, ag.Agent))
	waitUntil(t, 20*time.Second, "more segments acknowledged", func() bool {
		return len(indexIDs(t, ag.Agent)) >= before+3 && ag.Status().ReportsPending == 0
	})
	central.stop(t)
	if err := os.WriteFile(dbPath, backup, 0o600); err != nil {
		t.Fatal(err)
	}
	central = startCentralProcess(t, ccfg)
	waitUntil(t, 30*time.Second, "catalog equal to the index after the restore", func() bool {
		return ag.Status().ReportsPending == 0 && sameIDs(indexIDs(t, ag.Agent), catalogIDs(central))
	})
	if rows, _ := central.Catalog().Count("north"); rows != len(indexIDs(t, ag.Agent)) && rows != len(catalogIDs(central)) {
		t.Fatalf("catalog rows %d after the restore", rows)
	}
}
