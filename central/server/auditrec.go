package server

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-cctv/vigil/central/audit"
	"github.com/vigil-cctv/vigil/proto/actions"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

// methodActions maps every RPC of the CLI API to the action code it is
// recorded under. A method missing here is recorded as access.denied when
// refused and under its method name otherwise; TestEveryMethodHasAnAction
// keeps the table complete.
var methodActions = map[string]string{
	opsv1.Ops_Login_FullMethodName:                 actions.LoginOK,
	opsv1.Ops_Logout_FullMethodName:                actions.Logout,
	opsv1.Ops_WhoAmI_FullMethodName:                actions.UserWhoAmI,
	opsv1.Ops_CreateEnrollmentToken_FullMethodName: actions.AgentToken,
	opsv1.Ops_ListAgents_FullMethodName:            actions.AgentsList,
	opsv1.Ops_ListRecordings_FullMethodName:        actions.RecordingsList,
	opsv1.Ops_AddUser_FullMethodName:               actions.UserAdd,
	opsv1.Ops_ListUsers_FullMethodName:             actions.UserList,
	opsv1.Ops_DisableUser_FullMethodName:           actions.UserDisable,
	opsv1.Ops_SetPassword_FullMethodName:           actions.UserPassword,
	opsv1.Ops_EnrollTOTP_FullMethodName:            actions.UserTOTP,
	opsv1.Ops_ConfirmTOTP_FullMethodName:           actions.UserTOTP,
	opsv1.Ops_DisableTOTP_FullMethodName:           actions.UserTOTP,
	opsv1.Ops_AuditLog_FullMethodName:              actions.AuditRead,
	opsv1.Ops_AuditCheckpoint_FullMethodName:       actions.AuditCheckpoint,
	opsv1.Ops_AuditRecords_FullMethodName:          actions.AuditExport,
	opsv1.Ops_AuditReport_FullMethodName:           actions.AuditReport,
	opsv1.Ops_PlaceHold_FullMethodName:             actions.HoldPlace,
	opsv1.Ops_ReleaseHold_FullMethodName:           actions.HoldRelease,
	opsv1.Ops_ListHolds_FullMethodName:             actions.HoldList,
	opsv1.Ops_GetHold_FullMethodName:               actions.HoldShow,
	opsv1.Ops_RetentionReport_FullMethodName:       actions.RetentionReport,
}

// auditRecordFor is the record of a request, before its outcome is known:
// the action, what it targets, where it comes from.
func auditRecordFor(ctx context.Context, method string, req any) audit.Record {
	action, ok := methodActions[method]
	if !ok {
		action = actions.AccessDenied
	}
	rec := audit.Record{Action: action, Client: audit.Clip(clientAddr(ctx), audit.MaxText)}
	t := &rec.Target
	switch r := req.(type) {
	case *opsv1.ListRecordingsRequest:
		t.District, t.Camera = audit.Clip(r.GetDistrict(), 64), audit.Clip(r.GetCamera(), 64)
		t.From, t.To = validTime(r.GetFrom()), validTime(r.GetTo())
	case *opsv1.CreateEnrollmentTokenRequest:
		t.District = audit.Clip(r.GetDistrict(), 64)
	case *opsv1.AddUserRequest:
		t.User = audit.Clip(r.GetName(), 64)
		rec.Detail = audit.Clip("role "+r.GetRole()+", designation "+r.GetDesignation(), audit.MaxDetail)
	case *opsv1.DisableUserRequest:
		t.User = audit.Clip(r.GetName(), 64)
	case *opsv1.SetPasswordRequest:
		t.User = audit.Clip(r.GetName(), 64)
	case *opsv1.EnrollTOTPRequest:
		t.User, rec.Detail = audit.Clip(r.GetName(), 64), "enrol"
	case *opsv1.ConfirmTOTPRequest:
		// Not the code: a record must not help anyone log in.
		t.User, rec.Detail = audit.Clip(r.GetName(), 64), "confirm"
	case *opsv1.DisableTOTPRequest:
		t.User, rec.Detail = audit.Clip(r.GetName(), 64), "disable"
	case *opsv1.AuditLogRequest:
		t.District, t.Camera = audit.Clip(r.GetDistrict(), 64), audit.Clip(r.GetCamera(), 64)
		t.From, t.To = validTime(r.GetSince()), validTime(r.GetUntil())
		rec.Detail = audit.Clip("actor "+r.GetActor()+", action "+r.GetAction(), audit.MaxDetail)
	case *opsv1.AuditReportRequest:
		t.From = validTime(r.GetSince())
	case *opsv1.PlaceHoldRequest:
		// What was asked, as asked: a refusal is recorded with it. An
		// accepted hold is recorded once per camera (holdRecords).
		if cams := r.GetCameras(); len(cams) > 0 {
			d, c, _ := strings.Cut(cams[0], "/")
			t.District, t.Camera = audit.Clip(d, 64), audit.Clip(c, 64)
		}
		t.From, t.To = validTime(r.GetFrom()), validTime(r.GetTo())
		rec.Reason = audit.Clip(r.GetReason(), audit.MaxText)
		rec.Detail = audit.Clip(fmt.Sprintf("authority %q; case %q; cameras %s", r.GetAuthority(), r.GetCaseRef(),
			strings.Join(r.GetCameras(), ",")), audit.MaxDetail)
	case *opsv1.ReleaseHoldRequest:
		t.Hold = audit.Clip(r.GetId(), 64)
		rec.Reason = audit.Clip(r.GetReason(), audit.MaxText)
	case *opsv1.GetHoldRequest:
		t.Hold = audit.Clip(r.GetId(), 64)
	case *opsv1.ListHoldsRequest:
		if r.GetAll() {
			rec.Detail = "released holds included"
		}
	case *opsv1.RetentionReportRequest:
		t.From = validTime(r.GetSince())
	}
	return rec
}

// requestAccount is the user a request on one account acts on, "" for
// requests of other kinds (which then match nobody's own account).
func requestAccount(req any) string {
	switch r := req.(type) {
	case *opsv1.SetPasswordRequest:
		return r.GetName()
	case *opsv1.EnrollTOTPRequest:
		return r.GetName()
	case *opsv1.ConfirmTOTPRequest:
		return r.GetName()
	case *opsv1.DisableTOTPRequest:
		return r.GetName()
	}
	return ""
}

// requestDistrict is the district a request acts on, "" for none.
func requestDistrict(req any) string {
	switch r := req.(type) {
	case *opsv1.ListRecordingsRequest:
		return r.GetDistrict()
	case *opsv1.CreateEnrollmentTokenRequest:
		return r.GetDistrict()
	}
	return ""
}

// requestNamesDistrict reports whether the request type carries a district
// field at all (an empty one is then out of every scope).
func requestNamesDistrict(req any) bool {
	switch req.(type) {
	case *opsv1.ListRecordingsRequest, *opsv1.CreateEnrollmentTokenRequest:
		return true
	}
	return false
}

// validTime is the time of ts, zero when it is missing or invalid.
func validTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil || ts.CheckValid() != nil {
		return time.Time{}
	}
	return ts.AsTime()
}
