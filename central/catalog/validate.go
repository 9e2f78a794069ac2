package catalog

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-cctv/vigil/proto/actions"
	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/storage"
)

// Limits on what an agent may report. Protobuf decoding only checks the
// wire format; these check meaning, so that a buggy or hostile agent cannot
// plant a segment in another district, one lasting years, or status text of
// any length.
const (
	maxSegmentSpan = time.Hour
	maxRetention   = 7 * 24 * time.Hour
	maxText        = 1024
	maxHolds       = 64
)

// ErrInvalidReport means a report is well-formed protobuf but makes no sense.
var ErrInvalidReport = errors.New("invalid report")

var (
	journalActions = map[string]bool{
		actions.SegmentDeleted: true, actions.SegmentMissing: true, actions.SegmentFound: true,
		actions.SpoolQuarantined: true, actions.HoldApplied: true, actions.HoldReleased: true,
		actions.SegmentDeleteFailed: true, actions.StorageFull: true, actions.StorageResumed: true,
		actions.MaintenanceAccess: true, actions.AgentStarted: true, actions.SegmentTampered: true,
	}
	cameraStates  = map[string]bool{"connecting": true, "up": true, "down": true}
	deleteReasons = map[string]bool{"retention": true, "pressure": true, "missing": true}
	// "unplayable": an object in the agent's store that is not a playable
	// segment, indexed so that retention and holds reach it.
	segmentCodecs  = map[string]bool{"h264": true, "h265": true, "unplayable": true}
	earliestReport = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
)

// ValidateReport checks a report from the agent of district.
func ValidateReport(district string, r *agentv1.Report) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %d: %s", ErrInvalidReport, r.GetSeq(), fmt.Sprintf(format, args...))
	}
	if r.GetSeq() == 0 {
		return bad("no sequence number")
	}
	if _, err := checkTime("at", r.GetAt()); err != nil {
		return bad("%v", err)
	}
	switch body := r.Body.(type) {
	case *agentv1.Report_SegmentStored:
		if err := validateSegment(district, body.SegmentStored.GetSegment()); err != nil {
			return bad("segment stored: %v", err)
		}
	case *agentv1.Report_SegmentDeleted:
		d := body.SegmentDeleted
		if err := checkID(d.GetId()); err != nil {
			return bad("segment deleted: %v", err)
		}
		if err := storage.ValidateName("camera", d.GetCamera()); err != nil {
			return bad("segment deleted: %v", err)
		}
		if !deleteReasons[d.GetReason()] {
			return bad("segment deleted: unknown reason %q", clip(d.GetReason()))
		}
		if _, err := checkTime("deleted_at", d.GetDeletedAt()); err != nil {
			return bad("segment deleted: %v", err)
		}
	case *agentv1.Report_CameraStatus:
		c := body.CameraStatus
		if err := storage.ValidateName("camera", c.GetCamera()); err != nil {
			return bad("camera status: %v", err)
		}
		if !cameraStates[c.GetState()] {
			return bad("camera status: unknown state %q", clip(c.GetState()))
		}
		if _, err := checkTime("since", c.GetSince()); err != nil {
			return bad("camera status: %v", err)
		}
		if len(c.GetLastError()) > maxText || len(c.GetDetector()) > maxText || len(c.GetCodec()) > 16 {
			return bad("camera status: text too long")
		}
		if c.GetWidth() < 0 || c.GetHeight() < 0 || c.GetWidth() > 16384 || c.GetHeight() > 16384 {
			return bad("camera status: picture size %dx%d", c.GetWidth(), c.GetHeight())
		}
	case *agentv1.Report_Journal:
		j := body.Journal
		if j.GetSeq() == 0 {
			return bad("journal entry without a sequence number")
		}
		if !journalActions[j.GetAction()] {
			return bad("journal entry: unknown action %q", clip(j.GetAction()))
		}
		if j.GetCamera() != "" {
			if err := storage.ValidateName("camera", j.GetCamera()); err != nil {
				return bad("journal entry: %v", err)
			}
		}
		if j.GetSegment() != "" {
			if err := checkID(j.GetSegment()); err != nil {
				return bad("journal entry: %v", err)
			}
		}
		if len(j.GetDetail()) > 4096 {
			return bad("journal entry: detail too long")
		}
		if !isHash(j.GetHash()) || (j.GetPrev() != "" && !isHash(j.GetPrev())) || (j.GetPrev() == "") != (j.GetSeq() == 1) {
			return bad("journal entry: bad chain hashes")
		}
		if _, err := checkTime("time", j.GetTime()); err != nil {
			return bad("journal entry: %v", err)
		}
	case nil:
		return bad("empty body")
	default:
		return bad("unknown body %T", body)
	}
	return nil
}

func validateSegment(district string, s *agentv1.Segment) error {
	if s == nil {
		return errors.New("no segment")
	}
	if err := checkID(s.GetId()); err != nil {
		return err
	}
	if err := storage.ValidateName("camera", s.GetCamera()); err != nil {
		return err
	}
	start, err := checkTime("start", s.GetStart())
	if err != nil {
		return err
	}
	end, err := checkTime("end", s.GetEnd())
	if err != nil {
		return err
	}
	expires, err := checkTime("expires", s.GetExpires())
	if err != nil {
		return err
	}
	switch {
	case !end.After(start):
		return errors.New("does not end after it starts")
	case end.Sub(start) > maxSegmentSpan:
		return fmt.Errorf("lasts %s, more than any segment", end.Sub(start))
	case expires.Before(start) || expires.Sub(start) > maxRetention:
		return fmt.Errorf("expires %s after its start, outside 0-7d", expires.Sub(start))
	case s.GetBytes() < 0:
		return errors.New("negative size")
	case !segmentCodecs[s.GetCodec()]:
		return fmt.Errorf("unknown codec %q", clip(s.GetCodec()))
	case math.IsNaN(s.GetMotionScore()) || s.GetMotionScore() < 0 || s.GetMotionScore() > 1:
		return fmt.Errorf("motion score %v outside 0-1", s.GetMotionScore())
	case len(s.GetHeldBy()) > maxHolds:
		return fmt.Errorf("%d holds", len(s.GetHeldBy()))
	}
	if b, err := hex.DecodeString(s.GetSha256()); err != nil || len(b) != 32 {
		return errors.New("sha256 is not 64 hex characters")
	}
	for _, h := range s.GetHeldBy() {
		if h == "" || len(h) > 64 {
			return errors.New("bad hold id")
		}
	}
	// The key is derived, not trusted: an agent cannot name an object of
	// another district or camera.
	if want := storage.SegmentKey(district, s.GetCamera(), start, s.GetId()); s.GetKey() != want {
		return fmt.Errorf("key %q is not %q", clip(s.GetKey()), want)
	}
	return nil
}

func isHash(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 32
}

func checkID(id string) error {
	if b, err := hex.DecodeString(id); err != nil || len(b) != 8 {
		return fmt.Errorf("segment id %q is not 16 hex characters", clip(id))
	}
	return nil
}

func checkTime(name string, ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, fmt.Errorf("%s missing", name)
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, fmt.Errorf("%s: %v", name, err)
	}
	t := ts.AsTime()
	if t.Before(earliestReport) || t.After(time.Now().Add(366*24*time.Hour)) {
		return time.Time{}, fmt.Errorf("%s %s is implausible", name, t.Format(time.RFC3339))
	}
	return t, nil
}

// clip shortens text echoed in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
