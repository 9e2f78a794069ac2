package holds

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/vigil-cctv/vigil/storage"
)

// bucketHolds maps a hold id to the hold (JSON). Holds are few (a handful
// a month), so listings read them all.
var bucketHolds = []byte("holds.holds")

// Config configures a Store.
type Config struct {
	// DB is central's database; the store keeps its bucket there.
	DB *bolt.DB
	// KnownCameras returns the camera ids central knows of in a district
	// (from its agent's reports); a hold may name only those.
	KnownCameras func(district string) ([]string, error)
	Now          func() time.Time
	Logger       *slog.Logger
}

// CheckAndSetDefaults checks the configuration and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.DB == nil {
		return errors.New("holds: DB is required")
	}
	if c.KnownCameras == nil {
		return errors.New("holds: KnownCameras is required")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Store is the durable registry of holds. It is safe for concurrent use:
// every change is one bbolt transaction.
type Store struct {
	cfg Config
	log *slog.Logger
}

// New opens the registry in cfg.DB, creating its bucket.
func New(cfg Config) (*Store, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	err := cfg.DB.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketHolds)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("holds: %w", err)
	}
	return &Store{cfg: cfg, log: cfg.Logger.With("component", "holds")}, nil
}

// Request is what an officer asks for.
type Request struct {
	// Cameras are "district/camera".
	Cameras   []string
	From, To  time.Time
	Authority string
	Case      string
	Reason    string
	// Officer is the user placing the hold.
	Officer string
}

// Prepared is a validated hold, with its id, not stored yet: its audit
// record is written between Prepare and Place.
type Prepared struct{ hold Hold }

// Hold returns the hold as it will be stored.
func (p Prepared) Hold() Hold { return p.hold }

// ParseCamera splits "district/camera" and checks both names.
func ParseCamera(s string) (district, camera string, err error) {
	district, camera, ok := strings.Cut(s, "/")
	if !ok {
		return "", "", fmt.Errorf("%w: camera %q: want DISTRICT/CAMERA", ErrInvalid, clip(s))
	}
	if err := storage.ValidateName("district", district); err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := storage.ValidateName("camera", camera); err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return district, camera, nil
}

// Prepare validates a request and returns the hold it would place, with a
// fresh id, every district pending. It changes nothing.
func (s *Store) Prepare(req Request) (Prepared, error) {
	now := s.cfg.Now()
	authority, err := checkText("authority", req.Authority, MaxAuthority)
	if err != nil {
		return Prepared{}, err
	}
	caseRef, err := checkText("case", req.Case, MaxCase)
	if err != nil {
		return Prepared{}, err
	}
	reason, err := checkText("reason", req.Reason, MaxReason)
	if err != nil {
		return Prepared{}, err
	}
	if req.Officer == "" {
		return Prepared{}, fmt.Errorf("%w: no officer", ErrInvalid)
	}
	from, to, err := checkSpan(req.From, req.To, now)
	if err != nil {
		return Prepared{}, err
	}
	cameras, err := s.checkCameras(req.Cameras)
	if err != nil {
		return Prepared{}, err
	}
	h := Hold{
		ID: newID(), Authority: authority, Case: caseRef, Reason: reason, Officer: req.Officer,
		Cameras: cameras, From: from, To: to, PlacedAt: now, State: StateActive,
	}
	for _, c := range cameras {
		d, _, _ := strings.Cut(c, "/")
		if h.agent(d) == nil {
			h.Agents = append(h.Agents, Agent{District: d, State: AgentPending, UpdatedAt: now})
		}
	}
	return Prepared{hold: h}, nil
}

// checkSpan rounds the span outward to whole seconds (a hold "to now"
// keeps the last fraction of a second too) and checks it.
func checkSpan(from, to, now time.Time) (time.Time, time.Time, error) {
	if from.IsZero() || to.IsZero() {
		return time.Time{}, time.Time{}, fmt.Errorf("%w: a span needs both from and to", ErrInvalid)
	}
	if !from.Before(to) {
		return time.Time{}, time.Time{}, fmt.Errorf("%w: empty or inverted span: from %s is not before to %s",
			ErrInvalid, from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano))
	}
	from, to = from.UTC().Truncate(time.Second), to.UTC().Add(time.Second-1).Truncate(time.Second)
	switch {
	case !from.Before(to):
		return time.Time{}, time.Time{}, fmt.Errorf("%w: empty or inverted span: from %s is not before to %s",
			ErrInvalid, from.Format(time.RFC3339), to.Format(time.RFC3339))
	case from.Before(earliestSpan):
		return time.Time{}, time.Time{}, fmt.Errorf("%w: from %s is before any footage this system can have", ErrInvalid, from.Format(time.RFC3339))
	case to.After(now.Add(MaxAhead)):
		return time.Time{}, time.Time{}, fmt.Errorf("%w: to %s is more than %d days ahead (at most %s)",
			ErrInvalid, to.Format(time.RFC3339), int(MaxAhead/(24*time.Hour)), now.Add(MaxAhead).UTC().Truncate(time.Second).Format(time.RFC3339))
	}
	return from, to, nil
}

// checkCameras validates the cameras, each known to central, and returns
// them sorted without duplicates.
func (s *Store) checkCameras(cameras []string) ([]string, error) {
	if len(cameras) == 0 {
		return nil, fmt.Errorf("%w: at least one camera is needed", ErrInvalid)
	}
	if len(cameras) > MaxCameras {
		return nil, fmt.Errorf("%w: %d cameras, at most %d in one hold", ErrInvalid, len(cameras), MaxCameras)
	}
	byDistrict := map[string][]string{}
	for _, c := range cameras {
		d, cam, err := ParseCamera(c)
		if err != nil {
			return nil, err
		}
		byDistrict[d] = append(byDistrict[d], cam)
	}
	var out []string
	for d, cams := range byDistrict {
		known, err := s.cfg.KnownCameras(d)
		if err != nil {
			return nil, fmt.Errorf("holds: cameras of %s: %w", d, err)
		}
		for _, cam := range cams {
			if !slices.Contains(known, cam) {
				if len(known) == 0 {
					return nil, fmt.Errorf("%w %s/%s: central has no camera of district %q (has its agent ever connected?)", ErrUnknownCamera, d, cam, d)
				}
				return nil, fmt.Errorf("%w %s/%s: central knows %s: %s", ErrUnknownCamera, d, cam, d, clip(strings.Join(known, ", ")))
			}
			out = append(out, d+"/"+cam)
		}
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}

// checkText trims s and checks that it is present, printable and bounded.
func checkText(name, s string, maxBytes int) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", fmt.Errorf("%w: %s is required", ErrInvalid, name)
	case len(s) > maxBytes:
		return "", fmt.Errorf("%w: %s too long: %d bytes, at most %d", ErrInvalid, name, len(s), maxBytes)
	case !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl):
		return "", fmt.Errorf("%w: %s must be printable text on one line", ErrInvalid, name)
	}
	return s, nil
}

// CheckReason checks a release reason as Release will.
func CheckReason(reason string) (string, error) {
	return checkText("reason", reason, MaxReason)
}

// Place stores a prepared hold.
func (s *Store) Place(p Prepared) (Hold, error) {
	h := p.hold
	if h.ID == "" {
		return Hold{}, fmt.Errorf("%w: not prepared", ErrInvalid)
	}
	err := s.cfg.DB.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHolds)
		if b.Get([]byte(h.ID)) != nil {
			return fmt.Errorf("%w: %s", ErrExists, h.ID)
		}
		return put(b, h)
	})
	if err != nil {
		return Hold{}, fmt.Errorf("holds: place: %w", err)
	}
	s.log.Info("hold placed", "hold", h.ID, "officer", h.Officer, "cameras", strings.Join(h.Cameras, ","),
		"from", h.From, "to", h.To, "authority", h.Authority, "case", h.Case)
	return h, nil
}

// Get returns a hold.
func (s *Store) Get(id string) (Hold, error) {
	var h Hold
	err := s.cfg.DB.View(func(tx *bolt.Tx) error {
		var err error
		h, err = get(tx.Bucket(bucketHolds), id)
		return err
	})
	if err != nil {
		return Hold{}, fmt.Errorf("holds: %w", err)
	}
	return h, nil
}

// List returns the holds, by placing time: the active ones, or all.
func (s *Store) List(all bool) ([]Hold, error) {
	return s.filter(func(h Hold) bool { return all || h.State == StateActive })
}

// Relevant returns the active holds and those released since since, by
// placing time: the holds a report from since on must show.
func (s *Store) Relevant(since time.Time) ([]Hold, error) {
	return s.filter(func(h Hold) bool { return h.State == StateActive || !h.ReleasedAt.Before(since) })
}

func (s *Store) filter(keep func(Hold) bool) ([]Hold, error) {
	var out []Hold
	err := s.cfg.DB.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHolds).ForEach(func(k, v []byte) error {
			var h Hold
			if err := json.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("hold %q: %w", k, err)
			}
			if keep(h) {
				out = append(out, h)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("holds: list: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].PlacedAt.Equal(out[j].PlacedAt) {
			return out[i].PlacedAt.Before(out[j].PlacedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// CheckRelease checks that the hold id may be released for reason, and
// returns the hold. It changes nothing.
func (s *Store) CheckRelease(id, reason string) (Hold, error) {
	if _, err := CheckReason(reason); err != nil {
		return Hold{}, err
	}
	h, err := s.Get(id)
	if err != nil {
		return Hold{}, err
	}
	if h.State == StateReleased {
		return Hold{}, fmt.Errorf("holds: %w: %s was released on %s by %s", ErrReleased, h.ID, h.ReleasedAt.Format(time.RFC3339), h.ReleasedBy)
	}
	return h, nil
}

// Release releases an active hold: it is released at central at once, and
// every district is releasing until its agent acknowledges.
func (s *Store) Release(id, by, reason string) (Hold, error) {
	reason, err := CheckReason(reason)
	if err != nil {
		return Hold{}, err
	}
	now := s.cfg.Now()
	h, err := s.update(id, func(h *Hold) error {
		if h.State == StateReleased {
			return fmt.Errorf("%w: %s was released on %s by %s", ErrReleased, h.ID, h.ReleasedAt.Format(time.RFC3339), h.ReleasedBy)
		}
		h.State, h.ReleasedAt, h.ReleasedBy, h.ReleaseReason = StateReleased, now, by, reason
		for i := range h.Agents {
			// A district still pending may have applied the hold without
			// its acknowledgement reaching central: release it there too.
			h.Agents[i].State, h.Agents[i].UpdatedAt, h.Agents[i].Error = AgentReleasing, now, ""
		}
		return nil
	})
	if err != nil {
		return Hold{}, fmt.Errorf("holds: release: %w", err)
	}
	s.log.Info("hold released", "hold", h.ID, "by", by, "reason", reason)
	return h, nil
}

// Delivered records a district's acknowledgement of what was sent: an
// applied hold (with the segments it covers) or a released one. An
// acknowledgement that no longer matches the hold's state (the hold was
// released while its application was on the way) changes nothing: the
// release is sent next.
func (s *Store) Delivered(id, district string, sent AgentState, segments int64) (Hold, error) {
	now := s.cfg.Now()
	h, err := s.update(id, func(h *Hold) error {
		a := h.agent(district)
		if a == nil || a.State != sent {
			return errUnchanged
		}
		switch sent {
		case AgentPending:
			if h.State != StateActive {
				return errUnchanged
			}
			a.State, a.Segments = AgentApplied, segments
		case AgentReleasing:
			a.State = AgentReleased
		default:
			return errUnchanged
		}
		a.UpdatedAt, a.Error = now, ""
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return Hold{}, fmt.Errorf("holds: delivered: %w", err)
	}
	return h, nil
}

// DeliveryFailed records why a district's delivery did not succeed; the
// district stays as it was (pending or releasing) and is retried.
func (s *Store) DeliveryFailed(id, district, why string) error {
	now := s.cfg.Now()
	why = clip(why)
	_, err := s.update(id, func(h *Hold) error {
		a := h.agent(district)
		if a == nil || a.Error == why {
			return errUnchanged // said already: no write every retry
		}
		a.Error, a.UpdatedAt = why, now
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return fmt.Errorf("holds: delivery failed: %w", err)
	}
	return nil
}

// ResetDistrict makes every active hold applied at district pending again:
// the district's agent lost its index (it began a new outbox), and with it
// the holds it had; they are sent again. It returns how many.
func (s *Store) ResetDistrict(district string) (int, error) {
	now := s.cfg.Now()
	n := 0
	err := s.cfg.DB.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHolds)
		var changed []Hold
		err := b.ForEach(func(k, v []byte) error {
			var h Hold
			if err := json.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("hold %q: %w", k, err)
			}
			if a := h.agent(district); a != nil && h.State == StateActive && a.State == AgentApplied {
				a.State, a.Segments, a.UpdatedAt = AgentPending, 0, now
				a.Error = "the agent began a new outbox (its index was lost or restored): sending the hold again"
				changed = append(changed, h)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, h := range changed {
			if err := put(b, h); err != nil {
				return err
			}
		}
		n = len(changed)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("holds: reset %s: %w", district, err)
	}
	if n > 0 {
		s.log.Warn("holds to send again to an agent that lost its index", "district", district, "holds", n)
	}
	return n, nil
}

// ReconcileAgent compares the holds district's agent says it keeps with
// central's: an active hold marked applied there that the agent lacks is
// sent again (pending), and a hold central has released that the agent
// still keeps is released again (releasing). This is what an agent index
// restored from an older copy needs. A hold id central does not know is
// left alone (central may itself have been restored): the agent keeps the
// footage, and it is logged. It returns how many holds changed state.
func (s *Store) ReconcileAgent(district string, agentHolds []string) (int, error) {
	keeps := map[string]bool{}
	for _, id := range agentHolds {
		keeps[id] = true
	}
	now := s.cfg.Now()
	n := 0
	err := s.cfg.DB.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHolds)
		var changed []Hold
		err := b.ForEach(func(k, v []byte) error {
			var h Hold
			if err := json.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("hold %q: %w", k, err)
			}
			delete(keeps, h.ID)
			a := h.agent(district)
			if a == nil {
				return nil
			}
			switch {
			case h.State == StateActive && a.State == AgentApplied && !slices.Contains(agentHolds, h.ID):
				a.State, a.UpdatedAt = AgentPending, now
				a.Error = "the agent no longer has this hold (index restored?): sending it again"
			case h.State == StateReleased && a.State == AgentReleased && slices.Contains(agentHolds, h.ID):
				a.State, a.UpdatedAt = AgentReleasing, now
				a.Error = "the agent still keeps this released hold (index restored?): releasing it again"
			default:
				return nil
			}
			changed = append(changed, h)
			return nil
		})
		if err != nil {
			return err
		}
		for _, h := range changed {
			if err := put(b, h); err != nil {
				return err
			}
		}
		n = len(changed)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("holds: compare with %s: %w", district, err)
	}
	for id := range keeps {
		s.log.Warn("the agent keeps a hold central does not know; its footage stays held", "district", district, "hold", id)
	}
	if n > 0 {
		s.log.Warn("holds out of step with the agent's, sent again", "district", district, "holds", n)
	}
	return n, nil
}

// Waiting returns the holds waiting for district's agent (to apply or to
// release), by placing time.
func (s *Store) Waiting(district string) ([]Hold, error) {
	return s.filter(func(h Hold) bool { return h.Waiting(district) })
}

// WaitingDistricts returns the districts some hold waits for.
func (s *Store) WaitingDistricts() ([]string, error) {
	seen := map[string]bool{}
	_, err := s.filter(func(h Hold) bool {
		for _, a := range h.Agents {
			if a.State == AgentPending || a.State == AgentReleasing {
				seen[a.District] = true
			}
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	sort.Strings(out)
	return out, nil
}

// errUnchanged ends an update without writing.
var errUnchanged = errors.New("unchanged")

// update edits one hold in a transaction and returns it as stored.
func (s *Store) update(id string, edit func(*Hold) error) (Hold, error) {
	var h Hold
	err := s.cfg.DB.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHolds)
		var err error
		if h, err = get(b, id); err != nil {
			return err
		}
		if err := edit(&h); err != nil {
			return err
		}
		return put(b, h)
	})
	return h, err
}

func get(b *bolt.Bucket, id string) (Hold, error) {
	v := b.Get([]byte(id))
	if v == nil {
		return Hold{}, fmt.Errorf("%w: %s", ErrNotFound, clip(id))
	}
	var h Hold
	if err := json.Unmarshal(v, &h); err != nil {
		return Hold{}, fmt.Errorf("hold %s: %w", id, err)
	}
	return h, nil
}

func put(b *bolt.Bucket, h Hold) error {
	v, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return b.Put([]byte(h.ID), v)
}

// clip shortens text echoed in an error or kept from an agent, at a
// character boundary.
func clip(s string) string {
	const maxBytes = 200
	if len(s) <= maxBytes {
		return s
	}
	n := maxBytes
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
