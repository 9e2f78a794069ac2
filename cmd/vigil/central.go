package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-cctv/vigil/central/config"
	"github.com/vigil-cctv/vigil/central/server"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

func newCentralCommand() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "central --config FILE",
		Short: "Run central: the agents' registry, the catalog, users and the CLI API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return errors.New("--config is required")
			}
			cfg, err := config.Load(configPath)
			if err != nil {
				return err
			}
			srv, err := server.New(cfg, server.Options{Logger: newLogger(cmd)})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "central CA fingerprint (agents' tokens carry it; users pass it to vigil login --ca-fingerprint):\n  %s\n", srv.Fingerprint())
			if srv.AdminPassword != "" {
				fmt.Fprintf(out, "first start: user \"admin\" created; its password is in %s/admin-password (read it once, then delete the file)\n", cfg.DataDir)
			}
			return srv.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "central configuration file (YAML)")
	token := &cobra.Command{Use: "token", Short: "Enrolment tokens for new agents", Args: cobra.NoArgs}
	token.AddCommand(newTokenCreateCommand())
	cmd.AddCommand(token)
	return cmd
}

func newTokenCreateCommand() *cobra.Command {
	var (
		district string
		ttl      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create --district D",
		Short: "Print a one-time, expiring token that enrols the agent of a district (admin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if district == "" {
				return errors.New("--district is required")
			}
			if ttl < 0 || ttl > 7*24*time.Hour {
				return errors.New("--ttl must be within 0-168h (0: central's default)")
			}
			client, s, closeFn, err := opsClient()
			if err != nil {
				return err
			}
			defer closeFn()
			resp, err := client.CreateEnrollmentToken(cmd.Context(), &opsv1.CreateEnrollmentTokenRequest{
				District: district, TtlSeconds: int64(ttl / time.Second),
			})
			if err != nil {
				return callError(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.GetToken())
			fmt.Fprintf(cmd.ErrOrStderr(), "valid once, until %s. On the district server, with the token on stdin:\n  vigil agent enroll --central AGENT-ADDRESS --token - --config /etc/vigil/agent.yaml\n(AGENT-ADDRESS is central's agent listener, not the API address %s)\n",
				resp.GetExpires().AsTime().Local().Format(time.DateTime), s.Central)
			return nil
		},
	}
	cmd.Flags().StringVar(&district, "district", "", "district id of the agent to enrol")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "how long the token stays valid (default 24h)")
	return cmd
}
