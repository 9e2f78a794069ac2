package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

func newRetentionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "retention",
		Short: "Evidence that footage is destroyed on time",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newRetentionReportCommand())
	return cmd
}

// retentionReportJSON is `retention report -o json`.
type retentionReportJSON struct {
	GeneratedAt time.Time `json:"generated_at"`
	Since       time.Time `json:"since"`
	// Compliant: every camera's oldest unheld footage is within its
	// retention + 60 s.
	Compliant bool                  `json:"compliant"`
	Cameras   []cameraRetentionJSON `json:"cameras"`
	Deletions []dayDeletionsJSON    `json:"deletions_per_day"`
	Holds     []holdJSON            `json:"holds"`
}

type cameraRetentionJSON struct {
	District               string     `json:"district"`
	Camera                 string     `json:"camera"`
	RetentionSeconds       int64      `json:"retention_seconds"`
	OldestUnheld           *time.Time `json:"oldest_unheld"`
	OldestUnheldAgeSeconds int64      `json:"oldest_unheld_age_seconds"`
	Compliant              bool       `json:"compliant"`
	Segments               int64      `json:"segments"`
	HeldSegments           int64      `json:"held_segments"`
	Holds                  []string   `json:"holds"`
	AsOf                   *time.Time `json:"as_of"`
}

type dayDeletionsJSON struct {
	Day       string `json:"day"`
	District  string `json:"district"`
	Camera    string `json:"camera"`
	Retention int64  `json:"retention"`
	Pressure  int64  `json:"pressure"`
	Other     int64  `json:"other"`
}

func newRetentionReportCommand() *cobra.Command {
	var since string
	output := outputFormat("table")
	cmd := &cobra.Command{
		Use:   "report --since T",
		Short: "Per camera: oldest unheld footage against retention, held footage, deletions per day",
		Long: `What an auditor shows an inspector. Per district and camera, from what the
agents reported to central: the retention, the start and age of the oldest
segment no hold covers (it must be at most the retention + 60 s), the
segments and those held with the holds that hold them; the deletions per day
(UTC) and reason since --since; and the holds active or released since then.
Figures are as of when central last heard from each district's agent.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := parseTime(since, time.Now())
			if err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			client, _, closeFn, err := opsClient()
			if err != nil {
				return err
			}
			defer closeFn()
			resp, err := client.RetentionReport(cmd.Context(), &opsv1.RetentionReportRequest{Since: timestamppb.New(t)})
			if err != nil {
				return callError(err)
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), toRetentionJSON(t, resp))
			}
			return printRetentionReport(cmd, t, resp)
		},
	}
	cmd.Flags().StringVar(&since, "since", "-168h", "deletions and released holds from this time")
	cmd.Flags().VarP(&output, "output", "o", "output format: table or json")
	return cmd
}

func toRetentionJSON(since time.Time, resp *opsv1.RetentionReportResponse) retentionReportJSON {
	rep := retentionReportJSON{
		GeneratedAt: resp.GetGeneratedAt().AsTime(), Since: since, Compliant: true,
		Cameras: []cameraRetentionJSON{}, Deletions: []dayDeletionsJSON{}, Holds: []holdJSON{},
	}
	for _, c := range resp.GetCameras() {
		rep.Compliant = rep.Compliant && c.GetCompliant()
		rep.Cameras = append(rep.Cameras, cameraRetentionJSON{
			District: c.GetDistrict(), Camera: c.GetCamera(), RetentionSeconds: c.GetRetentionSeconds(),
			OldestUnheld: optionalTime(c.GetOldestUnheld()), OldestUnheldAgeSeconds: c.GetOldestUnheldAgeSeconds(),
			Compliant: c.GetCompliant(), Segments: c.GetSegments(), HeldSegments: c.GetHeldSegments(),
			Holds: append([]string{}, c.GetHolds()...), AsOf: optionalTime(c.GetAsOf()),
		})
	}
	for _, d := range resp.GetDeletions() {
		rep.Deletions = append(rep.Deletions, dayDeletionsJSON{d.GetDay(), d.GetDistrict(), d.GetCamera(), d.GetRetention(), d.GetPressure(), d.GetOther()})
	}
	for _, h := range resp.GetHolds() {
		rep.Holds = append(rep.Holds, toHoldJSON(h))
	}
	return rep
}

// staleAfter is how old an agent's last contact may be before the report
// says its figures are old.
const staleAfter = 5 * time.Minute

func printRetentionReport(cmd *cobra.Command, since time.Time, resp *opsv1.RetentionReportResponse) error {
	out := cmd.OutOrStdout()
	generated := resp.GetGeneratedAt().AsTime()
	fmt.Fprintf(out, "Retention report generated %s; deletions and released holds since %s\n\n",
		localTime(resp.GetGeneratedAt()), since.Local().Format(time.DateTime))
	var bad []string
	if len(resp.GetCameras()) == 0 {
		fmt.Fprintln(out, "No cameras: no agent has reported any yet.")
	} else {
		tw := newTable(out)
		fmt.Fprintln(tw, "CAMERA\tRETENTION\tOLDEST UNHELD\tAGE\tSEGMENTS\tHELD\tHOLDS\tAS OF\tCOMPLIANT")
		for _, c := range resp.GetCameras() {
			name := cell(c.GetDistrict() + "/" + c.GetCamera())
			retention := time.Duration(c.GetRetentionSeconds()) * time.Second
			age := time.Duration(c.GetOldestUnheldAgeSeconds()) * time.Second
			oldest, ageText := "-", "-"
			if c.GetOldestUnheld() != nil {
				oldest, ageText = localTime(c.GetOldestUnheld()), humanDuration(age)
			}
			holds := "-"
			if len(c.GetHolds()) > 0 {
				holds = cell(strings.Join(c.GetHolds(), ","))
			}
			asOf := localTime(c.GetAsOf())
			stale := c.GetAsOf() == nil || generated.Sub(c.GetAsOf().AsTime()) > staleAfter
			if stale && c.GetAsOf() != nil {
				asOf += " (agent away)"
			}
			verdict := "yes"
			if !c.GetCompliant() {
				verdict = "NO"
				why := fmt.Sprintf("%s: its oldest unheld footage is %s old, retention %s", name, humanDuration(age), humanDuration(retention))
				if stale {
					why += fmt.Sprintf(" (figures as of %s, when its agent was last heard: it may have deleted since)", asOf)
				}
				bad = append(bad, why)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", name, humanDuration(retention), oldest, ageText,
				c.GetSegments(), c.GetHeldSegments(), holds, asOf, verdict)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(out)
		if len(bad) > 0 {
			fmt.Fprintf(out, "!! NOT COMPLIANT: %d of %d cameras keep unheld footage longer than their retention + 60 s:\n", len(bad), len(resp.GetCameras()))
			for _, b := range bad {
				fmt.Fprintf(out, "!!   %s\n", b)
			}
		} else {
			fmt.Fprintf(out, "All %d cameras compliant: no unheld footage older than its retention + 60 s.\n", len(resp.GetCameras()))
		}
	}

	fmt.Fprintln(out, "\nDeletions per day (UTC):")
	if len(resp.GetDeletions()) == 0 {
		fmt.Fprintln(out, "  none")
	} else {
		tw := newTable(out)
		fmt.Fprintln(tw, "  DAY\tCAMERA\tRETENTION\tPRESSURE\tOTHER")
		for _, d := range resp.GetDeletions() {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\n", d.GetDay(), cell(d.GetDistrict()+"/"+d.GetCamera()), d.GetRetention(), d.GetPressure(), d.GetOther())
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(out, "\nHolds (active, or released since the start of the report):")
	if len(resp.GetHolds()) == 0 {
		fmt.Fprintln(out, "  none")
		return nil
	}
	tw := newTable(out)
	fmt.Fprintln(tw, "  ID\tSTATE\tAUTHORITY\tCASE\tCAMERAS\tSPAN\tAGENTS")
	for _, h := range resp.GetHolds() {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.GetId(), cell(h.GetState()), oneLineText(h.GetAuthority()), oneLineText(h.GetCaseRef()),
			cell(strings.Join(h.GetCameras(), ",")), spanText(h), agentsText(h))
	}
	return tw.Flush()
}
