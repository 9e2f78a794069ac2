package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vigil-cctv/vigil/agent/config"
	"github.com/vigil-cctv/vigil/agent/enroll"
	centralconfig "github.com/vigil-cctv/vigil/central/config"
	"github.com/vigil-cctv/vigil/central/server"
	"github.com/vigil-cctv/vigil/central/users"
)

// demoCentral is the demo's central, running in this process.
type demoCentral struct {
	srv    *server.Server
	cancel context.CancelFunc
	done   chan error
}

func (d *demoCentral) stop() {
	d.cancel()
	<-d.done
}

// Demo central ports: fixed when free, so that a login survives demo
// restarts; any free port otherwise.
const (
	demoAgentPort = "7443"
	demoAPIPort   = "7444"
	// demoConsolePort is the console's: a bookmark survives restarts.
	demoConsolePort = "8443"
)

func demoAddr(port string) string {
	addr := net.JoinHostPort("127.0.0.1", port)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "127.0.0.1:0"
	}
	l.Close()
	return addr
}

func startDemoCentral(ctx context.Context, dataDir string, logger *slog.Logger) (*demoCentral, error) {
	d, err := runDemoCentral(ctx, dataDir, demoAddr(demoAgentPort), demoAddr(demoAPIPort), demoAddr(demoConsolePort), logger)
	if errors.Is(err, syscall.EADDRINUSE) {
		// A fixed port was taken between demoAddr's check and the bind
		// (another demo starting): any free port will do.
		d, err = runDemoCentral(ctx, dataDir, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", logger)
	}
	return d, err
}

func runDemoCentral(ctx context.Context, dataDir, agentListen, apiListen, consoleListen string, logger *slog.Logger) (*demoCentral, error) {
	cfg := &centralconfig.Config{DataDir: filepath.Join(dataDir, "central"), AgentListen: agentListen, APIListen: apiListen, ConsoleListen: consoleListen}
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	srv, err := server.New(cfg, server.Options{Logger: logger})
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	d := &demoCentral{srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { d.done <- srv.Run(runCtx) }()
	select {
	case <-srv.Ready():
		return d, nil
	case err := <-d.done:
		cancel()
		return nil, err
	case <-ctx.Done():
		d.stop()
		return nil, ctx.Err()
	}
}

// demoUsers makes one user per role with a random password. Users already
// there keep the password demo.json recorded, so that a login survives a
// demo restart; only when it is unknown is a new one set.
func demoUsers(srv *server.Server, previous map[string]demoUser) (map[string]demoUser, error) {
	out := map[string]demoUser{}
	for _, role := range []users.Role{users.RoleOperator, users.RoleOfficer, users.RoleAuditor, users.RoleAdmin} {
		name := string(role)
		pw := rand.Text()
		var districts []string
		if role == users.RoleOperator {
			districts = []string{demoDistrict}
		}
		_, err := srv.Users().Add(name, role, districts, "demo: no designation act", pw)
		if errors.Is(err, users.ErrUserExists) {
			if old, ok := previous[name]; ok && old.Password != "" {
				out[name] = old
				continue
			}
			err = srv.Users().SetPassword(name, pw)
		}
		if err != nil {
			return nil, fmt.Errorf("demo user %s: %w", name, err)
		}
		out[name] = demoUser{User: name, Password: pw}
	}
	return out, nil
}

// previousDemoUsers reads the users of an earlier run's demo.json.
func previousDemoUsers(dataDir string) map[string]demoUser {
	var info demoInfo
	data, err := os.ReadFile(filepath.Join(dataDir, "demo.json"))
	if err != nil || json.Unmarshal(data, &info) != nil {
		return nil
	}
	return info.Users
}

// enrollDemoAgent enrols the demo's agent with the demo's central, unless it
// already is (with this central's CA).
func enrollDemoAgent(ctx context.Context, srv *server.Server, cfg *config.Config, logger *slog.Logger) error {
	// Enrolled with this central at this address: nothing to do. (The
	// demo's ports move when the fixed ones are taken.)
	if id, err := enroll.Load(cfg.DataDir); err == nil && id.CAFingerprint == srv.Fingerprint() && id.Central == srv.AgentAddr() {
		return nil
	}
	tok, _, err := srv.Tokens().Create(cfg.District, 10*time.Minute, srv.Fingerprint())
	if err != nil {
		return err
	}
	_, err = enroll.Enroll(ctx, enroll.Options{
		Central: srv.AgentAddr(), Token: tok.String(), DataDir: cfg.DataDir, District: cfg.District, Force: true, Logger: logger,
	})
	return err
}
