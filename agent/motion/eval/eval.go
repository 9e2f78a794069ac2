// Package eval scores the agent's motion detectors against labelled clips:
// every NAME.mp4 of a directory with its ground truth NAME.json (see
// GroundTruth). It backs `vigil motion eval`.
//
// Each clip is fed to the detector exactly as the agent feeds a camera's
// stream: access units (parameter sets before keyframes) through
// motion.Detector.Feed, to a detector made by the agent's constructor with
// the agent's default settings. Only the clock differs: units are fed as
// fast as the detector takes them, not in real time, and each is stamped
// with a clip time instead of its arrival time, so verdicts come back in
// clip time. The pixel detector matches the n-th frame ffmpeg returns with
// the n-th stamp fed; ffmpeg returns frames in presentation order, so unit
// n is stamped with the n-th smallest presentation time of the clip, and
// every verdict carries its own frame's presentation time, B-frames or not.
// A detector has no end of stream, and decoders hold a few frames back: a
// few units from the clip's start are fed after its end, and the verdicts
// on them discarded.
//
// Verdicts become motion intervals (see Intervals), scored against the
// events (see Score).
//
// CPU time is measured with getrusage, this process and its reaped children
// (the ffmpeg decoders) together, so clips run one after the other: in
// parallel, one clip's CPU time could not be told from another's. The
// agent starts a camera's decoder once and keeps it; here every clip starts
// one, and an ffmpeg start costs about 0.2 CPU-s (Debian's ffmpeg loads
// dozens of libraries), as much as decoding a minute of 640x360. So the
// cost of starting and stopping the detector is measured apart, once per
// codec and picture size (median of a few starts), and subtracted: CPU
// seconds per camera-hour are the detector's steady cost. Both figures are
// in the report.
package eval

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vigil-cctv/vigil/agent/camerasim"
)

// DefaultMergeGap is the still gap across which runs of motion frames are
// merged into one interval (see Intervals).
const DefaultMergeGap = time.Second

// DefaultStallTimeout is how long a detector may judge no frame, while it
// has units to judge, before the clip fails.
const DefaultStallTimeout = 30 * time.Second

// DefaultStartRuns is how many times the detector's start is measured per
// codec and picture size.
const DefaultStartRuns = 3

// Config configures an evaluation.
type Config struct {
	// Dir holds the clips: NAME.mp4 with NAME.json beside it.
	Dir string
	// Detector names the detector (default DefaultDetector).
	Detector string
	// MergeGap merges runs of motion frames separated by at most this much
	// still time (0: no merging). The CLI defaults it to DefaultMergeGap.
	MergeGap time.Duration
	// FFmpeg is the ffmpeg binary (default "ffmpeg" on PATH).
	FFmpeg string
	// StallTimeout (default DefaultStallTimeout).
	StallTimeout time.Duration
	// StartRuns is how many times the detector's start cost is measured
	// per format (default DefaultStartRuns; negative: not measured, the
	// CPU time per camera-hour then includes one start per clip).
	StartRuns int
	// OnClip, optional, is called after each clip is scored: progress.
	OnClip func(ClipResult)
	Logger *slog.Logger
}

// CheckAndSetDefaults validates the configuration and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.Dir == "" {
		return errors.New("eval: the clips directory is required")
	}
	if c.Detector == "" {
		c.Detector = DefaultDetector
	}
	if _, err := LookupDetector(c.Detector); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	if c.MergeGap < 0 {
		return fmt.Errorf("eval: merge gap %v is negative", c.MergeGap)
	}
	if c.FFmpeg == "" {
		c.FFmpeg = "ffmpeg"
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = DefaultStallTimeout
	}
	if c.StartRuns == 0 {
		c.StartRuns = DefaultStartRuns
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Span is an interval in seconds, as printed.
type Span struct {
	Start float64 `json:"start"`
	End   float64 `json:"end"`
}

// Report is the result of an evaluation: totals over every clip, then each
// clip. Ratios are null when undefined (recall without events, precision
// without detections, false alarms per hour without still time).
type Report struct {
	Dir      string `json:"dir"`
	Detector string `json:"detector"`
	// MergeGapSeconds is the merge gap of Intervals.
	MergeGapSeconds float64 `json:"merge_gap_seconds"`

	Recall             *float64 `json:"recall"`
	Precision          *float64 `json:"precision"`
	FalseAlarmsPerHour *float64 `json:"false_alarms_per_hour"`
	// CPUSecondsPerCameraHour is the detector's steady cost: CPUSeconds
	// per hour of video.
	CPUSecondsPerCameraHour float64 `json:"cpu_seconds_per_camera_hour"`
	// MedianTimeToDetectSeconds is over every detected event of every clip.
	MedianTimeToDetectSeconds *float64 `json:"median_time_to_detect_seconds"`

	Events          int     `json:"events"`
	Detected        int     `json:"detected"`
	IntervalCount   int     `json:"interval_count"`
	Hits            int     `json:"hits"`
	FalseAlarms     int     `json:"false_alarms"`
	DurationSeconds float64 `json:"duration_seconds"`
	StillSeconds    float64 `json:"still_seconds"`
	// CPUSeconds is the CPU time measured over the clips less one detector
	// start per clip; CPUSecondsMeasured includes them.
	CPUSeconds         float64 `json:"cpu_seconds"`
	CPUSecondsMeasured float64 `json:"cpu_seconds_measured"`
	// DetectorStarts is the CPU cost of a detector start, per format.
	DetectorStarts []DetectorStart `json:"detector_starts"`
	// CPUBySize splits the CPU time by picture size: the cost of decoding
	// grows with it.
	CPUBySize   []SizeCPU `json:"cpu_by_size"`
	WallSeconds float64   `json:"wall_seconds"`
	// MasksApplied is false when some clip has masks the detector did not
	// apply: its false alarms may come from inside a mask.
	MasksApplied bool `json:"masks_applied"`

	Clips []ClipResult `json:"clips"`

	// Score is the total, for callers that want durations rather than
	// seconds.
	Score Score `json:"-"`
}

// DetectorStart is the measured CPU cost of starting and stopping the
// detector on clips of one format.
type DetectorStart struct {
	Codec      string  `json:"codec"`
	Width      int     `json:"width"`
	Height     int     `json:"height"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

// SizeCPU is the CPU time of the clips of one picture size.
type SizeCPU struct {
	Width                   int     `json:"width"`
	Height                  int     `json:"height"`
	DurationSeconds         float64 `json:"duration_seconds"`
	CPUSeconds              float64 `json:"cpu_seconds"`
	CPUSecondsPerCameraHour float64 `json:"cpu_seconds_per_camera_hour"`
}

// ClipResult is one clip's evaluation.
type ClipResult struct {
	Name            string  `json:"name"`
	File            string  `json:"file"`
	Codec           string  `json:"codec"`
	Width           int     `json:"width"`
	Height          int     `json:"height"`
	DurationSeconds float64 `json:"duration_seconds"`
	// Frames is the number of frames of the clip; FramesJudged how many
	// verdicts the detector returned for them (fewer: it dropped some).
	Frames       int `json:"frames"`
	FramesJudged int `json:"frames_judged"`

	Events    int      `json:"events"`
	Detected  int      `json:"detected"`
	Recall    *float64 `json:"recall"`
	Precision *float64 `json:"precision"`
	// Hits counts intervals overlapping an event, FalseAlarms the others.
	Hits                      int      `json:"hits"`
	FalseAlarms               int      `json:"false_alarms"`
	FalseAlarmsPerHour        *float64 `json:"false_alarms_per_hour"`
	MedianTimeToDetectSeconds *float64 `json:"median_time_to_detect_seconds"`
	StillSeconds              float64  `json:"still_seconds"`

	// CPUSeconds is CPUSecondsMeasured less DetectorStartCPUSeconds (at
	// least 0); CPUSecondsPerCameraHour is CPUSeconds per hour of the clip.
	CPUSeconds              float64 `json:"cpu_seconds"`
	CPUSecondsPerCameraHour float64 `json:"cpu_seconds_per_camera_hour"`
	CPUSecondsMeasured      float64 `json:"cpu_seconds_measured"`
	DetectorStartCPUSeconds float64 `json:"detector_start_cpu_seconds"`
	WallSeconds             float64 `json:"wall_seconds"`

	// Masks is the number of mask polygons of the ground truth;
	// MasksApplied whether the detector applied them (true when none).
	Masks        int  `json:"masks"`
	MasksApplied bool `json:"masks_applied"`

	// Intervals detected; Truth the labelled events; Missed the events no
	// interval overlaps.
	Intervals []Span `json:"intervals"`
	Truth     []Span `json:"truth"`
	Missed    []Span `json:"missed"`

	Score            Score `json:"-"`
	cpu, cpuMeasured time.Duration
}

// clipFile is a clip found in the directory, with its ground truth.
type clipFile struct {
	name, video, truthPath string
	truth                  *GroundTruth
	format                 DetectorStart // without CPUSeconds
}

// Run evaluates the configured detector on every clip of cfg.Dir. Every
// file is checked before any clip runs, so a bad label fails at once. An
// error names the file at fault.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	spec, _ := LookupDetector(cfg.Detector)
	files, err := findClips(cfg.Dir)
	if err != nil {
		return nil, err
	}
	for i, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		clip, err := loadClip(f)
		if err != nil {
			return nil, err
		}
		files[i].format = DetectorStart{Codec: clip.Codec, Width: clip.Width, Height: clip.Height}
	}
	start := time.Now()
	rep := &Report{
		Dir: cfg.Dir, Detector: spec.Name, MergeGapSeconds: cfg.MergeGap.Seconds(), MasksApplied: true,
		DetectorStarts: []DetectorStart{}, Clips: []ClipResult{},
	}
	startCosts := map[DetectorStart]time.Duration{}
	if cfg.StartRuns > 0 {
		for _, f := range files {
			if _, ok := startCosts[f.format]; ok {
				continue
			}
			cost, err := startCost(ctx, cfg, spec, f, cfg.StartRuns)
			if err != nil {
				return nil, err
			}
			startCosts[f.format] = cost
			ds := f.format
			ds.CPUSeconds = secs(cost)
			rep.DetectorStarts = append(rep.DetectorStarts, ds)
		}
	}
	var cpu, cpuMeasured time.Duration
	type sizeKey struct{ w, h int }
	type sizeSum struct{ cpu, video time.Duration }
	bySize := map[sizeKey]*sizeSum{}
	var sizes []sizeKey
	for _, f := range files {
		res, err := runClip(ctx, cfg, spec, f, startCosts[f.format])
		if err != nil {
			return nil, err
		}
		rep.Clips = append(rep.Clips, res)
		rep.Score = rep.Score.Add(res.Score)
		cpu += res.cpu
		cpuMeasured += res.cpuMeasured
		k := sizeKey{res.Width, res.Height}
		if bySize[k] == nil {
			bySize[k] = &sizeSum{}
			sizes = append(sizes, k)
		}
		bySize[k].cpu += res.cpu
		bySize[k].video += res.Score.Duration
		rep.MasksApplied = rep.MasksApplied && res.MasksApplied
		if cfg.OnClip != nil {
			cfg.OnClip(res)
		}
	}
	s := rep.Score
	rep.Recall, rep.Precision, rep.FalseAlarmsPerHour, rep.MedianTimeToDetectSeconds = ratios(s)
	rep.Events, rep.Detected, rep.IntervalCount, rep.Hits, rep.FalseAlarms = s.Events, s.Detected, s.Intervals, s.Hits, s.FalseAlarms
	rep.DurationSeconds, rep.StillSeconds = secs(s.Duration), secs(s.Still)
	rep.CPUSeconds, rep.CPUSecondsMeasured = secs(cpu), secs(cpuMeasured)
	rep.CPUSecondsPerCameraHour = perHour(cpu, s.Duration)
	slices.SortFunc(sizes, func(a, b sizeKey) int { return a.w*a.h - b.w*b.h })
	rep.CPUBySize = []SizeCPU{}
	for _, k := range sizes {
		sum := bySize[k]
		rep.CPUBySize = append(rep.CPUBySize, SizeCPU{Width: k.w, Height: k.h, DurationSeconds: secs(sum.video),
			CPUSeconds: secs(sum.cpu), CPUSecondsPerCameraHour: perHour(sum.cpu, sum.video)})
	}
	rep.WallSeconds = secs(time.Since(start))
	return rep, nil
}

// findClips lists DIR/*.mp4 with their ground truths, parsed.
func findClips(dir string) ([]clipFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("eval: clips directory: %w", err)
	}
	var files []clipFile
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".mp4") || e.IsDir() {
			continue
		}
		name := strings.TrimSuffix(e.Name(), ".mp4")
		f := clipFile{name: name, video: filepath.Join(dir, e.Name()), truthPath: filepath.Join(dir, name+".json")}
		data, err := readTruth(f.truthPath)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("eval: %s: no ground truth %s beside it", f.video, filepath.Base(f.truthPath))
		}
		if err != nil {
			return nil, fmt.Errorf("eval: %w", err)
		}
		if f.truth, err = ParseGroundTruth(data); err != nil {
			return nil, fmt.Errorf("eval: %s: %w", f.truthPath, err)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("eval: no clips (*.mp4 with NAME.json) in %s", dir)
	}
	// By clip name, not file name: "walk" before "walk-h265".
	slices.SortFunc(files, func(a, b clipFile) int { return strings.Compare(a.name, b.name) })
	return files, nil
}

// readTruth reads a ground truth file, no more than the parser accepts.
func readTruth(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxTruthBytes+1))
}

// loadClip reads a clip and checks its ground truth against it.
func loadClip(f clipFile) (*camerasim.Clip, error) {
	clip, err := camerasim.LoadClip(f.video)
	if err != nil {
		return nil, fmt.Errorf("eval: %s: %w", f.video, err)
	}
	w, h := clip.Width, clip.Height
	if w == 0 || h == 0 {
		w, h = math.MaxInt32, math.MaxInt32 // size unknown: masks cannot be checked
	}
	if err := f.truth.Check(w, h, clip.Duration); err != nil {
		return nil, fmt.Errorf("eval: %s: %w", f.truthPath, err)
	}
	return clip, nil
}

// ratios returns the score's ratios, nil where undefined.
func ratios(s Score) (recall, precision, faPerHour, ttd *float64) {
	if r, ok := s.Recall(); ok {
		recall = &r
	}
	if p, ok := s.Precision(); ok {
		precision = &p
	}
	if f, ok := s.FalseAlarmsPerHour(); ok {
		f = round(f, 2)
		faPerHour = &f
	}
	if m, ok := s.MedianTimeToDetect(); ok {
		v := secs(m)
		ttd = &v
	}
	return recall, precision, faPerHour, ttd
}

func spans(ivs []Interval) []Span {
	out := make([]Span, 0, len(ivs))
	for _, iv := range ivs {
		out = append(out, Span{Start: secs(iv.Start), End: secs(iv.End)})
	}
	return out
}

// secs is a duration in seconds, to the millisecond.
func secs(d time.Duration) float64 { return round(d.Seconds(), 3) }

// perHour is CPU seconds per hour of video.
func perHour(cpu, video time.Duration) float64 {
	if video <= 0 {
		return 0
	}
	return round(cpu.Seconds()/video.Hours(), 2)
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
