package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vigil-cctv/vigil/agent/config"
	"github.com/vigil-cctv/vigil/agent/enroll"
)

func newAgentEnrollCommand() *cobra.Command {
	var (
		central, token, configPath string
		force                      bool
	)
	cmd := &cobra.Command{
		Use:   "enroll --central ADDR --token TOKEN [--config FILE]",
		Short: "Enrol this district's agent with central (once)",
		Long: `Enrol the agent with central: a key is made that never leaves this machine,
central signs a certificate for the district of the token, and central's CA
is pinned (its fingerprint is in the token). The identity is kept in the
agent's data_dir; restart the agent to connect. --token - reads the token
from stdin, which keeps it out of the process list and shell history.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if central == "" || token == "" {
				return errors.New("--central and --token are required")
			}
			if token == "-" {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				token = strings.TrimSpace(line)
			}
			cfg, err := config.Load(configPath)
			if err != nil {
				return err
			}
			id, err := enroll.Enroll(cmd.Context(), enroll.Options{
				Central: central, Token: token, DataDir: cfg.DataDir, District: cfg.District, Force: force, Logger: newLogger(cmd),
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "enrolled district %s with central %s (CA %s…); certificate valid until %s\n",
				id.District, id.Central, id.CAFingerprint[:16], id.Certificate().NotAfter.Format("2006-01-02"))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&central, "central", "", "central's agent listener, HOST:PORT")
	f.StringVar(&token, "token", "", "token from vigil central token create")
	f.StringVar(&configPath, "config", "/etc/vigil/agent.yaml", "this agent's configuration file")
	f.BoolVar(&force, "force", false, "replace an existing identity")
	return cmd
}
