// Package bitstream reads, from the access units of an H.264 or H.265
// stream, what a compressed-domain motion detector needs without decoding a
// picture: how many bytes the coded slices of each frame take, how many
// slices it has, its slice type and, for H.264, the quantiser the encoder
// chose for it. Encoders spend more bits on a frame that differs more from
// its reference, at a given quantiser: that is the whole signal.
//
// The input comes from cameras, which are outside input: every parser
// here returns an error for what it cannot read, never panics, and never
// reads beyond a bounded prefix of a slice (see maxHeaderBytes).
package bitstream

import (
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/bits"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"github.com/vigil-cctv/vigil/agent/media"
)

// SliceType is the coding type of a frame's first slice.
type SliceType uint8

// Slice types. SP and SI (H.264 extended profile) count as P and I.
const (
	SliceUnknown SliceType = iota
	SliceI
	SliceP
	SliceB
)

func (t SliceType) String() string {
	switch t {
	case SliceI:
		return "I"
	case SliceP:
		return "P"
	case SliceB:
		return "B"
	}
	return "?"
}

// UnknownQP is Frame.QP when the quantiser could not be read (H.265, or a
// slice header this package does not parse).
const UnknownQP = -1

// Frame is what one access unit tells without decoding.
type Frame struct {
	// Key is true for an IDR (H.264) or IRAP (H.265) picture.
	Key bool
	// Type is the slice type of the first slice.
	Type SliceType
	// Bytes counts the coded slice payload (VCL NAL units), without
	// parameter sets, SEI and delimiters.
	Bytes int
	// Slices is the number of coded slices.
	Slices int
	// QP is the luma quantiser of the first slice (0-51 for 8-bit video,
	// negative offsets for more bits), or UnknownQP.
	QP int
}

// maxHeaderBytes bounds how much of a slice is unescaped to read its
// header: a header is a few dozen bytes, even with a long weight table.
const maxHeaderBytes = 512

// Parser reads the frames of one stream. It keeps the parameter sets it
// has seen (the stream's, then any sent in band), so it is not safe for
// concurrent use.
type Parser struct {
	codec media.Codec
	sps   map[uint32]*h264.SPS
	pps   map[uint32]*pps264
	pps5  map[uint32]*h265.PPS
	// Err is the last error met reading a slice header, nil when the last
	// frame was read whole; frames are still counted when it is set.
	Err error
}

// Limits of parameter set ids (H.264 7.4.2.1 and 7.4.2.2; H.265 7.4.3.3):
// ids beyond are refused, so a hostile stream cannot grow the maps.
const (
	maxSPSID = 31
	maxPPSID = 255
	maxPPS5  = 63
)

// NewParser makes a parser for a stream with the given parameters.
func NewParser(p *media.Params) (*Parser, error) {
	if p == nil {
		return nil, errors.New("bitstream: no stream parameters")
	}
	ps := &Parser{codec: p.Codec, sps: map[uint32]*h264.SPS{}, pps: map[uint32]*pps264{}, pps5: map[uint32]*h265.PPS{}}
	switch p.Codec {
	case media.H264, media.H265:
	default:
		return nil, fmt.Errorf("bitstream: unsupported codec %q", p.Codec)
	}
	for _, nalu := range p.ParamNALUs() {
		if err := ps.paramSet(nalu); err != nil {
			return nil, err
		}
	}
	return ps, nil
}

// Frame reads one access unit, given as NAL units without start codes.
func (ps *Parser) Frame(nalus [][]byte) Frame {
	f := Frame{QP: UnknownQP}
	ps.Err = nil
	for _, nalu := range nalus {
		if len(nalu) == 0 {
			continue
		}
		if ps.codec == media.H264 {
			ps.nalu264(&f, nalu)
		} else {
			ps.nalu265(&f, nalu)
		}
	}
	return f
}

// paramSet records a parameter set of the stream's codec; other NAL units
// are ignored.
func (ps *Parser) paramSet(nalu []byte) error {
	if len(nalu) == 0 {
		return nil
	}
	if ps.codec == media.H264 {
		switch h264.NALUType(nalu[0] & 0x1f) {
		case h264.NALUTypeSPS:
			var s h264.SPS
			if err := s.Unmarshal(nalu); err != nil {
				return fmt.Errorf("bitstream: h264 sps: %w", err)
			}
			if s.ID > maxSPSID {
				return fmt.Errorf("bitstream: h264 sps id %d above %d", s.ID, maxSPSID)
			}
			ps.sps[s.ID] = &s
		case h264.NALUTypePPS:
			p, err := parsePPS264(nalu)
			if err != nil {
				return fmt.Errorf("bitstream: h264 pps: %w", err)
			}
			ps.pps[p.id] = p
		}
		return nil
	}
	if len(nalu) < 2 {
		return errors.New("bitstream: h265 nal unit shorter than its header")
	}
	if h265.NALUType((nalu[0]>>1)&0x3f) == h265.NALUType_PPS_NUT {
		var p h265.PPS
		if err := p.Unmarshal(nalu); err != nil {
			return fmt.Errorf("bitstream: h265 pps: %w", err)
		}
		if p.ID > maxPPS5 {
			return fmt.Errorf("bitstream: h265 pps id %d above %d", p.ID, maxPPS5)
		}
		ps.pps5[p.ID] = &p
	}
	return nil
}

func (ps *Parser) nalu264(f *Frame, nalu []byte) {
	typ := h264.NALUType(nalu[0] & 0x1f)
	switch typ {
	case h264.NALUTypeSPS, h264.NALUTypePPS:
		if err := ps.paramSet(nalu); err != nil {
			ps.Err = err
		}
		return
	case h264.NALUTypeIDR, h264.NALUTypeNonIDR:
	default:
		// Data partitions (2-4) are not used by cameras; SEI, delimiters
		// and the rest carry no picture.
		return
	}
	f.Bytes += len(nalu)
	f.Slices++
	if typ == h264.NALUTypeIDR {
		f.Key = true
	}
	if f.Slices > 1 {
		return
	}
	h, err := ps.sliceHeader264(nalu)
	if err != nil {
		ps.Err = fmt.Errorf("bitstream: h264 slice header: %w", err)
		if f.Key {
			f.Type = SliceI
		}
		return
	}
	f.Type, f.QP = h.typ, h.qp
}

func (ps *Parser) nalu265(f *Frame, nalu []byte) {
	if len(nalu) < 2 {
		return
	}
	typ := h265.NALUType((nalu[0] >> 1) & 0x3f)
	if typ == h265.NALUType_PPS_NUT {
		if err := ps.paramSet(nalu); err != nil {
			ps.Err = err
		}
		return
	}
	// Types 0-31 are coded slice segments (10-15 and 22-31 reserved).
	if typ > 31 || (typ >= 10 && typ <= 15) || typ >= 22 {
		return
	}
	f.Bytes += len(nalu)
	f.Slices++
	irap := typ >= 16 && typ <= 21
	if irap {
		f.Key = true
	}
	if f.Slices > 1 {
		return
	}
	t, err := ps.sliceType265(nalu, irap)
	if err != nil {
		ps.Err = fmt.Errorf("bitstream: h265 slice header: %w", err)
		if irap {
			f.Type = SliceI
		}
		return
	}
	f.Type = t
}

// sliceType265 reads the slice type of the first slice segment of a
// picture (H.265 7.3.6.1); the quantiser lies behind reference picture
// sets and is not read.
func (ps *Parser) sliceType265(nalu []byte, irap bool) (SliceType, error) {
	r := newReader(nalu[2:])
	first := r.flag()
	if irap {
		r.flag() // no_output_of_prior_pics_flag
	}
	id := r.ue()
	if r.err != nil {
		return SliceUnknown, r.err
	}
	p, ok := ps.pps5[id]
	if !ok {
		return SliceUnknown, fmt.Errorf("unknown pps %d", id)
	}
	if !first {
		// A later segment of the picture: its address needs the SPS; the
		// first segment's type is the one reported.
		return SliceUnknown, errors.New("not the first slice segment")
	}
	r.skip(int(p.NumExtraSliceHeaderBits))
	t := r.ue()
	if r.err != nil {
		return SliceUnknown, r.err
	}
	switch t {
	case 0:
		return SliceB, nil
	case 1:
		return SliceP, nil
	case 2:
		return SliceI, nil
	}
	return SliceUnknown, fmt.Errorf("slice type %d", t)
}

// pps264 is the part of an H.264 picture parameter set (7.3.2.1) that the
// slice header up to slice_qp_delta depends on.
type pps264 struct {
	id, spsID                 uint32
	cabac                     bool
	bottomFieldPicOrder       bool
	numRefIdxDefault          [2]uint32 // minus 1
	weightedPred              bool
	weightedBipredIdc         uint32
	picInitQP                 int // 26 + pic_init_qp_minus26
	redundantPicCountPresent  bool
	deblockingFilterControl   bool
	constrainedIntraPredicted bool
}

func parsePPS264(nalu []byte) (*pps264, error) {
	r := newReader(nalu[1:])
	p := &pps264{}
	p.id = r.ue()
	p.spsID = r.ue()
	p.cabac = r.flag()
	p.bottomFieldPicOrder = r.flag()
	if groups := r.ue(); groups != 0 {
		// Slice groups (FMO) are a baseline-profile feature cameras do not
		// use; their map would have to be parsed to reach what follows.
		if r.err == nil {
			return nil, fmt.Errorf("%d slice groups not supported", groups+1)
		}
	}
	p.numRefIdxDefault[0] = r.ue()
	p.numRefIdxDefault[1] = r.ue()
	p.weightedPred = r.flag()
	p.weightedBipredIdc = r.bits(2)
	p.picInitQP = 26 + r.se()
	r.se() // pic_init_qs_minus26
	r.se() // chroma_qp_index_offset
	p.deblockingFilterControl = r.flag()
	p.constrainedIntraPredicted = r.flag()
	p.redundantPicCountPresent = r.flag()
	switch {
	case r.err != nil:
		return nil, r.err
	case p.id > maxPPSID:
		return nil, fmt.Errorf("pps id %d above %d", p.id, maxPPSID)
	case p.spsID > maxSPSID:
		return nil, fmt.Errorf("sps id %d above %d", p.spsID, maxSPSID)
	case p.numRefIdxDefault[0] > 31 || p.numRefIdxDefault[1] > 31:
		return nil, errors.New("more than 32 default reference indices")
	case p.weightedBipredIdc > 2:
		return nil, fmt.Errorf("weighted_bipred_idc %d", p.weightedBipredIdc)
	case p.picInitQP < -26 || p.picInitQP > 51:
		return nil, fmt.Errorf("initial qp %d out of range", p.picInitQP)
	}
	return p, nil
}

// sliceHeader264 is what is read of an H.264 slice header.
type sliceHeader264 struct {
	typ SliceType
	qp  int
}

// sliceHeader264 reads an H.264 slice header (7.3.3) up to slice_qp_delta.
func (ps *Parser) sliceHeader264(nalu []byte) (sliceHeader264, error) {
	var h sliceHeader264
	refIdc := nalu[0] >> 5 & 3
	idr := h264.NALUType(nalu[0]&0x1f) == h264.NALUTypeIDR
	r := newReader(nalu[1:])
	r.ue() // first_mb_in_slice
	st := r.ue()
	ppsID := r.ue()
	if r.err != nil {
		return h, r.err
	}
	switch st % 5 {
	case 0, 3:
		h.typ = SliceP
	case 1:
		h.typ = SliceB
	case 2, 4:
		h.typ = SliceI
	}
	if st > 9 {
		return h, fmt.Errorf("slice type %d", st)
	}
	p, ok := ps.pps[ppsID]
	if !ok {
		return h, fmt.Errorf("unknown pps %d", ppsID)
	}
	s, ok := ps.sps[p.spsID]
	if !ok {
		return h, fmt.Errorf("unknown sps %d", p.spsID)
	}
	if s.SeparateColourPlaneFlag {
		r.skip(2)
	}
	r.skip(int(s.Log2MaxFrameNumMinus4) + 4) // frame_num
	field := false
	if !s.FrameMbsOnlyFlag {
		if field = r.flag(); field {
			r.skip(1) // bottom_field_flag
		}
	}
	if idr {
		r.ue() // idr_pic_id
	}
	switch s.PicOrderCntType {
	case 0:
		r.skip(int(s.Log2MaxPicOrderCntLsbMinus4) + 4)
		if p.bottomFieldPicOrder && !field {
			r.se()
		}
	case 1:
		if !s.DeltaPicOrderAlwaysZeroFlag {
			r.se()
			if p.bottomFieldPicOrder && !field {
				r.se()
			}
		}
	}
	if p.redundantPicCountPresent {
		r.ue()
	}
	if h.typ == SliceB {
		r.skip(1) // direct_spatial_mv_pred_flag
	}
	refs := p.numRefIdxDefault
	if h.typ != SliceI {
		if r.flag() { // num_ref_idx_active_override_flag
			refs[0] = r.ue()
			if h.typ == SliceB {
				refs[1] = r.ue()
			}
		}
	}
	if refs[0] > 31 || refs[1] > 31 {
		return h, errors.New("more than 32 reference indices")
	}
	lists := 0
	switch h.typ {
	case SliceP:
		lists = 1
	case SliceB:
		lists = 2
	}
	// ref_pic_list_modification
	for range lists {
		if r.flag() {
			for n := 0; ; n++ {
				idc := r.ue()
				if idc == 3 || r.err != nil {
					break
				}
				if idc > 5 || n > 64 {
					return h, fmt.Errorf("bad reference list modification")
				}
				r.ue()
			}
		}
	}
	// pred_weight_table
	if (p.weightedPred && h.typ == SliceP) || (p.weightedBipredIdc == 1 && h.typ == SliceB) {
		chroma := s.ChromaFormatIdc != 0 && !s.SeparateColourPlaneFlag
		r.ue() // luma_log2_weight_denom
		if chroma {
			r.ue()
		}
		for l := range lists {
			for range refs[l] + 1 {
				if r.flag() {
					r.se()
					r.se()
				}
				if chroma && r.flag() {
					r.se()
					r.se()
					r.se()
					r.se()
				}
			}
		}
	}
	// dec_ref_pic_marking
	if refIdc != 0 {
		if idr {
			r.skip(2)
		} else if r.flag() {
			for n := 0; ; n++ {
				op := r.ue()
				if op == 0 || r.err != nil {
					break
				}
				if op > 6 || n > 64 {
					return h, fmt.Errorf("bad reference marking")
				}
				if op == 1 || op == 3 {
					r.ue()
				}
				if op == 2 {
					r.ue()
				}
				if op == 3 || op == 6 {
					r.ue()
				}
				if op == 4 {
					r.ue()
				}
			}
		}
	}
	if p.cabac && h.typ != SliceI {
		if idc := r.ue(); idc > 2 && r.err == nil {
			return h, fmt.Errorf("cabac_init_idc %d", idc)
		}
	}
	h.qp = p.picInitQP + r.se()
	if r.err != nil {
		return h, r.err
	}
	if h.qp < -6*int(s.BitDepthLumaMinus8) || h.qp > 51 {
		return h, fmt.Errorf("slice qp %d out of range", h.qp)
	}
	return h, nil
}

// reader reads Exp-Golomb coded fields from an escaped NAL payload. The
// first error sticks: later reads return zero, so a header is read
// straight through and checked once.
type reader struct {
	buf []byte
	pos int
	err error
}

func newReader(escaped []byte) *reader {
	if len(escaped) > maxHeaderBytes {
		escaped = escaped[:maxHeaderBytes]
	}
	return &reader{buf: h264.EmulationPreventionRemove(escaped)}
}

func (r *reader) ue() uint32 {
	if r.err != nil {
		return 0
	}
	v, err := bits.ReadGolombUnsigned(r.buf, &r.pos)
	r.err = err
	return v
}

func (r *reader) se() int {
	if r.err != nil {
		return 0
	}
	v, err := bits.ReadGolombSigned(r.buf, &r.pos)
	r.err = err
	return int(v)
}

func (r *reader) flag() bool {
	if r.err != nil {
		return false
	}
	v, err := bits.ReadFlag(r.buf, &r.pos)
	r.err = err
	return v
}

func (r *reader) bits(n int) uint32 {
	if r.err != nil {
		return 0
	}
	v, err := bits.ReadBits(r.buf, &r.pos, n)
	r.err = err
	return uint32(v)
}

func (r *reader) skip(n int) {
	if r.err != nil {
		return
	}
	if n < 0 || r.pos+n > len(r.buf)*8 {
		r.err = errors.New("not enough bits")
		return
	}
	r.pos += n
}
