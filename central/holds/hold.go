// Package holds is central's registry of judicial holds: what a judicial
// authority asked, through a responsible officer, to preserve beyond
// retention (cameras and a time span), kept durably in central's database
// with where each district's agent stands with it, and the deliverer that
// takes each hold to the agents concerned over their link until they
// acknowledge it.
//
// A hold is placed active, with every district concerned pending; an
// agent's acknowledgement makes its district applied (with the number of
// segments covered). Releasing a hold makes it released at once at
// central, and every district releasing until its agent acknowledges the
// release. Central never decides by itself that footage is held at a
// district: only an agent's acknowledgement does.
package holds

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"time"
)

// Errors of the registry, wrapped with what was wrong.
var (
	// ErrInvalid means a hold request (or a release) makes no sense: a
	// missing field, an inverted span, a malformed camera name.
	ErrInvalid = errors.New("invalid hold")
	// ErrUnknownCamera means a camera of the request is not one central
	// knows of: no agent has reported it.
	ErrUnknownCamera = errors.New("unknown camera")
	// ErrNotFound means there is no hold with that id.
	ErrNotFound = errors.New("no such hold")
	// ErrReleased means the hold was released already.
	ErrReleased = errors.New("hold already released")
	// ErrExists means a hold with the prepared id exists already.
	ErrExists = errors.New("hold id taken")
)

// State is where a hold stands at central.
type State string

// States of a hold.
const (
	StateActive   State = "active"
	StateReleased State = "released"
)

// AgentState is where a hold stands at one district.
type AgentState string

// States of a hold at a district.
const (
	// AgentPending: the hold was placed; the district's agent has not
	// acknowledged it (not delivered yet, agent offline, or it refused).
	AgentPending AgentState = "pending"
	// AgentApplied: the agent acknowledged the hold and holds its footage.
	AgentApplied AgentState = "applied"
	// AgentReleasing: the hold was released; the agent has not acknowledged
	// the release yet.
	AgentReleasing AgentState = "releasing"
	// AgentReleased: the agent acknowledged the release.
	AgentReleased AgentState = "released"
)

// Limits of a hold request.
const (
	// MaxAhead is how far into the future a hold may run: a preservation
	// order may cover footage not recorded yet, within reason.
	MaxAhead = 30 * 24 * time.Hour
	// MaxCameras bounds the cameras of one hold (its audit records carry
	// them all).
	MaxCameras = 64
	// Text bounds, in bytes of UTF-8.
	MaxAuthority = 256
	MaxCase      = 128
	MaxReason    = 1024
)

// earliestSpan is a sanity bound on a hold's start: no footage of this
// system predates it.
var earliestSpan = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// Hold is a judicial hold as central keeps it.
type Hold struct {
	ID        string `json:"id"`
	Authority string `json:"authority"`
	Case      string `json:"case"`
	Reason    string `json:"reason"`
	// Officer is the user who placed the hold.
	Officer string `json:"officer"`
	// Cameras are "district/camera", sorted, without duplicates.
	Cameras []string `json:"cameras"`
	// From and To are the span, to the second: segments overlapping
	// [From, To) are held.
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	PlacedAt time.Time `json:"placed_at"`
	State    State     `json:"state"`

	ReleasedAt    time.Time `json:"released_at,omitzero"`
	ReleasedBy    string    `json:"released_by,omitempty"`
	ReleaseReason string    `json:"release_reason,omitempty"`

	// Agents has one entry per district of the cameras, sorted.
	Agents []Agent `json:"agents"`
}

// Agent is where a hold stands at one district.
type Agent struct {
	District string     `json:"district"`
	State    AgentState `json:"state"`
	// Segments is the count the agent gave when it applied the hold.
	Segments  int64     `json:"segments"`
	UpdatedAt time.Time `json:"updated_at"`
	// Error is the last reason the delivery did not succeed ("" once it
	// did): the agent's refusal, or that it is not connected.
	Error string `json:"error,omitempty"`
}

// Districts returns the districts of the hold's cameras, sorted.
func (h Hold) Districts() []string {
	out := make([]string, 0, len(h.Agents))
	for _, a := range h.Agents {
		out = append(out, a.District)
	}
	return out
}

// CamerasOf returns the camera ids (without the district) the hold names in
// district.
func (h Hold) CamerasOf(district string) []string {
	var out []string
	for _, c := range h.Cameras {
		if d, cam, _ := strings.Cut(c, "/"); d == district {
			out = append(out, cam)
		}
	}
	return out
}

// Names reports whether the hold names the camera district/camera.
func (h Hold) Names(district, camera string) bool {
	return slices.Contains(h.Cameras, district+"/"+camera)
}

// Covers reports whether the hold, while active, covers a segment of
// district/camera spanning [start, end): it names the camera and the
// segment overlaps its span.
func (h Hold) Covers(district, camera string, start, end time.Time) bool {
	return h.State == StateActive && h.Names(district, camera) && start.Before(h.To) && end.After(h.From)
}

// Agent returns the hold's entry for district.
func (h Hold) Agent(district string) (Agent, bool) {
	for _, a := range h.Agents {
		if a.District == district {
			return a, true
		}
	}
	return Agent{}, false
}

// agent returns a pointer to the hold's entry for district, nil if the hold
// does not concern it.
func (h *Hold) agent(district string) *Agent {
	for i := range h.Agents {
		if h.Agents[i].District == district {
			return &h.Agents[i]
		}
	}
	return nil
}

// Scoped returns the hold as seen by someone who may see only the
// districts for which inScope is true: cameras and agents of other
// districts left out. ok is false when the hold concerns none of them.
func (h Hold) Scoped(inScope func(district string) bool) (Hold, bool) {
	out := h
	out.Cameras, out.Agents = nil, nil
	for _, c := range h.Cameras {
		if d, _, _ := strings.Cut(c, "/"); inScope(d) {
			out.Cameras = append(out.Cameras, c)
		}
	}
	for _, a := range h.Agents {
		if inScope(a.District) {
			out.Agents = append(out.Agents, a)
		}
	}
	return out, len(out.Agents) > 0
}

// Waiting reports whether the hold waits for district's agent: to apply it
// (pending) or to release it (releasing).
func (h Hold) Waiting(district string) bool {
	a, ok := h.Agent(district)
	return ok && (a.State == AgentPending || a.State == AgentReleasing)
}

// newID returns a fresh hold id: "h-" and 12 hex digits, short enough to
// read out on the phone to a magistrate's office.
func newID() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("holds: crypto/rand failed: " + err.Error())
	}
	return "h-" + hex.EncodeToString(b[:])
}

// ValidID reports whether id has the form of a hold id.
func ValidID(id string) bool {
	rest, ok := strings.CutPrefix(id, "h-")
	if !ok || len(rest) != 12 {
		return false
	}
	_, err := hex.DecodeString(rest)
	return err == nil && strings.ToLower(rest) == rest
}
