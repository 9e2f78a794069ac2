// Package actions is the one table of the action codes recorded in the
// access audit log: by central for what people do, by agents (through their
// chained district log) for what happens at the district. A code is written
// before the action it names is carried out, with the outcome of the
// authorisation (ok or denied); an action that then fails is recorded again
// with outcome failed. Codes are part of the audit contract: never rename
// one, add new ones.
package actions

// People, recorded at central.
const (
	// LoginOK: a user logged in. Actor is the user.
	LoginOK = "login.ok"
	// LoginFail: a login was refused (bad password, unknown or disabled
	// user, throttled, second-factor code missing or wrong). Actor.User is
	// the name given; Detail the reason.
	LoginFail = "login.fail"
	// Logout: a user ended their session.
	Logout = "logout"
	// AccessDenied: an authenticated request was refused by authorisation.
	// Detail names the method; Target what it asked for.
	AccessDenied = "access.denied"

	// LiveStart and LiveStop: an operator started or stopped watching a
	// camera live. Target.District and Camera.
	LiveStart = "live.start"
	LiveStop  = "live.stop"
	// RecordingsList: the recordings of a camera were listed (metadata).
	// Target.District, Camera, From and To.
	RecordingsList = "recording.list"
	// RecordingView: a recorded segment was opened, with the reason stated.
	// Target.District, Camera, Segment, From, To; Reason.
	RecordingView = "recording.view"
	// ExportCreate: held footage was exported for the judicial authority.
	// Target.Hold and the span.
	ExportCreate = "export.create"
	// HoldPlace and HoldRelease: a judicial hold placed or released by a
	// responsible officer. Target.Hold, District, Camera, From, To; Detail
	// the authority and case reference; Reason.
	HoldPlace   = "hold.place"
	HoldRelease = "hold.release"
	// HoldList and HoldShow: holds were read. Target.Hold for HoldShow.
	HoldList = "hold.list"
	HoldShow = "hold.show"
	// RetentionReport: the retention evidence report was read.
	RetentionReport = "retention.report"

	// UserAdd, UserDisable, UserPassword: user management. Target.User.
	UserAdd      = "user.add"
	UserDisable  = "user.disable"
	UserPassword = "user.passwd"
	// UserList: the users were listed. UserWhoAmI: a user asked who they
	// are logged in as.
	UserList   = "user.list"
	UserWhoAmI = "user.whoami"
	// UserTOTP: a user's second factor (TOTP) was changed. Target.User;
	// Detail "enrol" (a pending secret made), "confirm" (it took effect)
	// or "disable" (removed, by the user or an administrator). The secret
	// itself is never recorded.
	UserTOTP = "user.totp"

	// AgentToken: an enrolment token was created. Target.District.
	AgentToken = "agent.token"
	// AgentsList: the agents' status was read.
	AgentsList = "agent.list"
	// AgentChain: a gap or a break in an agent's chained district log;
	// Detail says which entries. Actor is the agent.
	AgentChain = "agent.chain"

	// AuditRead, AuditCheckpoint, AuditExport, AuditReport: auditors' own
	// reads of the log are recorded too.
	AuditRead       = "audit.read"
	AuditCheckpoint = "audit.checkpoint"
	AuditExport     = "audit.export"
	AuditReport     = "audit.report"
)

// The district, recorded by its agent in its chained log and linked into
// central's audit log with the agent (agent:DISTRICT) as actor.
const (
	// SegmentDeleted: a segment was destroyed. Target Camera and Segment;
	// Detail the cause (retention, disk pressure).
	SegmentDeleted = "segment.deleted"
	// SegmentMissing and SegmentFound: the store lost an indexed segment,
	// or it came back.
	SegmentMissing = "segment.missing"
	SegmentFound   = "segment.found"
	// SpoolQuarantined: a spool file that is not a segment was moved aside.
	SpoolQuarantined = "spool.quarantined"
	// HoldApplied and HoldReleased: a judicial hold took effect at the
	// district, or ended there.
	HoldApplied  = "hold.applied"
	HoldReleased = "hold.released"
	// MaintenanceAccess: someone used the agent's local socket on the
	// district server (recordings listed locally). Detail: who (uid, pid)
	// and what.
	MaintenanceAccess = "maintenance.access"
	// AgentStarted: the agent started.
	AgentStarted = "agent.start"
	// SegmentDeleteFailed: the store refused or failed to destroy an
	// expired segment; it is retried and an alarm is raised. Detail: why.
	SegmentDeleteFailed = "segment.delete_failed"
	// SegmentTampered: a segment asked for viewing did not match the
	// SHA-256 recorded when it was stored (altered or corrupted in the
	// store). It was not served; an alarm is raised. Detail: both hashes.
	SegmentTampered = "segment.tampered"
	// StorageFull: only held footage is left and the store is above its
	// high watermark: new segments are not written. StorageResumed: writing
	// started again.
	StorageFull    = "storage.full"
	StorageResumed = "storage.resumed"
)
