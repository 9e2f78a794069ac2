package bitstream

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vigil-cctv/vigil/agent/camerasim"
	"github.com/vigil-cctv/vigil/agent/media"
)

// bitWriter writes the fields of H.264 syntax, most significant bit first.
type bitWriter struct {
	buf []byte
	n   int // bits written
}

func (w *bitWriter) u(v uint64, bits int) {
	for i := bits - 1; i >= 0; i-- {
		if w.n%8 == 0 {
			w.buf = append(w.buf, 0)
		}
		if v>>uint(i)&1 == 1 {
			w.buf[w.n/8] |= 0x80 >> uint(w.n%8)
		}
		w.n++
	}
}

func (w *bitWriter) flag(b bool) {
	if b {
		w.u(1, 1)
	} else {
		w.u(0, 1)
	}
}

func (w *bitWriter) ue(v uint64) {
	v++
	bits := 0
	for x := v; x > 1; x >>= 1 {
		bits++
	}
	w.u(0, bits)
	w.u(v, bits+1)
}

func (w *bitWriter) se(v int64) {
	if v > 0 {
		w.ue(uint64(2*v - 1))
	} else {
		w.ue(uint64(-2 * v))
	}
}

// nal ends the RBSP (stop bit, zero padding) and escapes it behind a NAL
// header byte.
func (w *bitWriter) nal(header byte) []byte {
	w.u(1, 1)
	for w.n%8 != 0 {
		w.u(0, 1)
	}
	out := []byte{header}
	zeros := 0
	for _, b := range w.buf {
		if zeros >= 2 && b <= 3 {
			out = append(out, 3)
			zeros = 0
		}
		out = append(out, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

// testSPS is a baseline-profile SPS: 640x368, frame_num and POC lsb of 8
// bits, POC type 0.
func testSPS(id uint64) []byte {
	var w bitWriter
	w.u(66, 8) // profile_idc: baseline
	w.u(0, 8)  // constraint flags
	w.u(30, 8) // level_idc
	w.ue(id)
	w.ue(4) // log2_max_frame_num_minus4
	w.ue(0) // pic_order_cnt_type
	w.ue(4) // log2_max_pic_order_cnt_lsb_minus4
	w.ue(2) // max_num_ref_frames
	w.flag(false)
	w.ue(39)      // pic_width_in_mbs_minus1
	w.ue(22)      // pic_height_in_map_units_minus1
	w.flag(true)  // frame_mbs_only_flag
	w.flag(true)  // direct_8x8_inference_flag
	w.flag(false) // frame_cropping_flag
	w.flag(false) // vui_parameters_present_flag
	return w.nal(0x67)
}

type ppsFields struct {
	id, spsID        uint64
	cabac            bool
	bottomField      bool
	refs             [2]uint64 // defaults, minus 1
	weighted         bool
	bipred           uint64
	initQP           int64 // minus 26
	redundantPicCnt  bool
	sliceGroupsMinus uint64
}

func testPPS(p ppsFields) []byte {
	var w bitWriter
	w.ue(p.id)
	w.ue(p.spsID)
	w.flag(p.cabac)
	w.flag(p.bottomField)
	w.ue(p.sliceGroupsMinus)
	if p.sliceGroupsMinus > 0 {
		w.ue(0) // slice_group_map_type
	}
	w.ue(p.refs[0])
	w.ue(p.refs[1])
	w.flag(p.weighted)
	w.u(p.bipred, 2)
	w.se(p.initQP)
	w.se(0) // pic_init_qs_minus26
	w.se(0) // chroma_qp_index_offset
	w.flag(true)
	w.flag(false)
	w.flag(p.redundantPicCnt)
	return w.nal(0x68)
}

// sliceFields describe a slice header for testSPS: frame_num and POC lsb
// are 8 bits.
type sliceFields struct {
	idr        bool
	refIdc     byte
	sliceType  uint64
	ppsID      uint64
	override   []uint64 // num_ref_idx_active_minus1 per list, when set
	reorder    bool     // a reference list modification in list 0
	weights    []int    // entries of the weight tables, per list (nil: none)
	mmco       bool     // adaptive reference marking
	cabacInit  bool
	qpDelta    int64
	truncateAt int // bytes to keep of the NAL unit (0: all)
}

func testSlice(f sliceFields) []byte {
	var w bitWriter
	w.ue(0) // first_mb_in_slice
	w.ue(f.sliceType)
	w.ue(f.ppsID)
	w.u(7, 8) // frame_num
	if f.idr {
		w.ue(1) // idr_pic_id
	}
	w.u(14, 8) // pic_order_cnt_lsb
	typ := f.sliceType % 5
	if typ == 1 {
		w.flag(true) // direct_spatial_mv_pred_flag
	}
	if typ != 2 && typ != 4 {
		w.flag(f.override != nil)
		for _, n := range f.override {
			w.ue(n)
		}
	}
	if typ != 2 && typ != 4 {
		w.flag(f.reorder)
		if f.reorder {
			w.ue(0) // modification_of_pic_nums_idc
			w.ue(3) // abs_diff_pic_num_minus1
			w.ue(2) // idc 2
			w.ue(1) // long_term_pic_num
			w.ue(3) // end
		}
		if typ == 1 {
			w.flag(false)
		}
	}
	if f.weights != nil {
		w.ue(5) // luma_log2_weight_denom
		w.ue(5) // chroma_log2_weight_denom
	}
	for _, entries := range f.weights {
		for i := range entries {
			w.flag(true)
			w.se(int64(30 + i))
			w.se(-2)
			w.flag(i%2 == 0)
			if i%2 == 0 {
				w.se(31)
				w.se(1)
				w.se(33)
				w.se(-1)
			}
		}
	}
	if f.refIdc != 0 {
		if f.idr {
			w.flag(false)
			w.flag(false)
		} else {
			w.flag(f.mmco)
			if f.mmco {
				w.ue(1) // difference_of_pic_nums_minus1 follows
				w.ue(4)
				w.ue(3) // and long_term_frame_idx
				w.ue(0)
				w.ue(1)
				w.ue(6)
				w.ue(2)
				w.ue(0) // end
			}
		}
	}
	if f.cabacInit {
		w.ue(1)
	}
	w.se(f.qpDelta)
	// Slice data: whatever follows must not matter.
	w.u(0xa5a5a5a5, 32)
	header := f.refIdc<<5 | 1
	if f.idr {
		header = f.refIdc<<5 | 5
	}
	n := w.nal(header)
	if f.truncateAt > 0 && f.truncateAt < len(n) {
		n = n[:f.truncateAt]
	}
	return n
}

func mustParser(t testing.TB, sps, pps []byte) *Parser {
	t.Helper()
	params, err := media.NewParams(media.H264, nil, sps, pps)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewParser(params)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestH264SliceHeaders(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pps    ppsFields
		slice  sliceFields
		typ    SliceType
		qp     int
		wantOK bool
	}{
		{"idr", ppsFields{initQP: 0}, sliceFields{idr: true, refIdc: 3, sliceType: 7, qpDelta: -3}, SliceI, 23, true},
		{"p cavlc", ppsFields{initQP: 2}, sliceFields{refIdc: 2, sliceType: 5, qpDelta: 4}, SliceP, 32, true},
		{"p cabac", ppsFields{cabac: true}, sliceFields{refIdc: 2, sliceType: 0, cabacInit: true, qpDelta: 1}, SliceP, 27, true},
		{"p not a reference", ppsFields{}, sliceFields{refIdc: 0, sliceType: 0, qpDelta: 10}, SliceP, 36, true},
		{"p weighted, reordered, marked", ppsFields{weighted: true, refs: [2]uint64{2, 0}, initQP: -4},
			sliceFields{refIdc: 1, sliceType: 0, reorder: true, weights: []int{3}, mmco: true, qpDelta: 2}, SliceP, 24, true},
		{"p overriding its references", ppsFields{weighted: true}, sliceFields{refIdc: 1, sliceType: 0, override: []uint64{4}, weights: []int{5}, qpDelta: 0}, SliceP, 26, true},
		{"b explicit weights", ppsFields{bipred: 1, cabac: true, refs: [2]uint64{0, 1}},
			sliceFields{refIdc: 0, sliceType: 6, override: []uint64{1, 0}, weights: []int{2, 1}, cabacInit: true, qpDelta: 6}, SliceB, 32, true},
		{"b implicit weights", ppsFields{bipred: 2}, sliceFields{refIdc: 0, sliceType: 1, qpDelta: -26}, SliceB, 0, true},
		{"qp above 51", ppsFields{initQP: 20}, sliceFields{refIdc: 2, sliceType: 0, qpDelta: 10}, SliceP, UnknownQP, false},
		{"unknown pps", ppsFields{}, sliceFields{refIdc: 2, sliceType: 0, ppsID: 9}, SliceUnknown, UnknownQP, false},
		{"truncated", ppsFields{}, sliceFields{refIdc: 1, sliceType: 0, mmco: true, truncateAt: 5}, SliceUnknown, UnknownQP, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParser(t, testSPS(0), testPPS(tc.pps))
			nalu := testSlice(tc.slice)
			f := p.Frame([][]byte{{0x09, 0xf0}, nalu})
			if f.Bytes != len(nalu) || f.Slices != 1 || f.Key != tc.slice.idr {
				t.Errorf("bytes %d slices %d key %v; want %d, 1, %v", f.Bytes, f.Slices, f.Key, len(nalu), tc.slice.idr)
			}
			if (p.Err == nil) != tc.wantOK {
				t.Fatalf("error %v, want ok %v", p.Err, tc.wantOK)
			}
			if tc.wantOK && (f.Type != tc.typ || f.QP != tc.qp) {
				t.Errorf("type %v QP %d, want %v %d", f.Type, f.QP, tc.typ, tc.qp)
			}
			if !tc.wantOK && f.QP != UnknownQP {
				t.Errorf("QP %d from a bad header", f.QP)
			}
		})
	}
}

func TestH264InBandParameterSets(t *testing.T) {
	p := mustParser(t, testSPS(0), testPPS(ppsFields{}))
	// A second PPS, sent in band before the slice that uses it.
	f := p.Frame([][]byte{testPPS(ppsFields{id: 4, initQP: 10}), testSlice(sliceFields{refIdc: 2, sliceType: 0, ppsID: 4, qpDelta: -1})})
	if p.Err != nil || f.QP != 35 || f.Bytes == 0 || f.Slices != 1 {
		t.Fatalf("frame %+v err %v", f, p.Err)
	}
	// Parameter sets are not slices.
	f = p.Frame([][]byte{testSPS(0), testPPS(ppsFields{})})
	if f.Slices != 0 || f.Bytes != 0 || f.QP != UnknownQP {
		t.Fatalf("parameter sets counted as a frame: %+v", f)
	}
	// Slice groups (FMO) are refused, and so are ids out of range.
	for _, bad := range [][]byte{testPPS(ppsFields{id: 5, sliceGroupsMinus: 1}), testPPS(ppsFields{id: 300}), testPPS(ppsFields{id: 1, spsID: 40})} {
		p.Frame([][]byte{bad})
		if p.Err == nil {
			t.Errorf("pps %x accepted", bad)
		}
	}
	if _, err := NewParser(&media.Params{Codec: media.H264, SPS: testSPS(0), PPS: testPPS(ppsFields{sliceGroupsMinus: 2})}); err == nil || !strings.Contains(err.Error(), "slice groups") {
		t.Errorf("stream with slice groups: %v", err)
	}
	if _, err := NewParser(nil); err == nil {
		t.Error("no parameters accepted")
	}
	if _, err := NewParser(&media.Params{Codec: "vp8"}); err == nil {
		t.Error("vp8 accepted")
	}
}

// The embedded clips (x264: H.264 with and without B-frames, H.265) read
// whole: keyframes where the container says, H.264 quantisers in range.
func TestEmbeddedClips(t *testing.T) {
	clips, err := camerasim.EmbeddedClips()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clips {
		t.Run(c.Name, func(t *testing.T) {
			params, err := media.NewParams(media.Codec(c.Codec), c.VPS, c.SPS, c.PPS)
			if err != nil {
				t.Fatal(err)
			}
			p, err := NewParser(params)
			if err != nil {
				t.Fatal(err)
			}
			types := map[SliceType]int{}
			for i, u := range c.AccessUnits {
				f := p.Frame(u.NALUs)
				if p.Err != nil {
					t.Fatalf("unit %d: %v", i, p.Err)
				}
				if f.Key != u.Key || f.Slices < 1 || f.Bytes <= 0 {
					t.Fatalf("unit %d: %+v, container says key %v", i, f, u.Key)
				}
				if f.Key && f.Type != SliceI {
					t.Fatalf("unit %d: keyframe of type %v", i, f.Type)
				}
				if params.Codec == media.H264 && (f.QP < 0 || f.QP > 51) {
					t.Fatalf("unit %d: QP %d", i, f.QP)
				}
				if params.Codec == media.H265 && f.QP != UnknownQP {
					t.Fatalf("unit %d: H.265 QP %d", i, f.QP)
				}
				types[f.Type]++
			}
			if types[SliceP] == 0 || types[SliceUnknown] != 0 {
				t.Errorf("slice types %v", types)
			}
			if strings.Contains(c.Name, "bframes") != (types[SliceB] > 0) {
				t.Errorf("slice types %v", types)
			}
		})
	}
}

// Every prefix of real slices, and random bytes, read without a panic; a
// frame never counts more bytes or slices than it was given.
func TestGarbage(t *testing.T) {
	clips, err := camerasim.EmbeddedClips()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clips {
		params, err := media.NewParams(media.Codec(c.Codec), c.VPS, c.SPS, c.PPS)
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewParser(params)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range c.AccessUnits[:8] {
			for _, nalu := range u.NALUs {
				for n := range min(len(nalu), 64) + 1 {
					checkFrame(t, p, [][]byte{nalu[:n]})
				}
				flipped := bytes.Clone(nalu)
				for i := 1; i < len(flipped) && i < 40; i++ {
					flipped[i] ^= 0xff
					checkFrame(t, p, [][]byte{flipped})
				}
			}
		}
	}
}

func checkFrame(t *testing.T, p *Parser, nalus [][]byte) Frame {
	t.Helper()
	f := p.Frame(nalus)
	total := 0
	for _, n := range nalus {
		total += len(n)
	}
	if f.Bytes > total || f.Slices > len(nalus) || f.Bytes < 0 {
		t.Fatalf("frame %+v from %d units of %d bytes", f, len(nalus), total)
	}
	if f.QP != UnknownQP && (f.QP < -48 || f.QP > 51) {
		t.Fatalf("QP %d", f.QP)
	}
	if f.Type > SliceB {
		t.Fatalf("type %d", f.Type)
	}
	return f
}

// splitAnnexB splits data at 3-byte start codes.
func splitAnnexB(data []byte) [][]byte {
	var out [][]byte
	for _, part := range bytes.Split(data, []byte{0, 0, 1}) {
		if len(part) > 0 {
			out = append(out, part)
		}
	}
	return out
}

// FuzzFrame feeds arbitrary NAL units (Annex-B, as from a camera) to
// parsers of an H.264 and an H.265 stream: no panic, and the counts stay
// within what was given. Parameter sets in the input replace the stream's.
func FuzzFrame(f *testing.F) {
	clips, err := camerasim.EmbeddedClips()
	if err != nil {
		f.Fatal(err)
	}
	var parsers []func() *Parser
	for _, c := range clips {
		params, err := media.NewParams(media.Codec(c.Codec), c.VPS, c.SPS, c.PPS)
		if err != nil {
			f.Fatal(err)
		}
		parsers = append(parsers, func() *Parser {
			p, err := NewParser(params)
			if err != nil {
				f.Fatal(err)
			}
			return p
		})
		for _, u := range c.AccessUnits[:3] {
			var seed []byte
			for _, n := range append(params.ParamNALUs(), u.NALUs...) {
				seed = append(append(seed, 0, 0, 1), n...)
			}
			f.Add(seed)
		}
	}
	f.Add(append(append([]byte{0, 0, 1}, testPPS(ppsFields{id: 2, weighted: true})...), append([]byte{0, 0, 1}, testSlice(sliceFields{refIdc: 1, ppsID: 2, weights: []int{1}, mmco: true, reorder: true})...)...))
	f.Add([]byte{0, 0, 1, 0x65, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		nalus := splitAnnexB(data)
		for _, mk := range parsers {
			p := mk()
			checkFrame(t, p, nalus)
			checkFrame(t, p, nalus) // with what it learnt in band
		}
	})
}
