package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/vigil-cctv/vigil/proto/identity"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

// session is what `vigil login` keeps under $VIGIL_HOME: the central it
// talks to, central's pinned CA fingerprint, and a short-lived token.
type session struct {
	Central       string    `json:"central"`
	CAFingerprint string    `json:"ca_fingerprint"`
	Token         string    `json:"token,omitempty"`
	Expires       time.Time `json:"expires,omitzero"`
	User          string    `json:"user,omitempty"`
	Role          string    `json:"role,omitempty"`
	// AuditKey is central's audit-log verifier key, trusted when first seen
	// and required to stay the same.
	AuditKey string `json:"audit_key,omitempty"`
	// AuditCheckpoint is the last checkpoint this machine verified: every
	// later verification must show the log still extends it.
	AuditCheckpoint string `json:"audit_checkpoint,omitempty"`
}

// pinAuditKey remembers central's audit key the first time and refuses a
// different one later: a new key would let a rewritten log verify.
func pinAuditKey(key string) error {
	s, err := loadSession()
	if err != nil {
		return err
	}
	switch s.AuditKey {
	case key:
		return nil
	case "":
		s.AuditKey = key
		return s.save()
	}
	return fmt.Errorf("central's audit key changed (was %s, now %s): the log may have been replaced; if the key was rotated on purpose, remove audit_key from the session file", s.AuditKey, key)
}

// rememberAuditCheckpoint keeps the newest verified checkpoint.
func rememberAuditCheckpoint(cp []byte) error {
	if len(cp) == 0 {
		return nil
	}
	s, err := loadSession()
	if err != nil {
		return err
	}
	s.AuditCheckpoint = string(cp)
	return s.save()
}

// vigilHome is $VIGIL_HOME, default ~/.config/vigil.
func vigilHome() (string, error) {
	if h := os.Getenv("VIGIL_HOME"); h != "" {
		return h, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no home for the login state: set VIGIL_HOME (%v)", err)
	}
	return filepath.Join(dir, "vigil"), nil
}

func sessionPath() (string, error) {
	home, err := vigilHome()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, "session.json"), nil
}

func loadSession() (*session, error) {
	path, err := sessionPath()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errors.New("not logged in: run vigil login --central ADDR --user NAME")
	}
	if err != nil {
		return nil, err
	}
	var s session
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s is damaged: log in again (%v)", path, err)
	}
	return &s, nil
}

// save writes the session with mode 0600 in a 0700 directory: it holds a
// bearer token.
func (s *session) save() error {
	path, err := sessionPath()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// tokenCreds attaches the session token to every call.
type tokenCreds struct{ token string }

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + t.token}, nil
}
func (tokenCreds) RequireTransportSecurity() bool { return true }

// pinnedTLS trusts central only through its pinned CA.
func pinnedTLS(fingerprint string) *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		InsecureSkipVerify:    true, // the pinned CA is checked below, not host names
		VerifyPeerCertificate: identity.VerifyPinned(fingerprint),
	}
}

// dialCentral connects to central's API; with a token every call carries it.
func dialCentral(addr, fingerprint, token string) (opsv1.OpsClient, func(), error) {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(pinnedTLS(fingerprint)))}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds{token}))
	}
	// Audit pages and long listings exceed gRPC's default 4 MB.
	opts = append(opts, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("central %s: %w", addr, err)
	}
	return opsv1.NewOpsClient(conn), func() { conn.Close() }, nil
}

// opsClient connects with the logged-in session.
func opsClient() (opsv1.OpsClient, *session, func(), error) {
	s, err := loadSession()
	if err != nil {
		return nil, nil, nil, err
	}
	if s.Token == "" || time.Now().After(s.Expires) {
		return nil, nil, nil, fmt.Errorf("session on %s expired: run vigil login", s.Central)
	}
	c, closeFn, err := dialCentral(s.Central, s.CAFingerprint, s.Token)
	return c, s, closeFn, err
}

// callError turns a gRPC error into one clear line.
func callError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := st.Message()
	switch st.Code() {
	case codes.Unauthenticated:
		return fmt.Errorf("not authenticated: %s", msg)
	case codes.PermissionDenied:
		return fmt.Errorf("permission denied: %s", msg)
	case codes.Unavailable:
		return fmt.Errorf("central unreachable: %s", firstLine(msg))
	case codes.InvalidArgument, codes.FailedPrecondition, codes.NotFound, codes.AlreadyExists, codes.ResourceExhausted:
		return errors.New(msg)
	}
	return fmt.Errorf("central: %s: %s", st.Code(), msg)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// readPassword reads a password from stdin (--password-stdin: the first
// line) or from the terminal without echo, asking twice when confirm.
func readPassword(cmd *cobra.Command, fromStdin bool, prompt string, confirm bool) (string, error) {
	return readPasswordFrom(cmd, bufio.NewReader(cmd.InOrStdin()), fromStdin, prompt, confirm)
}

// readPasswordFrom is readPassword reading stdin lines from in, so that
// several passwords can be read from one stdin.
func readPasswordFrom(cmd *cobra.Command, in *bufio.Reader, fromStdin bool, prompt string, confirm bool) (string, error) {
	if fromStdin {
		line, err := in.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", errors.New("empty password on stdin")
		}
		return pw, nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", errors.New("no terminal to ask the password: use --password-stdin")
	}
	fmt.Fprint(cmd.ErrOrStderr(), prompt)
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(cmd.ErrOrStderr())
	if err != nil {
		return "", err
	}
	if confirm {
		fmt.Fprint(cmd.ErrOrStderr(), "again: ")
		again, err := term.ReadPassword(fd)
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", err
		}
		if string(again) != string(pw) {
			return "", errors.New("the passwords differ")
		}
	}
	return string(pw), nil
}

// fetchCAFingerprint connects once without trusting anything and returns
// the fingerprint of the CA in central's certificate chain, for a person to
// compare with the one central printed.
func fetchCAFingerprint(addr string) (string, error) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err != nil {
		return "", fmt.Errorf("central %s: %w", addr, err)
	}
	defer conn.Close()
	for _, c := range conn.ConnectionState().PeerCertificates {
		if c.IsCA {
			return identity.Fingerprint(c), nil
		}
	}
	return "", fmt.Errorf("central %s sent no CA certificate", addr)
}
