package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-cctv/vigil/agent"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
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

Recordings are listed from central's catalog (log in first). On a district
server, --agent-data DIR reads the agent's own index instead (through the
running agent, or directly when it is stopped): useful when central is
unreachable.`,
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
			var segs []storage.Segment
			if o.agentData != "" {
				segs, err = listRecordings(cmd, o.agentData, q)
			} else {
				segs, err = listRecordingsCentral(cmd, q)
			}
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
	f.StringVar(&o.agentData, "agent-data", "", "read the index of the agent with this data directory instead of central")
	f.VarP(&o.output, "output", "o", "output format: table or json")
	return cmd
}

// listRecordingsCentral asks central's catalog.
func listRecordingsCentral(cmd *cobra.Command, q agent.RecordingsQuery) ([]storage.Segment, error) {
	client, _, closeFn, err := opsClient()
	if err != nil {
		return nil, err
	}
	defer closeFn()
	resp, err := client.ListRecordings(cmd.Context(), &opsv1.ListRecordingsRequest{
		District: q.District, Camera: q.Camera, From: timestamppb.New(q.From), To: timestamppb.New(q.To),
	})
	if err != nil {
		return nil, callError(err)
	}
	segs := make([]storage.Segment, 0, len(resp.GetRecordings()))
	for _, r := range resp.GetRecordings() {
		segs = append(segs, storage.Segment{
			ID: r.GetId(), District: r.GetDistrict(), Camera: r.GetCamera(), Start: r.GetStart().AsTime(), End: r.GetEnd().AsTime(),
			Bytes: r.GetBytes(), SHA256: r.GetSha256(), Key: r.GetKey(), HeldBy: r.GetHeldBy(), Codec: r.GetCodec(),
			MotionScore: r.GetMotionScore(), Expires: r.GetExpires().AsTime(), Recovered: r.GetRecovered(), Missing: r.GetMissing(),
		})
	}
	return segs, nil
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
