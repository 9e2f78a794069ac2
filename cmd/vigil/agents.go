package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

// agentJSON is the contract of `agents list -o json` (DESIGN.md).
type agentJSON struct {
	District        string       `json:"district"`
	Connected       bool         `json:"connected"`
	LastSeen        *time.Time   `json:"last_seen"`
	Cameras         []cameraJSON `json:"cameras"`
	StorageBytes    int64        `json:"storage_bytes"`
	StorageCapacity int64        `json:"storage_capacity_bytes"`
	ClockOffsetMs   int64        `json:"clock_offset_ms"`
	Alarms          []alarmJSON  `json:"alarms"`
	Version         string       `json:"version"`
	Spooled         int64        `json:"spooled_segments"`
	AppliedSeq      uint64       `json:"applied_seq"`
}

type cameraJSON struct {
	ID        string     `json:"id"`
	Status    string     `json:"status"`
	Since     *time.Time `json:"since,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	Recording bool       `json:"recording"`
	Detector  string     `json:"detector,omitempty"`
}

type alarmJSON struct {
	Code    string    `json:"code"`
	Message string    `json:"message"`
	Since   time.Time `json:"since"`
}

func newAgentsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "agents", Short: "District agents as central sees them", Args: cobra.NoArgs}
	output := outputFormat("table")
	list := &cobra.Command{
		Use:   "list",
		Short: "List agents: connected or last seen, cameras, storage, clock offset, alarms",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, _, closeFn, err := opsClient()
			if err != nil {
				return err
			}
			defer closeFn()
			resp, err := client.ListAgents(cmd.Context(), &opsv1.ListAgentsRequest{})
			if err != nil {
				return callError(err)
			}
			if output == "json" {
				rows := []agentJSON{}
				for _, a := range resp.GetAgents() {
					rows = append(rows, toAgentJSON(a))
				}
				return writeJSON(cmd.OutOrStdout(), rows)
			}
			return printAgents(cmd, resp.GetAgents())
		},
	}
	list.Flags().VarP(&output, "output", "o", "output format: table or json")
	cmd.AddCommand(list)
	return cmd
}

func toAgentJSON(a *opsv1.Agent) agentJSON {
	row := agentJSON{
		District: a.GetDistrict(), Connected: a.GetConnected(), Cameras: []cameraJSON{}, Alarms: []alarmJSON{},
		StorageBytes: a.GetStorageUsedBytes(), StorageCapacity: a.GetStorageCapacityBytes(),
		ClockOffsetMs: a.GetClockOffsetMs(), Version: a.GetAgentVersion(), Spooled: a.GetSpooledSegments(), AppliedSeq: a.GetAppliedSeq(),
	}
	if a.GetLastSeen() != nil {
		t := a.GetLastSeen().AsTime()
		row.LastSeen = &t
	}
	for _, c := range a.GetCameras() {
		cj := cameraJSON{ID: c.GetId(), Status: c.GetStatus(), LastError: c.GetLastError(), Recording: c.GetRecording(), Detector: c.GetDetector()}
		if c.GetSince() != nil {
			t := c.GetSince().AsTime()
			cj.Since = &t
		}
		row.Cameras = append(row.Cameras, cj)
	}
	for _, al := range a.GetAlarms() {
		row.Alarms = append(row.Alarms, alarmJSON{Code: al.GetCode(), Message: al.GetMessage(), Since: al.GetSince().AsTime()})
	}
	return row
}

func printAgents(cmd *cobra.Command, agents []*opsv1.Agent) error {
	out := cmd.OutOrStdout()
	if len(agents) == 0 {
		fmt.Fprintln(out, "no agents yet: enrol one with vigil central token create and vigil agent enroll")
		return nil
	}
	tw := newTable(out)
	fmt.Fprintln(tw, "DISTRICT\tLINK\tCAMERAS UP\tSTORAGE\tCLOCK OFFSET\tALARMS")
	for _, a := range agents {
		link := "connected"
		if !a.GetConnected() {
			link = "last seen " + ago(a.GetLastSeen().AsTime())
		}
		up := 0
		for _, c := range a.GetCameras() {
			if c.GetStatus() == "up" {
				up++
			}
		}
		offset := (time.Duration(a.GetClockOffsetMs()) * time.Millisecond).String()
		if a.GetClockOffsetMs() > 2000 || a.GetClockOffsetMs() < -2000 {
			offset += " (!)"
		}
		var alarms []string
		for _, al := range a.GetAlarms() {
			alarms = append(alarms, al.GetCode())
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s\n", a.GetDistrict(), link, up, len(a.GetCameras()),
			storageText(a.GetStorageUsedBytes(), a.GetStorageCapacityBytes()), offset, strings.Join(alarms, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, a := range agents {
		for _, al := range a.GetAlarms() {
			fmt.Fprintf(out, "ALARM %s %s: %s\n", a.GetDistrict(), al.GetCode(), al.GetMessage())
		}
		for _, c := range a.GetCameras() {
			if c.GetStatus() != "up" {
				fmt.Fprintf(out, "camera %s/%s %s since %s: %s\n", a.GetDistrict(), c.GetId(), c.GetStatus(),
					c.GetSince().AsTime().Local().Format(time.DateTime), c.GetLastError())
			}
		}
	}
	return nil
}

func storageText(used, capacity int64) string {
	if capacity <= 0 {
		return humanBytes(used)
	}
	return fmt.Sprintf("%s of %s", humanBytes(used), humanBytes(capacity))
}

func ago(t time.Time) string {
	if t.IsZero() || t.Unix() <= 0 {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}
