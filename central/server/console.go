package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-cctv/vigil/central/config"
	"github.com/vigil-cctv/vigil/central/console"
	"github.com/vigil-cctv/vigil/central/relay"
	"github.com/vigil-cctv/vigil/central/users"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

// setupConsole makes the live relay hub and the web console.
func (s *Server) setupConsole() error {
	hub, err := relay.New(relay.Config{
		Open: func(ctx context.Context, district, camera string, sub bool) (relay.Source, error) {
			rs, err := s.registry.OpenRelay(ctx, district, camera, sub)
			if err != nil {
				return nil, err
			}
			return rs, nil
		},
		Logger: s.opts.Logger,
	})
	if err != nil {
		return err
	}
	s.hub = hub
	s.console, err = console.New(console.Config{
		Users: s.users, Audit: s.audit, Catalog: s.catalog, Registry: s.registry, Holds: s.holds, Hub: hub,
		Invoke: s.invokeOps, AgentsStatus: s.agentsStatus, IdleTimeout: s.cfg.ConsoleIdleTimeout.Std(), Now: s.opts.Now, Logger: s.opts.Logger,
	})
	return err
}

// Hub gives access to the live relays.
func (s *Server) Hub() *relay.Hub { return s.hub }

// ConsoleURL is the console's address once Ready ("" when it is off).
func (s *Server) ConsoleURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.consoleAddr == nil {
		return ""
	}
	return "https://" + s.consoleAddr.String() + "/"
}

// invokeOps calls an Ops method in process exactly as a gRPC request would
// be served: through the authorize interceptor (authentication, role and
// scope, audit record first), as the session token's user.
func (s *Server) invokeOps(ctx context.Context, method, token, client string, req proto.Message) (proto.Message, error) {
	var md *grpc.MethodDesc
	for i := range opsv1.Ops_ServiceDesc.Methods {
		if opsv1.Ops_ServiceDesc.Methods[i].MethodName == method {
			md = &opsv1.Ops_ServiceDesc.Methods[i]
		}
	}
	if md == nil {
		return nil, status.Errorf(codes.Unimplemented, "no method %s", method)
	}
	mdata := metadata.MD{}
	if token != "" {
		mdata.Set("authorization", "Bearer "+token)
	}
	ctx = metadata.NewIncomingContext(ctx, mdata)
	ctx = peer.NewContext(ctx, &peer.Peer{Addr: clientAddress(client)})
	dec := func(v any) error {
		proto.Merge(v.(proto.Message), req)
		return nil
	}
	resp, err := md.Handler(s.ops, ctx, dec, s.authorize)
	if err != nil {
		return nil, err
	}
	return resp.(proto.Message), nil
}

// agentsStatus is ListAgents for an authenticated user, without the
// interceptor's audit record: the console's periodic refresh of agent
// health (the console checks the role first).
func (s *Server) agentsStatus(ctx context.Context, u users.User) (proto.Message, error) {
	return s.ops.ListAgents(context.WithValue(ctx, callerKey{}, caller{user: u}), &opsv1.ListAgentsRequest{})
}

// clientAddress is a browser's address as the audit log records it.
type clientAddress string

func (a clientAddress) Network() string { return "tcp" }
func (a clientAddress) String() string  { return string(a) }

// consoleTLS is the console's certificate: the configured one, or the one
// central's CA issues for its hosts (browsers must then trust that CA).
func (s *Server) consoleTLS(serverCert tls.Certificate) (*tls.Config, error) {
	cert := serverCert
	if s.cfg.ConsoleCert != "" {
		c, err := tls.LoadX509KeyPair(s.cfg.ConsoleCert, s.cfg.ConsoleKey)
		if err != nil {
			return nil, fmt.Errorf("central: console certificate: %w", err)
		}
		cert = c
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// startConsole listens for the console; it returns a nil server when the
// console is off.
func (s *Server) startConsole(serverCert tls.Certificate, errs chan<- error) (*http.Server, error) {
	if s.cfg.ConsoleListen == config.ConsoleOff {
		return nil, nil
	}
	tlsCfg, err := s.consoleTLS(serverCert)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", s.cfg.ConsoleListen)
	if err != nil {
		return nil, fmt.Errorf("central: console listener: %w", err)
	}
	s.mu.Lock()
	s.consoleAddr = lis.Addr()
	s.mu.Unlock()
	srv := &http.Server{
		Handler: s.console.Handler(), TLSConfig: tlsCfg,
		ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		// Browsers drop connections all the time; that is no error.
		ErrorLog: slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := srv.ServeTLS(lis, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("central: console: %w", err)
		}
	}()
	return srv, nil
}
