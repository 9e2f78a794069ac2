package media

import (
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
)

// Errors of Assembler.Push that are part of normal operation: the caller
// drops the access unit and goes on.
var (
	// ErrWaitingKeyframe means no keyframe has been seen since the start or
	// the last discontinuity; nothing can be decoded before one.
	ErrWaitingKeyframe = errors.New("waiting for a keyframe")
	// ErrNoParams means a keyframe arrived before any parameter sets, in the
	// SDP or in band.
	ErrNoParams = errors.New("no parameter sets received")
)

// maxNALUSize bounds one NAL unit; larger ones are refused as garbage rather
// than buffered (a 4K intra frame is a few MB).
const maxNALUSize = 16 << 20

// Assembler turns the NAL units of one picture, as depacketised from RTP,
// into an AccessUnit: it tracks parameter sets sent in band, strips access
// unit delimiters, puts the parameter sets in front of every keyframe (so a
// segment or a decoder can start at any keyframe), and computes the DTS.
// It is not safe for concurrent use.
type Assembler struct {
	codec     Codec
	params    *Params
	pending   pendingParams
	started   bool
	prevDTS   int64
	extract   func(au [][]byte, pts int64) (int64, error)
	lastError error
}

type pendingParams struct{ vps, sps, pps []byte }

// NewAssembler starts an assembler for codec with the parameter sets found in
// the SDP, which may be empty.
func NewAssembler(codec Codec, vps, sps, pps []byte) (*Assembler, error) {
	if codec != H264 && codec != H265 {
		return nil, fmt.Errorf("unsupported codec %q", codec)
	}
	a := &Assembler{codec: codec, pending: pendingParams{vps: clone(vps), sps: clone(sps), pps: clone(pps)}}
	a.updateParams()
	return a, nil
}

// Params returns the parameter sets in force, nil before any.
func (a *Assembler) Params() *Params { return a.params }

// LastParamsError is the most recent failure to parse in-band parameters.
func (a *Assembler) LastParamsError() error { return a.lastError }

// Push assembles one picture. The returned error is ErrWaitingKeyframe,
// ErrNoParams, or a description of what is wrong with the bitstream; in all
// cases the picture is dropped and the next keyframe restarts decoding.
func (a *Assembler) Push(nalus [][]byte, pts int64, received time.Time) (*AccessUnit, error) {
	out := make([][]byte, 0, len(nalus)+3)
	keyframe := false
	for _, nalu := range nalus {
		if len(nalu) == 0 {
			continue
		}
		if len(nalu) > maxNALUSize {
			a.restart()
			return nil, fmt.Errorf("%s: NAL unit of %d bytes is too large", a.codec, len(nalu))
		}
		switch a.classify(nalu) {
		case naluParamVPS:
			a.pending.vps = clone(nalu)
		case naluParamSPS:
			a.pending.sps = clone(nalu)
		case naluParamPPS:
			a.pending.pps = clone(nalu)
		case naluDelimiter:
		case naluKeyframe:
			keyframe = true
			out = append(out, nalu)
		default:
			out = append(out, nalu)
		}
	}
	a.updateParams()
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: access unit without picture data", a.codec)
	}
	if !a.started {
		if !keyframe {
			return nil, ErrWaitingKeyframe
		}
		if a.params == nil {
			if a.lastError != nil {
				return nil, fmt.Errorf("%w: %w", ErrNoParams, a.lastError)
			}
			return nil, ErrNoParams
		}
		a.newExtractor()
	}
	if keyframe {
		out = append(a.params.ParamNALUs(), out...)
	}
	dts, err := a.extract(out, pts)
	if err != nil {
		a.restart()
		return nil, fmt.Errorf("%s: timestamps: %w", a.codec, err)
	}
	if a.started && dts <= a.prevDTS {
		// Decoders need strictly increasing DTS; equal ones come from
		// non-reference pictures sharing a slot.
		dts = a.prevDTS + 1
	}
	if dts > pts {
		dts = pts
	}
	if a.started && dts <= a.prevDTS {
		// The PTS repeats or went back: no DTS is both after the previous
		// one and not after the PTS.
		a.restart()
		return nil, fmt.Errorf("%s: timestamps: PTS %d is not after the previous DTS %d", a.codec, pts, a.prevDTS)
	}
	a.started = true
	a.prevDTS = dts
	return &AccessUnit{
		NALUs:    out,
		PTS:      pts,
		DTS:      dts,
		Keyframe: keyframe,
		Params:   a.params,
		Received: received,
	}, nil
}

// Restart forgets the timing state, e.g. after a gap or a reconnection; the
// next access unit must be a keyframe.
func (a *Assembler) restart() { a.started = false }

// Discontinuity tells the assembler that the stream restarted.
func (a *Assembler) Discontinuity() { a.restart() }

func (a *Assembler) newExtractor() {
	switch a.codec {
	case H264:
		var e h264.DTSExtractor
		e.Initialize()
		a.extract = e.Extract
	case H265:
		var e h265.DTSExtractor
		e.Initialize()
		a.extract = e.Extract
	}
}

// updateParams promotes the pending parameter sets when they are complete,
// parseable and different from the ones in force.
func (a *Assembler) updateParams() {
	p := a.pending
	if len(p.sps) == 0 || len(p.pps) == 0 || (a.codec == H265 && len(p.vps) == 0) {
		return
	}
	if a.params != nil && a.params.Equal(&Params{Codec: a.codec, VPS: p.vps, SPS: p.sps, PPS: p.pps}) {
		return
	}
	params, err := NewParams(a.codec, p.vps, p.sps, p.pps)
	if err != nil {
		a.lastError = err
		return
	}
	a.lastError = nil
	a.params = params
}

type naluKind int

const (
	naluOther naluKind = iota
	naluParamVPS
	naluParamSPS
	naluParamPPS
	naluDelimiter
	naluKeyframe
)

func (a *Assembler) classify(nalu []byte) naluKind {
	if a.codec == H264 {
		switch h264.NALUType(nalu[0] & 0x1f) {
		case h264.NALUTypeSPS:
			return naluParamSPS
		case h264.NALUTypePPS:
			return naluParamPPS
		case h264.NALUTypeAccessUnitDelimiter:
			return naluDelimiter
		case h264.NALUTypeIDR:
			return naluKeyframe
		}
		return naluOther
	}
	switch h265.NALUType((nalu[0] >> 1) & 0x3f) {
	case h265.NALUType_VPS_NUT:
		return naluParamVPS
	case h265.NALUType_SPS_NUT:
		return naluParamSPS
	case h265.NALUType_PPS_NUT:
		return naluParamPPS
	case h265.NALUType_AUD_NUT:
		return naluDelimiter
	case h265.NALUType_IDR_W_RADL, h265.NALUType_IDR_N_LP, h265.NALUType_CRA_NUT:
		return naluKeyframe
	}
	return naluOther
}
