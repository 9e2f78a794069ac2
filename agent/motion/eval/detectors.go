package eval

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/vigil-cctv/vigil/agent/motion"
)

// The agent's default settings of the pixel detector (agent/config: motion
// threshold and min_area), which the evaluation scores.
const (
	DefaultPixelThreshold = 25
	DefaultPixelMinArea   = 0.005
)

// DetectorConfig is what a detector is made with for one clip.
type DetectorConfig struct {
	// Clip names the clip in logs.
	Clip string
	// Width and Height of the clip's picture, the frame of Masks.
	Width, Height int
	// Masks from the ground truth, in clip pixels; a detector that cannot
	// apply them says so in DetectorSpec.Masks.
	Masks [][]Point
	// OnFrame receives every verdict, as from the agent.
	OnFrame motion.OnFrame
	// FFmpeg is the ffmpeg binary for detectors that decode.
	FFmpeg string
	Logger *slog.Logger
}

// DetectorSpec is an entry of the registry: a detector the evaluation can
// run, made exactly as the agent makes it.
type DetectorSpec struct {
	Name        string
	Description string
	// Masks reports whether the detector applies DetectorConfig.Masks;
	// when false, results on masked clips say the masks were not applied.
	Masks bool
	// New makes the detector for one clip.
	New func(DetectorConfig) (motion.Detector, error)
}

// registry lists the detectors by name. A new detector (the compressed-
// domain one, or the pixel one with masks) is one entry here.
var registry = []DetectorSpec{
	{
		Name: "pixel",
		Description: fmt.Sprintf("ffmpeg decode to %dx%d gray, normalised running-average background, blobs of %d+ px confirmed over %d frames (threshold %d, min area %g), masks",
			motion.FrameWidth, motion.FrameHeight, motion.DefaultMinBlob(motion.FrameWidth, motion.FrameHeight), motion.DefaultPersist,
			DefaultPixelThreshold, DefaultPixelMinArea),
		Masks: true,
		New: func(c DetectorConfig) (motion.Detector, error) {
			masks := make([][]motion.MaskPoint, len(c.Masks))
			for i, poly := range c.Masks {
				for _, p := range poly {
					masks[i] = append(masks[i], motion.MaskPoint{X: p.X, Y: p.Y})
				}
			}
			return motion.NewPixel(motion.PixelConfig{
				Name: c.Clip, Threshold: DefaultPixelThreshold, MinArea: DefaultPixelMinArea,
				Masks: masks, MaskWidth: c.Width, MaskHeight: c.Height,
				OnFrame: c.OnFrame, FFmpeg: c.FFmpeg, Logger: c.Logger,
			})
		},
	},
}

// DefaultDetector is the detector scored when none is named.
const DefaultDetector = "pixel"

// Detectors returns the registered detectors, sorted by name.
func Detectors() []DetectorSpec {
	out := slices.Clone(registry)
	slices.SortFunc(out, func(a, b DetectorSpec) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// DetectorNames returns the registered names, sorted.
func DetectorNames() []string {
	var names []string
	for _, d := range Detectors() {
		names = append(names, d.Name)
	}
	return names
}

// LookupDetector returns the detector with the given name, or an error
// listing the known ones.
func LookupDetector(name string) (DetectorSpec, error) {
	for _, d := range registry {
		if d.Name == name {
			return d, nil
		}
	}
	return DetectorSpec{}, fmt.Errorf("unknown detector %q (known: %s)", name, strings.Join(DetectorNames(), ", "))
}
