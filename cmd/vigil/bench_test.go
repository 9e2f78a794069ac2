package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent/enroll"
	"github.com/vigil-cctv/vigil/agent/link"
	centralconfig "github.com/vigil-cctv/vigil/central/config"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/index"
)

// BenchmarkCatalogEvents measures catalog events end to end, durable at both
// ends: segments indexed with their reports at the agent (fsynced, group
// commit), sent over the mutual-TLS link, applied by central in batches
// (fsynced), acknowledged. Reported: events per second from the first
// index write to the last event applied at central.
func BenchmarkCatalogEvents(b *testing.B) {
	const events = 20000
	dir := b.TempDir()
	ccfg := &centralconfig.Config{DataDir: filepath.Join(dir, "central"), AgentListen: "127.0.0.1:0", APIListen: "127.0.0.1:0", ConsoleListen: "127.0.0.1:0"}
	if err := ccfg.CheckAndSetDefaults(); err != nil {
		b.Fatal(err)
	}
	central := startCentralProcess(b, ccfg)
	defer central.stop(b)
	tok, _, err := central.Tokens().Create("bench", time.Hour, central.Fingerprint())
	if err != nil {
		b.Fatal(err)
	}
	agentDir := filepath.Join(dir, "agent")
	id, err := enroll.Enroll(context.Background(), enroll.Options{Central: central.AgentAddr(), Token: tok.String(), DataDir: agentDir, District: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	ix, err := index.Open(filepath.Join(agentDir, "index.db"), index.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer ix.Close()
	if _, err := ix.StartOutbox(context.Background(), func(storage.Segment) ([]byte, error) { return nil, nil }); err != nil {
		b.Fatal(err)
	}
	l, err := link.New(link.Config{District: "bench", Central: id.Central, TLS: id.ClientTLS(), Index: ix, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx)

	start := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	segs := make([]storage.Segment, events)
	for i := range segs {
		s := storage.Segment{
			ID: fmt.Sprintf("%016x", i+1), District: "bench", Camera: fmt.Sprintf("cam%d", i%100),
			Start: start.Add(time.Duration(i) * time.Millisecond), Bytes: 1 << 20, SHA256: strings.Repeat("ab", 32), Codec: "h264",
		}
		s.End = s.Start.Add(time.Minute)
		s.Expires = s.Start.Add(7 * 24 * time.Hour)
		s.Key = storage.SegmentKey(s.District, s.Camera, s.Start, s.ID)
		segs[i] = s
	}
	b.ResetTimer()
	t0 := time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				payload, err := link.SegmentStored(segs[i], time.Now())
				if err == nil {
					_, err = ix.PutReported(ctx, &segs[i], payload)
				}
				if err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range segs {
		work <- i
	}
	close(work)
	wg.Wait()
	indexed := time.Since(t0)
	waitUntil(b, 2*time.Minute, "central to apply every event", func() bool {
		_, seq, err := central.Catalog().Applied("bench")
		return err == nil && seq >= events
	})
	elapsed := time.Since(t0)
	b.StopTimer()
	b.ReportMetric(events/elapsed.Seconds(), "events/s")
	b.ReportMetric(events/indexed.Seconds(), "indexed/s")
	ids, err := central.Catalog().IDs("bench")
	if err != nil || len(ids) != events {
		b.Fatalf("catalog holds %d of %d segments (%v)", len(ids), events, err)
	}
}

// BenchmarkLoginRPC measures a login over gRPC with TLS, argon2id at the
// production cost included, and a session check per RPC (WhoAmI).
func BenchmarkLoginRPC(b *testing.B) {
	dir := b.TempDir()
	ccfg := &centralconfig.Config{DataDir: filepath.Join(dir, "central"), AgentListen: "127.0.0.1:0", APIListen: "127.0.0.1:0", ConsoleListen: "127.0.0.1:0"}
	if err := ccfg.CheckAndSetDefaults(); err != nil {
		b.Fatal(err)
	}
	// Production argon2 parameters, not the cheap test ones.
	central := startCentralProcessWith(b, ccfg, true)
	defer central.stop(b)
	client, closeFn, err := dialCentral(central.APIAddr(), central.Fingerprint(), "")
	if err != nil {
		b.Fatal(err)
	}
	defer closeFn()
	ctx := context.Background()
	b.Run("login", func(b *testing.B) {
		for range b.N {
			if _, err := client.Login(ctx, &opsv1.LoginRequest{User: "admin", Password: central.AdminPassword}); err != nil {
				b.Fatal(err)
			}
		}
	})
	resp, err := client.Login(ctx, &opsv1.LoginRequest{User: "admin", Password: central.AdminPassword})
	if err != nil {
		b.Fatal(err)
	}
	authed, closeAuthed, err := dialCentral(central.APIAddr(), central.Fingerprint(), resp.GetToken())
	if err != nil {
		b.Fatal(err)
	}
	defer closeAuthed()
	b.Run("authenticated-rpc", func(b *testing.B) {
		for range b.N {
			if _, err := authed.WhoAmI(ctx, &opsv1.WhoAmIRequest{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
