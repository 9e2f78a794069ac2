package media_test

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent/camerasim"
	"github.com/vigil-cctv/vigil/agent/media"
)

// Fuzz input framing: a sequence of records
//
//	flags (1 byte) | length (2 bytes, big endian) | NAL unit (length bytes)
//
// where flags bit 0 ends the access unit after this NAL unit and flags>>1
// sets how far the PTS of the next access unit moves (1 + n*450 ticks, so
// n = 8 is one frame at 25 fps). A short last record is taken as is.
const fuzzStepUnit = 450

type fuzzUnit struct {
	nalus [][]byte
	step  int64
}

func splitFuzz(data []byte) []fuzzUnit {
	var out []fuzzUnit
	var cur fuzzUnit
	for len(data) >= 3 {
		flags := data[0]
		n := int(binary.BigEndian.Uint16(data[1:3]))
		data = data[3:]
		n = min(n, len(data))
		cur.nalus = append(cur.nalus, data[:n])
		data = data[n:]
		if flags&1 != 0 {
			cur.step = 1 + int64(flags>>1)*fuzzStepUnit
			out = append(out, cur)
			cur = fuzzUnit{}
		}
	}
	if len(cur.nalus) > 0 {
		cur.step = 1
		out = append(out, cur)
	}
	return out
}

// joinFuzz is the inverse of splitFuzz, for seeds.
func joinFuzz(units []fuzzUnit) []byte {
	var b []byte
	for _, u := range units {
		for i, nalu := range u.nalus {
			var flags byte
			if i == len(u.nalus)-1 {
				flags = 1 | byte((u.step-1)/fuzzStepUnit)<<1
			}
			b = append(b, flags)
			b = binary.BigEndian.AppendUint16(b, uint16(len(nalu)))
			b = append(b, nalu...)
		}
	}
	return b
}

// fuzzSeed is the first n pictures of a clip, parameter sets in band in
// front of the first keyframe, at 25 fps.
func fuzzSeed(c *camerasim.Clip, from, n int, inBand bool) []byte {
	var units []fuzzUnit
	for i, au := range c.AccessUnits[from : from+n] {
		nalus := au.NALUs
		if inBand && i == 0 {
			nalus = append(paramNALUs(c), nalus...)
		}
		units = append(units, fuzzUnit{nalus: nalus, step: 1 + 8*fuzzStepUnit})
	}
	return joinFuzz(units)
}

// FuzzAssembler pushes arbitrary NAL units, with increasing PTS, through an
// H.264 and an H.265 assembler: nothing panics, and every access unit that
// comes out keeps the invariants of auChecker (first one a keyframe,
// keyframes led by exactly their parameter sets, no AUD, no stray
// parameter set, DTS strictly increasing and ≤ PTS).
func FuzzAssembler(f *testing.F) {
	clips := mustClips(f)
	byCodec := map[media.Codec]*camerasim.Clip{}
	for _, c := range clips {
		if c.Name == "walk" || c.Name == "walk-h265" {
			byCodec[media.Codec(c.Codec)] = c
		}
	}
	if len(byCodec) != 2 {
		f.Fatal("embedded clips lack walk or walk-h265")
	}
	for _, c := range clips {
		f.Add(true, fuzzSeed(c, 0, 6, false))
		f.Add(false, fuzzSeed(c, 0, 6, true))
		f.Add(true, fuzzSeed(c, 3, 4, false)) // joins mid-GOP
	}
	f.Add(false, []byte{})
	f.Add(true, []byte{1, 0, 2, 0x09, 0xf0, 1, 0, 3, 0x46, 0x01, 0x50})

	f.Fuzz(func(t *testing.T, sdpParams bool, data []byte) {
		units := splitFuzz(data)
		for _, codec := range []media.Codec{media.H264, media.H265} {
			c := byCodec[codec]
			var vps, sps, pps []byte
			if sdpParams {
				vps, sps, pps = c.VPS, c.SPS, c.PPS
			}
			a, err := media.NewAssembler(codec, vps, sps, pps)
			if err != nil {
				t.Fatal(err)
			}
			chk := auChecker{codec: codec}
			pts := int64(0)
			for _, u := range units {
				pts += u.step
				au, err := a.Push(u.nalus, pts, time.Time{})
				if (au == nil) == (err == nil) {
					t.Fatalf("%s: Push returned %v and %v", codec, au, err)
				}
				if err != nil {
					// No chk.failed(): with PTS always increasing, DTS must
					// keep increasing even across a resynchronisation.
					if err.Error() == "" {
						t.Fatalf("%s: empty error", codec)
					}
					if chk.prev != nil && errors.Is(err, media.ErrNoParams) {
						t.Fatalf("%s: ErrNoParams after access units with params", codec)
					}
					continue
				}
				if au.PTS != pts {
					t.Fatalf("%s: PTS %d, pushed %d", codec, au.PTS, pts)
				}
				chk.check(t, au)
			}
		}
	})
}
