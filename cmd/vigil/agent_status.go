package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-cctv/vigil/agent"
)

type agentStatusOptions struct {
	agentData string
	output    outputFormat
}

func newAgentStatusCommand() *cobra.Command {
	o := agentStatusOptions{output: "table"}
	cmd := &cobra.Command{
		Use:   "status --agent-data DIR",
		Short: "Show the cameras and alarms of the agent running on this machine",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.agentData == "" {
				return errors.New("--agent-data DIR is required (the agent's data_dir)")
			}
			c, err := agent.DialLocal(o.agentData)
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			return printAgentStatus(cmd, st)
		},
	}
	cmd.Flags().StringVar(&o.agentData, "agent-data", "", "the agent's data directory")
	cmd.Flags().VarP(&o.output, "output", "o", "output format: table or json")
	return cmd
}

func printAgentStatus(cmd *cobra.Command, st agent.Status) error {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "district %s, running since %s, %d segments waiting to be stored\n",
		st.District, st.Started.Local().Format(time.DateTime), st.Spooled)
	tw := newTable(out)
	fmt.Fprintln(tw, "CAMERA\tMODE\tSTATE\tSINCE\tVIDEO\tRECORDING\tSEGMENTS\tPROBLEM")
	for _, c := range st.Cameras {
		video := "-"
		if c.Stream.Codec != "" {
			video = fmt.Sprintf("%s %dx%d %s", c.Stream.Codec, c.Stream.Width, c.Stream.Height, c.Stream.Transport)
		}
		var problems []string
		if c.Stream.State != "up" && c.Stream.LastError != "" {
			problems = append(problems, c.Stream.LastError)
		}
		if c.Detector != "" {
			problems = append(problems, "motion detection down, recording continuously: "+c.Detector)
		}
		if c.LastError != "" {
			problems = append(problems, "recording: "+c.LastError)
		}
		rec := "no"
		if c.Recording {
			rec = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", c.ID, c.Mode, c.Stream.State,
			c.Stream.Since.Local().Format(time.TimeOnly), video, rec, c.Segments, strings.Join(problems, "; "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Alarms) == 0 {
		fmt.Fprintln(out, "no alarms")
	}
	for _, a := range st.Alarms {
		fmt.Fprintf(out, "ALARM %s since %s: %s\n", a.Code, a.Since.Local().Format(time.DateTime), a.Message)
	}
	return nil
}
