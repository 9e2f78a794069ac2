package eval

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/vigil-cctv/vigil/agent/motion"
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

// AgentConfig is the detector configuration the agent uses for a camera
// whose config says nothing about motion: every setting at its default.
// The evaluation scores exactly that.
func AgentConfig(kind motion.Kind) motion.Config {
	return motion.Config{Detector: kind}
}

// newAgentDetector makes the agent's detector of the given kind for a clip,
// with the clip's masks unless the detector cannot apply them.
func newAgentDetector(kind motion.Kind, masks bool) func(DetectorConfig) (motion.Detector, error) {
	return func(c DetectorConfig) (motion.Detector, error) {
		cfg := AgentConfig(kind)
		cfg.Name, cfg.OnFrame, cfg.FFmpeg, cfg.Logger = c.Clip, c.OnFrame, c.FFmpeg, c.Logger
		if masks && len(c.Masks) > 0 {
			cfg.MaskWidth, cfg.MaskHeight = c.Width, c.Height
			cfg.Masks = make([][]motion.MaskPoint, len(c.Masks))
			for i, poly := range c.Masks {
				for _, p := range poly {
					cfg.Masks[i] = append(cfg.Masks[i], motion.MaskPoint{X: p.X, Y: p.Y})
				}
			}
		}
		return motion.New(cfg)
	}
}

// registry lists the detectors by name.
var registry = []DetectorSpec{
	{
		Name: string(motion.KindPixel),
		Description: fmt.Sprintf("ffmpeg decodes every frame to %dx%d gray; normalised running-average background, blobs of %d+ px confirmed over %d frames (threshold %d, min area %g), masks",
			motion.FrameWidth, motion.FrameHeight, motion.DefaultMinBlob(motion.FrameWidth, motion.FrameHeight), motion.DefaultPersist,
			motion.ThresholdFor(motion.DefaultSensitivity), motion.DefaultMinArea),
		Masks: true,
		New:   newAgentDetector(motion.KindPixel, true),
	},
	{
		Name:        string(motion.KindHybrid),
		Description: "the pixel analysis on keyframes only; a GOP in full when its keyframe or the next shows a blob, its frame sizes double, or motion was confirmed within 1 s; masks",
		Masks:       true,
		New:         newAgentDetector(motion.KindHybrid, true),
	},
	{
		Name:        string(motion.KindCompressed),
		Description: "no decoding: predicted frames' coded size (normalised by the quantiser) persistently above a running baseline per GOP position; no masks",
		Masks:       false,
		New:         newAgentDetector(motion.KindCompressed, false),
	},
}

// DefaultDetector is the detector scored when none is named: the agent's
// default.
const DefaultDetector = string(motion.DefaultKind)

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
