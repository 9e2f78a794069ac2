package link

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/index"
)

// SegmentStored is the outbox payload reporting that seg was stored and
// indexed.
func SegmentStored(seg storage.Segment, at time.Time) ([]byte, error) {
	return marshal(&agentv1.Report{At: timestamppb.New(at), Body: &agentv1.Report_SegmentStored{
		SegmentStored: &agentv1.SegmentStored{Segment: SegmentToProto(seg)},
	}})
}

// SegmentDeleted is the outbox payload reporting a deletion and its reason.
func SegmentDeleted(seg storage.Segment, reason string, at time.Time) ([]byte, error) {
	return marshal(&agentv1.Report{At: timestamppb.New(at), Body: &agentv1.Report_SegmentDeleted{
		SegmentDeleted: &agentv1.SegmentDeleted{Id: seg.ID, Camera: seg.Camera, Reason: reason, DeletedAt: timestamppb.New(at)},
	}})
}

// CameraStatus is the outbox payload reporting a camera's new state.
func CameraStatus(st *agentv1.CameraStatus, at time.Time) ([]byte, error) {
	return marshal(&agentv1.Report{At: timestamppb.New(at), Body: &agentv1.Report_CameraStatus{CameraStatus: st}})
}

func marshal(r *agentv1.Report) ([]byte, error) {
	b, err := proto.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("link: encode report: %w", err)
	}
	return b, nil
}

// SegmentToProto converts index metadata for the wire.
func SegmentToProto(s storage.Segment) *agentv1.Segment {
	return &agentv1.Segment{
		Id: s.ID, Camera: s.Camera,
		Start: timestamppb.New(s.Start), End: timestamppb.New(s.End),
		Bytes: s.Bytes, Sha256: s.SHA256, Codec: s.Codec, MotionScore: s.MotionScore,
		Key: s.Key, Expires: timestamppb.New(s.Expires), HeldBy: s.HeldBy, Recovered: s.Recovered, Missing: s.Missing,
	}
}

// Journal is the outbox payload carrying an entry of the district's chained
// log.
func Journal(e index.JournalEntry) ([]byte, error) {
	return marshal(&agentv1.Report{At: timestamppb.New(e.Time), Body: &agentv1.Report_Journal{Journal: JournalToProto(e)}})
}

// JournalToProto converts a journal entry for the wire.
func JournalToProto(e index.JournalEntry) *agentv1.JournalEntry {
	return &agentv1.JournalEntry{
		Seq: e.Seq, Time: timestamppb.New(e.Time), Action: e.Action, Camera: e.Camera,
		Segment: e.Segment, Detail: e.Detail, Prev: e.Prev, Hash: e.Hash,
	}
}

// JournalFromProto is the inverse of JournalToProto.
func JournalFromProto(p *agentv1.JournalEntry) index.JournalEntry {
	return index.JournalEntry{
		Seq: p.GetSeq(), Time: p.GetTime().AsTime(), Action: p.GetAction(), Camera: p.GetCamera(),
		Segment: p.GetSegment(), Detail: p.GetDetail(), Prev: p.GetPrev(), Hash: p.GetHash(),
	}
}
