package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-cctv/vigil/central/audit"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

func newAuditCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read and verify the access audit log (auditors)",
		Long: `The access audit log records, before it happens, every viewing, export, hold
change, login, user change and refused attempt, and what agents report from
their districts. It is a Merkle tree with signed checkpoints: verify checks
that nothing was changed, removed or reordered. Reading the log is itself
recorded.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newAuditLogCommand(), newAuditVerifyCommand(), newAuditCheckpointCommand(), newAuditReportCommand())
	return cmd
}

// auditRecordJSON is the contract of `audit log -o json` (DESIGN.md).
type auditRecordJSON struct {
	Seq         uint64          `json:"seq"`
	Time        time.Time       `json:"time"`
	Actor       string          `json:"actor"`
	Role        string          `json:"role"`
	Designation string          `json:"designation,omitempty"`
	Action      string          `json:"action"`
	Target      auditTargetJSON `json:"target"`
	Reason      string          `json:"reason"`
	Client      string          `json:"client"`
	Outcome     string          `json:"outcome"`
	Detail      string          `json:"detail,omitempty"`
}

type auditTargetJSON struct {
	District string     `json:"district,omitempty"`
	Camera   string     `json:"camera,omitempty"`
	From     *time.Time `json:"from,omitempty"`
	To       *time.Time `json:"to,omitempty"`
	Segment  string     `json:"segment,omitempty"`
	Hold     string     `json:"hold,omitempty"`
	User     string     `json:"user,omitempty"`
}

func toAuditJSON(r *opsv1.AuditRecord) auditRecordJSON {
	out := auditRecordJSON{
		Seq: r.GetSeq(), Time: r.GetTime().AsTime(), Actor: r.GetActor(), Role: r.GetRole(), Designation: r.GetDesignation(),
		Action: r.GetAction(), Reason: r.GetReason(), Client: r.GetClient(), Outcome: r.GetOutcome(), Detail: r.GetDetail(),
		Target: auditTargetJSON{District: r.GetDistrict(), Camera: r.GetCamera(), Segment: r.GetSegment(), Hold: r.GetHold(), User: r.GetTargetUser()},
	}
	if r.GetFrom() != nil {
		t := r.GetFrom().AsTime()
		out.Target.From = &t
	}
	if r.GetTo() != nil {
		t := r.GetTo().AsTime()
		out.Target.To = &t
	}
	return out
}

// targetText is the one-line form of a record's target.
func targetText(r *opsv1.AuditRecord) string {
	var parts []string
	switch {
	case r.GetCamera() != "":
		parts = append(parts, r.GetDistrict()+"/"+r.GetCamera())
	case r.GetDistrict() != "":
		parts = append(parts, r.GetDistrict())
	}
	if r.GetFrom() != nil && r.GetTo() != nil {
		parts = append(parts, r.GetFrom().AsTime().Local().Format(time.DateTime)+"→"+r.GetTo().AsTime().Local().Format(time.TimeOnly))
	}
	for _, p := range []struct{ k, v string }{{"segment", r.GetSegment()}, {"hold", r.GetHold()}, {"user", r.GetTargetUser()}} {
		if p.v != "" {
			parts = append(parts, p.k+" "+p.v)
		}
	}
	return strings.Join(parts, " ")
}

type auditFormat string

func (o *auditFormat) String() string { return string(*o) }
func (o *auditFormat) Type() string   { return "table|json|csv" }
func (o *auditFormat) Set(s string) error {
	switch s {
	case "table", "json", "csv":
		*o = auditFormat(s)
		return nil
	}
	return fmt.Errorf("want table, json or csv, got %q", s)
}

func newAuditLogCommand() *cobra.Command {
	var (
		since, until, actor, action, camera string
		limit                               int
	)
	output := auditFormat("table")
	cmd := &cobra.Command{
		Use:   "log [--since T] [--until T] [--actor U] [--action A] [--camera D/C]",
		Short: "List audit records, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			req := &opsv1.AuditLogRequest{Actor: actor, Action: action, Limit: int32(limit)}
			if since != "" {
				t, err := parseTime(since, now)
				if err != nil {
					return fmt.Errorf("--since: %w", err)
				}
				req.Since = timestamppb.New(t)
			}
			if until != "" {
				t, err := parseTime(until, now)
				if err != nil {
					return fmt.Errorf("--until: %w", err)
				}
				req.Until = timestamppb.New(t)
			}
			if camera != "" {
				d, c, ok := strings.Cut(camera, "/")
				if !ok {
					return fmt.Errorf("--camera %q: want DISTRICT/CAMERA (or DISTRICT/ for a whole district)", camera)
				}
				req.District, req.Camera = d, c
			}
			if limit < 0 {
				return errors.New("--limit must be positive")
			}
			client, _, closeFn, err := opsClient()
			if err != nil {
				return err
			}
			defer closeFn()
			resp, err := client.AuditLog(cmd.Context(), req)
			if err != nil {
				return callError(err)
			}
			if len(resp.GetRecords()) == limit {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: only the first %d records are shown; narrow with --since/--until or raise --limit\n", limit)
			}
			return printAuditRecords(cmd, output, resp.GetRecords())
		},
	}
	f := cmd.Flags()
	f.StringVar(&since, "since", "", "from this time (RFC 3339, now, or relative such as -24h)")
	f.StringVar(&until, "until", "", "until this time")
	f.StringVar(&actor, "actor", "", "only this user (agents are agent:DISTRICT)")
	f.StringVar(&action, "action", "", "only this action code, or a prefix such as user.*")
	f.StringVar(&camera, "camera", "", "only this camera, DISTRICT/CAMERA")
	f.IntVar(&limit, "limit", 10000, "at most this many records")
	f.VarP(&output, "output", "o", "output format: table, json or csv")
	return cmd
}

func printAuditRecords(cmd *cobra.Command, format auditFormat, recs []*opsv1.AuditRecord) error {
	out := cmd.OutOrStdout()
	switch format {
	case "json":
		rows := make([]auditRecordJSON, 0, len(recs))
		for _, r := range recs {
			rows = append(rows, toAuditJSON(r))
		}
		return writeJSON(out, rows)
	case "csv":
		w := csv.NewWriter(out)
		w.Write([]string{"seq", "time", "actor", "role", "designation", "action", "district", "camera", "from", "to", "segment", "hold", "user", "reason", "client", "outcome", "detail"})
		for _, r := range recs {
			j := toAuditJSON(r)
			from, to := "", ""
			if j.Target.From != nil {
				from = j.Target.From.Format(time.RFC3339)
			}
			if j.Target.To != nil {
				to = j.Target.To.Format(time.RFC3339)
			}
			row := []string{fmt.Sprint(j.Seq), j.Time.Format(time.RFC3339Nano), j.Actor, j.Role, j.Designation, j.Action,
				j.Target.District, j.Target.Camera, from, to, j.Target.Segment, j.Target.Hold, j.Target.User, j.Reason, j.Client, j.Outcome, j.Detail}
			for i := range row {
				row[i] = csvCell(row[i])
			}
			w.Write(row)
		}
		w.Flush()
		return w.Error()
	}
	if len(recs) == 0 {
		fmt.Fprintln(out, "no records")
		return nil
	}
	tw := newTable(out)
	fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tROLE\tACTION\tTARGET\tOUTCOME\tREASON\tCLIENT")
	for _, r := range recs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.GetSeq(), r.GetTime().AsTime().Local().Format(time.DateTime),
			cell(r.GetActor()), cell(r.GetRole()), cell(r.GetAction()), cell(targetText(r)), cell(r.GetOutcome()), oneLineText(r.GetReason()), cell(r.GetClient()))
	}
	return tw.Flush()
}

// oneLineText shortens s for a table cell, escaped by cell.
func oneLineText(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return cell(s)
}

// cell makes text safe to print in a table: control characters and escape
// sequences (from a user name typed at a login, say) are shown quoted, so
// that no record can forge a line or colour the terminal.
func cell(s string) string {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			q := strconv.Quote(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}

// csvCell keeps spreadsheets from running a cell as a formula.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func newAuditCheckpointCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "checkpoint",
		Short: "Print the latest signed checkpoint, to keep outside the system",
		Long: `Print the latest signed checkpoint of the audit log (tree size and root hash,
signed by central's audit key). Keep it somewhere central cannot reach; later,
vigil audit verify --against FILE proves that the log still extends it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, _, closeFn, err := opsClient()
			if err != nil {
				return err
			}
			defer closeFn()
			resp, err := client.AuditCheckpoint(cmd.Context(), &opsv1.AuditCheckpointRequest{})
			if err != nil {
				return callError(err)
			}
			if err := pinAuditKey(resp.GetVerifierKey()); err != nil {
				return err
			}
			verifier, err := note.NewVerifier(resp.GetVerifierKey())
			if err != nil {
				return fmt.Errorf("audit key: %w", err)
			}
			if _, err := audit.OpenCheckpoint(resp.GetCheckpoint(), verifier); err != nil {
				return fmt.Errorf("central's checkpoint does not verify: %w", err)
			}
			fmt.Fprint(cmd.OutOrStdout(), string(resp.GetCheckpoint()))
			fmt.Fprintf(cmd.ErrOrStderr(), "audit key: %s\n", resp.GetVerifierKey())
			return nil
		},
	}
}

func newAuditReportCommand() *cobra.Command {
	var since string
	output := outputFormat("table")
	cmd := &cobra.Command{
		Use:   "report --since T",
		Short: "Viewings per user and camera, refused attempts, holds, deletions per day",
		Args:  cobra.NoArgs,
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
			resp, err := client.AuditReport(cmd.Context(), &opsv1.AuditReportRequest{Since: timestamppb.New(t)})
			if err != nil {
				return callError(err)
			}
			if output == "json" {
				type viewing struct {
					User   string `json:"user"`
					Camera string `json:"camera"`
					Count  int64  `json:"count"`
				}
				type day struct {
					Day      string `json:"day"`
					District string `json:"district"`
					Count    int64  `json:"count"`
				}
				rep := struct {
					Since     time.Time         `json:"since"`
					Viewings  []viewing         `json:"viewings"`
					Denied    []auditRecordJSON `json:"denied"`
					Holds     []auditRecordJSON `json:"holds"`
					Deletions []day             `json:"deletions_per_day"`
				}{Since: t, Viewings: []viewing{}, Denied: []auditRecordJSON{}, Holds: []auditRecordJSON{}, Deletions: []day{}}
				for _, v := range resp.GetViewings() {
					rep.Viewings = append(rep.Viewings, viewing{v.GetUser(), v.GetCamera(), v.GetCount()})
				}
				for _, r := range resp.GetDenied() {
					rep.Denied = append(rep.Denied, toAuditJSON(r))
				}
				for _, r := range resp.GetHolds() {
					rep.Holds = append(rep.Holds, toAuditJSON(r))
				}
				for _, d := range resp.GetDeletions() {
					rep.Deletions = append(rep.Deletions, day{d.GetDay(), d.GetDistrict(), d.GetCount()})
				}
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			return printAuditReport(cmd, t, resp)
		},
	}
	cmd.Flags().StringVar(&since, "since", "-168h", "from this time")
	cmd.Flags().VarP(&output, "output", "o", "output format: table or json")
	return cmd
}

func printAuditReport(cmd *cobra.Command, since time.Time, resp *opsv1.AuditReportResponse) error {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "Audit report since %s\n\nViewings (recorded and live) per user and camera:\n", since.Local().Format(time.DateTime))
	if len(resp.GetViewings()) == 0 {
		fmt.Fprintln(out, "  none")
	} else {
		tw := newTable(out)
		fmt.Fprintln(tw, "  USER\tCAMERA\tVIEWINGS")
		for _, v := range resp.GetViewings() {
			fmt.Fprintf(tw, "  %s\t%s\t%d\n", cell(v.GetUser()), cell(v.GetCamera()), v.GetCount())
		}
		tw.Flush()
	}
	fmt.Fprintf(out, "\nRefused attempts: %d\n", len(resp.GetDenied()))
	for _, r := range resp.GetDenied() {
		fmt.Fprintf(out, "  %s  %s (%s)  %s %s  %s\n", r.GetTime().AsTime().Local().Format(time.DateTime), cell(r.GetActor()), cell(r.GetRole()),
			cell(r.GetAction()), cell(targetText(r)), oneLineText(r.GetDetail()))
	}
	fmt.Fprintf(out, "\nHolds placed and released: %d\n", len(resp.GetHolds()))
	for _, r := range resp.GetHolds() {
		fmt.Fprintf(out, "  %s  %s  %s %s  %s\n", r.GetTime().AsTime().Local().Format(time.DateTime), cell(r.GetActor()), cell(r.GetAction()), cell(targetText(r)), oneLineText(r.GetReason()))
	}
	fmt.Fprintln(out, "\nDeletions per day:")
	days := resp.GetDeletions()
	sort.Slice(days, func(i, j int) bool { return days[i].GetDay() < days[j].GetDay() })
	if len(days) == 0 {
		fmt.Fprintln(out, "  none")
	}
	for _, d := range days {
		fmt.Fprintf(out, "  %s  %-12s %d\n", d.GetDay(), d.GetDistrict(), d.GetCount())
	}
	return nil
}
