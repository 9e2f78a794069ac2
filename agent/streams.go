package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
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
	// maxFetches bounds the segments read at once from the store.
	maxFetches = 4
	// maxFetchBytes refuses an object larger than any segment should be
	// (60 s of 4K video is far less).
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
// stream or the agent stops. Large frames go in parts, so that every
// message stays within central's bound.
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
	var payload []byte
	for {
		var au *media.AccessUnit
		select {
		case <-ctx.Done():
			return ctx.Err()
		case au = <-sub.ch:
		}
		f := &agentv1.RelayFrame{Pts: au.PTS, Dts: au.DTS, Keyframe: au.Keyframe, ReceivedUs: au.Received.UnixMicro()}
		if au.Params != params && au.Params != nil {
			params = au.Params
			f.Params = &agentv1.StreamParams{
				Codec: string(params.Codec), Vps: params.VPS, Sps: params.SPS, Pps: params.PPS,
				Width: int32(params.Width), Height: int32(params.Height),
			}
		}
		payload = agentv1.AppendNALUs(payload[:0], au.NALUs)
		for {
			n := min(len(payload), agentv1.RelayPartSize)
			f.Payload, f.More = payload[:n], n < len(payload)
			if err := stream.Send(f); err != nil {
				return fmt.Errorf("relay: %w", err)
			}
			payload = payload[n:]
			if len(payload) == 0 {
				break
			}
			f = &agentv1.RelayFrame{}
		}
	}
}

// verified remembers, for a few minutes, that a segment's object matched
// its SHA-256: a browser seeking in a recording asks for many ranges, and
// the object need not be read whole for each.
type verified struct {
	mu   sync.Mutex
	seen map[string]verdict // segment id → verdict
}

type verdict struct {
	size     int64
	modified time.Time
	at       time.Time
}

// Verification tuning.
const (
	verifiedTTL = 5 * time.Minute
	verifiedMax = 1024
)

func (v *verified) ok(id string, info storage.ObjectInfo, now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	e, found := v.seen[id]
	return found && e.size == info.Size && e.modified.Equal(info.Modified) && now.Sub(e.at) < verifiedTTL
}

func (v *verified) remember(id string, info storage.ObjectInfo, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seen == nil {
		v.seen = map[string]verdict{}
	}
	if len(v.seen) >= verifiedMax {
		for k, e := range v.seen {
			if now.Sub(e.at) >= verifiedTTL || len(v.seen) >= verifiedMax {
				delete(v.seen, k)
			}
		}
	}
	v.seen[id] = verdict{size: info.Size, modified: info.Modified, at: now}
}

// fetch checks a segment's object against the SHA-256 of the index and
// sends the asked range. A mismatch is never served: it is reported as
// tampering, in the district log (linked into central's audit log) and as
// an alarm. The object is read as a stream, never whole into memory.
func (a *Agent) fetch(ctx context.Context, client agentv1.LinkClient, req *agentv1.FetchSegment, seg storage.Segment) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Fetch(ctx)
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	// Central waits for the stream, not for the work: name it at once.
	if err := stream.Send(&agentv1.FetchChunk{FetchId: req.GetFetchId()}); err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	ended := make(chan struct{})
	go func() {
		// Central ends the fetch (the viewer went away, or it has read
		// everything) by ending the call.
		defer close(ended)
		for {
			if _, err := stream.Recv(); err != nil {
				cancel()
				return
			}
		}
	}()
	select {
	case a.fetchSlots <- struct{}{}:
		defer func() { <-a.fetchSlots }()
	case <-ctx.Done():
		return ctx.Err()
	}
	head := &agentv1.FetchChunk{Sha256: seg.SHA256}
	fail := func(err error) error {
		head.Error = clipText(err.Error())
		return errors.Join(err, stream.Send(head))
	}
	store, err := a.store.get(ctx)
	if err != nil {
		return fail(err)
	}
	info, err := a.verify(ctx, store, seg)
	if errors.Is(err, errTampered) {
		head.Tampered = true
		return fail(err)
	}
	if err != nil {
		return fail(err)
	}
	head.TotalBytes = info.Size
	offset := min(req.GetOffset(), info.Size)
	length := info.Size - offset
	if l := req.GetLength(); l > 0 && l < length {
		length = l
	}
	rc, _, err := store.Get(ctx, seg.Key)
	if err != nil {
		return fail(fmt.Errorf("fetch %s: %w", seg.ID, err))
	}
	defer rc.Close()
	if err := skip(rc, offset); err != nil {
		return fail(fmt.Errorf("fetch %s: %w", seg.ID, err))
	}
	if err := stream.Send(head); err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	buf := make([]byte, agentv1.FetchChunkSize)
	for length > 0 {
		n, err := io.ReadFull(rc, buf[:min(int64(len(buf)), length)])
		if n > 0 {
			if serr := stream.Send(&agentv1.FetchChunk{Data: buf[:n]}); serr != nil {
				return fmt.Errorf("fetch: %w", serr)
			}
			length -= int64(n)
		}
		if err != nil {
			// The object changed under us (it was verified a moment ago).
			return fmt.Errorf("fetch %s: %w", seg.ID, err)
		}
	}
	// Cancelling now could drop the last chunks on the way: say it is
	// all, and let central end the call once it has read them.
	if err := stream.CloseSend(); err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	select {
	case <-ended:
	case <-time.After(fetchLinger):
	}
	return nil
}

// fetchLinger bounds the wait for central to read the end of a fetch.
const fetchLinger = 30 * time.Second

// errTampered marks an object whose bytes do not match the index.
var errTampered = errors.New("the stored object does not match the SHA-256 recorded when it was stored; not served")

// verify reads the whole object through SHA-256 (unless it was verified a
// moment ago, unchanged) and compares with the index.
func (a *Agent) verify(ctx context.Context, store storage.ObjectStore, seg storage.Segment) (storage.ObjectInfo, error) {
	info, err := store.Stat(ctx, seg.Key)
	if err != nil {
		return info, fmt.Errorf("fetch %s: %w", seg.ID, err)
	}
	if a.verified.ok(seg.ID, info, time.Now()) {
		return info, nil
	}
	rc, info, err := store.Get(ctx, seg.Key)
	if err != nil {
		return info, fmt.Errorf("fetch %s: %w", seg.ID, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(rc, maxFetchBytes+1))
	if err != nil {
		return info, fmt.Errorf("fetch %s: %w", seg.ID, err)
	}
	if n > maxFetchBytes {
		return info, fmt.Errorf("fetch %s: object larger than %d bytes", seg.ID, int64(maxFetchBytes))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != seg.SHA256 || n != info.Size {
		a.reportTampered(ctx, seg, got)
		return info, errTampered
	}
	a.verified.remember(seg.ID, info, time.Now())
	return info, nil
}

// skip moves r forward n bytes, seeking when it can.
func skip(r io.Reader, n int64) error {
	if n == 0 {
		return nil
	}
	if s, ok := r.(io.Seeker); ok {
		_, err := s.Seek(n, io.SeekStart)
		return err
	}
	_, err := io.CopyN(io.Discard, r, n)
	return err
}

func (a *Agent) reportTampered(ctx context.Context, seg storage.Segment, got string) {
	a.log.Error("segment does not match its recorded SHA-256: not served", "segment", seg.ID, "camera", seg.Camera, "key", seg.Key, "recorded", seg.SHA256, "found", got)
	a.raise(AlarmTampered, fmt.Sprintf("segment %s of camera %s does not match its recorded SHA-256 (altered or corrupted in the store)", seg.ID, seg.Camera))
	_ = a.journal(context.WithoutCancel(ctx), index.JournalEntry{
		Time: time.Now(), Action: actions.SegmentTampered, Camera: seg.Camera, Segment: seg.ID,
		Detail: fmt.Sprintf("recorded sha256 %s, found %s; key %s", seg.SHA256, got, seg.Key),
	})
}
