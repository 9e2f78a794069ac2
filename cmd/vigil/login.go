package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

type loginOptions struct {
	central       string
	user          string
	passwordStdin bool
	caFingerprint string
	totp          string
}

// stdinIsTerminal reports whether a person can be asked something; tests
// replace it to drive the prompts.
var stdinIsTerminal = func() bool { return term.IsTerminal(int(os.Stdin.Fd())) }

// secondFactorPrefix starts central's answer to a login that needs the code
// of an authenticator app (central/server, Login).
const secondFactorPrefix = "second factor required"

func needsSecondFactor(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.Unauthenticated && strings.HasPrefix(st.Message(), secondFactorPrefix)
}

func newLoginCommand() *cobra.Command {
	var o loginOptions
	cmd := &cobra.Command{
		Use:   "login --central ADDR --user NAME",
		Short: "Log in to central; the session lasts 8 hours by default",
		Long: `Log in to central's API. The password is read from the terminal, or from the
first line of stdin with --password-stdin. The session token and central's
pinned CA fingerprint are kept in $VIGIL_HOME (default ~/.config/vigil).

With a second factor (vigil user totp enable), give the code of your
authenticator app with --totp, or type it when asked.

The first time, central's CA must be trusted: pass --ca-fingerprint (printed
by vigil central when it starts), or compare it when asked.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runLogin(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.central, "central", "", "central's API address, HOST:PORT")
	f.StringVar(&o.user, "user", "", "your user name")
	f.BoolVar(&o.passwordStdin, "password-stdin", false, "read the password from stdin")
	f.StringVar(&o.caFingerprint, "ca-fingerprint", "", "SHA-256 fingerprint of central's CA (hex)")
	f.StringVar(&o.totp, "totp", "", "the current code of your authenticator app, if you have a second factor")
	return cmd
}

func runLogin(cmd *cobra.Command, o loginOptions) error {
	if o.central == "" || o.user == "" {
		return errors.New("--central ADDR and --user NAME are required")
	}
	fp := strings.ToLower(strings.ReplaceAll(o.caFingerprint, ":", ""))
	prev, _ := loadSession()
	if prev != nil && prev.Central != o.central {
		prev = nil
	}
	if fp == "" && prev != nil {
		fp = prev.CAFingerprint // the same central as before keeps its pin
	}
	if fp == "" {
		seen, err := fetchCAFingerprint(o.central)
		if err != nil {
			return err
		}
		if !stdinIsTerminal() || o.passwordStdin {
			return fmt.Errorf("first login to %s: pass --ca-fingerprint (central printed it at start; this one presents %s)", o.central, seen)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "central %s presents CA fingerprint\n  %s\nCompare it with the one central printed. Trust it? [y/N] ", o.central, seen)
		var answer string
		fmt.Fscanln(cmd.InOrStdin(), &answer)
		if !strings.EqualFold(strings.TrimSpace(answer), "y") {
			return errors.New("CA not trusted; nothing saved")
		}
		fp = seen
	}
	if len(fp) != 64 {
		return fmt.Errorf("--ca-fingerprint: want 64 hex characters, got %d", len(fp))
	}
	// One reader for the password and the code: both may come from stdin.
	in := bufio.NewReader(cmd.InOrStdin())
	pw, err := readPasswordFrom(cmd, in, o.passwordStdin, "password for "+o.user+": ", false)
	if err != nil {
		return err
	}
	client, closeFn, err := dialCentral(o.central, fp, "")
	if err != nil {
		return err
	}
	defer closeFn()
	req := &opsv1.LoginRequest{User: o.user, Password: pw, Totp: o.totp}
	resp, err := client.Login(cmd.Context(), req)
	if o.totp == "" && needsSecondFactor(err) {
		// Central says so only once the password is right: ask for the
		// code and log in again, rather than ask everyone for a code.
		if !stdinIsTerminal() {
			return errors.New("second factor required: pass --totp CODE, the code of your authenticator app")
		}
		if req.Totp, err = readCode(cmd, in, "code of your authenticator app: "); err != nil {
			return err
		}
		resp, err = client.Login(cmd.Context(), req)
	}
	if err != nil {
		return callError(err)
	}
	s := &session{Central: o.central, CAFingerprint: fp, Token: resp.GetToken(), Expires: resp.GetExpires().AsTime(),
		User: resp.GetUser().GetName(), Role: resp.GetUser().GetRole()}
	if prev != nil && prev.CAFingerprint == fp {
		// Pins of the audit log survive logins: trusting a new key or a
		// shorter log at every login would defeat them.
		s.AuditKey, s.AuditCheckpoint = prev.AuditKey, prev.AuditCheckpoint
	}
	if err := s.save(); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "logged in to %s as %s (%s) until %s\n", o.central, s.User, s.Role, s.Expires.Local().Format(time.DateTime))
	return nil
}

// readCode asks for a one-time code and reads one line of in. The code is
// echoed: it is worthless once used, and seeing it avoids typing errors.
func readCode(cmd *cobra.Command, in *bufio.Reader, prompt string) (string, error) {
	fmt.Fprint(cmd.ErrOrStderr(), prompt)
	line, err := in.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read code: %w", err)
	}
	code := strings.TrimSpace(line)
	if code == "" {
		return "", errors.New("no code given")
	}
	return code, nil
}

func newLogoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "End the session with central",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := loadSession()
			if err != nil {
				return err
			}
			if s.Token != "" && time.Now().Before(s.Expires) {
				if client, closeFn, err := dialCentral(s.Central, s.CAFingerprint, s.Token); err == nil {
					_, err = client.Logout(cmd.Context(), &opsv1.LogoutRequest{})
					closeFn()
					if err != nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "warning: central did not confirm the logout: %v\n", callError(err))
					}
				}
			}
			// Keep the pin, forget the token.
			s.Token, s.Expires, s.User, s.Role = "", time.Time{}, "", ""
			if err := s.save(); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "logged out")
			return nil
		},
	}
}
