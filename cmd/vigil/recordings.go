package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-cctv/vigil/agent"
	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/index"
)

func newRecordingsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "recordings",
		Short: "List recorded segments",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newRecordingsListCommand())
	return cmd
}

type recordingsListOptions struct {
	camera    string
	from, to  string
	agentData string
	output    outputFormat
}

// recordingJSON is the contract of `recordings list -o json` (DESIGN.md):
// the segment's metadata and whether a hold covers it.
type recordingJSON struct {
	storage.Segment
	Held bool `json:"held"`
}

func newRecordingsListCommand() *cobra.Command {
	o := recordingsListOptions{output: "table"}
	cmd := &cobra.Command{
		Use:   "list --camera DISTRICT/CAMERA [--from T] [--to T]",
		Short: "List the segments of a camera that overlap a time span",
		Long: `List the segments of a camera that overlap a time span. Times are RFC 3339,
"now", or relative to now ("-2h", "+1h").

Until central exists, recordings are read from an agent's data directory
(--agent-data): through the running agent, or from its index when it is
stopped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			from, err := parseTime(o.from, now)
			if err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			to, err := parseTime(o.to, now)
			if err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			if o.camera == "" {
				return errors.New("--camera DISTRICT/CAMERA is required")
			}
			q, err := agent.NewRecordingsQuery(o.camera, from, to)
			if err != nil {
				return err
			}
			if o.agentData == "" {
				return errors.New("--agent-data DIR is required (the agent's data_dir)")
			}
			segs, err := listRecordings(cmd, o.agentData, q)
			if err != nil {
				return err
			}
			return printRecordings(cmd, o.output, segs)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.camera, "camera", "", "camera as DISTRICT/CAMERA")
	f.StringVar(&o.from, "from", "-24h", "start of the span")
	f.StringVar(&o.to, "to", "now", "end of the span")
	f.StringVar(&o.agentData, "agent-data", "", "the agent's data directory")
	f.VarP(&o.output, "output", "o", "output format: table or json")
	return cmd
}

// listRecordings asks the running agent, or reads its index when it is not
// running.
func listRecordings(cmd *cobra.Command, dataDir string, q agent.RecordingsQuery) ([]storage.Segment, error) {
	if c, err := agent.DialLocal(dataDir); err == nil {
		return c.Recordings(cmd.Context(), q)
	}
	path := filepath.Join(dataDir, "index.db")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no agent index at %s: is %s the agent's data_dir?", path, dataDir)
	}
	ix, err := index.Open(path, index.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer ix.Close()
	return ix.List(q.District, q.Camera, q.From, q.To)
}

func printRecordings(cmd *cobra.Command, format outputFormat, segs []storage.Segment) error {
	out := cmd.OutOrStdout()
	if format == "json" {
		rows := make([]recordingJSON, 0, len(segs))
		for _, s := range segs {
			rows = append(rows, recordingJSON{Segment: s, Held: s.Held()})
		}
		return writeJSON(out, rows)
	}
	if len(segs) == 0 {
		fmt.Fprintln(out, "no recordings in this span")
		return nil
	}
	tw := newTable(out)
	fmt.Fprintln(tw, "START\tEND\tDURATION\tSIZE\tCODEC\tHELD\tSTATUS\tID")
	for _, s := range segs {
		status := "ok"
		switch {
		case s.Missing:
			status = "MISSING"
		case s.Recovered:
			status = "recovered"
		}
		held := "-"
		if s.Held() {
			held = "held"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			s.Start.Local().Format(time.DateTime), s.End.Local().Format(time.TimeOnly),
			s.Duration().Round(100*time.Millisecond), humanBytes(s.Bytes), s.Codec, held, status, s.ID)
	}
	return tw.Flush()
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
