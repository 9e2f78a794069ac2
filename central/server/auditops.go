package server

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-cctv/vigil/central/audit"
	"github.com/vigil-cctv/vigil/central/registry"
	"github.com/vigil-cctv/vigil/central/users"
	"github.com/vigil-cctv/vigil/proto/actions"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

// linkJournal records entries of a district's chained log in the audit log,
// with the agent as actor, in one append; a broken chain is recorded first,
// as its own record.
func (s *Server) linkJournal(ctx context.Context, district string, links []registry.JournalLink) error {
	actor := audit.Actor{User: "agent:" + district, Role: "agent"}
	var recs []audit.Record
	for _, l := range links {
		if l.Problem != "" {
			recs = append(recs, audit.Record{
				Actor: actor, Action: actions.AgentChain, Target: audit.Target{District: district},
				Outcome: audit.OutcomeFailed, Detail: audit.Clip(l.Problem, audit.MaxDetail),
			})
		}
		if e := l.Entry; e != nil {
			recs = append(recs, audit.Record{
				Actor: actor, Action: e.GetAction(), Outcome: audit.OutcomeOK,
				Target: audit.Target{District: district, Camera: e.GetCamera(), Segment: e.GetSegment()},
				Detail: audit.Clip(fmt.Sprintf("district entry %d at %s (hash %s): %s", e.GetSeq(),
					e.GetTime().AsTime().UTC().Format(time.RFC3339Nano), e.GetHash(), e.GetDetail()), audit.MaxDetail),
			})
		}
	}
	_, err := s.audit.AppendBatch(ctx, recs)
	return err
}

// maxAuditPage bounds one page of raw records handed out.
const maxAuditPage = 10000

// auditScope checks that an auditor limited to some districts asks only
// about those; the raw log and its checkpoints (every district) are for
// auditors of every district.
func auditScope(ctx context.Context, district string, whole bool) error {
	u := callerOf(ctx).user
	if len(u.Districts) == 0 {
		return nil
	}
	if whole {
		return status.Error(codes.PermissionDenied, "the whole log is for auditors of every district")
	}
	if district == "" || !u.InScope(district) {
		return status.Errorf(codes.PermissionDenied, "auditor %s is limited to %s: ask with --camera DISTRICT/", u.Name, strings.Join(u.Districts, ","))
	}
	return nil
}

func (o *opsService) AuditLog(ctx context.Context, req *opsv1.AuditLogRequest) (*opsv1.AuditLogResponse, error) {
	if err := auditScope(ctx, req.GetDistrict(), false); err != nil {
		return nil, err
	}
	f := audit.Filter{
		Since: validTime(req.GetSince()), Until: validTime(req.GetUntil()),
		Actor: req.GetActor(), Action: req.GetAction(), District: req.GetDistrict(), Camera: req.GetCamera(),
		Limit: int(req.GetLimit()),
	}
	recs, err := o.s.audit.Query(f)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp := &opsv1.AuditLogResponse{}
	for _, r := range recs {
		resp.Records = append(resp.Records, auditToProto(r))
	}
	return resp, nil
}

func (o *opsService) AuditCheckpoint(ctx context.Context, _ *opsv1.AuditCheckpointRequest) (*opsv1.AuditCheckpointResponse, error) {
	if err := auditScope(ctx, "", true); err != nil {
		return nil, err
	}
	// A fresh checkpoint covering everything, this request's own record
	// included.
	cp, err := o.s.audit.CheckpointNow(ctx)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &opsv1.AuditCheckpointResponse{Checkpoint: cp, VerifierKey: o.s.auditKey}, nil
}

// Limits of one AuditRecords answer: pages stay well below the client's
// message size, and the checkpoints handed out are the newest ones (one is
// written every 10 s of activity: all of them would grow without bound).
const (
	maxAuditPageBytes  = 4 << 20
	maxAuditCheckpoint = 1000
)

func (o *opsService) AuditRecords(ctx context.Context, req *opsv1.AuditRecordsRequest) (*opsv1.AuditRecordsResponse, error) {
	if err := auditScope(ctx, "", true); err != nil {
		return nil, err
	}
	resp := &opsv1.AuditRecordsResponse{VerifierKey: o.s.auditKey}
	if req.GetFrom() == 0 {
		// Checkpoints before the size: a checkpoint can then never cover
		// more records than the answer says exist.
		cps, err := o.s.audit.Checkpoints()
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		if len(cps) > maxAuditCheckpoint {
			cps = cps[len(cps)-maxAuditCheckpoint:]
		}
		resp.Checkpoints = cps
	}
	size := o.s.audit.Size()
	count := min(req.GetCount(), maxAuditPage)
	if count == 0 {
		count = maxAuditPage
	}
	from := min(req.GetFrom(), size)
	recs, err := o.s.audit.RawRecords(from, min(from+count, size))
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	bytes := 0
	for i, r := range recs {
		if bytes += len(r); bytes > maxAuditPageBytes && i > 0 {
			recs = recs[:i]
			break
		}
	}
	resp.Size, resp.Records = size, recs
	return resp, nil
}

func (o *opsService) AuditReport(ctx context.Context, req *opsv1.AuditReportRequest) (*opsv1.AuditReportResponse, error) {
	if err := auditScope(ctx, "", true); err != nil {
		return nil, err
	}
	since := validTime(req.GetSince())
	type viewKey struct{ user, camera string }
	type dayKey struct{ day, district string }
	views := map[viewKey]int64{}
	days := map[dayKey]int64{}
	resp := &opsv1.AuditReportResponse{}
	err := o.s.audit.Scan(audit.Filter{Since: since}, func(r audit.Record) error {
		switch {
		case r.Outcome == audit.OutcomeDenied:
			resp.Denied = append(resp.Denied, auditToProto(r))
		case r.Outcome != audit.OutcomeOK:
		case r.Action == actions.RecordingView || r.Action == actions.LiveStart:
			views[viewKey{r.Actor.User, r.Target.District + "/" + r.Target.Camera}]++
		case r.Action == actions.HoldPlace || r.Action == actions.HoldRelease:
			resp.Holds = append(resp.Holds, auditToProto(r))
		case r.Action == actions.SegmentDeleted:
			days[dayKey{r.Time.UTC().Format(time.DateOnly), r.Target.District}]++
		}
		return nil
	})
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	for k, n := range views {
		resp.Viewings = append(resp.Viewings, &opsv1.ViewingCount{User: k.user, Camera: k.camera, Count: n})
	}
	sort.Slice(resp.Viewings, func(i, j int) bool {
		a, b := resp.Viewings[i], resp.Viewings[j]
		return a.GetUser() < b.GetUser() || a.GetUser() == b.GetUser() && a.GetCamera() < b.GetCamera()
	})
	for k, n := range days {
		resp.Deletions = append(resp.Deletions, &opsv1.DayCount{Day: k.day, District: k.district, Count: n})
	}
	sort.Slice(resp.Deletions, func(i, j int) bool {
		return resp.Deletions[i].GetDay()+resp.Deletions[i].GetDistrict() < resp.Deletions[j].GetDay()+resp.Deletions[j].GetDistrict()
	})
	return resp, nil
}

func auditToProto(r audit.Record) *opsv1.AuditRecord {
	out := &opsv1.AuditRecord{
		Seq: r.Seq, Time: timestamppb.New(r.Time), Actor: r.Actor.User, Role: r.Actor.Role, Designation: r.Actor.Designation,
		Action: r.Action, District: r.Target.District, Camera: r.Target.Camera, Segment: r.Target.Segment,
		Hold: r.Target.Hold, TargetUser: r.Target.User, Reason: r.Reason, Client: r.Client, Outcome: r.Outcome, Detail: r.Detail,
	}
	if !r.Target.From.IsZero() {
		out.From = timestamppb.New(r.Target.From)
	}
	if !r.Target.To.IsZero() {
		out.To = timestamppb.New(r.Target.To)
	}
	return out
}

// recordLogin writes the outcome of a login. A successful login is refused
// if it cannot be recorded.
func (s *Server) recordLogin(ctx context.Context, user string, u *users.User, err error) error {
	rec := audit.Record{
		Actor: audit.Actor{User: audit.Clip(user, 64)}, Action: actions.LoginOK, Outcome: audit.OutcomeOK,
		Client: audit.Clip(clientAddr(ctx), audit.MaxText), Target: audit.Target{User: audit.Clip(user, 64)},
	}
	if u != nil {
		rec.Actor = audit.Actor{User: u.Name, Role: string(u.Role), Designation: u.Designation}
	}
	if err != nil {
		rec.Action, rec.Outcome = actions.LoginFail, audit.OutcomeDenied
		rec.Detail = audit.Clip(strings.TrimPrefix(err.Error(), "users: "), audit.MaxDetail)
	}
	_, aerr := s.audit.Append(context.WithoutCancel(ctx), rec)
	if aerr != nil && !errors.Is(aerr, context.Canceled) {
		s.log.Error("audit log: login not recorded", "user", user, "error", aerr)
	}
	return aerr
}
