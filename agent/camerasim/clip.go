package camerasim

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// Codec names of Clip.Codec.
const (
	CodecH264 = "h264"
	CodecH265 = "h265"
)

// Errors of clip loading, matched with errors.Is.
var (
	// ErrEmptyClip: the file, or its video track, holds no playable frame.
	ErrEmptyClip = errors.New("clip has no video frames")
	// ErrNoVideo: the file is readable but has no H.264 or H.265 video.
	ErrNoVideo = errors.New("clip has no H.264 or H.265 video")
	// ErrUnreadable: neither the fMP4 reader nor ffmpeg can read the file.
	ErrUnreadable = errors.New("clip is not a readable video file")
)

// clipExtensions are the files LoadClips picks up. Anything but fragmented
// MP4 goes through an ffmpeg remux, so users can bring what their cameras
// or phones produced.
var clipExtensions = []string{".mp4", ".m4v", ".mov", ".mkv", ".ts"}

// remuxTimeout bounds the ffmpeg fallback, so a pathological file cannot
// hang `vigil camera-sim` at start.
const remuxTimeout = 2 * time.Minute

// AccessUnit is one coded picture: its NAL units (without start codes or
// length prefixes) and its timestamps from the start of the clip.
type AccessUnit struct {
	NALUs [][]byte
	// PTS is the presentation time; the first picture shown is at 0.
	PTS time.Duration
	// DTS is the decode (and send) time; it is below PTS when the clip has
	// B-frames, so the first DTS may be negative.
	DTS time.Duration
	// Key is true for an IDR (H.264) or IRAP (H.265) picture.
	Key bool
}

// Event is a span of clip time when an object moves in the picture.
type Event struct {
	Start time.Duration
	End   time.Duration
}

// Clip is a video loaded in memory, ready to be looped. A Clip is shared by
// every path that plays it and must not be modified once loaded.
type Clip struct {
	Name  string // file name without extension
	Codec string // CodecH264 or CodecH265

	Width, Height int

	// Parameter sets, from the container (VPS only for H.265).
	VPS, SPS, PPS []byte

	// AccessUnits in decode order; the first one is a keyframe.
	AccessUnits []AccessUnit

	// Duration of one loop: the next loop's first DTS is the first DTS plus
	// Duration.
	Duration time.Duration

	// Events is the ground truth from NAME.json: nil without that file,
	// empty when it lists no event (nothing moves).
	Events []Event
}

// truthFile is the JSON ground truth stored beside a clip.
type truthFile struct {
	Events []struct {
		Start *float64 `json:"start"`
		End   *float64 `json:"end"`
	} `json:"events"`
}

//go:embed clips/*.mp4 clips/*.json
var embeddedFS embed.FS

// embeddedClips parses the embedded set once: it is immutable and parsing
// it again for every test or demo start would only cost time.
var embeddedClips = sync.OnceValues(func() ([]*Clip, error) {
	return loadClipsFS(embeddedFS, "clips", "")
})

// EmbeddedClips returns the clips built into the binary, sorted by name.
func EmbeddedClips() ([]*Clip, error) {
	clips, err := embeddedClips()
	if err != nil {
		return nil, err
	}
	return slices.Clone(clips), nil
}

// LoadClips loads every clip of dir (*.mp4, and .m4v .mov .mkv .ts), sorted
// by name (without extension), each with its ground truth NAME.json when
// present.
func LoadClips(dir string) ([]*Clip, error) {
	// Stat first: os.DirFS errors name "." rather than the directory.
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("camerasim: clips directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("camerasim: clips directory: %s is not a directory", dir)
	}
	return loadClipsFS(os.DirFS(dir), ".", dir)
}

// LoadClip loads one clip file and its ground truth beside it, if any.
func LoadClip(file string) (*Clip, error) {
	return loadClipFile(os.DirFS(filepath.Dir(file)), ".", filepath.Base(file), filepath.Dir(file))
}

// loadClipsFS loads the clips of dir inside fsys. osDir is the same
// directory on disk, or "" when fsys is not a disk directory (the remux
// fallback then goes through a temporary file).
func loadClipsFS(fsys fs.FS, dir, osDir string) ([]*Clip, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("camerasim: read clips: %w", err)
	}
	var clips []*Clip
	for _, e := range entries {
		if e.IsDir() || !slices.Contains(clipExtensions, strings.ToLower(path.Ext(e.Name()))) {
			continue
		}
		c, err := loadClipFile(fsys, dir, e.Name(), osDir)
		if err != nil {
			return nil, err
		}
		clips = append(clips, c)
	}
	if len(clips) == 0 {
		where := osDir
		if where == "" {
			where = dir
		}
		return nil, fmt.Errorf("camerasim: no clips (%s) in %s", strings.Join(clipExtensions, " "), where)
	}
	// By clip name, not file name: "walk" before "walk-h265".
	slices.SortStableFunc(clips, func(a, b *Clip) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(clips); i++ {
		if clips[i].Name == clips[i-1].Name { // they would share NAME.json
			return nil, fmt.Errorf("camerasim: two clips named %q (one file per name)", clips[i].Name)
		}
	}
	return clips, nil
}

func loadClipFile(fsys fs.FS, dir, file, osDir string) (*Clip, error) {
	name := strings.TrimSuffix(file, path.Ext(file))
	data, err := fs.ReadFile(fsys, path.Join(dir, file))
	if err != nil {
		return nil, fmt.Errorf("camerasim: clip %s: %w", file, err)
	}
	osPath := ""
	if osDir != "" {
		osPath = filepath.Join(osDir, file)
	}
	c, err := parseClip(name, data, osPath)
	if err != nil {
		return nil, fmt.Errorf("camerasim: clip %s: %w", file, err)
	}
	truth, err := fs.ReadFile(fsys, path.Join(dir, name+".json"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return c, nil
	case err != nil:
		return nil, fmt.Errorf("camerasim: clip %s: ground truth: %w", file, err)
	}
	c.Events, err = parseTruth(truth, c.Duration)
	if err != nil {
		return nil, fmt.Errorf("camerasim: clip %s: ground truth %s.json: %w", file, name, err)
	}
	return c, nil
}

// parseTruth reads NAME.json and checks every event lies within the clip.
func parseTruth(data []byte, d time.Duration) ([]Event, error) {
	var tf truthFile
	if err := json.Unmarshal(data, &tf); err != nil {
		return nil, err
	}
	events := make([]Event, 0, len(tf.Events))
	for i, e := range tf.Events {
		if e.Start == nil || e.End == nil {
			return nil, fmt.Errorf("event %d: start and end are required", i)
		}
		ev := Event{Start: seconds(*e.Start), End: seconds(*e.End)}
		if ev.Start < 0 || ev.End <= ev.Start || ev.End > d {
			return nil, fmt.Errorf("event %d: [%v, %v] is not a span within the clip's %v", i, ev.Start, ev.End, d)
		}
		events = append(events, ev)
	}
	slices.SortFunc(events, func(a, b Event) int { return cmp.Compare(a.Start, b.Start) })
	return events, nil
}

func seconds(s float64) time.Duration {
	return time.Duration(math.Round(s * float64(time.Second)))
}

// errNotFragmented says the direct fMP4 read failed in a way a remux may cure.
var errNotFragmented = errors.New("not a fragmented MP4")

// parseClip reads a clip, through an ffmpeg remux to fragmented MP4 when it
// is not one already. osPath is the file on disk, or "" for embedded data.
func parseClip(name string, data []byte, osPath string) (*Clip, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: the file is empty", ErrEmptyClip)
	}
	c, ctsLost, err := parseFMP4(name, data)
	switch {
	case err == nil && !ctsLost:
		return c, nil
	case err == nil, errors.Is(err, errNotFragmented), errors.Is(err, errNoFragments):
		// Remux: not fMP4, or fMP4 whose B-frame timing we cannot read.
	default:
		return nil, err
	}
	remuxed, err := remux(data, osPath)
	if err != nil {
		return nil, err
	}
	c, _, err = parseFMP4(name, remuxed)
	if errors.Is(err, errNotFragmented) {
		// ffmpeg found a video stream and copied it, so what mediacommon
		// cannot read is the codec.
		return nil, fmt.Errorf("%w: %v", ErrNoVideo, err)
	}
	if errors.Is(err, errNoFragments) {
		return nil, fmt.Errorf("%w: no frame in the file", ErrEmptyClip)
	}
	return c, err
}

var errNoFragments = errors.New("no fragments")

// parseFMP4 reads a fragmented MP4 with mediacommon. ctsLost reports that
// no sample has a composition offset although the stream may reorder
// pictures: mediacommon only reads version-1 trun boxes, and ffmpeg writes
// version 0 unless told +negative_cts_offsets, so B-frame PTS would be
// silently wrong; a remux with that flag restores them.
func parseFMP4(name string, data []byte) (c *Clip, ctsLost bool, err error) {
	var ini fmp4.Init
	if err := ini.Unmarshal(bytes.NewReader(data)); err != nil {
		return nil, false, fmt.Errorf("%w: %v", errNotFragmented, err)
	}
	c = &Clip{Name: name}
	trackID := 0
	var found []string
	for _, t := range ini.Tracks {
		switch codec := t.Codec.(type) {
		case *mp4.CodecH264:
			c.Codec, c.SPS, c.PPS = CodecH264, codec.SPS, codec.PPS
			var sps h264.SPS
			if err := sps.Unmarshal(codec.SPS); err == nil {
				c.Width, c.Height = sps.Width(), sps.Height()
			}
		case *mp4.CodecH265:
			c.Codec, c.VPS, c.SPS, c.PPS = CodecH265, codec.VPS, codec.SPS, codec.PPS
			var sps h265.SPS
			if err := sps.Unmarshal(codec.SPS); err == nil {
				c.Width, c.Height = sps.Width(), sps.Height()
			}
		default:
			found = append(found, strings.TrimPrefix(fmt.Sprintf("%T", t.Codec), "*mp4.Codec"))
			continue
		}
		trackID = t.ID
		break
	}
	if trackID == 0 {
		return nil, false, fmt.Errorf("%w (tracks: %s)", ErrNoVideo, strings.Join(found, ", "))
	}

	var parts fmp4.Parts
	if err := parts.Unmarshal(data); err != nil {
		return nil, false, fmt.Errorf("%w: %v", errNotFragmented, err)
	}
	timescale := ini.Tracks[slices.IndexFunc(ini.Tracks, func(t *fmp4.InitTrack) bool { return t.ID == trackID })].TimeScale

	type sample struct {
		au       AccessUnit
		dts, pts int64 // in timescale units
		dur      int64
	}
	var samples []sample
	anyOffset := false
	for _, p := range parts {
		for _, pt := range p.Tracks {
			if pt.ID != trackID {
				continue
			}
			dts := int64(pt.BaseTime)
			for _, s := range pt.Samples {
				nalus, err := s.GetH264() // same AVCC framing for H.265
				if err != nil {
					return nil, false, fmt.Errorf("sample at %d: %w", dts, err)
				}
				nalus = slices.DeleteFunc(nalus, func(n []byte) bool { return len(n) == 0 })
				key := false
				if len(nalus) > 0 {
					if c.Codec == CodecH264 {
						key = h264.IsRandomAccess(nalus)
					} else {
						key = h265.IsRandomAccess(nalus)
					}
				}
				anyOffset = anyOffset || s.PTSOffset != 0
				samples = append(samples, sample{
					au:  AccessUnit{NALUs: nalus, Key: key},
					dts: dts, pts: dts + int64(s.PTSOffset), dur: int64(s.Duration),
				})
				dts += int64(s.Duration)
			}
		}
	}
	if len(samples) == 0 {
		return nil, false, errNoFragments
	}

	// A clip cut mid-GOP starts with pictures nobody can decode: drop them,
	// so every loop starts on a keyframe.
	first := slices.IndexFunc(samples, func(s sample) bool { return s.au.Key })
	if first < 0 {
		return nil, false, fmt.Errorf("%w: no keyframe among %d frames", ErrEmptyClip, len(samples))
	}
	samples = slices.DeleteFunc(samples[first:], func(s sample) bool { return len(s.au.NALUs) == 0 })

	// Presentation time 0 is the first picture shown; the loop length is the
	// sum of the frame durations, so DTS spacing stays even across loops.
	// With negative composition offsets a "DTS" can exceed its PTS: decode
	// times move earlier so that a picture is always decoded before shown.
	minPTS := samples[0].pts
	lead := int64(0)
	var total int64
	prevDur := int64(0)
	for i := range samples {
		minPTS = min(minPTS, samples[i].pts)
		lead = max(lead, samples[i].dts-samples[i].pts)
		if samples[i].dur <= 0 {
			samples[i].dur = prevDur
		}
		prevDur = samples[i].dur
		total += samples[i].dur
	}
	if total <= 0 {
		return nil, false, fmt.Errorf("%w: frames have no duration", ErrEmptyClip)
	}
	c.AccessUnits = make([]AccessUnit, len(samples))
	for i, s := range samples {
		s.au.DTS = ticksToDuration(s.dts-lead-minPTS, timescale)
		s.au.PTS = ticksToDuration(s.pts-minPTS, timescale)
		c.AccessUnits[i] = s.au
	}
	c.Duration = ticksToDuration(total, timescale)
	return c, !anyOffset && mayReorder(c.Codec, c.SPS), nil
}

// mayReorder tells from the SPS whether pictures can be shown in another
// order than decoded (B-frames), when in doubt yes.
func mayReorder(codec string, sps []byte) bool {
	if codec == CodecH265 {
		var s h265.SPS
		if err := s.Unmarshal(sps); err != nil || len(s.MaxNumReorderPics) == 0 {
			return true
		}
		return s.MaxNumReorderPics[len(s.MaxNumReorderPics)-1] > 0
	}
	var s h264.SPS
	if err := s.Unmarshal(sps); err != nil {
		return true
	}
	switch {
	case s.PicOrderCntType == 2: // output order is decode order
		return false
	case s.VUI != nil && s.VUI.BitstreamRestriction != nil:
		return s.VUI.BitstreamRestriction.MaxNumReorderFrames > 0
	default:
		return s.ProfileIdc != 66 // baseline has no B slices
	}
}

// ticksToDuration converts without overflowing for long clips.
func ticksToDuration(ticks int64, timescale uint32) time.Duration {
	ts := int64(timescale)
	return time.Duration(ticks/ts)*time.Second + time.Duration(ticks%ts)*time.Second/time.Duration(ts)
}

// remux turns any container ffmpeg reads into fragmented MP4, copying the
// first video stream untouched, with version-1 trun boxes (see parseFMP4).
func remux(data []byte, osPath string) ([]byte, error) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		return nil, fmt.Errorf("%w: not fragmented MP4 and ffmpeg is not installed to remux it", ErrUnreadable)
	}
	in := osPath
	if in == "" {
		f, err := os.CreateTemp("", "camerasim-*.mp4")
		if err != nil {
			return nil, fmt.Errorf("remux: %w", err)
		}
		defer os.Remove(f.Name())
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("remux: %w", err)
		}
		in = f.Name()
	}
	ctx, cancel := context.WithTimeout(context.Background(), remuxTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
		"-i", in, "-map", "0:v:0", "-c", "copy", "-an", "-f", "mp4",
		"-movflags", "frag_keyframe+empty_moov+default_base_moof+negative_cts_offsets", "pipe:1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := lastLine(stderr.String())
		if strings.Contains(msg, "matches no streams") {
			return nil, fmt.Errorf("%w: no video stream", ErrNoVideo)
		}
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("%w: ffmpeg: %s", ErrUnreadable, msg)
	}
	return stdout.Bytes(), nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}
