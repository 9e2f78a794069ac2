// Package agenttest holds what the agent's tests share: the embedded clips
// as access units (for pipeline tests without a network), simulated cameras,
// log capture, and polling with a deadline.
package agenttest

import (
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent/camerasim"
	"github.com/vigil-cctv/vigil/agent/media"
)

// Clip returns the embedded clip with the given name.
func Clip(t testing.TB, name string) *camerasim.Clip {
	t.Helper()
	clips, err := camerasim.EmbeddedClips()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clips {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no clip %q", name)
	return nil
}

// Units returns loops of the clip as access units arriving from epoch on,
// with parameter sets in front of keyframes, as media.Assembler emits them.
func Units(t testing.TB, clip *camerasim.Clip, loops int, epoch time.Time) []*media.AccessUnit {
	t.Helper()
	params, err := media.NewParams(media.Codec(clip.Codec), clip.VPS, clip.SPS, clip.PPS)
	if err != nil {
		t.Fatal(err)
	}
	offset := time.Second // B-frame clips start with a negative DTS
	var out []*media.AccessUnit
	for k := range loops {
		base := time.Duration(k)*clip.Duration + offset
		for _, u := range clip.AccessUnits {
			nalus := u.NALUs
			if u.Key {
				nalus = append(params.ParamNALUs(), nalus...)
			}
			out = append(out, &media.AccessUnit{
				NALUs: nalus, Keyframe: u.Key, Params: params,
				PTS: media.Ticks(base + u.PTS), DTS: media.Ticks(base + u.DTS),
				Received: epoch.Add(base + u.DTS - offset),
			})
		}
	}
	return out
}
