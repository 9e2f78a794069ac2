package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-cctv/vigil/central/audit"
	"github.com/vigil-cctv/vigil/central/authz"
	"github.com/vigil-cctv/vigil/central/catalog"
	"github.com/vigil-cctv/vigil/central/holds"
	"github.com/vigil-cctv/vigil/central/registry"
	"github.com/vigil-cctv/vigil/proto/actions"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

// Playback rules.
const (
	// MinReasonLength is the shortest reason accepted for opening a
	// recording without a hold: a word or two is no reason.
	MinReasonLength = 10
	// ticketTTL is how long an opened recording may be played (seeking
	// included) before it must be opened, and recorded, again.
	ticketTTL = 30 * time.Minute
)

// ticket is a recording opened by a user, with the reason on record.
type ticket struct {
	token    string // the session that opened it
	district string
	camera   string
	segment  string
	bytes    int64
	expires  time.Time
}

// recordingInfo is one segment in the page's list.
type recordingInfo struct {
	ID       string   `json:"id"`
	District string   `json:"district"`
	Camera   string   `json:"camera"`
	Start    string   `json:"start"`
	End      string   `json:"end"`
	Bytes    int64    `json:"bytes"`
	Codec    string   `json:"codec"`
	Held     bool     `json:"held"`
	HeldBy   []string `json:"held_by"`
	Missing  bool     `json:"missing"`
}

// handleRecordings lists a camera's segments over a span, through the Ops
// service (authorised and recorded as recording.list).
type recordingsRequest struct {
	Camera string `json:"camera"`
	From   string `json:"from"`
	To     string `json:"to"`
}

// handleRecordings lists a camera's segments over a span, through the Ops
// service (authorised and recorded as recording.list). It is a POST with
// the CSRF token: it writes an audit record in the user's name.
func (c *Console) handleRecordings(w http.ResponseWriter, r *http.Request) {
	s, ok := c.changing(w, r)
	if !ok {
		return
	}
	var req recordingsRequest
	if !readJSON(w, r, &req) {
		return
	}
	district, camera, ok := splitCamera(req.Camera)
	if !ok {
		writeError(w, http.StatusBadRequest, "camera must be DISTRICT/CAMERA")
		return
	}
	from, err1 := time.Parse(time.RFC3339, req.From)
	to, err2 := time.Parse(time.RFC3339, req.To)
	if err1 != nil || err2 != nil || !from.Before(to) {
		writeError(w, http.StatusBadRequest, "from and to must be RFC 3339 times, from before to")
		return
	}
	resp, err := c.cfg.Invoke(r.Context(), "ListRecordings", s.token, r.RemoteAddr, &opsv1.ListRecordingsRequest{
		District: district, Camera: camera, From: timestamppb.New(from), To: timestamppb.New(to),
	})
	if err != nil {
		writeStatus(w, err)
		return
	}
	out := []recordingInfo{}
	for _, rec := range resp.(*opsv1.ListRecordingsResponse).GetRecordings() {
		hb := rec.GetHeldBy()
		if hb == nil {
			hb = []string{}
		}
		out = append(out, recordingInfo{
			ID: rec.GetId(), District: rec.GetDistrict(), Camera: rec.GetCamera(),
			Start: rec.GetStart().AsTime().UTC().Format(time.RFC3339Nano), End: rec.GetEnd().AsTime().UTC().Format(time.RFC3339Nano),
			Bytes: rec.GetBytes(), Codec: rec.GetCodec(), Held: len(hb) > 0, HeldBy: hb, Missing: rec.GetMissing(),
		})
	}
	writeJSON(w, http.StatusOK, out)
}

type openRequest struct {
	ID     string `json:"id"`
	Camera string `json:"camera"`
	Reason string `json:"reason"`
	Hold   string `json:"hold"`
}

// handleOpen opens a recording for playing: the user states a reason (or
// names the judicial hold that covers it), the opening is recorded as
// recording.view with that reason, and only then is a playback URL given.
func (c *Console) handleOpen(w http.ResponseWriter, r *http.Request) {
	s, ok := c.changing(w, r)
	if !ok {
		return
	}
	var req openRequest
	if !readJSON(w, r, &req) {
		return
	}
	district, camera, ok := splitCamera(req.Camera)
	if !ok || req.ID == "" || len(req.ID) > 64 {
		writeError(w, http.StatusBadRequest, "give the recording's id and camera (DISTRICT/CAMERA)")
		return
	}
	reason := strings.TrimSpace(req.Reason)
	hold := strings.TrimSpace(req.Hold)
	target := audit.Target{District: district, Camera: camera, Segment: req.ID, Hold: audit.Clip(hold, 64)}
	if err := authz.AuthorizeDistrict(s.user, authz.ConsoleViewRecording, district); err != nil {
		c.refuse(r, s, actions.RecordingView, target, reason, err.Error())
		writeError(w, http.StatusForbidden, "you may not view recordings of "+district)
		return
	}
	seg, err := c.cfg.Catalog.Find(district, camera, req.ID)
	if errors.Is(err, catalog.ErrNoSegment) {
		writeError(w, http.StatusNotFound, "no such recording (deleted at the end of its retention?)")
		return
	} else if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	target.From, target.To = seg.GetStart().AsTime(), seg.GetEnd().AsTime()
	if why := c.justify(district, camera, seg.GetStart().AsTime(), seg.GetEnd().AsTime(), reason, hold); why != "" {
		c.refuse(r, s, actions.RecordingView, target, reason, why)
		writeError(w, http.StatusBadRequest, why)
		return
	}
	if seg.GetMissing() {
		writeError(w, http.StatusGone, "the district's store lost this recording (see the agent's alarms)")
		return
	}
	rec := c.record(s, actions.RecordingView, target, r.RemoteAddr)
	rec.Reason = audit.Clip(reason, audit.MaxText)
	if hold != "" {
		rec.Detail = "justified by judicial hold " + target.Hold
	}
	if _, err := c.cfg.Audit.Append(r.Context(), rec); err != nil {
		c.log.Error("audit log unavailable: recording not opened", "user", s.user.Name, "segment", req.ID, "error", err)
		writeError(w, http.StatusServiceUnavailable, "audit log unavailable: the recording cannot be opened")
		return
	}
	id := randomToken()
	expires := c.cfg.Now().Add(ticketTTL)
	c.mu.Lock()
	c.dropExpiredTickets()
	if c.ticketsOf(s.token) >= maxTicketsPerSession {
		c.mu.Unlock()
		writeError(w, http.StatusTooManyRequests, "too many recordings open in this session: wait, or log in again")
		return
	}
	c.tickets[id] = ticket{token: s.token, district: district, camera: camera, segment: req.ID, bytes: seg.GetBytes(), expires: expires}
	c.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"url": "/api/play/" + id, "expires": expires.UTC().Format(time.RFC3339)})
}

// justify returns why the stated reason or hold does not justify opening
// the recording, or "".
func (c *Console) justify(district, camera string, start, end time.Time, reason, hold string) string {
	if hold != "" {
		if !holds.ValidID(hold) {
			return "hold id " + strconvQuote(hold) + " is malformed"
		}
		h, err := c.cfg.Holds.Get(hold)
		if err != nil {
			return "no judicial hold " + hold
		}
		if !h.Covers(district, camera, start, end) {
			return "judicial hold " + hold + " does not cover this recording (or is released)"
		}
		return ""
	}
	if utf8.RuneCountInString(reason) < MinReasonLength {
		return fmt.Sprintf("state a reason of at least %d characters, or a hold id", MinReasonLength)
	}
	if utf8.RuneCountInString(reason) > audit.MaxText {
		return fmt.Sprintf("the reason is longer than %d characters", audit.MaxText)
	}
	return ""
}

func strconvQuote(s string) string { return strconv.Quote(audit.Clip(s, 64)) }

// maxTicketsPerSession bounds the recordings open at once in one session.
const maxTicketsPerSession = 200

func (c *Console) ticketsOf(token string) int {
	n := 0
	for _, t := range c.tickets {
		if t.token == token {
			n++
		}
	}
	return n
}

func (c *Console) dropExpiredTickets() {
	now := c.cfg.Now()
	for id, t := range c.tickets {
		if now.After(t.expires) {
			delete(c.tickets, id)
		}
	}
}

// handlePlay streams an opened recording from its district, with Range
// support for seeking. The agent checks the segment against the SHA-256
// recorded when it was stored; a mismatch is never served.
func (c *Console) handlePlay(w http.ResponseWriter, r *http.Request) {
	s, ok := c.session(w, r)
	if !ok {
		return
	}
	// Roles that never see video are refused before anything else.
	if err := authz.Authorize(s.user, authz.ConsoleViewRecording); err != nil {
		writeError(w, http.StatusForbidden, "your role may not view recordings")
		return
	}
	c.mu.Lock()
	t, found := c.tickets[r.PathValue("ticket")]
	c.mu.Unlock()
	if !found || t.token != s.token {
		writeError(w, http.StatusNotFound, "no such opened recording: open it again with a reason")
		return
	}
	if c.cfg.Now().After(t.expires) {
		writeError(w, http.StatusGone, "this opening has expired: open the recording again")
		return
	}
	// The user may have lost the right since (disabled, scope changed).
	if err := authz.AuthorizeDistrict(s.user, authz.ConsoleViewRecording, t.district); err != nil {
		writeError(w, http.StatusForbidden, "you may no longer view recordings of "+t.district)
		return
	}
	offset, length, partial, err := parseRange(r.Header.Get("Range"), t.bytes)
	if err != nil {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", t.bytes))
		writeError(w, http.StatusRequestedRangeNotSatisfiable, err.Error())
		return
	}
	fs, err := c.cfg.Registry.OpenFetch(r.Context(), t.district, t.segment, offset, length)
	if err != nil {
		if errors.Is(err, registry.ErrNotConnected) {
			writeError(w, http.StatusServiceUnavailable, "the district's agent is not connected: try again when it is back")
			return
		}
		writeError(w, http.StatusBadGateway, "the district could not send the recording: "+err.Error())
		return
	}
	defer fs.Close()
	// The browser going away ends the district's stream too.
	stop := context.AfterFunc(r.Context(), fs.Close)
	defer stop()
	total, _, err := fs.Head()
	if err != nil {
		if errors.Is(err, registry.ErrTampered) {
			c.reportTampered(r, s, t, err)
			writeError(w, http.StatusBadGateway, "this recording does not match the fingerprint taken when it was stored: it is not shown, and the district reported it as tampering")
			return
		}
		writeError(w, http.StatusBadGateway, "the district could not send the recording: "+err.Error())
		return
	}
	if total != t.bytes {
		writeError(w, http.StatusBadGateway, fmt.Sprintf("the district's recording has %d bytes where the catalog says %d", total, t.bytes))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "video/mp4")
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	if partial {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", offset, offset+length-1, t.bytes))
		w.WriteHeader(http.StatusPartialContent)
	}
	if r.Method == http.MethodHead {
		return
	}
	// A player that stops reading (paused) must not hold the district's
	// stream forever: each write has a deadline.
	out := &deadlineWriter{w: w, rc: http.NewResponseController(w)}
	if _, err := io.CopyN(out, fs, length); err != nil && r.Context().Err() == nil {
		c.log.Warn("recording stream interrupted", "segment", t.segment, "error", err)
	}
}

// playWriteTimeout is how long a player may leave a write unread.
const playWriteTimeout = 30 * time.Second

type deadlineWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(playWriteTimeout))
	return d.w.Write(p)
}

// reportTampered records, in central's log, that the user asked for a
// segment the district found altered (the district's own log says so too,
// linked in from its chain).
func (c *Console) reportTampered(r *http.Request, s session, t ticket, err error) {
	rec := c.record(s, actions.SegmentTampered, audit.Target{District: t.district, Camera: t.camera, Segment: t.segment}, r.RemoteAddr)
	rec.Outcome, rec.Detail = audit.OutcomeFailed, audit.Clip(err.Error(), audit.MaxDetail)
	if _, aerr := c.cfg.Audit.Append(r.Context(), rec); aerr != nil {
		c.log.Error("audit log: tampered segment not recorded", "segment", t.segment, "error", aerr)
	}
	c.log.Error("tampered segment refused", "district", t.district, "camera", t.camera, "segment", t.segment)
}

// parseRange reads a single-range "bytes=" header against an object of
// size bytes. No header is the whole object.
func parseRange(h string, size int64) (offset, length int64, partial bool, err error) {
	if h == "" {
		return 0, size, false, nil
	}
	if size <= 0 {
		return 0, 0, false, errors.New("the recording is empty")
	}
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return 0, 0, false, errors.New("only one byte range is served")
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, 0, false, errors.New("malformed range")
	}
	if first == "" { // the last N bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, false, errors.New("malformed range")
		}
		n = min(n, size)
		return size - n, n, true, nil
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil || start < 0 || start >= size {
		return 0, 0, false, errors.New("range outside the recording")
	}
	end := size - 1
	if last != "" {
		e, err := strconv.ParseInt(last, 10, 64)
		if err != nil || e < start {
			return 0, 0, false, errors.New("malformed range")
		}
		end = min(e, size-1)
	}
	return start, end - start + 1, true, nil
}
