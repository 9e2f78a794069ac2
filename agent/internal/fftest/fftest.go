// Package fftest checks recorded segments the way a viewer would: ffprobe
// reads the container and ffmpeg decodes every frame. Tests use it to prove
// that what the agent stores is playable.
package fftest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Result is what ffprobe and a full decode say of a file.
type Result struct {
	Codec    string // "h264" or "hevc"
	Width    int
	Height   int
	Duration time.Duration
	Frames   int
	// DecodeErrors is what ffmpeg printed at error level while decoding
	// every frame; empty for a clean file.
	DecodeErrors string
}

// Check probes and fully decodes path.
func Check(path string) (Result, error) {
	var r Result
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames",
		"-show_entries", "stream=codec_name,width,height,nb_read_frames:format=duration",
		"-of", "json", path).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return r, fmt.Errorf("ffprobe %s: %v: %s", path, err, ee.Stderr)
		}
		return r, fmt.Errorf("ffprobe %s: %w", path, err)
	}
	var probe struct {
		Streams []struct {
			CodecName    string `json:"codec_name"`
			Width        int    `json:"width"`
			Height       int    `json:"height"`
			NbReadFrames string `json:"nb_read_frames"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &probe); err != nil {
		return r, fmt.Errorf("ffprobe %s: %w", path, err)
	}
	if len(probe.Streams) != 1 {
		return r, fmt.Errorf("ffprobe %s: %d streams, want 1", path, len(probe.Streams))
	}
	s := probe.Streams[0]
	r.Codec, r.Width, r.Height = s.CodecName, s.Width, s.Height
	r.Frames, _ = strconv.Atoi(s.NbReadFrames)
	secs, err := strconv.ParseFloat(probe.Format.Duration, 64)
	if err != nil {
		return r, fmt.Errorf("ffprobe %s: duration %q", path, probe.Format.Duration)
	}
	r.Duration = time.Duration(secs * float64(time.Second))

	var stderr bytes.Buffer
	cmd := exec.Command("ffmpeg", "-hide_banner", "-v", "error", "-i", path, "-f", "null", "-")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return r, fmt.Errorf("ffmpeg decode %s: %v: %s", path, err, stderr.String())
	}
	r.DecodeErrors = strings.TrimSpace(stderr.String())
	return r, nil
}
