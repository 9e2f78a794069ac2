// Package server wires central together: its database, its CA, the people
// and their sessions, enrolment, the agent registry and catalog, the hold
// registry and the delivery of holds to agents, and the two gRPC
// listeners: one for agents (mutual TLS) and one for the CLI (TLS and a
// login token), each request authorised before it is served.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/vigil-cctv/vigil/central/audit"
	"github.com/vigil-cctv/vigil/central/catalog"
	"github.com/vigil-cctv/vigil/central/config"
	"github.com/vigil-cctv/vigil/central/console"
	"github.com/vigil-cctv/vigil/central/enroll"
	"github.com/vigil-cctv/vigil/central/holds"
	"github.com/vigil-cctv/vigil/central/pki"
	"github.com/vigil-cctv/vigil/central/registry"
	"github.com/vigil-cctv/vigil/central/relay"
	"github.com/vigil-cctv/vigil/central/users"
	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

// Options are the parts of central not in its configuration file.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// Users overrides the users store's options (tests use cheap hashing).
	Users users.Options
	// HoldRetryInterval is how often holds waiting for connected agents
	// are sent again (holds.DefaultRetryInterval when zero).
	HoldRetryInterval time.Duration
}

// Server is central.
type Server struct {
	cfg  *config.Config
	opts Options
	log  *slog.Logger

	db       *bolt.DB
	ca       *pki.CA
	users    *users.Store
	tokens   *enroll.Tokens
	catalog  *catalog.Catalog
	registry *registry.Registry
	holds    *holds.Store
	delivery *holds.Deliverer
	audit    *audit.Log
	auditKey string // the audit log's note verifier key
	ops      *opsService
	hub      *relay.Hub
	console  *console.Console

	// AdminPassword is the bootstrap admin's password when this start
	// created it (also written to data_dir/admin-password), else "".
	AdminPassword string

	// quiet limits the records of anonymous refusals per address (auth.go).
	quietMu sync.Mutex
	quiet   map[string]*quietEntry

	mu          sync.Mutex
	agentAddr   net.Addr
	apiAddr     net.Addr
	consoleAddr net.Addr
	ready       chan struct{}
}

// New opens central's state, creating it at the first start.
func New(cfg *config.Config, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{cfg: cfg, opts: opts, log: opts.Logger.With("component", "central"), ready: make(chan struct{})}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("central: data dir: %w", err)
	}
	db, err := bolt.Open(filepath.Join(cfg.DataDir, "central.db"), 0o600, &bolt.Options{Timeout: time.Second, InitialMmapSize: 64 << 20})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("central: %s is in use by another process (is central running?)", filepath.Join(cfg.DataDir, "central.db"))
		}
		return nil, fmt.Errorf("central: open database: %w", err)
	}
	s.db = db
	if err := s.open(); err != nil {
		if s.audit != nil {
			s.audit.Close()
		}
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) open() error {
	var created bool
	var err error
	if s.ca, created, err = pki.LoadOrCreate(filepath.Join(s.cfg.DataDir, "pki"), s.opts.Logger); err != nil {
		return fmt.Errorf("central: %w", err)
	}
	if created {
		s.log.Info("created central's certificate authority", "fingerprint", s.ca.Fingerprint())
	}
	uo := s.opts.Users
	uo.Now = s.opts.Now
	uo.SessionTTL = s.cfg.SessionTTL.Std()
	uo.Logger = s.opts.Logger
	if s.users, err = users.New(s.db, uo); err != nil {
		return fmt.Errorf("central: %w", err)
	}
	pw, made, err := s.users.Bootstrap(s.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("central: %w", err)
	}
	if made {
		s.AdminPassword = pw
	}
	if s.tokens, err = enroll.NewTokens(s.db, s.opts.Now); err != nil {
		return fmt.Errorf("central: %w", err)
	}
	if s.catalog, err = catalog.New(s.db); err != nil {
		return err
	}
	signer, verifier, vkey, err := audit.LoadOrCreateKey(filepath.Join(s.cfg.DataDir, "pki"), "vigil-central")
	if err != nil {
		return fmt.Errorf("central: audit key: %w", err)
	}
	s.auditKey = vkey
	if s.audit, err = audit.Open(filepath.Join(s.cfg.DataDir, "audit.db"), audit.Options{
		Signer: signer, Verifier: verifier, Now: s.opts.Now, Logger: s.opts.Logger,
	}); err != nil {
		return fmt.Errorf("central: %w", err)
	}
	s.registry, err = registry.New(registry.Config{
		DB: s.db, Catalog: s.catalog, District: s.agentDistrict, LinkJournal: s.linkJournal,
		// An agent that lost its index lost its holds too: send them
		// again, and send whatever waits for an agent when it attaches.
		OnNewOutbox: func(district string) error { _, err := s.holds.ResetDistrict(district); return err },
		OnAttach: func(district string, agentHolds []string) {
			if _, err := s.holds.ReconcileAgent(district, agentHolds); err != nil {
				s.log.Error("compare the agent's holds with central's", "district", district, "error", err)
			}
			s.delivery.Kick(district)
		},
		Now: s.opts.Now, Logger: s.opts.Logger,
	})
	if err != nil {
		return err
	}
	if s.holds, err = holds.New(holds.Config{
		DB: s.db, KnownCameras: s.registry.KnownCameras, Now: s.opts.Now, Logger: s.opts.Logger,
	}); err != nil {
		return err
	}
	s.delivery, err = holds.NewDeliverer(holds.DelivererConfig{
		Store: s.holds, Sender: s.registry, RetryInterval: s.opts.HoldRetryInterval, Logger: s.opts.Logger,
	})
	if err != nil {
		return err
	}
	s.ops = &opsService{s: s}
	return s.setupConsole()
}

// Holds gives access to the hold registry.
func (s *Server) Holds() *holds.Store { return s.holds }

// AuditKey is the note verifier key of central's audit log.
func (s *Server) AuditKey() string { return s.auditKey }

// Audit gives access to the audit log.
func (s *Server) Audit() *audit.Log { return s.audit }

// agentDistrict is the district of a link's client certificate, provided it
// is the certificate issued last for that district: enrolling a district
// again revokes the previous one.
func (s *Server) agentDistrict(ctx context.Context) (string, error) {
	cert, district, err := pki.AgentCertificate(ctx)
	if err != nil {
		return "", err
	}
	if err := s.tokens.CheckAgent(district, cert.SerialNumber.Text(16)); err != nil {
		return "", err
	}
	return district, nil
}

// failedLoginRetention is how long failed logins are kept: long enough for
// an auditor to review a period, not forever (they name people).
const failedLoginRetention = 90 * 24 * time.Hour

// pruneFailedLogins forgets old failed logins at start and daily.
func (s *Server) pruneFailedLogins(ctx context.Context) {
	tick := time.NewTicker(24 * time.Hour)
	defer tick.Stop()
	for {
		if n, err := s.users.PruneFailedLogins(s.opts.Now().Add(-failedLoginRetention)); err != nil {
			s.log.Error("prune failed logins", "error", err)
		} else if n > 0 {
			s.log.Info("old failed logins pruned", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Fingerprint is the SHA-256 fingerprint of central's CA, which agents and
// users pin.
func (s *Server) Fingerprint() string { return s.ca.Fingerprint() }

// Registry gives access to the agents' state.
func (s *Server) Registry() *registry.Registry { return s.registry }

// Catalog gives access to the segment catalog.
func (s *Server) Catalog() *catalog.Catalog { return s.catalog }

// Users gives access to the people.
func (s *Server) Users() *users.Store { return s.users }

// Tokens gives access to the enrolment tokens.
func (s *Server) Tokens() *enroll.Tokens { return s.tokens }

// Ready is closed once both listeners accept connections.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// AgentAddr and APIAddr are the listeners' addresses once Ready.
func (s *Server) AgentAddr() string { s.mu.Lock(); defer s.mu.Unlock(); return s.agentAddr.String() }

// APIAddr is the CLI listener's address once Ready.
func (s *Server) APIAddr() string { s.mu.Lock(); defer s.mu.Unlock(); return s.apiAddr.String() }

// Run serves until ctx ends, then stops gracefully and closes the database.
func (s *Server) Run(ctx context.Context) error {
	defer s.db.Close()
	defer func() {
		if err := s.audit.Close(); err != nil {
			s.log.Error("close audit log", "error", err)
		}
	}()
	serverCert, err := s.ca.ServerCertificate(s.cfg.Hosts)
	if err != nil {
		return fmt.Errorf("central: %w", err)
	}
	agentLis, err := net.Listen("tcp", s.cfg.AgentListen)
	if err != nil {
		return fmt.Errorf("central: agent listener: %w", err)
	}
	apiLis, err := net.Listen("tcp", s.cfg.APIListen)
	if err != nil {
		agentLis.Close()
		return fmt.Errorf("central: api listener: %w", err)
	}
	s.mu.Lock()
	s.agentAddr, s.apiAddr = agentLis.Addr(), apiLis.Addr()
	s.mu.Unlock()

	agentSrv := grpc.NewServer(
		grpc.Creds(s.ca.AgentCredentials(serverCert)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// Find dead agent connections (a district's uplink cut) within a
		// minute, so that agents list tells the truth.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 15 * time.Second}),
		// Everything an agent sends is small: reports and heartbeats (the
		// link checks each report's size), one CSR, and video in parts
		// of 32 KiB. The bound applies before anyone is authenticated.
		grpc.MaxRecvMsgSize(64<<10),
		// The link, and a relay per camera and quality, and fetches.
		grpc.MaxConcurrentStreams(256),
	)
	agentv1.RegisterEnrollmentServer(agentSrv, enroll.NewService(s.ca, s.tokens, s.cfg.AgentCertValidity.Std(), s.opts.Logger))
	agentv1.RegisterLinkServer(agentSrv, s.registry)

	apiSrv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(s.ca.UserTLSConfig(serverCert))),
		grpc.UnaryInterceptor(s.authorize),
		// No streaming RPC of the API is authorised: deny by default.
		grpc.StreamInterceptor(func(any, grpc.ServerStream, *grpc.StreamServerInfo, grpc.StreamHandler) error {
			return status.Error(codes.PermissionDenied, "streaming calls are not allowed")
		}),
		grpc.MaxRecvMsgSize(64<<10),
	)
	opsv1.RegisterOpsServer(apiSrv, s.ops)

	errs := make(chan error, 3)
	consoleSrv, err := s.startConsole(serverCert, errs)
	if err != nil {
		agentLis.Close()
		apiLis.Close()
		return err
	}
	go s.pruneFailedLogins(ctx)
	s.delivery.Start()
	go func() { errs <- agentSrv.Serve(agentLis) }()
	go func() { errs <- apiSrv.Serve(apiLis) }()
	s.log.Info("central started", "agents", agentLis.Addr().String(), "api", apiLis.Addr().String(), "console", s.ConsoleURL(), "ca_fingerprint", s.ca.Fingerprint())
	close(s.ready)
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	// Hold deliveries under way are cancelled (what they did not finish
	// stays pending, and is sent at the next start). Agent streams never
	// end by themselves: end them (waiting for their last batch to be
	// applied), then let the servers finish.
	s.delivery.Close()
	if consoleSrv != nil {
		// Live views end (each records its live.stop) before the relays
		// they read from.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		consoleSrv.Shutdown(sctx)
		cancel()
		s.console.Close()
		consoleSrv.Close()
	}
	s.registry.Close()
	stopped := make(chan struct{})
	go func() {
		apiSrv.GracefulStop()
		agentSrv.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		apiSrv.Stop()
		agentSrv.Stop()
		<-stopped
	}
	s.log.Info("central stopped")
	return err
}
