package camerasim

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needFFmpeg skips tests that shell out to ffmpeg when it is missing.
func needFFmpeg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
}

// ffmpegGen runs ffmpeg with args and fails the test on error.
func ffmpegGen(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("ffmpeg", append([]string{"-nostdin", "-hide_banner", "-loglevel", "error", "-y"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestCommittedClipsHaveGroundTruth pins the contract of clips/: every clip
// has a valid NAME.json beside it whose events lie within the clip.
func TestCommittedClipsHaveGroundTruth(t *testing.T) {
	files, err := filepath.Glob("clips/*.mp4")
	if err != nil || len(files) == 0 {
		t.Fatalf("no committed clips: %v", err)
	}
	var total int64
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			total += fi.Size()
			raw, err := os.ReadFile(strings.TrimSuffix(f, ".mp4") + ".json")
			if err != nil {
				t.Fatalf("ground truth: %v", err)
			}
			var truth struct {
				Events []struct {
					Start *float64 `json:"start"`
					End   *float64 `json:"end"`
				} `json:"events"`
			}
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&truth); err != nil {
				t.Fatalf("ground truth: %v", err)
			}
			if truth.Events == nil {
				t.Fatal(`ground truth: "events" must be present (an empty array for none)`)
			}
			c, err := LoadClip(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Events) != len(truth.Events) {
				t.Fatalf("loaded %d events, file has %d", len(c.Events), len(truth.Events))
			}
			for i, e := range truth.Events {
				if e.Start == nil || e.End == nil || *e.Start < 0 || *e.End <= *e.Start ||
					seconds(*e.End) > c.Duration {
					t.Errorf("event %d %v-%v is not within the clip's %v", i, e.Start, e.End, c.Duration)
				}
			}
		})
	}
	if total > 2<<20 {
		t.Errorf("committed clips weigh %d bytes, keep them under 2 MiB", total)
	}
}

func TestEmbeddedClips(t *testing.T) {
	clips, err := EmbeddedClips()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		codec    string
		duration time.Duration
		events   []Event
		bframes  bool
	}{
		"still":        {CodecH264, 30 * time.Second, nil, false},
		"walk":         {CodecH264, 30 * time.Second, []Event{{6 * time.Second, 10 * time.Second}, {20 * time.Second, 23 * time.Second}}, false},
		"walk-bframes": {CodecH264, 20 * time.Second, []Event{{3 * time.Second, 7 * time.Second}, {12 * time.Second, 15 * time.Second}}, true},
		"walk-h265":    {CodecH265, 20 * time.Second, []Event{{8 * time.Second, 12 * time.Second}}, false},
	}
	if len(clips) != len(want) {
		t.Fatalf("got %d clips, want %d", len(clips), len(want))
	}
	for _, c := range clips {
		t.Run(c.Name, func(t *testing.T) {
			w, ok := want[c.Name]
			if !ok {
				t.Fatalf("unexpected clip %q", c.Name)
			}
			if c.Codec != w.codec || c.Duration != w.duration || c.Width != 640 || c.Height != 360 {
				t.Errorf("got %s %v %dx%d, want %s %v 640x360", c.Codec, c.Duration, c.Width, c.Height, w.codec, w.duration)
			}
			if len(c.Events) != len(w.events) {
				t.Fatalf("events %v, want %v", c.Events, w.events)
			}
			for i := range w.events {
				if c.Events[i] != w.events[i] {
					t.Errorf("event %d = %v, want %v", i, c.Events[i], w.events[i])
				}
			}
			if len(c.SPS) == 0 || len(c.PPS) == 0 || (c.Codec == CodecH265) != (len(c.VPS) > 0) {
				t.Errorf("parameter sets: vps %d sps %d pps %d bytes", len(c.VPS), len(c.SPS), len(c.PPS))
			}
			if n := int(w.duration / (40 * time.Millisecond)); len(c.AccessUnits) != n {
				t.Errorf("%d access units, want %d", len(c.AccessUnits), n)
			}
			reordered := false
			minPTS := c.AccessUnits[0].PTS
			for i, au := range c.AccessUnits {
				if au.Key != (i%25 == 0) {
					t.Errorf("access unit %d: key=%v, want a keyframe every 25", i, au.Key)
				}
				if i > 0 && au.DTS-c.AccessUnits[i-1].DTS != 40*time.Millisecond {
					t.Errorf("access unit %d: DTS step %v", i, au.DTS-c.AccessUnits[i-1].DTS)
				}
				if au.PTS < au.DTS {
					t.Errorf("access unit %d: PTS %v before DTS %v", i, au.PTS, au.DTS)
				}
				if au.PTS != au.DTS {
					reordered = true
				}
				minPTS = min(minPTS, au.PTS)
			}
			if minPTS != 0 {
				t.Errorf("first presentation time %v, want 0", minPTS)
			}
			if reordered != w.bframes {
				t.Errorf("B-frames: %v, want %v", reordered, w.bframes)
			}
		})
	}
}

func TestLoadClipsOtherContainers(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	// A plain (moov at the end) MP4 and an MPEG-TS must load through the
	// remux fallback, with their ground truth.
	ffmpegGen(t, "-i", "clips/walk.mp4", "-t", "3", "-c", "copy", filepath.Join(dir, "a-plain.mp4"))
	ffmpegGen(t, "-i", "clips/walk-h265.mp4", "-t", "3", "-c", "copy", filepath.Join(dir, "b-ts.ts"))
	// fMP4 with B-frames and version-0 trun boxes (ffmpeg's default): the
	// composition offsets are invisible to mediacommon, so it must be
	// remuxed rather than played with PTS = DTS.
	ffmpegGen(t, "-i", "clips/walk-bframes.mp4", "-t", "3", "-c", "copy",
		"-movflags", "frag_keyframe+empty_moov+default_base_moof", filepath.Join(dir, "c-bframes-v0.mp4"))
	if err := os.WriteFile(filepath.Join(dir, "a-plain.json"), []byte(`{"events":[{"start":0.5,"end":2}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a clip"), 0o600); err != nil {
		t.Fatal(err)
	}
	clips, err := LoadClips(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(clips) != 3 || clips[0].Name != "a-plain" || clips[1].Name != "b-ts" || clips[2].Name != "c-bframes-v0" {
		t.Fatalf("got %d clips %v", len(clips), clips)
	}
	if c := clips[0]; c.Codec != CodecH264 || c.Duration != 3*time.Second || len(c.Events) != 1 || c.Events[0].End != 2*time.Second {
		t.Errorf("plain mp4: %s %v %v", c.Codec, c.Duration, c.Events)
	}
	if c := clips[1]; c.Codec != CodecH265 || c.Duration < 2900*time.Millisecond || !c.AccessUnits[0].Key || c.Events != nil {
		t.Errorf("ts: %s %v key=%v events=%v", c.Codec, c.Duration, c.AccessUnits[0].Key, c.Events)
	}
	reordered := false
	for _, au := range clips[2].AccessUnits {
		if au.PTS < au.DTS {
			t.Fatalf("b-frames: PTS %v before DTS %v", au.PTS, au.DTS)
		}
		reordered = reordered || au.PTS != au.DTS
	}
	if !reordered {
		t.Error("b-frames: PTS = DTS everywhere, the composition offsets were lost")
	}
}

func TestLoadClipErrors(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	walk, err := os.ReadFile("clips/walk.mp4")
	if err != nil {
		t.Fatal(err)
	}
	garbage := bytes.Repeat([]byte("this is not a video file\x00\x01\x02"), 200)
	audio := filepath.Join(dir, "audio.mp4")
	ffmpegGen(t, "-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", audio)
	mpeg4 := filepath.Join(dir, "mpeg4.mp4")
	ffmpegGen(t, "-f", "lavfi", "-i", "testsrc2=s=320x240:d=1", "-c:v", "mpeg4",
		"-movflags", "frag_keyframe+empty_moov+default_base_moof", mpeg4)
	vp9 := filepath.Join(dir, "vp9.mkv")
	ffmpegGen(t, "-f", "lavfi", "-i", "testsrc2=s=160x120:d=1", "-c:v", "libvpx-vp9", "-deadline", "realtime", vp9)

	tests := []struct {
		name string
		file string
		want error
		msg  string
	}{
		{"empty file", write("empty.mp4", nil), ErrEmptyClip, "empty"},
		{"init segment only", write("init.mp4", walk[:bytes.Index(walk, []byte("moof"))-4]), ErrEmptyClip, ""},
		{"garbage", write("garbage.mp4", garbage), ErrUnreadable, "ffmpeg"},
		{"truncated header", write("trunc.mp4", walk[:100]), ErrUnreadable, ""},
		{"audio only", audio, ErrNoVideo, ""},
		{"mpeg4 part 2 video", mpeg4, ErrNoVideo, "MPEG4Video"},
		{"vp9 in matroska", vp9, ErrNoVideo, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadClip(tt.file)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got clip %v err %v, want %v", c, err, tt.want)
			}
			if !strings.Contains(err.Error(), filepath.Base(tt.file)) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q should name the file and say %q", err, tt.msg)
			}
			t.Log(err)
		})
	}
}

func TestLoadClipsGroundTruthErrors(t *testing.T) {
	walk, err := os.ReadFile("clips/walk.mp4")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, truth string
	}{
		{"not json", `{"events":[`},
		{"missing end", `{"events":[{"start":1}]}`},
		{"end before start", `{"events":[{"start":5,"end":4}]}`},
		{"beyond the clip", `{"events":[{"start":25,"end":31}]}`},
		{"negative", `{"events":[{"start":-1,"end":2}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "walk.mp4"), walk, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "walk.json"), []byte(tt.truth), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadClips(dir); err == nil || !strings.Contains(err.Error(), "walk.json") {
				t.Fatalf("got %v, want an error naming walk.json", err)
			}
		})
	}
	if _, err := LoadClips(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no clips") {
		t.Errorf("empty dir: got %v", err)
	}
}
