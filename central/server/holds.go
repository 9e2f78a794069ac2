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
	"github.com/vigil-cctv/vigil/central/authz"
	"github.com/vigil-cctv/vigil/central/holds"
	"github.com/vigil-cctv/vigil/central/users"
	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

// preparedHoldKey carries a validated hold from the gate (prepare) to
// PlaceHold, so that the hold stored is the one recorded.
type preparedHoldKey struct{}

// prepare checks a change before the gate records it, and returns the
// records to write for it (rec, the request's record, for requests that
// are not such changes). An error is a refusal: nothing was changed.
func (s *Server) prepare(ctx context.Context, u users.User, method string, req any, rec audit.Record) (context.Context, []audit.Record, error) {
	switch r := req.(type) {
	case *opsv1.PlaceHoldRequest:
		p, err := s.preparePlace(u, method, r)
		if err != nil {
			return ctx, nil, err
		}
		h := p.Hold()
		return context.WithValue(ctx, preparedHoldKey{}, p), holdRecords(rec, h, h.Reason, "placed by "+h.Officer), nil
	case *opsv1.ReleaseHoldRequest:
		h, reason, err := s.prepareRelease(u, method, r)
		if err != nil {
			return ctx, nil, err
		}
		return ctx, holdRecords(rec, h, reason, fmt.Sprintf("placed by %s on %s for %q; released by %s",
			h.Officer, h.PlacedAt.UTC().Format(time.RFC3339), h.Reason, u.Name)), nil
	}
	return ctx, []audit.Record{rec}, nil
}

func (s *Server) preparePlace(u users.User, method string, r *opsv1.PlaceHoldRequest) (holds.Prepared, error) {
	// The officer's districts first: an officer of one district learns
	// nothing of another's cameras.
	for _, c := range r.GetCameras() {
		if d, _, ok := strings.Cut(c, "/"); ok && d != "" {
			if err := authz.AuthorizeDistrict(u, method, d); err != nil {
				return holds.Prepared{}, denied(err)
			}
		}
	}
	from, err := requestTime("from", r.GetFrom())
	if err != nil {
		return holds.Prepared{}, err
	}
	to, err := requestTime("to", r.GetTo())
	if err != nil {
		return holds.Prepared{}, err
	}
	p, err := s.holds.Prepare(holds.Request{
		Cameras: r.GetCameras(), From: from, To: to, Authority: r.GetAuthority(), Case: r.GetCaseRef(),
		Reason: r.GetReason(), Officer: u.Name,
	})
	if err != nil {
		return holds.Prepared{}, holdError(err)
	}
	return p, nil
}

func (s *Server) prepareRelease(u users.User, method string, r *opsv1.ReleaseHoldRequest) (holds.Hold, string, error) {
	if !holds.ValidID(r.GetId()) {
		return holds.Hold{}, "", status.Errorf(codes.InvalidArgument, "hold id %q: want h- and 12 hex digits", audit.Clip(r.GetId(), 64))
	}
	h, err := s.holds.Get(r.GetId())
	if err != nil {
		return holds.Hold{}, "", holdError(err)
	}
	// Releasing lets footage of every district of the hold expire: the
	// officer must have them all.
	for _, d := range h.Districts() {
		if err := authz.AuthorizeDistrict(u, method, d); err != nil {
			return holds.Hold{}, "", denied(err)
		}
	}
	if h, err = s.holds.CheckRelease(r.GetId(), r.GetReason()); err != nil {
		return holds.Hold{}, "", holdError(err)
	}
	reason, _ := holds.CheckReason(r.GetReason())
	return h, reason, nil
}

// holdRecords are the audit records of a hold placed or released: one per
// camera, so that the log can be searched by camera and district, each
// with every field of the hold.
func holdRecords(rec audit.Record, h holds.Hold, reason, how string) []audit.Record {
	recs := make([]audit.Record, 0, len(h.Cameras))
	for i, c := range h.Cameras {
		d, cam, _ := strings.Cut(c, "/")
		r := rec
		r.Target = audit.Target{District: d, Camera: cam, Hold: h.ID, From: h.From, To: h.To}
		r.Reason = audit.Clip(reason, audit.MaxText)
		r.Detail = audit.Clip(fmt.Sprintf("hold %s %s; authority %q; case %q; span %s to %s; camera %d of %d: %s",
			h.ID, how, h.Authority, h.Case, h.From.UTC().Format(time.RFC3339), h.To.UTC().Format(time.RFC3339),
			i+1, len(h.Cameras), strings.Join(h.Cameras, ",")), audit.MaxDetail)
		recs = append(recs, r)
	}
	return recs
}

// requestTime is a required timestamp of a request.
func requestTime(name string, ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, status.Errorf(codes.InvalidArgument, "%s is required", name)
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, status.Errorf(codes.InvalidArgument, "%s: %v", name, err)
	}
	return ts.AsTime(), nil
}

// holdError maps the registry's errors to gRPC codes.
func holdError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "holds: ")
	switch {
	case errors.Is(err, holds.ErrInvalid), errors.Is(err, holds.ErrUnknownCamera):
		return status.Error(codes.InvalidArgument, msg)
	case errors.Is(err, holds.ErrNotFound):
		return status.Error(codes.NotFound, msg)
	case errors.Is(err, holds.ErrReleased):
		return status.Error(codes.FailedPrecondition, msg)
	}
	return status.Error(codes.Internal, err.Error())
}

func (o *opsService) PlaceHold(ctx context.Context, _ *opsv1.PlaceHoldRequest) (*opsv1.PlaceHoldResponse, error) {
	p, ok := ctx.Value(preparedHoldKey{}).(holds.Prepared)
	if !ok {
		return nil, status.Error(codes.Internal, "hold not prepared by the gate")
	}
	h, err := o.s.holds.Place(p)
	if err != nil {
		return nil, holdError(err)
	}
	for _, d := range h.Districts() {
		o.s.delivery.Kick(d)
	}
	return &opsv1.PlaceHoldResponse{Hold: o.s.holdToProto(h)}, nil
}

func (o *opsService) ReleaseHold(ctx context.Context, req *opsv1.ReleaseHoldRequest) (*opsv1.ReleaseHoldResponse, error) {
	h, err := o.s.holds.Release(req.GetId(), callerOf(ctx).user.Name, req.GetReason())
	if err != nil {
		return nil, holdError(err)
	}
	for _, d := range h.Districts() {
		o.s.delivery.Kick(d)
	}
	return &opsv1.ReleaseHoldResponse{Hold: o.s.holdToProto(h)}, nil
}

func (o *opsService) ListHolds(ctx context.Context, req *opsv1.ListHoldsRequest) (*opsv1.ListHoldsResponse, error) {
	list, err := o.s.holds.List(req.GetAll())
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	u := callerOf(ctx).user
	resp := &opsv1.ListHoldsResponse{}
	for _, h := range list {
		if h, ok := h.Scoped(u.InScope); ok {
			resp.Holds = append(resp.Holds, o.s.holdToProto(h))
		}
	}
	return resp, nil
}

func (o *opsService) GetHold(ctx context.Context, req *opsv1.GetHoldRequest) (*opsv1.GetHoldResponse, error) {
	if !holds.ValidID(req.GetId()) {
		return nil, status.Errorf(codes.InvalidArgument, "hold id %q: want h- and 12 hex digits", audit.Clip(req.GetId(), 64))
	}
	h, err := o.s.holds.Get(req.GetId())
	if err != nil {
		return nil, holdError(err)
	}
	u := callerOf(ctx).user
	h, ok := h.Scoped(u.InScope)
	if !ok {
		return nil, status.Errorf(codes.PermissionDenied, "hold %s concerns no district of %s (limited to %s)", h.ID, u.Name, strings.Join(u.Districts, ","))
	}
	return &opsv1.GetHoldResponse{Hold: o.s.holdToProto(h)}, nil
}

// holdToProto is the hold as the API shows it; a district still pending
// says from when footage of the span may expire there.
func (s *Server) holdToProto(h holds.Hold) *opsv1.Hold {
	out := &opsv1.Hold{
		Id: h.ID, State: string(h.State), Authority: h.Authority, CaseRef: h.Case, Reason: h.Reason,
		Cameras: h.Cameras, From: timestamppb.New(h.From), To: timestamppb.New(h.To), Officer: h.Officer,
		PlacedAt: timestamppb.New(h.PlacedAt), ReleasedBy: h.ReleasedBy, ReleaseReason: h.ReleaseReason,
	}
	if !h.ReleasedAt.IsZero() {
		out.ReleasedAt = timestamppb.New(h.ReleasedAt)
	}
	for _, a := range h.Agents {
		pa := &opsv1.HoldAgent{District: a.District, State: string(a.State), Segments: a.Segments, Error: a.Error}
		if !a.UpdatedAt.IsZero() {
			pa.UpdatedAt = timestamppb.New(a.UpdatedAt)
		}
		if a.State == holds.AgentPending {
			if t, ok := s.firstExpiry(h, a.District); ok {
				pa.FirstExpiry = timestamppb.New(t)
			}
		}
		out.Agents = append(out.Agents, pa)
	}
	return out
}

// firstExpiry is the earliest expiry of footage of the hold's span at
// district that central's catalog knows of.
func (s *Server) firstExpiry(h holds.Hold, district string) (time.Time, bool) {
	var first time.Time
	found := false
	for _, cam := range h.CamerasOf(district) {
		t, ok, err := s.catalog.EarliestExpiry(district, cam, h.From, h.To)
		if err != nil {
			s.log.Error("earliest expiry of a hold's footage", "hold", h.ID, "district", district, "camera", cam, "error", err)
			continue
		}
		if ok && (!found || t.Before(first)) {
			first, found = t, true
		}
	}
	return first, found
}

// Retention report tuning.
const (
	// defaultRetention is the retention assumed for a camera whose agent
	// has not reported one: the legal maximum.
	defaultRetention = 7 * 24 * time.Hour
	// deletionGrace is how late after expiry a segment may still exist
	// (DESIGN.md invariant 1: deleted within 60 s).
	deletionGrace = 60 * time.Second
	// defaultReportSpan is the period of a report that names no start.
	defaultReportSpan = 7 * 24 * time.Hour
)

func (o *opsService) RetentionReport(ctx context.Context, req *opsv1.RetentionReportRequest) (*opsv1.RetentionReportResponse, error) {
	s := o.s
	now := s.opts.Now()
	since := validTime(req.GetSince())
	if since.IsZero() {
		since = now.Add(-defaultReportSpan)
	}
	u := callerOf(ctx).user
	agents, err := s.registry.Agents()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	relevant, err := s.holds.Relevant(since)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	var active []holds.Hold
	for _, h := range relevant {
		if h.State == holds.StateActive {
			active = append(active, h)
		}
	}
	resp := &opsv1.RetentionReportResponse{GeneratedAt: timestamppb.New(now)}
	for _, a := range agents {
		if !u.InScope(a.District) {
			continue
		}
		cams, err := s.cameraRetention(a.District, a.Cameras, active, now)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		for _, c := range cams {
			if !a.LastSeen.IsZero() {
				c.AsOf = timestamppb.New(a.LastSeen)
			}
		}
		resp.Cameras = append(resp.Cameras, cams...)
		days, err := s.deletionsPerDay(a.District, since)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		resp.Deletions = append(resp.Deletions, days...)
	}
	for _, h := range relevant {
		if h, ok := h.Scoped(u.InScope); ok {
			resp.Holds = append(resp.Holds, s.holdToProto(h))
		}
	}
	return resp, nil
}

// cameraRetention is the retention evidence of each camera central knows of
// in district, by camera.
func (s *Server) cameraRetention(district string, statuses []*agentv1.CameraStatus, active []holds.Hold, now time.Time) ([]*opsv1.CameraRetention, error) {
	retention := map[string]time.Duration{}
	for _, st := range statuses {
		retention[st.GetCamera()] = time.Duration(st.GetRetentionSeconds()) * time.Second
	}
	cameras, err := s.registry.KnownCameras(district)
	if err != nil {
		return nil, err
	}
	var out []*opsv1.CameraRetention
	for _, cam := range cameras {
		keep := retention[cam]
		if keep <= 0 {
			keep = defaultRetention
		}
		cr := &opsv1.CameraRetention{District: district, Camera: cam, RetentionSeconds: int64(keep / time.Second), Compliant: true}
		var covering []holds.Hold
		for _, h := range active {
			if h.Names(district, cam) {
				covering = append(covering, h)
				cr.Holds = append(cr.Holds, h.ID)
			}
		}
		held := func(seg *agentv1.Segment) bool {
			for _, h := range covering {
				if h.Covers(district, cam, seg.GetStart().AsTime(), seg.GetEnd().AsTime()) {
					return true
				}
			}
			return false
		}
		oldest, err := s.catalog.OldestSegment(district, cam, held)
		if err != nil {
			return nil, err
		}
		if oldest != nil {
			age := now.Sub(oldest.GetStart().AsTime())
			cr.OldestUnheld = oldest.GetStart()
			cr.OldestUnheldAgeSeconds = int64(age / time.Second)
			cr.Compliant = age <= keep+deletionGrace
		}
		n, err := s.catalog.CountSegments(district, cam)
		if err != nil {
			return nil, err
		}
		cr.Segments = int64(n)
		// Segments under several holds count once.
		seen := map[string]bool{}
		for _, h := range covering {
			err := s.catalog.EachInSpan(district, cam, h.From, h.To, func(seg *agentv1.Segment) error {
				seen[seg.GetId()] = true
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
		cr.HeldSegments = int64(len(seen))
		out = append(out, cr)
	}
	return out, nil
}

// deletionsPerDay counts a district's deletions since since per UTC day,
// camera and reason.
func (s *Server) deletionsPerDay(district string, since time.Time) ([]*opsv1.DayDeletions, error) {
	dels, err := s.catalog.Deletions(district, since)
	if err != nil {
		return nil, err
	}
	type key struct{ day, camera string }
	days := map[key]*opsv1.DayDeletions{}
	for _, d := range dels {
		k := key{d.DeletedAt.UTC().Format(time.DateOnly), d.Camera}
		dd := days[k]
		if dd == nil {
			dd = &opsv1.DayDeletions{Day: k.day, District: district, Camera: d.Camera}
			days[k] = dd
		}
		switch d.Reason {
		case "retention":
			dd.Retention++
		case "pressure":
			dd.Pressure++
		default:
			dd.Other++
		}
	}
	out := make([]*opsv1.DayDeletions, 0, len(days))
	for _, dd := range days {
		out = append(out, dd)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].GetDay() != out[j].GetDay() {
			return out[i].GetDay() < out[j].GetDay()
		}
		return out[i].GetCamera() < out[j].GetCamera()
	})
	return out, nil
}
