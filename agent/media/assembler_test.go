package media_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"github.com/vigil-cctv/vigil/agent/camerasim"
	"github.com/vigil-cctv/vigil/agent/media"
)

// ptsBase keeps every PTS positive: the B-frame clip has a negative first
// DTS in clip time.
const ptsBase = 90000

// Access unit delimiters as encoders write them.
var (
	audH264 = []byte{0x09, 0xf0}
	audH265 = []byte{0x46, 0x01, 0x50}
)

// mustClips returns the embedded clips and testdata/h265-bframes.mp4 (made
// by testdata/make-h265-bframes.sh): H.265 with reordered pictures, which
// the embedded set lacks.
func mustClips(t testing.TB) []*camerasim.Clip {
	t.Helper()
	clips, err := camerasim.EmbeddedClips()
	if err != nil {
		t.Fatal(err)
	}
	extra, err := camerasim.LoadClip("testdata/h265-bframes.mp4")
	if err != nil {
		t.Fatal(err)
	}
	return append(clips, extra)
}

func mustClip(t testing.TB, name string) *camerasim.Clip {
	t.Helper()
	for _, c := range mustClips(t) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no embedded clip %q", name)
	return nil
}

func mustAssembler(t testing.TB, c *camerasim.Clip, withParams bool) *media.Assembler {
	t.Helper()
	var vps, sps, pps []byte
	if withParams {
		vps, sps, pps = c.VPS, c.SPS, c.PPS
	}
	a, err := media.NewAssembler(media.Codec(c.Codec), vps, sps, pps)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// unit is one picture as the RTP depacketiser hands it over.
type unit struct {
	nalus [][]byte
	pts   int64
	key   bool
}

// clipUnits returns loops×the clip as pushed by ingest: NAL units without
// parameter sets, PTS in 90 kHz ticks, in decode order.
func clipUnits(c *camerasim.Clip, loops int) []unit {
	var out []unit
	for l := range loops {
		base := ptsBase + media.Ticks(time.Duration(l)*c.Duration)
		for _, au := range c.AccessUnits {
			out = append(out, unit{nalus: au.NALUs, pts: base + media.Ticks(au.PTS), key: au.Key})
		}
	}
	return out
}

func naluType(codec media.Codec, nalu []byte) int {
	if codec == media.H265 {
		return int(h265.NALUType((nalu[0] >> 1) & 0x3f))
	}
	return int(h264.NALUType(nalu[0] & 0x1f))
}

func isParamNALU(codec media.Codec, nalu []byte) bool {
	typ := naluType(codec, nalu)
	if codec == media.H265 {
		return typ == int(h265.NALUType_VPS_NUT) || typ == int(h265.NALUType_SPS_NUT) || typ == int(h265.NALUType_PPS_NUT)
	}
	return typ == int(h264.NALUTypeSPS) || typ == int(h264.NALUTypePPS)
}

func isAUD(codec media.Codec, nalu []byte) bool {
	typ := naluType(codec, nalu)
	if codec == media.H265 {
		return typ == int(h265.NALUType_AUD_NUT)
	}
	return typ == int(h264.NALUTypeAccessUnitDelimiter)
}

// auChecker verifies the invariants every returned access unit keeps, over
// the life of one assembler.
type auChecker struct {
	codec media.Codec
	n     int
	prev  *media.AccessUnit
	// resync is set when Push failed since the previous access unit: the
	// next keyframe may start a new timeline (the camera's clock stepped).
	resync bool
}

// failed records that Push returned an error.
func (c *auChecker) failed() { c.resync = true }

func (c *auChecker) check(t testing.TB, au *media.AccessUnit) {
	t.Helper()
	defer func() { c.n++; c.prev = au; c.resync = false }()
	if au.Params == nil {
		t.Fatalf("unit %d: no Params", c.n)
	}
	if au.Params.Codec != c.codec {
		t.Fatalf("unit %d: Params codec %s, want %s", c.n, au.Params.Codec, c.codec)
	}
	if au.Params.Width <= 0 || au.Params.Height <= 0 {
		t.Fatalf("unit %d: Params size %dx%d", c.n, au.Params.Width, au.Params.Height)
	}
	if c.prev == nil && !au.Keyframe {
		t.Fatalf("unit %d: the first access unit out is not a keyframe", c.n)
	}
	if len(au.NALUs) == 0 {
		t.Fatalf("unit %d: no NAL units", c.n)
	}
	params := au.Params.ParamNALUs()
	for i, nalu := range au.NALUs {
		if len(nalu) == 0 {
			t.Fatalf("unit %d: NAL unit %d is empty", c.n, i)
		}
		if isAUD(c.codec, nalu) {
			t.Fatalf("unit %d: NAL unit %d is an access unit delimiter", c.n, i)
		}
		inFront := au.Keyframe && i < len(params)
		if !inFront && isParamNALU(c.codec, nalu) {
			t.Fatalf("unit %d (keyframe %v): parameter set at NAL unit %d", c.n, au.Keyframe, i)
		}
	}
	if au.Keyframe {
		if len(au.NALUs) <= len(params) {
			t.Fatalf("keyframe %d: %d NAL units, only parameter sets", c.n, len(au.NALUs))
		}
		for i, p := range params {
			if !bytes.Equal(au.NALUs[i], p) {
				t.Fatalf("keyframe %d: NAL unit %d is not parameter set %d of its Params", c.n, i, i)
			}
		}
	}
	if au.DTS > au.PTS {
		t.Fatalf("unit %d: DTS %d > PTS %d", c.n, au.DTS, au.PTS)
	}
	if c.prev != nil && au.DTS <= c.prev.DTS && !(c.resync && au.Keyframe) {
		t.Fatalf("unit %d: DTS %d not after previous DTS %d", c.n, au.DTS, c.prev.DTS)
	}
}

func TestAssemblerClips(t *testing.T) {
	t.Parallel()
	for _, clip := range mustClips(t) {
		t.Run(clip.Name, func(t *testing.T) {
			t.Parallel()
			codec := media.Codec(clip.Codec)
			for _, tc := range []struct {
				name string
				aud  bool
			}{{"plain", false}, {"with AUD", true}} {
				t.Run(tc.name, func(t *testing.T) {
					a := mustAssembler(t, clip, true)
					chk := auChecker{codec: codec}
					var first *media.Params
					reordered := false
					var prevPTS int64
					units := clipUnits(clip, 2)
					for i, u := range units {
						nalus := u.nalus
						if tc.aud {
							aud := audH264
							if codec == media.H265 {
								aud = audH265
							}
							nalus = append([][]byte{aud}, nalus...)
						}
						au, err := a.Push(nalus, u.pts, time.Now())
						if err != nil {
							t.Fatalf("unit %d: %v", i, err)
						}
						chk.check(t, au)
						if au.PTS != u.pts || au.Keyframe != u.key {
							t.Fatalf("unit %d: PTS %d key %v, want %d %v", i, au.PTS, au.Keyframe, u.pts, u.key)
						}
						if first == nil {
							first = au.Params
							if first.Width != clip.Width || first.Height != clip.Height {
								t.Fatalf("params size %dx%d, clip is %dx%d", first.Width, first.Height, clip.Width, clip.Height)
							}
							if !bytes.Equal(first.SPS, clip.SPS) || !bytes.Equal(first.PPS, clip.PPS) || !bytes.Equal(first.VPS, clip.VPS) {
								t.Fatal("params are not the SDP's")
							}
						} else if au.Params != first {
							t.Fatalf("unit %d: Params pointer changed without new parameter sets", i)
						}
						// Picture data passes through untouched.
						body := au.NALUs
						if au.Keyframe {
							body = body[len(first.ParamNALUs()):]
						}
						if !slices.EqualFunc(body, u.nalus, bytes.Equal) {
							t.Fatalf("unit %d: picture NAL units changed", i)
						}
						reordered = reordered || (i > 0 && u.pts < prevPTS)
						prevPTS = u.pts
					}
					if strings.Contains(clip.Name, "bframes") && !reordered {
						t.Fatal("B-frame clip has PTS in decode order: the test does not exercise reordering")
					}
					if chk.n != len(units) {
						t.Fatalf("%d access units out of %d", chk.n, len(units))
					}
				})
			}
		})
	}
}

func TestAssemblerWaitsForKeyframe(t *testing.T) {
	t.Parallel()
	for _, clip := range mustClips(t) {
		t.Run(clip.Name, func(t *testing.T) {
			t.Parallel()
			a := mustAssembler(t, clip, true)
			chk := auChecker{codec: media.Codec(clip.Codec)}
			units := clipUnits(clip, 1)[1:] // join after the first keyframe
			next := slices.IndexFunc(units, func(u unit) bool { return u.key })
			if next <= 0 {
				t.Fatal("clip has one keyframe only")
			}
			for i, u := range units {
				au, err := a.Push(u.nalus, u.pts, time.Now())
				if i < next {
					if !errors.Is(err, media.ErrWaitingKeyframe) || au != nil {
						t.Fatalf("unit %d before the first keyframe: %v, %v; want ErrWaitingKeyframe", i, au, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("unit %d: %v", i, err)
				}
				chk.check(t, au)
			}

			// After a discontinuity the assembler waits again.
			a.Discontinuity()
			last := units[len(units)-1].pts
			nonKey := units[next+1]
			if _, err := a.Push(nonKey.nalus, last+3600, time.Now()); !errors.Is(err, media.ErrWaitingKeyframe) {
				t.Fatalf("after Discontinuity: %v, want ErrWaitingKeyframe", err)
			}
			au, err := a.Push(units[next].nalus, last+7200, time.Now())
			if err != nil || !au.Keyframe {
				t.Fatalf("keyframe after Discontinuity: %v, %v", au, err)
			}
		})
	}
}

func TestAssemblerParams(t *testing.T) {
	t.Parallel()

	t.Run("none anywhere", func(t *testing.T) {
		for _, clip := range mustClips(t) {
			a := mustAssembler(t, clip, false)
			u := clipUnits(clip, 1)[0]
			au, err := a.Push(u.nalus, u.pts, time.Now())
			if !errors.Is(err, media.ErrNoParams) || au != nil {
				t.Fatalf("%s: keyframe without params: %v, %v; want ErrNoParams", clip.Name, au, err)
			}
			if a.Params() != nil {
				t.Fatalf("%s: Params() = %v before any", clip.Name, a.Params())
			}
		}
	})

	t.Run("in band only", func(t *testing.T) {
		for _, clip := range mustClips(t) {
			a := mustAssembler(t, clip, false)
			chk := auChecker{codec: media.Codec(clip.Codec)}
			for i, u := range clipUnits(clip, 1) {
				nalus := u.nalus
				if u.key {
					nalus = append(paramNALUs(clip), nalus...)
				}
				au, err := a.Push(nalus, u.pts, time.Now())
				if err != nil {
					t.Fatalf("%s unit %d: %v", clip.Name, i, err)
				}
				chk.check(t, au)
				if au.Params.Width != clip.Width {
					t.Fatalf("%s: width %d, want %d", clip.Name, au.Params.Width, clip.Width)
				}
			}
		}
	})

	t.Run("bad in-band SPS", func(t *testing.T) {
		clip := mustClip(t, "walk")
		a := mustAssembler(t, clip, false)
		badSPS := append([]byte{clip.SPS[0]}, bytes.Repeat([]byte{0xff}, 3)...)
		u := clipUnits(clip, 1)[0]
		au, err := a.Push(append([][]byte{badSPS, clip.PPS}, u.nalus...), u.pts, time.Now())
		if !errors.Is(err, media.ErrNoParams) || au != nil {
			t.Fatalf("keyframe with a bad SPS: %v, %v; want ErrNoParams", au, err)
		}
		if a.LastParamsError() == nil || !strings.Contains(err.Error(), "SPS") {
			t.Fatalf("the error does not say what is wrong: %v (last params error %v)", err, a.LastParamsError())
		}
	})

	t.Run("bad in-band SPS keeps the good ones", func(t *testing.T) {
		clip := mustClip(t, "walk")
		a := mustAssembler(t, clip, true)
		units := clipUnits(clip, 1)
		au, err := a.Push(units[0].nalus, units[0].pts, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		good := au.Params
		badSPS := []byte{clip.SPS[0], 0xff}
		au, err = a.Push(append([][]byte{badSPS}, units[1].nalus...), units[1].pts, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if au.Params != good || a.Params() != good {
			t.Fatal("a bad SPS replaced the parameter sets in force")
		}
		if a.LastParamsError() == nil {
			t.Fatal("LastParamsError is nil after a bad SPS")
		}
	})

	t.Run("repeated in band keeps the pointer", func(t *testing.T) {
		for _, clip := range mustClips(t) {
			a := mustAssembler(t, clip, true)
			var first *media.Params
			for i, u := range clipUnits(clip, 1) {
				nalus := u.nalus
				if u.key {
					nalus = append(paramNALUs(clip), nalus...)
				}
				au, err := a.Push(nalus, u.pts, time.Now())
				if err != nil {
					t.Fatalf("%s unit %d: %v", clip.Name, i, err)
				}
				if first == nil {
					first = au.Params
				}
				if au.Params != first {
					t.Fatalf("%s unit %d: the same parameter sets in band made a new Params", clip.Name, i)
				}
			}
		}
	})

	// The camera is reconfigured: its stream goes on with other parameter
	// sets, sent in band before the next keyframe.
	t.Run("change in band", func(t *testing.T) {
		before, after := mustClip(t, "walk"), mustClip(t, "walk-bframes")
		if bytes.Equal(before.SPS, after.SPS) {
			t.Fatal("clips share an SPS")
		}
		a := mustAssembler(t, before, true)
		chk := auChecker{codec: media.H264}
		units := clipUnits(before, 1)
		gop := slices.IndexFunc(units[1:], func(u unit) bool { return u.key }) + 1
		units = units[:2*gop] // two GOPs of the first encoder configuration
		lastPTS := units[len(units)-1].pts
		var old *media.Params
		for i, u := range units {
			au, err := a.Push(u.nalus, u.pts, time.Now())
			if err != nil {
				t.Fatalf("unit %d: %v", i, err)
			}
			chk.check(t, au)
			old = au.Params
		}
		for i, u := range clipUnits(after, 1) {
			nalus := u.nalus
			if i == 0 {
				nalus = append([][]byte{after.SPS, after.PPS}, nalus...)
			}
			au, err := a.Push(nalus, lastPTS+media.Ticks(time.Second)+u.pts, time.Now())
			if err != nil {
				t.Fatalf("unit %d after the change: %v", i, err)
			}
			chk.check(t, au)
			if au.Params == old {
				t.Fatalf("unit %d after the change: still the old Params", i)
			}
			if !bytes.Equal(au.Params.SPS, after.SPS) || !bytes.Equal(au.Params.PPS, after.PPS) {
				t.Fatalf("unit %d after the change: Params are not the new ones", i)
			}
			if i == 0 && (!au.Keyframe || !bytes.Equal(au.NALUs[0], after.SPS)) {
				t.Fatal("the keyframe after the change does not carry the new SPS in front")
			}
		}
		if old.Equal(a.Params()) {
			t.Fatal("old and new Params compare equal")
		}
	})
}

func paramNALUs(c *camerasim.Clip) [][]byte {
	if c.Codec == camerasim.CodecH265 {
		return [][]byte{c.VPS, c.SPS, c.PPS}
	}
	return [][]byte{c.SPS, c.PPS}
}

// TestAssemblerGarbage pushes what a broken camera or a hostile network
// sends: every push returns an error or a valid access unit, never panics,
// and a good stream afterwards still assembles.
func TestAssemblerGarbage(t *testing.T) {
	t.Parallel()
	huge := make([]byte, 16<<20+1)
	huge[0] = 0x41 // H.264 non-IDR slice, H.265 TRAIL_R
	for _, clip := range mustClips(t) {
		codec := media.Codec(clip.Codec)
		idr := clip.AccessUnits[0].NALUs[0]
		aud := audH264
		if codec == media.H265 {
			aud = audH265
		}
		// Slice headers are only parsed, so only rejected, for H.264 with
		// reordered pictures: otherwise the DTS comes from the PTS alone
		// (H.265 keyframes are not parsed either).
		badSlice := ""
		if codec == media.H264 && strings.Contains(clip.Name, "bframes") {
			badSlice = "timestamps"
		}
		cases := []struct {
			name    string
			nalus   [][]byte
			wantErr string // "" when any error is fine
		}{
			{"nil access unit", nil, "without picture data"},
			{"empty NAL units", [][]byte{{}, nil, {}}, "without picture data"},
			{"only a delimiter", [][]byte{aud}, "without picture data"},
			{"only parameter sets", paramNALUs(clip), "without picture data"},
			{"huge NAL unit", [][]byte{huge}, "too large"},
			{"huge NAL unit after a good one", [][]byte{idr, huge}, "too large"},
			{"one header byte keyframe", [][]byte{idr[:1]}, badSlice},
			{"truncated keyframe", [][]byte{idr[:3]}, badSlice},
			{"zeroed keyframe", [][]byte{append(slices.Clone(idr[:2]), make([]byte, 64)...)}, badSlice},
			{"SEI only", [][]byte{seiNALU(codec)}, ""},
			{"one zero byte", [][]byte{{0}}, ""},
			{"forbidden bit set", [][]byte{{0xff, 0xff, 0xff}}, ""},
		}
		for _, tc := range cases {
			t.Run(clip.Name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				a := mustAssembler(t, clip, true)
				units := clipUnits(clip, 1)[:40]
				chk := auChecker{codec: codec}
				push := func(nalus [][]byte, pts int64) (*media.AccessUnit, error) {
					t.Helper()
					au, err := a.Push(nalus, pts, time.Now())
					if (au == nil) == (err == nil) {
						t.Fatalf("Push returned %v and %v", au, err)
					}
					if au != nil {
						chk.check(t, au)
					} else {
						chk.failed()
					}
					return au, err
				}
				// Garbage first, then in the middle of a good stream.
				_, err := push(tc.nalus, 1)
				if err == nil && tc.wantErr != "" {
					t.Fatalf("garbage at the start accepted")
				}
				pts := int64(ptsBase)
				for i, u := range units[:10] {
					if _, err := push(u.nalus, u.pts); err != nil {
						t.Fatalf("good unit %d: %v", i, err)
					}
					pts = u.pts
				}
				_, err = push(tc.nalus, pts+1)
				if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
					t.Fatalf("garbage mid-stream: %v, want an error with %q", err, tc.wantErr)
				}
				// The stream recovers, at the latest on the next keyframe.
				// Garbage taken for a keyframe may upset the timing of the
				// pictures after it until then.
				next := slices.IndexFunc(units[10:], func(u unit) bool { return u.key }) + 10
				for i, u := range units[10:] {
					if _, err := push(u.nalus, u.pts+2); 10+i >= next && err != nil {
						t.Fatalf("good unit %d, at or after the keyframe following the garbage: %v", 10+i, err)
					}
				}
			})
		}
	}
}

// TestAssemblerRandomNALUs pushes random bytes as NAL units, keyframe types
// included, between good pictures.
func TestAssemblerRandomNALUs(t *testing.T) {
	t.Parallel()
	for _, clip := range mustClips(t) {
		t.Run(clip.Name, func(t *testing.T) {
			t.Parallel()
			codec := media.Codec(clip.Codec)
			rng := rand.New(rand.NewPCG(1, uint64(len(clip.Name))))
			for round := range 200 {
				a := mustAssembler(t, clip, round%2 == 0)
				chk := auChecker{codec: codec}
				pts := int64(0)
				units := clipUnits(clip, 1)
				for i := range 30 {
					pts += 1 + rng.Int64N(4000)
					var nalus [][]byte
					switch rng.IntN(3) {
					case 0: // a real picture
						nalus = units[i].nalus
					case 1: // a real picture with a random NAL unit slipped in
						nalus = append(slices.Clone(units[i].nalus), randomNALU(rng, codec))
					default:
						for range 1 + rng.IntN(4) {
							nalus = append(nalus, randomNALU(rng, codec))
						}
					}
					au, err := a.Push(nalus, pts, time.Now())
					if (au == nil) == (err == nil) {
						t.Fatalf("Push returned %v and %v", au, err)
					}
					if au != nil {
						chk.check(t, au)
					} else {
						chk.failed()
					}
				}
			}
		})
	}
}

func randomNALU(rng *rand.Rand, codec media.Codec) []byte {
	n := rng.IntN(64)
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	if n > 0 && rng.IntN(2) == 0 {
		// A header of an interesting type, random body.
		if codec == media.H265 {
			types := []byte{0, 1, 19, 20, 21, 32, 33, 34, 35, 39}
			b[0] = types[rng.IntN(len(types))] << 1
			if n > 1 {
				b[1] = 1
			}
		} else {
			types := []byte{1, 5, 6, 7, 8, 9}
			b[0] = 0x60 | types[rng.IntN(len(types))]
		}
	}
	return b
}

func seiNALU(codec media.Codec) []byte {
	if codec == media.H265 {
		return []byte{39 << 1, 1, 5, 1, 0, 0x80}
	}
	return []byte{0x06, 0x05, 0x01, 0x00, 0x80}
}

func TestNewAssemblerCodec(t *testing.T) {
	t.Parallel()
	if _, err := media.NewAssembler("vp8", nil, nil, nil); err == nil {
		t.Fatal("NewAssembler accepted vp8")
	}
}

func TestNewParams(t *testing.T) {
	t.Parallel()
	walk, h265c := mustClip(t, "walk"), mustClip(t, "walk-h265")
	for _, tc := range []struct {
		name          string
		codec         media.Codec
		vps, sps, pps []byte
		wantErr       string
		w, h          int
	}{
		{"h264", media.H264, nil, walk.SPS, walk.PPS, "", 640, 360},
		{"h265", media.H265, h265c.VPS, h265c.SPS, h265c.PPS, "", 640, 360},
		{"h264 without PPS", media.H264, nil, walk.SPS, nil, "missing", 0, 0},
		{"h264 without SPS", media.H264, nil, nil, walk.PPS, "missing", 0, 0},
		{"h265 without VPS", media.H265, nil, h265c.SPS, h265c.PPS, "missing", 0, 0},
		{"h264 bad SPS", media.H264, nil, []byte{0x67, 0xff}, walk.PPS, "bad SPS", 0, 0},
		{"h265 bad SPS", media.H265, h265c.VPS, []byte{0x42, 0x01, 0xff}, h265c.PPS, "bad SPS", 0, 0},
		{"h264 SPS of h265", media.H264, nil, h265c.SPS, walk.PPS, "SPS", 0, 0},
		{"unknown codec", "mjpeg", nil, walk.SPS, walk.PPS, "unsupported", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := media.NewParams(tc.codec, tc.vps, tc.sps, tc.pps)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Width != tc.w || p.Height != tc.h {
				t.Fatalf("size %dx%d, want %dx%d", p.Width, p.Height, tc.w, tc.h)
			}
			// Params own their bytes: the caller's buffers may be reused.
			sps := slices.Clone(tc.sps)
			q, _ := media.NewParams(tc.codec, tc.vps, sps, tc.pps)
			sps[len(sps)-1] ^= 0xff
			if !q.Equal(p) || q == p {
				t.Fatal("Params alias the caller's SPS, or Equal is wrong")
			}
			if !p.Equal(p) || p.Equal(nil) {
				t.Fatal("Equal is wrong with itself or nil")
			}
		})
	}
}

func TestAppendAnnexB(t *testing.T) {
	t.Parallel()
	au := &media.AccessUnit{NALUs: [][]byte{{0x67, 1, 2}, {0x68, 3}, {0x65, 4, 5, 6}}}
	got := au.AppendAnnexB([]byte("x"))
	want := []byte{'x', 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5, 6}
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendAnnexB = % x, want % x", got, want)
	}
	if au.Size() != 9 {
		t.Fatalf("Size = %d, want 9", au.Size())
	}
	if got := (&media.AccessUnit{}).AppendAnnexB(nil); len(got) != 0 {
		t.Fatalf("empty access unit gives % x", got)
	}
}

func TestTicks(t *testing.T) {
	t.Parallel()
	// Seven days is the retention; DTS count from the connection start, and
	// cameras stay connected for weeks.
	for _, d := range []time.Duration{0, 40 * time.Millisecond, -40 * time.Millisecond, time.Second,
		29 * time.Hour, 7 * 24 * time.Hour, -7 * 24 * time.Hour, 365 * 24 * time.Hour} {
		if got := media.TicksDuration(media.Ticks(d)); got != d {
			t.Fatalf("TicksDuration(Ticks(%v)) = %v", d, got)
		}
	}
	if got := media.Ticks(7 * 24 * time.Hour); got != 7*24*3600*media.ClockRate {
		t.Fatalf("Ticks(7 days) = %d", got)
	}
	// Below a day the exact product fits: compare with it.
	rng := rand.New(rand.NewPCG(2, 3))
	for range 10000 {
		d := time.Duration(rng.Int64N(int64(48*time.Hour))) - 24*time.Hour
		if got, want := media.Ticks(d), int64(d)*media.ClockRate/int64(time.Second); got != want {
			t.Fatalf("Ticks(%v) = %d, want %d", d, got, want)
		}
		ticks := media.Ticks(d)
		if got, want := media.TicksDuration(ticks), time.Duration(ticks*int64(time.Second)/media.ClockRate); got != want {
			t.Fatalf("TicksDuration(%d) = %v, want %v", ticks, got, want)
		}
	}
	if media.Ticks(time.Second) != media.ClockRate {
		t.Fatal("one second is not ClockRate ticks")
	}
}

// TestAssemblerAnnexBDecodes feeds what the assembler makes, joined at a
// keyframe other than the first, to ffmpeg: the parameter sets in front of
// each keyframe are what a decoder starting there needs.
func TestAssemblerAnnexBDecodes(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	for _, clip := range mustClips(t) {
		t.Run(clip.Name, func(t *testing.T) {
			t.Parallel()
			// In-band params only at the start and no SDP ones would not do:
			// join mid-stream with the SDP params.
			a := mustAssembler(t, clip, true)
			units := clipUnits(clip, 1)
			start := slices.IndexFunc(units[1:], func(u unit) bool { return u.key }) + 1
			var stream []byte
			frames := 0
			for _, u := range units[start:] {
				au, err := a.Push(u.nalus, u.pts, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				stream = au.AppendAnnexB(stream)
				frames++
			}
			format := "h264"
			if clip.Codec == camerasim.CodecH265 {
				format = "hevc"
			}
			cmd := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-v", "error",
				"-f", format, "-i", "pipe:0", "-f", "framemd5", "pipe:1")
			cmd.Stdin = bytes.NewReader(stream)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil || stderr.Len() > 0 {
				t.Fatalf("ffmpeg: %v: %s", err, stderr.String())
			}
			decoded := 0
			for _, line := range strings.Split(string(out), "\n") {
				if line != "" && !strings.HasPrefix(line, "#") {
					decoded++
				}
			}
			if decoded != frames {
				t.Fatalf("ffmpeg decoded %d frames of %d", decoded, frames)
			}
			t.Log(clip.Name + ": " + strconv.Itoa(decoded) + " frames decoded")
		})
	}
}

// TestAssemblerTimestampGlitches gives real pictures timestamps that cheap
// cameras produce: repeated, stepping back, jumping ahead. Pictures may be
// dropped, but what comes out keeps DTS strictly increasing and ≤ PTS.
func TestAssemblerTimestampGlitches(t *testing.T) {
	t.Parallel()
	glitches := []struct {
		name string
		pts  func(i int, pts int64) int64
	}{
		{"repeated PTS", func(i int, pts int64) int64 {
			if i%5 == 4 {
				return pts - 3600 // the previous picture's
			}
			return pts
		}},
		{"one tick apart", func(i int, pts int64) int64 { return ptsBase + int64(i) }},
		{"step back", func(i int, pts int64) int64 {
			if i >= 20 {
				return pts - media.Ticks(2*time.Second)
			}
			return pts
		}},
		{"jump ahead", func(i int, pts int64) int64 {
			if i >= 20 {
				return pts + media.Ticks(30*time.Hour)
			}
			return pts
		}},
	}
	for _, clip := range mustClips(t) {
		for _, g := range glitches {
			t.Run(clip.Name+"/"+g.name, func(t *testing.T) {
				t.Parallel()
				a := mustAssembler(t, clip, true)
				chk := auChecker{codec: media.Codec(clip.Codec)}
				units := clipUnits(clip, 2)
				for i, u := range units[:min(100, len(units))] {
					au, err := a.Push(u.nalus, g.pts(i, u.pts), time.Now())
					if (au == nil) == (err == nil) {
						t.Fatalf("Push returned %v and %v", au, err)
					}
					if au != nil {
						chk.check(t, au)
					} else {
						chk.failed()
					}
				}
				if chk.n == 0 {
					t.Fatal("no access unit out")
				}
			})
		}
	}
}

// TestAssemblerRepeatedPTS pins that a picture whose PTS leaves no room for
// a DTS after the previous one is refused, not given a repeated DTS.
func TestAssemblerRepeatedPTS(t *testing.T) {
	t.Parallel()
	for _, clip := range mustClips(t) {
		a := mustAssembler(t, clip, true)
		units := clipUnits(clip, 1)
		var last *media.AccessUnit
		for _, u := range units[:5] {
			au, err := a.Push(u.nalus, u.pts, time.Now())
			if err != nil {
				t.Fatalf("%s: %v", clip.Name, err)
			}
			last = au
		}
		au, err := a.Push(units[5].nalus, last.DTS, time.Now())
		if err == nil || !strings.Contains(err.Error(), "timestamps") {
			t.Fatalf("%s: PTS equal to the previous DTS: %v, %v; want a timestamps error", clip.Name, au, err)
		}
		if _, err := a.Push(units[6].nalus, units[6].pts, time.Now()); !errors.Is(err, media.ErrWaitingKeyframe) {
			t.Fatalf("%s: after a dropped picture: %v, want ErrWaitingKeyframe", clip.Name, err)
		}
	}
}
