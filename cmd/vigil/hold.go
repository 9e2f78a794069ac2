package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

func newHoldCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hold",
		Short: "Place, list, show and release judicial holds (officers)",
		Long: `A judicial hold preserves footage beyond retention because a judicial
authority asked for it: every segment of the cameras named that overlaps the
span, recorded already or recorded later within it, is kept until the hold
is released. Officers place and release holds; auditors may read them.

Central records the hold (and the request, before it is carried out, in the
audit log) and sends it to each district's agent; a district is "pending"
until its agent confirms, with the number of segments it covers.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newHoldPlaceCommand(), newHoldListCommand(), newHoldShowCommand(), newHoldReleaseCommand())
	return cmd
}

// holdJSON is the contract of `hold list -o json` (DESIGN.md), also used by
// show, place and release.
type holdJSON struct {
	ID            string          `json:"id"`
	State         string          `json:"state"`
	Authority     string          `json:"authority"`
	Case          string          `json:"case"`
	Reason        string          `json:"reason"`
	Cameras       []string        `json:"cameras"`
	From          time.Time       `json:"from"`
	To            time.Time       `json:"to"`
	Agents        []holdAgentJSON `json:"agents"`
	Officer       string          `json:"officer"`
	PlacedAt      time.Time       `json:"placed_at"`
	ReleasedAt    *time.Time      `json:"released_at,omitempty"`
	ReleasedBy    string          `json:"released_by,omitempty"`
	ReleaseReason string          `json:"release_reason,omitempty"`
}

type holdAgentJSON struct {
	District  string     `json:"district"`
	State     string     `json:"state"`
	Segments  int64      `json:"segments"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
	Error     string     `json:"error,omitempty"`
	// FirstExpiry: while pending, when footage of the span starts to
	// expire at the district unless its agent confirms first.
	FirstExpiry *time.Time `json:"first_expiry,omitempty"`
}

func toHoldJSON(h *opsv1.Hold) holdJSON {
	out := holdJSON{
		ID: h.GetId(), State: h.GetState(), Authority: h.GetAuthority(), Case: h.GetCaseRef(), Reason: h.GetReason(),
		Cameras: append([]string{}, h.GetCameras()...), From: h.GetFrom().AsTime(), To: h.GetTo().AsTime(),
		Agents: []holdAgentJSON{}, Officer: h.GetOfficer(), PlacedAt: h.GetPlacedAt().AsTime(),
		ReleasedAt: optionalTime(h.GetReleasedAt()), ReleasedBy: h.GetReleasedBy(), ReleaseReason: h.GetReleaseReason(),
	}
	for _, a := range h.GetAgents() {
		out.Agents = append(out.Agents, holdAgentJSON{
			District: a.GetDistrict(), State: a.GetState(), Segments: a.GetSegments(), UpdatedAt: optionalTime(a.GetUpdatedAt()),
			Error: a.GetError(), FirstExpiry: optionalTime(a.GetFirstExpiry()),
		})
	}
	return out
}

func optionalTime(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	t := ts.AsTime()
	return &t
}

// localTime is how tables show an instant.
func localTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().Local().Format(time.DateTime)
}

type holdPlaceOptions struct {
	cameras                    []string
	from, to                   string
	authority, caseRef, reason string
	wait                       time.Duration
	output                     outputFormat
}

func newHoldPlaceCommand() *cobra.Command {
	o := holdPlaceOptions{output: "table"}
	cmd := &cobra.Command{
		Use:   "place --camera D/C[,D/C…] --from T --to T --authority TEXT --case TEXT --reason TEXT",
		Short: "Place a judicial hold on cameras over a time span",
		Long: `Place a judicial hold: every segment of the cameras that overlaps the span is
kept until the hold is released, including footage recorded later within the
span. --to may be at most 30 days ahead. Times are RFC 3339, "now", or
relative to now ("-2h", "+1h").

The command waits up to --wait for the districts' agents to confirm, and says
plainly which district has not, and from when footage there may expire if
its agent does not come back first.`,
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
			if len(o.cameras) == 0 {
				return errors.New("--camera DISTRICT/CAMERA is required")
			}
			client, _, closeFn, err := opsClient()
			if err != nil {
				return err
			}
			defer closeFn()
			resp, err := client.PlaceHold(cmd.Context(), &opsv1.PlaceHoldRequest{
				Cameras: o.cameras, From: timestamppb.New(from), To: timestamppb.New(to),
				Authority: o.authority, CaseRef: o.caseRef, Reason: o.reason,
			})
			if err != nil {
				return callError(err)
			}
			h := waitForAgents(cmd, client, resp.GetHold(), o.wait)
			return printHold(cmd, o.output, h, "placed")
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.cameras, "camera", nil, "cameras as DISTRICT/CAMERA, comma-separated or repeated")
	f.StringVar(&o.from, "from", "", "start of the span")
	f.StringVar(&o.to, "to", "", "end of the span (at most 30 days ahead)")
	f.StringVar(&o.authority, "authority", "", "the judicial authority that asked for preservation")
	f.StringVar(&o.caseRef, "case", "", "the authority's case reference")
	f.StringVar(&o.reason, "reason", "", "why (recorded in the audit log)")
	f.DurationVar(&o.wait, "wait", 10*time.Second, "how long to wait for the agents to confirm (0: do not wait)")
	f.VarP(&o.output, "output", "o", "output format: table or json")
	for _, name := range []string{"camera", "from", "to", "authority", "case", "reason"} {
		cmd.MarkFlagRequired(name)
	}
	return cmd
}

func newHoldListCommand() *cobra.Command {
	var all bool
	output := outputFormat("table")
	cmd := &cobra.Command{
		Use:   "list [--all]",
		Short: "List the active holds (with --all, the released ones too)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, _, closeFn, err := opsClient()
			if err != nil {
				return err
			}
			defer closeFn()
			resp, err := client.ListHolds(cmd.Context(), &opsv1.ListHoldsRequest{All: all})
			if err != nil {
				return callError(err)
			}
			return printHoldList(cmd, output, resp.GetHolds(), all)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "include released holds")
	cmd.Flags().VarP(&output, "output", "o", "output format: table or json")
	return cmd
}

func newHoldShowCommand() *cobra.Command {
	output := outputFormat("table")
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a hold and where it stands at each district",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, _, closeFn, err := opsClient()
			if err != nil {
				return err
			}
			defer closeFn()
			resp, err := client.GetHold(cmd.Context(), &opsv1.GetHoldRequest{Id: args[0]})
			if err != nil {
				return callError(err)
			}
			return printHold(cmd, output, resp.GetHold(), "")
		},
	}
	cmd.Flags().VarP(&output, "output", "o", "output format: table or json")
	return cmd
}

func newHoldReleaseCommand() *cobra.Command {
	var reason string
	var wait time.Duration
	output := outputFormat("table")
	cmd := &cobra.Command{
		Use:   "release ID --reason TEXT",
		Short: "Release a hold: its footage becomes subject to retention again",
		Long: `Release a hold. Segments no other hold covers become subject to retention
again at each district once its agent confirms; those already past their
expiry are deleted at the agent's next sweep.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, _, closeFn, err := opsClient()
			if err != nil {
				return err
			}
			defer closeFn()
			resp, err := client.ReleaseHold(cmd.Context(), &opsv1.ReleaseHoldRequest{Id: args[0], Reason: reason})
			if err != nil {
				return callError(err)
			}
			h := waitForAgents(cmd, client, resp.GetHold(), wait)
			return printHold(cmd, output, h, "released")
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the hold ends (recorded in the audit log)")
	cmd.Flags().DurationVar(&wait, "wait", 10*time.Second, "how long to wait for the agents to confirm (0: do not wait)")
	cmd.Flags().VarP(&output, "output", "o", "output format: table or json")
	cmd.MarkFlagRequired("reason")
	return cmd
}

// waiting reports whether some district has not confirmed the hold's last
// change.
func waiting(h *opsv1.Hold) bool {
	for _, a := range h.GetAgents() {
		if a.GetState() == "pending" || a.GetState() == "releasing" {
			return true
		}
	}
	return false
}

// waitForAgents reads the hold again, less and less often, until every
// district has confirmed or wait is over. The hold is placed (or released)
// whatever happens here: a failure to read it again is a warning.
func waitForAgents(cmd *cobra.Command, client opsv1.OpsClient, h *opsv1.Hold, wait time.Duration) *opsv1.Hold {
	deadline := time.Now().Add(wait)
	delay := 200 * time.Millisecond
	for waiting(h) && time.Now().Add(delay).Before(deadline) {
		select {
		case <-cmd.Context().Done():
			return h
		case <-time.After(delay):
		}
		resp, err := client.GetHold(cmd.Context(), &opsv1.GetHoldRequest{Id: h.GetId()})
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: could not read the hold again: %v\n", callError(err))
			return h
		}
		h = resp.GetHold()
		delay = min(2*delay, 2*time.Second)
	}
	return h
}

func printHold(cmd *cobra.Command, format outputFormat, h *opsv1.Hold, done string) error {
	out := cmd.OutOrStdout()
	if format == "json" {
		return writeJSON(out, toHoldJSON(h))
	}
	if done != "" {
		fmt.Fprintf(out, "hold %s %s\n", h.GetId(), done)
	}
	fmt.Fprintf(out, "id:         %s\n", h.GetId())
	fmt.Fprintf(out, "state:      %s\n", h.GetState())
	fmt.Fprintf(out, "authority:  %s\n", oneLineText(h.GetAuthority()))
	fmt.Fprintf(out, "case:       %s\n", oneLineText(h.GetCaseRef()))
	fmt.Fprintf(out, "reason:     %s\n", cell(h.GetReason()))
	fmt.Fprintf(out, "cameras:    %s\n", cell(strings.Join(h.GetCameras(), ", ")))
	fmt.Fprintf(out, "span:       %s\n", spanText(h))
	fmt.Fprintf(out, "placed:     %s by %s\n", localTime(h.GetPlacedAt()), cell(h.GetOfficer()))
	if h.GetReleasedAt() != nil {
		fmt.Fprintf(out, "released:   %s by %s: %s\n", localTime(h.GetReleasedAt()), cell(h.GetReleasedBy()), cell(h.GetReleaseReason()))
	}
	fmt.Fprintln(out)
	tw := newTable(out)
	fmt.Fprintln(tw, "DISTRICT\tSTATE\tSEGMENTS\tSINCE\tLAST ERROR")
	for _, a := range h.GetAgents() {
		segments := "-"
		if a.GetState() == "applied" || a.GetState() == "releasing" || a.GetState() == "released" {
			segments = fmt.Sprint(a.GetSegments())
		}
		errText := "-"
		if a.GetError() != "" {
			errText = oneLineText(a.GetError())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cell(a.GetDistrict()), agentStateText(a.GetState()), segments, localTime(a.GetUpdatedAt()), errText)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printWaitingNotes(out, h, "")
	return nil
}

// agentStateText shouts the states that need attention.
func agentStateText(state string) string {
	switch state {
	case "pending", "releasing":
		return strings.ToUpper(state)
	}
	return cell(state)
}

// printWaitingNotes says plainly what a district that has not confirmed
// means for its footage.
func printWaitingNotes(out io.Writer, h *opsv1.Hold, prefix string) {
	now := time.Now()
	for _, a := range h.GetAgents() {
		switch a.GetState() {
		case "pending":
			note := fmt.Sprintf("%sPENDING at %s: the agent has not confirmed yet; ", prefix, cell(a.GetDistrict()))
			switch fe := a.GetFirstExpiry(); {
			case fe == nil:
				note += "central knows of no footage of the span there yet, but footage the agent has may expire before it reconnects"
			case !fe.AsTime().After(now):
				note += fmt.Sprintf("footage in the span may expire from %s, which is past: some of it may be gone already", localTime(fe))
			default:
				note += fmt.Sprintf("footage in the span may expire from %s unless it reconnects before", localTime(fe))
			}
			if a.GetError() != "" {
				note += " (last attempt: " + oneLineText(a.GetError()) + ")"
			}
			fmt.Fprintln(out, note)
		case "releasing":
			fmt.Fprintf(out, "%sRELEASING at %s: the agent has not confirmed the release yet; its footage stays held until it does\n", prefix, cell(a.GetDistrict()))
		}
	}
}

func spanText(h *opsv1.Hold) string {
	from, to := h.GetFrom().AsTime(), h.GetTo().AsTime()
	return fmt.Sprintf("%s → %s (%s)", localTime(h.GetFrom()), localTime(h.GetTo()), humanDuration(to.Sub(from)))
}

// humanDuration is a duration in days, hours and minutes ("7d", "2h1m"),
// with seconds below an hour ("2m6s", "45s"): short retentions are judged
// to the second.
func humanDuration(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	if d < time.Hour {
		d = d.Round(time.Second)
		if sec := d % time.Minute; sec != 0 {
			return fmt.Sprintf("%dm%ds", d/time.Minute, sec/time.Second)
		}
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	d = d.Truncate(time.Minute)
	var b strings.Builder
	if days := d / (24 * time.Hour); days > 0 {
		fmt.Fprintf(&b, "%dd", days)
		d -= days * 24 * time.Hour
	}
	if h := d / time.Hour; h > 0 {
		fmt.Fprintf(&b, "%dh", h)
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	return b.String()
}

func printHoldList(cmd *cobra.Command, format outputFormat, list []*opsv1.Hold, all bool) error {
	out := cmd.OutOrStdout()
	if format == "json" {
		rows := make([]holdJSON, 0, len(list))
		for _, h := range list {
			rows = append(rows, toHoldJSON(h))
		}
		return writeJSON(out, rows)
	}
	if len(list) == 0 {
		if all {
			fmt.Fprintln(out, "no holds")
		} else {
			fmt.Fprintln(out, "no active holds (--all lists released ones too)")
		}
		return nil
	}
	tw := newTable(out)
	fmt.Fprintln(tw, "ID\tSTATE\tPLACED\tOFFICER\tAUTHORITY\tCASE\tCAMERAS\tSPAN\tAGENTS")
	for _, h := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.GetId(), cell(h.GetState()), localTime(h.GetPlacedAt()), cell(h.GetOfficer()),
			oneLineText(h.GetAuthority()), oneLineText(h.GetCaseRef()), cell(strings.Join(h.GetCameras(), ",")), spanText(h), agentsText(h))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, h := range list {
		printWaitingNotes(out, h, h.GetId()+": ")
	}
	return nil
}

// agentsText sums up the districts of a hold on one line:
// "north:applied(42) south:PENDING".
func agentsText(h *opsv1.Hold) string {
	parts := make([]string, 0, len(h.GetAgents()))
	for _, a := range h.GetAgents() {
		p := cell(a.GetDistrict()) + ":" + agentStateText(a.GetState())
		if a.GetState() == "applied" {
			p += fmt.Sprintf("(%d)", a.GetSegments())
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}
