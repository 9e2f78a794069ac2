package camerasim

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"
)

const (
	payloadType = 96
	rtpClock    = 90000
)

// packetizedClip is a clip already cut into RTP payloads, shared by every
// path that loops it: a path only stamps sequence numbers and timestamps.
type packetizedClip struct {
	clip *Clip
	aus  []rtpAU
}

// rtpAU is one access unit as RTP payloads; the marker bit goes on the last.
type rtpAU struct {
	dts, pts time.Duration
	key      bool
	payloads [][]byte
}

// auEncoder is what rtph264.Encoder and rtph265.Encoder have in common.
type auEncoder interface {
	Encode(au [][]byte) ([]*rtp.Packet, error)
}

// newFormat describes the clip's codec in the SDP, parameter sets included.
func newFormat(c *Clip) format.Format {
	if c.Codec == CodecH265 {
		return &format.H265{PayloadTyp: payloadType, VPS: c.VPS, SPS: c.SPS, PPS: c.PPS}
	}
	return &format.H264{PayloadTyp: payloadType, SPS: c.SPS, PPS: c.PPS, PacketizationMode: 1}
}

// packetize runs the format's RTP encoder over the whole clip once.
// Parameter sets are repeated before every keyframe, as IP cameras do, so a
// reader that joins late or ignores the SDP can still decode.
func packetize(c *Clip) (*packetizedClip, error) {
	var enc auEncoder
	var err error
	switch f := newFormat(c).(type) {
	case *format.H264:
		enc, err = f.CreateEncoder()
	case *format.H265:
		enc, err = f.CreateEncoder()
	}
	if err != nil {
		return nil, fmt.Errorf("rtp encoder: %w", err)
	}
	pc := &packetizedClip{clip: c, aus: make([]rtpAU, len(c.AccessUnits))}
	for i, au := range c.AccessUnits {
		nalus := au.NALUs
		if au.Key && !hasParams(c.Codec, nalus) {
			params := [][]byte{c.SPS, c.PPS}
			if c.Codec == CodecH265 {
				params = [][]byte{c.VPS, c.SPS, c.PPS}
			}
			nalus = append(params, nalus...)
		}
		pkts, err := enc.Encode(nalus)
		if err != nil {
			return nil, fmt.Errorf("rtp encode access unit %d: %w", i, err)
		}
		payloads := make([][]byte, len(pkts))
		for j, pkt := range pkts {
			payloads[j] = pkt.Payload
		}
		pc.aus[i] = rtpAU{dts: au.DTS, pts: au.PTS, key: au.Key, payloads: payloads}
	}
	return pc, nil
}

// hasParams reports whether the access unit already carries its SPS.
func hasParams(codec string, nalus [][]byte) bool {
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		if codec == CodecH265 && h265.NALUType((n[0]>>1)&0b111111) == h265.NALUType_SPS_NUT ||
			codec == CodecH264 && h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS {
			return true
		}
	}
	return false
}

// camera is one simulated camera, /camN.
type camera struct {
	n      int
	pc     *packetizedClip
	start  int           // index of the first access unit sent
	offset time.Duration // its DTS: clip time at which the path starts

	media  *description.Media
	stream atomic.Pointer[gortsplib.ServerStream] // nil until Start, and after Close
	epoch  time.Time

	// readers counts sessions playing this path; with none, the path keeps
	// time but writes nothing, so idle cameras cost almost nothing.
	readers atomic.Int32
}

// newCamera starts the camera at the last keyframe at or before clip time
// startAt (modulo the clip duration), so its first picture decodes.
func newCamera(n int, pc *packetizedClip, startAt time.Duration) *camera {
	startAt %= pc.clip.Duration
	start := 0
	for i, au := range pc.aus {
		if au.dts > startAt {
			break
		}
		if au.key {
			start = i
		}
	}
	return &camera{n: n, pc: pc, start: start, offset: pc.aus[start].dts}
}

func (c *camera) initStream(srv *gortsplib.Server) error {
	desc := &description.Session{
		Title:  pathName(c.n),
		Medias: []*description.Media{{Type: description.MediaTypeVideo, Formats: []format.Format{newFormat(c.pc.clip)}}},
	}
	st := &gortsplib.ServerStream{Server: srv, Desc: desc}
	if err := st.Initialize(); err != nil {
		return fmt.Errorf("stream %s: %w", pathName(c.n), err)
	}
	c.media = desc.Medias[0]
	c.stream.Store(st)
	return nil
}

func (c *camera) closeStream() {
	if st := c.stream.Swap(nil); st != nil {
		st.Close()
	}
}

// setEpoch places clip time 0 so that the first access unit goes out now.
func (c *camera) setEpoch(now time.Time) {
	c.epoch = now.Add(-c.offset)
}

// run sends the clip in a loop, each access unit at Epoch + loop*Duration +
// DTS on the monotonic clock, until ctx is cancelled. A late wake-up sends
// what is due at once rather than shifting the schedule, so Epoch stays
// true. One rtp.Packet is reused: gortsplib marshals it before returning.
func (c *camera) run(ctx context.Context, log *slog.Logger) {
	log = log.With("path", "/"+pathName(c.n))
	stream := c.stream.Load()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: payloadType}}
	seq := uint16(rand.Uint32())
	aus := c.pc.aus
	period := c.pc.clip.Duration
	var writeErrs int
	for i, loop := c.start, time.Duration(0); ; {
		au := &aus[i]
		base := loop * period
		if wait := time.Until(c.epoch.Add(base + au.dts)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return
		}

		if c.readers.Load() > 0 {
			pkt.Timestamp = uint32(durationToTicks(base + au.pts))
			ntp := c.epoch.Add(base + au.pts)
			for j, payload := range au.payloads {
				pkt.SequenceNumber = seq
				seq++
				pkt.Marker = j == len(au.payloads)-1
				pkt.Payload = payload
				if err := stream.WritePacketRTPWithNTP(c.media, &pkt, ntp); err != nil {
					if ctx.Err() != nil {
						return
					}
					// Log the first failures only: one per packet would flood.
					if writeErrs++; writeErrs <= 3 {
						log.Warn("write rtp packet", "err", err)
					}
				}
			}
		}

		if i++; i == len(aus) {
			i, loop = 0, loop+1
		}
	}
}

// durationToTicks converts to the 90 kHz RTP clock without overflowing.
func durationToTicks(d time.Duration) int64 {
	return int64(d/time.Second)*rtpClock + int64(d%time.Second)*rtpClock/int64(time.Second)
}
