// Package evalset generates the labelled motion-detection evaluation set:
// synthetic CCTV clips rendered by ffmpeg from lavfi sources (no downloads)
// with their ground truth beside them. Each clip NAME.mp4 (H.264 main
// profile, yuv420p, 25 fps, a keyframe every 2 s, fragmented MP4 so that
// camerasim can stream it) has NAME.json:
//
//	{"events":[{"start":S,"end":E}],"masks":[[[x,y],...]]}
//
// Events are in seconds from the clip start; masks (optional) are polygons
// in pixel coordinates of the clip. The ground truth comes from the scene's
// own parameters, never from a detector: an event is a span during which a
// moving object's sprite lies at least partly inside the picture and outside
// every mask, computed frame by frame with ffmpeg's own arithmetic (see
// Clip.Visible), so it is exact to the frame.
//
// A seed chooses everything that varies (backgrounds, object shapes,
// colours, sizes, paths, speeds, timings, light changes, noise), so a set
// made with another seed is one the detectors have never seen.
package evalset

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// FPS is the frame rate of every clip.
const FPS = 25

// DefaultSeed is the seed of the committed evaluation set.
const DefaultSeed uint64 = 1

// Sets are the names Plan accepts.
const (
	SetFull  = "full"  // the whole evaluation set (make bench-motion)
	SetSmall = "small" // a few short 640x360 clips (make test)
)

// Event is a span of clip time, in seconds, when an object moves in the
// unmasked picture.
type Event struct {
	Start float64 `json:"start"`
	End   float64 `json:"end"`
}

// Point is a pixel position [x, y] in the clip.
type Point [2]int

// Truth is the content of NAME.json.
type Truth struct {
	// Events, sorted and disjoint; an empty array when nothing moves.
	Events []Event `json:"events"`
	// Masks are polygons where motion does not count (swaying vegetation).
	Masks [][]Point `json:"masks,omitempty"`
	// Scene says in words what happens; readers may ignore it.
	Scene string `json:"scene,omitempty"`
}

// Clip is one planned clip: what to render and its ground truth.
type Clip struct {
	Name          string
	Width, Height int
	Frames        int // at FPS
	Truth         Truth

	sc *scene
}

// Duration is the clip's length in seconds.
func (c *Clip) Duration() float64 { return float64(c.Frames) / FPS }

// Plan returns the clips of set made with seed, sorted by name, without
// rendering anything. The same set and seed always give the same clips.
func Plan(set string, seed uint64) ([]*Clip, error) {
	var scenes []*scene
	switch set {
	case SetFull, "":
		scenes = fullSet(seed)
	case SetSmall:
		scenes = smallSet(seed)
	default:
		return nil, fmt.Errorf("evalset: unknown set %q (want %s or %s)", set, SetFull, SetSmall)
	}
	clips := make([]*Clip, 0, len(scenes))
	for _, sc := range scenes {
		c := &Clip{Name: sc.name, Width: sc.w, Height: sc.h, Frames: sc.frames, sc: sc}
		truth, err := sc.truth()
		if err != nil {
			return nil, fmt.Errorf("evalset: %s: %w", sc.name, err)
		}
		truth.Scene = sc.about
		c.Truth = truth
		clips = append(clips, c)
	}
	slices.SortFunc(clips, func(a, b *Clip) int { return strings.Compare(a.Name, b.Name) })
	return clips, nil
}

// Visible reports, for every frame, whether a moving object is in the
// unmasked picture: the frame-level ground truth the events are made of.
func (c *Clip) Visible() []bool { return c.sc.visible() }

// FilterGraph is the ffmpeg -filter_complex that renders the clip; its
// output is labelled [v]. With plain set, the same geometry is rendered as
// white objects on black, without background, light, weather or noise:
// tests decode it to check the ground truth against the pixels.
func (c *Clip) FilterGraph(plain bool) string { return c.sc.graph(plain) }

// EncodeArgs are the ffmpeg arguments after the filter graph: H.264 as a
// camera sends it, written as fragmented MP4 to out.
func (c *Clip) EncodeArgs(out string) []string {
	maxrate := 1000 // kbit/s at 640x360
	if c.Width*c.Height > 640*360 {
		maxrate = 6000
	}
	return []string{
		"-map", "[v]",
		// One encoder thread: x264's frame threads under a VBV cap do not
		// always give the same bytes. Clips render in parallel instead.
		"-c:v", "libx264", "-threads", "1", "-preset", "veryfast", "-profile:v", "main", "-bf", "0",
		"-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-crf", "23", "-maxrate", fmt.Sprintf("%dk", maxrate), "-bufsize", fmt.Sprintf("%dk", 2*maxrate),
		"-pix_fmt", "yuv420p", "-an", "-map_metadata", "-1",
		"-fflags", "+bitexact", "-flags:v", "+bitexact",
		"-movflags", "frag_keyframe+empty_moov+default_base_moof", "-f", "mp4", out,
	}
}

// Options configure Generate.
type Options struct {
	Dir  string // output directory, created if missing
	Set  string // SetFull (default) or SetSmall
	Seed uint64
	// Only restricts generation to these clip names (all when empty).
	Only []string
	// Jobs is how many ffmpeg processes run at once (default: the CPUs).
	Jobs int
	// FFmpeg is the ffmpeg binary (default "ffmpeg" on PATH).
	FFmpeg string
	// Force renders clips again even when they are up to date.
	Force bool
	// Progress, when set, is called once per clip as it is done (one call
	// at a time).
	Progress func(c *Clip, skipped bool, took time.Duration)
}

// Generate renders the clips of the set into opts.Dir: NAME.mp4, NAME.json
// and a hidden .NAME.key recording what made them. A clip whose key matches
// (same ffmpeg, same filter graph and encoding, same truth) is kept as it
// is, so running Generate again only renders what changed.
func Generate(ctx context.Context, opts Options) ([]*Clip, error) {
	if opts.Dir == "" {
		return nil, errors.New("evalset: an output directory is required")
	}
	if opts.FFmpeg == "" {
		opts.FFmpeg = "ffmpeg"
	}
	if opts.Jobs <= 0 {
		opts.Jobs = runtime.NumCPU()
	}
	clips, err := Plan(opts.Set, opts.Seed)
	if err != nil {
		return nil, err
	}
	if len(opts.Only) > 0 {
		var sel []*Clip
		for _, name := range opts.Only {
			i := slices.IndexFunc(clips, func(c *Clip) bool { return c.Name == name })
			if i < 0 {
				return nil, fmt.Errorf("evalset: no clip %q in the %s set", name, opts.Set)
			}
			sel = append(sel, clips[i])
		}
		clips = sel
	}
	version, err := exec.CommandContext(ctx, opts.FFmpeg, "-hide_banner", "-version").Output()
	if err != nil {
		return nil, fmt.Errorf("evalset: ffmpeg: %w", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("evalset: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		sem   = make(chan struct{}, opts.Jobs)
		mu    sync.Mutex
		first error
	)
	// Longest first, so the last job to start is a short one.
	order := slices.Clone(clips)
	slices.SortStableFunc(order, func(a, b *Clip) int { return b.Width*b.Height*b.Frames - a.Width*a.Height*a.Frames })
	for _, c := range order {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			start := time.Now()
			skipped, err := render(ctx, opts, c, version)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = err
				}
				cancel()
				return
			}
			if opts.Progress != nil {
				opts.Progress(c, skipped, time.Since(start))
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return clips, nil
}

// render writes one clip unless its key says it is up to date.
func render(ctx context.Context, opts Options, c *Clip, ffmpegVersion []byte) (skipped bool, err error) {
	mp4 := filepath.Join(opts.Dir, c.Name+".mp4")
	jsonPath := filepath.Join(opts.Dir, c.Name+".json")
	keyPath := filepath.Join(opts.Dir, "."+c.Name+".key")

	truth, err := json.Marshal(c.Truth)
	if err != nil {
		return false, fmt.Errorf("evalset: %s: %w", c.Name, err)
	}
	truth = append(truth, '\n')
	graph := c.FilterGraph(false)
	args := append([]string{"-nostdin", "-hide_banner", "-loglevel", "error", "-y",
		"-filter_complex", graph}, c.EncodeArgs(mp4+".tmp")...)

	h := sha256.New()
	h.Write(ffmpegVersion)
	for _, a := range args[:len(args)-1] { // not the output name
		h.Write([]byte(a))
		h.Write([]byte{0})
	}
	h.Write(truth)
	key := hex.EncodeToString(h.Sum(nil)) + "\n"

	if !opts.Force {
		old, err := os.ReadFile(keyPath)
		_, errMP4 := os.Stat(mp4)
		oldTruth, errJSON := os.ReadFile(jsonPath)
		if err == nil && errMP4 == nil && errJSON == nil && string(old) == key && bytes.Equal(oldTruth, truth) {
			return true, nil
		}
	}
	// The key goes first so that a half-written clip is never taken as done.
	if err := os.Remove(keyPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("evalset: %s: %w", c.Name, err)
	}
	cmd := exec.CommandContext(ctx, opts.FFmpeg, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		_ = os.Remove(mp4 + ".tmp") // a leftover is overwritten next time
		return false, fmt.Errorf("evalset: %s: ffmpeg: %v: %s", c.Name, err, strings.TrimSpace(stderr.String()))
	}
	if err := os.Rename(mp4+".tmp", mp4); err != nil {
		return false, fmt.Errorf("evalset: %s: %w", c.Name, err)
	}
	if err := writeFile(jsonPath, truth); err != nil {
		return false, fmt.Errorf("evalset: %s: %w", c.Name, err)
	}
	if err := writeFile(keyPath, []byte(key)); err != nil {
		return false, fmt.Errorf("evalset: %s: %w", c.Name, err)
	}
	return false, nil
}

// writeFile writes through a temporary file and a rename.
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// frameTime is the presentation time ffmpeg gives frame n (pts n in time
// base 1/FPS, multiplied as av_q2d does), so expressions of t evaluated
// here give bit for bit what they give in the filters.
func frameTime(n int) float64 { return float64(n) * (1.0 / FPS) }

// eventsOf turns per-frame visibility into events: frame n covers
// [n/FPS, (n+1)/FPS).
func eventsOf(vis []bool) []Event {
	events := []Event{}
	for n := 0; n < len(vis); {
		if !vis[n] {
			n++
			continue
		}
		m := n
		for m < len(vis) && vis[m] {
			m++
		}
		events = append(events, Event{Start: round3(float64(n) / FPS), End: round3(float64(m) / FPS)})
		n = m
	}
	return events
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
