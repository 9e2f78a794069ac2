// Package media holds the video types that flow through the agent: access
// units of H.264 and H.265 as they leave the RTSP client, with the parameter
// sets in force, the stream timestamps and the instant they arrived.
package media

import (
	"bytes"
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
)

// ClockRate is the RTP clock of video: timestamps are in 1/90000 s.
const ClockRate = 90000

// Codec names a video codec.
type Codec string

// Supported codecs.
const (
	H264 Codec = "h264"
	H265 Codec = "h265"
)

// Params are the parameter sets of a stream. A Params value is never
// modified after creation: a change of parameters makes a new value, so
// pointer equality tells whether they changed.
type Params struct {
	Codec Codec
	VPS   []byte // H.265 only
	SPS   []byte
	PPS   []byte
	// Width and Height come from the SPS, 0 when it cannot be parsed.
	Width, Height int
}

// NewParams builds Params and reads the picture size from the SPS.
func NewParams(codec Codec, vps, sps, pps []byte) (*Params, error) {
	p := &Params{Codec: codec, VPS: clone(vps), SPS: clone(sps), PPS: clone(pps)}
	switch codec {
	case H264:
		if len(sps) == 0 || len(pps) == 0 {
			return nil, fmt.Errorf("h264: missing SPS or PPS")
		}
		var s h264.SPS
		if err := s.Unmarshal(sps); err != nil {
			return nil, fmt.Errorf("h264: bad SPS: %w", err)
		}
		p.Width, p.Height = s.Width(), s.Height()
	case H265:
		if len(vps) == 0 || len(sps) == 0 || len(pps) == 0 {
			return nil, fmt.Errorf("h265: missing VPS, SPS or PPS")
		}
		var s h265.SPS
		if err := s.Unmarshal(sps); err != nil {
			return nil, fmt.Errorf("h265: bad SPS: %w", err)
		}
		p.Width, p.Height = s.Width(), s.Height()
	default:
		return nil, fmt.Errorf("unsupported codec %q", codec)
	}
	if p.Width <= 0 || p.Height <= 0 {
		return nil, fmt.Errorf("%s: SPS gives no picture size", codec)
	}
	return p, nil
}

// Equal reports whether both hold the same parameter sets.
func (p *Params) Equal(o *Params) bool {
	if p == o {
		return true
	}
	if p == nil || o == nil {
		return false
	}
	return p.Codec == o.Codec && bytes.Equal(p.VPS, o.VPS) &&
		bytes.Equal(p.SPS, o.SPS) && bytes.Equal(p.PPS, o.PPS)
}

// ParamNALUs returns the parameter-set NAL units in decoding order.
func (p *Params) ParamNALUs() [][]byte {
	if p.Codec == H265 {
		return [][]byte{p.VPS, p.SPS, p.PPS}
	}
	return [][]byte{p.SPS, p.PPS}
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// AccessUnit is one coded picture.
type AccessUnit struct {
	// NALUs without start codes. Keyframes carry their parameter sets first.
	NALUs [][]byte
	// PTS and DTS are in ClockRate ticks from the start of the connection.
	PTS, DTS int64
	Keyframe bool
	Params   *Params
	// Received is when the access unit was complete at the agent; it carries
	// a monotonic reading, so differences between two of them ignore steps
	// of the wall clock.
	Received time.Time
}

// Size is the number of payload bytes.
func (au *AccessUnit) Size() int {
	n := 0
	for _, nalu := range au.NALUs {
		n += len(nalu)
	}
	return n
}

// AppendAnnexB appends the access unit to dst with 4-byte start codes, the
// form decoders such as ffmpeg read from a pipe.
func (au *AccessUnit) AppendAnnexB(dst []byte) []byte {
	for _, nalu := range au.NALUs {
		dst = append(dst, 0, 0, 0, 1)
		dst = append(dst, nalu...)
	}
	return dst
}

// Ticks converts a duration to ClockRate ticks. Whole seconds and the rest
// are converted apart, so that durations over a day do not overflow.
func Ticks(d time.Duration) int64 {
	return int64(d/time.Second)*ClockRate + int64(d%time.Second)*ClockRate/int64(time.Second)
}

// TicksDuration converts ClockRate ticks to a duration, without overflowing
// for timestamps of connections that lasted more than a day.
func TicksDuration(t int64) time.Duration {
	return time.Duration(t/ClockRate)*time.Second + time.Duration(t%ClockRate)*time.Second/ClockRate
}
