package main

import (
	"fmt"

	"github.com/spf13/cobra"

	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

func newUserTOTPCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "totp",
		Short: "Manage your second factor: a code from an authenticator app at each login",
		Long: `A second factor (TOTP, RFC 6238: any authenticator app) makes a login need,
besides the password, the 6-digit code the app shows. Enable prints a new
secret; it takes effect once you confirm it with a code, so a mistake while
setting up the app locks nobody out.

  vigil user totp enable          # print the secret and its otpauth:// URI
  vigil user totp confirm CODE    # the app's current code: from now on logins ask for it
  vigil user totp disable [NAME]  # remove it (yours, or anyone's as administrator)`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newUserTOTPEnableCommand(), newUserTOTPConfirmCommand(), newUserTOTPDisableCommand())
	return cmd
}

func newUserTOTPEnableCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "enable",
		Short: "Make a new second-factor secret for yourself (pending until confirmed)",
		Long: `Make a new second-factor secret for the logged-in user and print it, in base32
and as an otpauth:// URI (show it as a QR code, e.g. qrencode -t ansiutf8).
Nothing changes for logins until vigil user totp confirm CODE. Running it
again replaces a secret not yet confirmed; a confirmed one stays in force
until the new one is confirmed. Only you can enable your second factor.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, s, closeFn, err := opsClient()
			if err != nil {
				return err
			}
			defer closeFn()
			resp, err := client.EnrollTOTP(cmd.Context(), &opsv1.EnrollTOTPRequest{Name: s.User})
			if err != nil {
				return callError(err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "secret: %s\n", resp.GetSecret())
			fmt.Fprintf(out, "uri:    %s\n", resp.GetUri())
			fmt.Fprintln(out, "Add it to your authenticator app (type the secret, or scan the URI as a QR code),")
			fmt.Fprintln(out, "then run: vigil user totp confirm CODE")
			return nil
		},
	}
}

func newUserTOTPConfirmCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "confirm CODE",
		Short: "Activate your pending second factor with a code of your authenticator app",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, s, closeFn, err := opsClient()
			if err != nil {
				return err
			}
			defer closeFn()
			if _, err := client.ConfirmTOTP(cmd.Context(), &opsv1.ConfirmTOTPRequest{Name: s.User, Code: args[0]}); err != nil {
				return callError(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "second factor of %s enabled: logins now ask for the code (vigil login --totp CODE)\n", s.User)
			return nil
		},
	}
}

func newUserTOTPDisableCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "disable [NAME]",
		Short: "Remove a second factor (yours, or anyone's as administrator); sessions go on",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, s, closeFn, err := opsClient()
			if err != nil {
				return err
			}
			defer closeFn()
			name := s.User
			if len(args) == 1 {
				name = args[0]
			}
			if _, err := client.DisableTOTP(cmd.Context(), &opsv1.DisableTOTPRequest{Name: name}); err != nil {
				return callError(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "second factor of %s removed: the password alone logs in\n", name)
			return nil
		},
	}
}
