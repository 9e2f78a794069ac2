package main

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

func newUserCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage the people who use vigil (administrators)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newUserAddCommand(), newUserListCommand(), newUserDisableCommand(), newUserPasswdCommand(), newUserTOTPCommand())
	return cmd
}

func newUserAddCommand() *cobra.Command {
	var (
		role, designation string
		districts         []string
		passwordStdin     bool
	)
	cmd := &cobra.Command{
		Use:   "add NAME --role ROLE [--district D]... [--designation TEXT]",
		Short: "Add a user: operator, officer, auditor or admin",
		Long: `Add a user. Roles: operator (watches the districts given with --district),
officer (places judicial holds), auditor (reads the access log), admin
(manages agents and users). --designation names the written act that
authorises the person. The password is asked twice, or read from stdin.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if role == "" {
				return errors.New("--role is required: operator, officer, auditor or admin")
			}
			pw, err := readPassword(cmd, passwordStdin, "password for "+args[0]+": ", true)
			if err != nil {
				return err
			}
			client, _, closeFn, err := opsClient()
			if err != nil {
				return err
			}
			defer closeFn()
			resp, err := client.AddUser(cmd.Context(), &opsv1.AddUserRequest{
				Name: args[0], Role: role, Districts: districts, Designation: designation, Password: pw,
			})
			if err != nil {
				return callError(err)
			}
			u := resp.GetUser()
			fmt.Fprintf(cmd.OutOrStdout(), "added %s (%s, districts: %s)\n", u.GetName(), u.GetRole(), scope(u.GetDistricts()))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "", "operator, officer, auditor or admin")
	f.StringArrayVar(&districts, "district", nil, "a district the user may act on (repeat; none means every district)")
	f.StringVar(&designation, "designation", "", "reference of the act that authorises this person")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	return cmd
}

func scope(districts []string) string {
	if len(districts) == 0 {
		return "all"
	}
	return strings.Join(districts, ",")
}

func newUserListCommand() *cobra.Command {
	output := outputFormat("table")
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, _, closeFn, err := opsClient()
			if err != nil {
				return err
			}
			defer closeFn()
			resp, err := client.ListUsers(cmd.Context(), &opsv1.ListUsersRequest{})
			if err != nil {
				return callError(err)
			}
			if output == "json" {
				type userJSON struct {
					Name        string    `json:"name"`
					Role        string    `json:"role"`
					Districts   []string  `json:"districts"`
					Designation string    `json:"designation"`
					Disabled    bool      `json:"disabled"`
					Created     time.Time `json:"created"`
					TOTP        bool      `json:"totp"`
				}
				rows := []userJSON{}
				for _, u := range resp.GetUsers() {
					rows = append(rows, userJSON{u.GetName(), u.GetRole(), append([]string{}, u.GetDistricts()...), u.GetDesignation(), u.GetDisabled(), u.GetCreated().AsTime(), u.GetTotp()})
				}
				return writeJSON(cmd.OutOrStdout(), rows)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "NAME\tROLE\tDISTRICTS\tSTATE\tTOTP\tDESIGNATION\tCREATED")
			for _, u := range resp.GetUsers() {
				state := "active"
				if u.GetDisabled() {
					state = "disabled"
				}
				totp := "no"
				if u.GetTotp() {
					totp = "yes"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.GetName(), u.GetRole(), scope(u.GetDistricts()), state, totp,
					u.GetDesignation(), u.GetCreated().AsTime().Local().Format(time.DateOnly))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().VarP(&output, "output", "o", "output format: table or json")
	return cmd
}

func newUserDisableCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "disable NAME",
		Short: "Disable a user and end their sessions (names are never reused)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, _, closeFn, err := opsClient()
			if err != nil {
				return err
			}
			defer closeFn()
			if _, err := client.DisableUser(cmd.Context(), &opsv1.DisableUserRequest{Name: args[0]}); err != nil {
				return callError(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "disabled %s\n", args[0])
			return nil
		},
	}
}

func newUserPasswdCommand() *cobra.Command {
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "passwd [NAME]",
		Short: "Change a password (yours, or anyone's as administrator); ends that user's sessions",
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
			req := &opsv1.SetPasswordRequest{Name: name}
			own := name == s.User
			if own {
				// With --password-stdin: the current password on the
				// first line, the new one on the second.
				in := bufio.NewReader(cmd.InOrStdin())
				if req.CurrentPassword, err = readPasswordFrom(cmd, in, passwordStdin, "current password: ", false); err != nil {
					return err
				}
				if req.Password, err = readPasswordFrom(cmd, in, passwordStdin, "new password: ", true); err != nil {
					return err
				}
			} else if req.Password, err = readPassword(cmd, passwordStdin, "new password for "+name+": ", true); err != nil {
				return err
			}
			if _, err := client.SetPassword(cmd.Context(), req); err != nil {
				return callError(err)
			}
			if own {
				// Changing a password ends its sessions, this one included.
				s.Token, s.Expires = "", time.Time{}
				if err := s.save(); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "password of %s changed; log in again\n", name)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "password of %s changed (their sessions are ended)\n", name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	return cmd
}
