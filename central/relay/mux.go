package relay

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
)

// clockRate is the timescale of relayed video (RTP's 90 kHz).
const clockRate = 90000

// defaultFrame is the duration given to a frame before the stream's frame
// interval is known (25 fps).
const defaultFrame = clockRate / 25

// maxFrameGap is the largest DTS step taken as one frame's duration; a
// larger one is a pause of the camera, not a frame rate.
const maxFrameGap = 2 * clockRate

// Codec describes a relayed stream to the browser.
type Codec struct {
	// Name is "h264" or "h265".
	Name string
	// MIME is what MediaSource.isTypeSupported is asked.
	MIME          string
	Width, Height int
}

// muxer turns one source's frames into an init segment and one fragment
// per frame. A frame is sent as soon as it arrives, with the duration of
// the frame before it: waiting for the next frame to know the exact
// duration would add a frame of latency, and the browser places each
// fragment by its own decode time anyway.
type muxer struct {
	params   *agentv1.StreamParams
	codec    mp4.Codec
	started  bool // a keyframe was sent since the init
	firstDTS int64
	lastDTS  int64
	lastDur  int64
	seq      uint32
	buf      seekablebuffer.Buffer
}

// frame returns the messages for one relayed frame (none while waiting for
// a keyframe).
func (m *muxer) frame(f *agentv1.RelayFrame) ([]Message, error) {
	var out []Message
	if p := f.GetParams(); p != nil && !sameParams(p, m.params) {
		msgs, err := m.newInit(p)
		if err != nil {
			return nil, err
		}
		out = append(out, msgs...)
	}
	if len(f.GetPayload()) == 0 {
		return out, nil
	}
	nalus, err := agentv1.SplitNALUs(f.GetPayload())
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	if m.params == nil {
		return nil, errors.New("relay: a frame came before the stream's parameters")
	}
	if m.started && f.GetDts() <= m.lastDTS {
		// The camera's session started again (its clock restarted): a
		// new decoder starts at the next keyframe.
		msgs, err := m.newInit(m.params)
		if err != nil {
			return nil, err
		}
		out = append(out, msgs...)
	}
	if !m.started {
		if !f.GetKeyframe() {
			return out, nil
		}
		m.started, m.firstDTS, m.lastDTS = true, f.GetDts(), f.GetDts()
	}
	dur := m.lastDur
	if d := f.GetDts() - m.lastDTS; d > 0 && d <= maxFrameGap {
		dur = d
	}
	if dur <= 0 {
		dur = defaultFrame
	}
	m.lastDur, m.lastDTS = dur, f.GetDts()
	s := &fmp4.Sample{Duration: uint32(dur), IsNonSyncSample: !f.GetKeyframe()}
	if m.params.GetCodec() == "h265" {
		err = s.FillH265(int32(f.GetPts()-f.GetDts()), nalus)
	} else {
		err = s.FillH264(int32(f.GetPts()-f.GetDts()), nalus)
	}
	if err != nil {
		return nil, fmt.Errorf("relay: frame: %w", err)
	}
	m.seq++
	part := fmp4.Part{SequenceNumber: m.seq, Tracks: []*fmp4.PartTrack{{
		ID: 1, BaseTime: uint64(f.GetDts() - m.firstDTS), Samples: []*fmp4.Sample{s},
	}}}
	data, err := m.marshal(part.Marshal)
	if err != nil {
		return nil, fmt.Errorf("relay: fragment: %w", err)
	}
	return append(out, Message{Kind: KindFragment, Data: data, Keyframe: f.GetKeyframe(), ReceivedUS: f.GetReceivedUs()}), nil
}

// newInit starts a new decoder: codec and init messages.
func (m *muxer) newInit(p *agentv1.StreamParams) ([]Message, error) {
	c := Codec{Name: p.GetCodec(), Width: int(p.GetWidth()), Height: int(p.GetHeight())}
	switch p.GetCodec() {
	case "h264":
		sps := p.GetSps()
		if len(sps) < 4 || len(p.GetPps()) == 0 {
			return nil, errors.New("relay: H.264 stream without a usable SPS and PPS")
		}
		m.codec = &mp4.CodecH264{SPS: sps, PPS: p.GetPps()}
		c.MIME = fmt.Sprintf(`video/mp4; codecs="avc1.%02x%02x%02x"`, sps[1], sps[2], sps[3])
	case "h265":
		if len(p.GetVps()) == 0 || len(p.GetSps()) == 0 || len(p.GetPps()) == 0 {
			return nil, errors.New("relay: H.265 stream without VPS, SPS and PPS")
		}
		m.codec = &mp4.CodecH265{VPS: p.GetVps(), SPS: p.GetSps(), PPS: p.GetPps()}
		// Main profile, level 4: what a browser with HEVC support is
		// asked; one without says no whatever the level.
		c.MIME = `video/mp4; codecs="hvc1.1.6.L120.B0"`
	default:
		return nil, fmt.Errorf("relay: codec %q cannot be relayed", p.GetCodec())
	}
	m.params, m.started, m.seq, m.lastDur = p, false, 0, 0
	init := fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: 1, TimeScale: clockRate, Codec: m.codec}}}
	data, err := m.marshal(init.Marshal)
	if err != nil {
		return nil, fmt.Errorf("relay: init: %w", err)
	}
	return []Message{{Kind: KindCodec, Codec: c}, {Kind: KindInit, Data: data}}, nil
}

func (m *muxer) marshal(fn func(w io.WriteSeeker) error) ([]byte, error) {
	m.buf.Reset()
	if _, err := m.buf.Seek(0, 0); err != nil {
		return nil, err
	}
	if err := fn(&m.buf); err != nil {
		return nil, err
	}
	return bytes.Clone(m.buf.Bytes()), nil
}

func sameParams(a, b *agentv1.StreamParams) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.GetCodec() == b.GetCodec() && bytes.Equal(a.GetVps(), b.GetVps()) &&
		bytes.Equal(a.GetSps(), b.GetSps()) && bytes.Equal(a.GetPps(), b.GetPps())
}
