package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-cctv/vigil/agent/motion/eval"
)

func newMotionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "motion",
		Short: "Motion detection tools",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newMotionEvalCommand())
	return cmd
}

type motionEvalOptions struct {
	detector string
	mergeGap time.Duration
	output   outputFormat
	quiet    bool
}

func newMotionEvalCommand() *cobra.Command {
	o := motionEvalOptions{detector: eval.DefaultDetector, mergeGap: eval.DefaultMergeGap, output: "table"}
	cmd := &cobra.Command{
		Use:   "eval DIR [--detector NAME] [-o table|json]",
		Short: "Score a motion detector on labelled clips",
		Long: fmt.Sprintf(`Score a motion detector on every NAME.mp4 of DIR against its ground truth
NAME.json: {"events":[{"start":S,"end":E}], "masks":[[[x,y],...]]} (seconds
from the clip start; masks, optional, are polygons in clip pixels).

The detector is the agent's own code with the agent's default settings, fed
the clip's access units as fast as it takes them; its verdicts are in clip
time. Runs of motion frames separated by at most --merge-gap of still frames
form one detected interval. An event is detected when an interval overlaps
it. Printed per clip and in total: recall (events detected / events),
precision (intervals overlapping an event / intervals), false alarms
(intervals overlapping no event) per hour of still video, median time to
detect, and CPU seconds (this process and its ffmpeg children) per hour of
video. Clips run one at a time so that each one's CPU time is its own. The
agent starts a camera's decoder once, not once per clip: the CPU cost of a
detector start is measured apart (per codec and size) and subtracted.

Detectors: %s.`, strings.Join(eval.DetectorNames(), ", ")),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("want one argument, the clips directory DIR; got %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMotionEval(cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.detector, "detector", o.detector, "detector to score: "+strings.Join(eval.DetectorNames(), ", "))
	f.DurationVar(&o.mergeGap, "merge-gap", o.mergeGap, "merge runs of motion frames separated by at most this much still time")
	f.VarP(&o.output, "output", "o", "output format: table or json")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print no progress on stderr")
	return cmd
}

func runMotionEval(cmd *cobra.Command, dir string, o motionEvalOptions) error {
	if o.mergeGap < 0 {
		return fmt.Errorf("--merge-gap %v is negative", o.mergeGap)
	}
	if _, err := eval.LookupDetector(o.detector); err != nil {
		return fmt.Errorf("--detector: %w", err)
	}
	stderr := cmd.ErrOrStderr()
	cfg := eval.Config{
		Dir: dir, Detector: o.detector, MergeGap: o.mergeGap,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if !o.quiet {
		cfg.OnClip = func(c eval.ClipResult) {
			fmt.Fprintf(stderr, "evaluated %s: %d/%d events, %d false alarms, %.2f CPU-s\n",
				c.Name, c.Detected, c.Events, c.FalseAlarms, c.CPUSeconds)
		}
	}
	rep, err := eval.Run(cmd.Context(), cfg)
	if err != nil {
		if ctxErr := cmd.Context().Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return errors.New("interrupted")
		}
		return err
	}
	if o.output == "json" {
		return writeJSON(cmd.OutOrStdout(), rep)
	}
	return printMotionEval(cmd.OutOrStdout(), rep)
}

// printMotionEval prints one line per clip and a total line.
func printMotionEval(w io.Writer, rep *eval.Report) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "CLIP\tSIZE\tLENGTH\tEVENTS\tDETECTED\tRECALL\tINTERVALS\tPRECISION\tFALSE ALARMS\tFA/HOUR\tTTD (MEDIAN)\tCPU-S\tCPU-S/CAM-HOUR\tMASKS")
	for _, c := range rep.Clips {
		masks := "-"
		if c.Masks > 0 {
			masks = fmt.Sprint(c.Masks)
			if !c.MasksApplied {
				masks += " (not applied)"
			}
		}
		fmt.Fprintf(tw, "%s\t%dx%d\t%s\t%d\t%d\t%s\t%d\t%s\t%d\t%s\t%s\t%.2f\t%.1f\t%s\n",
			c.Name, c.Width, c.Height, fmtSeconds(c.DurationSeconds), c.Events, c.Detected, fmtRatio(c.Recall),
			len(c.Intervals), fmtRatio(c.Precision), c.FalseAlarms, fmtRate(c.FalseAlarmsPerHour), fmtTTD(c.MedianTimeToDetectSeconds),
			c.CPUSeconds, c.CPUSecondsPerCameraHour, masks)
	}
	fmt.Fprintf(tw, "TOTAL\t\t%s\t%d\t%d\t%s\t%d\t%s\t%d\t%s\t%s\t%.2f\t%.1f\t\n",
		fmtSeconds(rep.DurationSeconds), rep.Events, rep.Detected, fmtRatio(rep.Recall),
		rep.IntervalCount, fmtRatio(rep.Precision), rep.FalseAlarms, fmtRate(rep.FalseAlarmsPerHour), fmtTTD(rep.MedianTimeToDetectSeconds),
		rep.CPUSeconds, rep.CPUSecondsPerCameraHour)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\ndetector %s; runs of motion merged across still gaps up to %s; %s of video in %s\n",
		rep.Detector, time.Duration(rep.MergeGapSeconds*float64(time.Second)), fmtSeconds(rep.DurationSeconds),
		fmtSeconds(rep.WallSeconds))
	if len(rep.DetectorStarts) > 0 {
		var starts []string
		for _, d := range rep.DetectorStarts {
			starts = append(starts, fmt.Sprintf("%s %dx%d %.2f", d.Codec, d.Width, d.Height, d.CPUSeconds))
		}
		fmt.Fprintf(w, "CPU: this process and its ffmpeg children, %.2f CPU-s measured, less one detector start per clip (CPU-s: %s)\n",
			rep.CPUSecondsMeasured, strings.Join(starts, ", "))
	}
	if len(rep.CPUBySize) > 1 {
		var sizes []string
		for _, c := range rep.CPUBySize {
			sizes = append(sizes, fmt.Sprintf("%dx%d %.1f", c.Width, c.Height, c.CPUSecondsPerCameraHour))
		}
		fmt.Fprintf(w, "CPU-s per camera-hour by picture size: %s\n", strings.Join(sizes, ", "))
	}
	if !rep.MasksApplied {
		fmt.Fprintf(w, "masks not applied: detector %s does not support them; false alarms may come from masked zones\n", rep.Detector)
	}
	return nil
}

func fmtRatio(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.3f", *v)
}

func fmtRate(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", *v)
}

func fmtTTD(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.2fs", *v)
}

func fmtSeconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(100 * time.Millisecond).String()
}
