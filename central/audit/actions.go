package audit

// Action codes: the one table of what the log records. A code is written
// before the action it names is carried out, with the outcome of the
// authorisation (ok or denied); an action that then fails may be recorded
// again with outcome failed or error. Append accepts any code of
// the same form, so that a new one needs no migration, but every code the
// system writes belongs here, with what its Target holds.
const (
	// ActionLoginOK: a user logged in. Target.User is the user.
	ActionLoginOK = "login.ok"
	// ActionLoginFail: a login was refused (bad password, unknown or
	// disabled user, throttled). Actor.User is the name given.
	ActionLoginFail = "login.fail"
	// ActionLogout: a user ended their session.
	ActionLogout = "logout"
	// ActionAccessDenied: a request was refused by authorisation, for
	// methods that have no more specific code. Detail names the method.
	ActionAccessDenied = "access.denied"

	// ActionLiveStart and ActionLiveStop: an operator started or stopped
	// watching a camera live. Target.District and Camera.
	ActionLiveStart = "live.start"
	ActionLiveStop  = "live.stop"
	// ActionRecordingList: recordings of a camera were listed (metadata
	// only). Target.District, Camera, From and To.
	ActionRecordingList = "recording.list"
	// ActionRecordingView: a recorded segment was opened for viewing, with
	// the Reason stated. Target.District, Camera, Segment, From, To.
	ActionRecordingView = "recording.view"

	// ActionExportCreate: held footage was exported for the judicial
	// authority. Target.Hold, and the span.
	ActionExportCreate = "export.create"

	// ActionHoldPlace and ActionHoldRelease: a judicial hold was placed or
	// released by a responsible officer. Target.Hold, District, Camera
	// (comma-separated when several), From, To; Detail the authority and
	// case reference.
	ActionHoldPlace   = "hold.place"
	ActionHoldRelease = "hold.release"
	// ActionHoldApplied: an agent reported a hold applied to its footage.
	ActionHoldApplied = "hold.applied"

	// ActionUserAdd, ActionUserDisable, ActionUserPasswd: user management.
	// Target.User is the user concerned.
	ActionUserAdd     = "user.add"
	ActionUserDisable = "user.disable"
	ActionUserPasswd  = "user.passwd"

	// ActionAgentToken: an enrolment token was created for a district.
	ActionAgentToken = "agent.token"
	// ActionAgentEnroll: an agent enrolled. Target.District.
	ActionAgentEnroll = "agent.enroll"
	// ActionAgentConnect and ActionAgentDisconnect: an agent's link came up
	// or went down.
	ActionAgentConnect    = "agent.connect"
	ActionAgentDisconnect = "agent.disconnect"
	// ActionAgentGap: an agent's hash-chained local log has a gap or a
	// break; Detail says which entries.
	ActionAgentGap = "agent.gap"
	// ActionAgentMaintenance: a maintenance access at the district,
	// reported by its agent.
	ActionAgentMaintenance = "agent.maintenance"

	// ActionCameraChange: a camera was added, changed or removed.
	ActionCameraChange = "camera.change"

	// ActionSegmentDeleted: an agent reported a segment deleted (retention,
	// disk pressure). Target.District, Camera, Segment, From, To; Reason the
	// cause.
	ActionSegmentDeleted = "segment.deleted"

	// ActionAuditRead, ActionAuditVerify, ActionAuditCheckpoint,
	// ActionAuditReport: auditors' own reads of the log are recorded too.
	ActionAuditRead       = "audit.read"
	ActionAuditVerify     = "audit.verify"
	ActionAuditCheckpoint = "audit.checkpoint"
	ActionAuditReport     = "audit.report"
)
