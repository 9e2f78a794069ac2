package main

import (
	"errors"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/vigil-cctv/vigil/agent"
	"github.com/vigil-cctv/vigil/agent/config"
)

type agentOptions struct {
	configPath string
	ffmpeg     string
}

func newAgentCommand() *cobra.Command {
	var o agentOptions
	cmd := &cobra.Command{
		Use:   "agent --config FILE",
		Short: "Run the district agent: record cameras on motion into object storage",
		Long: `Run the district agent. It records every camera of its configuration file on
motion (or continuously) into the configured object store, indexes each
segment, and keeps working when central is unreachable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.configPath == "" {
				return errors.New("--config is required")
			}
			cfg, err := config.Load(o.configPath)
			if err != nil {
				return err
			}
			a, err := agent.New(cfg, agent.Options{Logger: newLogger(cmd), FFmpeg: o.ffmpeg})
			if err != nil {
				return err
			}
			return a.Run(cmd.Context())
		},
	}
	cmd.AddCommand(newAgentStatusCommand(), newAgentEnrollCommand())
	cmd.Flags().StringVar(&o.configPath, "config", "", "agent configuration file (YAML)")
	cmd.Flags().StringVar(&o.ffmpeg, "ffmpeg", "ffmpeg", "ffmpeg binary used for motion detection")
	return cmd
}

// newLogger logs text lines to the command's stderr.
func newLogger(cmd *cobra.Command) *slog.Logger {
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}
