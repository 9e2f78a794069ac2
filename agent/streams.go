package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vigil-cctv/vigil/agent/media"
	"github.com/vigil-cctv/vigil/proto/actions"
	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/index"
)

// AlarmTampered is raised when a segment asked for viewing does not match
// the SHA-256 recorded when it was stored.
const AlarmTampered = "tampered_segment"

// Stream tuning.
const (
	// fetchChunk is the size of the pieces a fetched segment is sent in.
	fetchChunk = 256 << 10
	// maxFetches bounds the segments read and checked at once: each is
	// held in memory while its SHA-256 is checked.
	maxFetches = 4
	// maxFetchBytes refuses to load an object larger than any segment
	// should be (60 s of 4K video is far less).
	maxFetchBytes = 1 << 30
)

// streamCommand answers central's live relay and segment fetch commands:
// it checks the request, starts serving the stream in the background and
// returns the acknowledgement at once.
func (a *Agent) streamCommand(ctx context.Context, client agentv1.LinkClient, cmd *agentv1.Command) *agentv1.CommandAck {
	ack := &agentv1.CommandAck{RequestId: cmd.GetRequestId()}
	switch body := cmd.Body.(type) {
	case *agentv1.Command_LiveStart:
		ls := body.LiveStart
		cam := a.camera(ls.GetCamera())
		if cam == nil {
			ack.Error = fmt.Sprintf("no camera %q in district %s", clipText(ls.GetCamera()), a.cfg.District)
			return ack
		}
		feed := cam.live
		if ls.GetSub() && cam.detect != nil {
			feed = cam.liveSub
		}
		sub, stop := feed.subscribe()
		go func() {
			defer stop()
			if err := a.relay(ctx, client, ls.GetRelayId(), sub); err != nil && ctx.Err() == nil {
				a.log.Info("live relay ended", "camera", cam.cfg.ID, "reason", err)
			}
		}()
		ack.Ok = true
	case *agentv1.Command_FetchSegment:
		fs := body.FetchSegment
		if fs.GetOffset() < 0 || fs.GetLength() < 0 {
			ack.Error = "fetch: negative offset or length"
			return ack
		}
		seg, err := a.index.Get(fs.GetSegmentId())
		if err != nil {
			ack.Error = fmt.Sprintf("fetch: segment %s: %v", clipText(fs.GetSegmentId()), err)
			return ack
		}
		go func() {
			if err := a.fetch(ctx, client, fs, seg); err != nil && ctx.Err() == nil {
				a.log.Warn("segment fetch ended", "segment", seg.ID, "error", err)
			}
		}()
		ack.Ok = true
	default:
		ack.Error = fmt.Sprintf("command %T not supported by this agent", cmd.Body)
	}
	return ack
}

func (a *Agent) camera(id string) *camera {
	for _, c := range a.cameras {
		if c.cfg.ID == id {
			return c
		}
	}
	return nil
}

// relay sends a camera's access units to central until central ends the
// stream or the agent stops.
func (a *Agent) relay(ctx context.Context, client agentv1.LinkClient, id string, sub *liveSub) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Relay(ctx)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	if err := stream.Send(&agentv1.RelayFrame{RelayId: id}); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	go func() {
		// Central ends the relay by ending the call.
		for {
			if _, err := stream.Recv(); err != nil {
				cancel()
				return
			}
		}
	}()
	var params *media.Params
	for {
		var au *media.AccessUnit
		select {
		case <-ctx.Done():
			return ctx.Err()
		case au = <-sub.ch:
		}
		f := &agentv1.RelayFrame{
			Pts: au.PTS, Dts: au.DTS, Keyframe: au.Keyframe, Nalus: au.NALUs,
			ReceivedUs: au.Received.UnixMicro(),
		}
		if au.Params != params && au.Params != nil {
			params = au.Params
			f.Params = &agentv1.StreamParams{
				Codec: string(params.Codec), Vps: params.VPS, Sps: params.SPS, Pps: params.PPS,
				Width: int32(params.Width), Height: int32(params.Height),
			}
		}
		if err := stream.Send(f); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
	}
}

// fetch checks a segment's object against the SHA-256 of the index and
// sends the asked range. A mismatch is never served: it is reported as
// tampering, in the district log (linked into central's audit log) and as
// an alarm.
func (a *Agent) fetch(ctx context.Context, client agentv1.LinkClient, req *agentv1.FetchSegment, seg storage.Segment) error {
	a.fetchSlots <- struct{}{}
	defer func() { <-a.fetchSlots }()
	stream, err := client.Fetch(ctx)
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	defer stream.CloseAndRecv() //nolint:errcheck // central's answer carries nothing
	head := &agentv1.FetchChunk{FetchId: req.GetFetchId(), Sha256: seg.SHA256}
	data, err := a.readSegment(ctx, seg)
	if err != nil {
		head.Error = clipText(err.Error())
		return errors.Join(err, stream.Send(head))
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != seg.SHA256 {
		head.Tampered = true
		head.Error = "the stored object does not match the SHA-256 recorded when it was stored; not served"
		a.reportTampered(ctx, seg, got)
		return errors.Join(errors.New(head.Error), stream.Send(head))
	}
	head.TotalBytes = int64(len(data))
	from := min(req.GetOffset(), int64(len(data)))
	to := int64(len(data))
	if req.GetLength() > 0 {
		to = min(to, from+req.GetLength())
	}
	part := data[from:to]
	first := min(len(part), fetchChunk)
	head.Data = part[:first]
	if err := stream.Send(head); err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	for part = part[first:]; len(part) > 0; {
		n := min(len(part), fetchChunk)
		if err := stream.Send(&agentv1.FetchChunk{Data: part[:n]}); err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
		part = part[n:]
	}
	return nil
}

func (a *Agent) readSegment(ctx context.Context, seg storage.Segment) ([]byte, error) {
	store, err := a.store.get(ctx)
	if err != nil {
		return nil, err
	}
	rc, _, err := store.Get(ctx, seg.Key)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", seg.ID, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxFetchBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", seg.ID, err)
	}
	if len(data) > maxFetchBytes {
		return nil, fmt.Errorf("fetch %s: object larger than %d bytes", seg.ID, maxFetchBytes)
	}
	return data, nil
}

func (a *Agent) reportTampered(ctx context.Context, seg storage.Segment, got string) {
	a.log.Error("segment does not match its recorded SHA-256: not served", "segment", seg.ID, "camera", seg.Camera, "key", seg.Key, "recorded", seg.SHA256, "found", got)
	a.raise(AlarmTampered, fmt.Sprintf("segment %s of camera %s does not match its recorded SHA-256 (altered or corrupted in the store)", seg.ID, seg.Camera))
	_ = a.journal(context.WithoutCancel(ctx), index.JournalEntry{
		Time: time.Now(), Action: actions.SegmentTampered, Camera: seg.Camera, Segment: seg.ID,
		Detail: fmt.Sprintf("recorded sha256 %s, found %s; key %s", seg.SHA256, got, seg.Key),
	})
}
