package console

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/coder/websocket"

	"github.com/vigil-cctv/vigil/central/audit"
	"github.com/vigil-cctv/vigil/central/authz"
	"github.com/vigil-cctv/vigil/central/relay"
	"github.com/vigil-cctv/vigil/proto/actions"
)

// WebSocket close codes the page understands.
const (
	closeUnauthenticated websocket.StatusCode = 4401
	closeForbidden       websocket.StatusCode = 4403
	closeAuditDown       websocket.StatusCode = 4503
)

// Live view tuning.
const (
	// writeTimeout drops a viewer whose browser stops reading.
	writeTimeout = 10 * time.Second
	// sessionCheck is how often a live view checks that its session
	// still stands (logged out, disabled, expired).
	sessionCheck = 15 * time.Second
)

// Binary message kinds: the first byte of each binary message, then the
// agent's receive time (int64 microseconds, big-endian), then fMP4 bytes.
const (
	wireInit     = 0
	wireFragment = 1
)

// handleLive serves one live view over a WebSocket. It is authorised like
// any request (session, CSRF token, role and district), and the view is
// recorded: live.start before the first frame is sent (no record, no
// video), live.stop with the duration when it ends, including when the
// district's stream is lost (a new live.start when it comes back).
func (c *Console) handleLive(w http.ResponseWriter, r *http.Request) {
	s, ok := c.session(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	// A WebSocket is opened by the page's script, which has the token;
	// the browser also checks the origin (websocket.Accept refuses others).
	if !c.checkCSRF(s.token, q.Get("csrf")) {
		writeError(w, http.StatusForbidden, "missing or wrong CSRF token: reload the page")
		return
	}
	district, camera, ok := splitCamera(q.Get("camera"))
	if !ok {
		writeError(w, http.StatusBadRequest, "camera must be DISTRICT/CAMERA")
		return
	}
	quality := q.Get("quality")
	if quality != "" && quality != "sub" && quality != "main" {
		writeError(w, http.StatusBadRequest, "quality must be sub or main")
		return
	}
	target := audit.Target{District: district, Camera: camera}
	if err := authz.AuthorizeDistrict(s.user, authz.ConsoleLive, district); err != nil {
		c.refuse(r, s, actions.LiveStart, target, "", err.Error())
		writeError(w, http.StatusForbidden, "you may not watch "+district+"/"+camera)
		return
	}
	known, err := c.cfg.Registry.KnownCameras(district)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if !slices.Contains(known, camera) {
		writeError(w, http.StatusNotFound, "no camera "+district+"/"+camera)
		return
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return // Accept answered the client
	}
	conn.SetReadLimit(4096)
	key := relay.Key{District: district, Camera: camera, Sub: quality != "main"}
	v := &liveView{c: c, conn: conn, s: s, target: target, quality: key, client: r.RemoteAddr}
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	if !c.addView(v, cancel) {
		conn.Close(websocket.StatusGoingAway, "central is stopping")
		return
	}
	defer c.removeView(v)
	v.serve(ctx)
}

// addView registers a live view so that logging out, disabling its user or
// stopping central ends it at once; false when central is stopping.
func (c *Console) addView(v *liveView, cancel context.CancelCauseFunc) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return false
	}
	c.views.Add(1)
	c.liveViews[v] = cancel
	return true
}

func (c *Console) removeView(v *liveView) {
	c.mu.Lock()
	delete(c.liveViews, v)
	c.mu.Unlock()
	c.views.Done()
}

// endViews ends the live views that match, with the cause given.
func (c *Console) endViews(match func(*liveView) bool, cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for v, cancel := range c.liveViews {
		if match(v) {
			cancel(cause)
		}
	}
}

// liveView is one browser's view of one camera.
type liveView struct {
	c       *Console
	conn    *websocket.Conn
	s       session
	target  audit.Target
	quality relay.Key
	client  string

	started   bool
	startedAt time.Time
}

func (v *liveView) serve(ctx context.Context) {
	// The page sends nothing: reading only notices the close. Its context
	// is not ctx: cancelling a read closes the connection at once, and a
	// view ended for a reason is closed with that reason.
	closed := v.conn.CloseRead(context.Background())
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Sessions ended elsewhere (from the CLI, by expiry) are noticed by
	// polling; this console ends its own views at once (endViews).
	go v.c.watchSession(ctx, v.s.token, sessionCheck, func(err error) { cancel(errSessionEnded{err}) })

	viewer := v.c.cfg.Hub.Join(v.quality, v.s.user.Name)
	defer viewer.Leave()
	for {
		select {
		case <-closed.Done():
			v.stop("the viewer closed the view")
			v.conn.CloseNow()
			return
		case <-viewer.Dropped:
			v.stop("ended: the browser fell too far behind")
			v.conn.Close(websocket.StatusTryAgainLater, "too far behind: reconnect")
			return
		case <-ctx.Done():
			var ended errSessionEnded
			if errors.As(context.Cause(ctx), &ended) {
				v.stop("session ended: " + ended.err.Error())
				v.conn.Close(closeUnauthenticated, "session ended")
				return
			}
			if errors.Is(context.Cause(ctx), errCentralStopping) {
				v.stop("central stopped")
				v.conn.Close(websocket.StatusGoingAway, "central is stopping")
				return
			}
			v.stop("the viewer closed the view")
			v.conn.CloseNow()
			return
		case m := <-viewer.C:
			if err := v.deliver(ctx, m); err != nil {
				v.stop("ended: " + err.Error())
				if errors.Is(err, errAuditDown) {
					v.conn.Close(closeAuditDown, "audit log unavailable: live view refused")
				} else {
					v.conn.CloseNow()
				}
				return
			}
		}
	}
}

type errSessionEnded struct{ err error }

func (e errSessionEnded) Error() string { return e.err.Error() }

var errCentralStopping = errors.New("central is stopping")

var errAuditDown = errors.New("audit log unavailable: live view refused")

// deliver sends one relay message, recording the start of the view before
// its first frame and its end when the district's stream is lost.
func (v *liveView) deliver(ctx context.Context, m relay.Message) error {
	switch m.Kind {
	case relay.KindStatus:
		// Lost, the view ends on record; stalled (the camera shows
		// nothing for now), it stays open.
		if m.State == relay.StateReconnecting {
			v.stop("aborted: " + m.Text)
		}
		return v.writeJSON(ctx, map[string]string{"type": "status", "state": m.State, "message": m.Text})
	case relay.KindViewers:
		return v.writeJSON(ctx, map[string]any{"type": "viewers", "users": m.Users})
	case relay.KindCodec:
		if err := v.start(ctx); err != nil {
			return err
		}
		return v.writeJSON(ctx, map[string]any{"type": "codec", "codec": m.Codec.Name, "mime": m.Codec.MIME, "width": m.Codec.Width, "height": m.Codec.Height})
	case relay.KindInit, relay.KindFragment:
		if err := v.start(ctx); err != nil {
			return err
		}
		kind := byte(wireFragment)
		if m.Kind == relay.KindInit {
			kind = wireInit
		}
		buf := make([]byte, 9+len(m.Data))
		buf[0] = kind
		binary.BigEndian.PutUint64(buf[1:9], uint64(m.ReceivedUS))
		copy(buf[9:], m.Data)
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		defer cancel()
		return v.conn.Write(wctx, websocket.MessageBinary, buf)
	}
	return nil
}

func (v *liveView) writeJSON(ctx context.Context, msg any) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return v.conn.Write(wctx, websocket.MessageText, b)
}

// start records live.start, durably, before the first byte of video.
func (v *liveView) start(ctx context.Context) error {
	if v.started {
		return nil
	}
	rec := v.c.record(v.s, actions.LiveStart, v.target, v.client)
	rec.Detail = "quality " + qualityName(v.quality.Sub)
	if _, err := v.c.cfg.Audit.Append(ctx, rec); err != nil {
		v.c.log.Error("audit log unavailable: live view refused", "user", v.s.user.Name, "camera", v.target.District+"/"+v.target.Camera, "error", err)
		return errAuditDown
	}
	v.started, v.startedAt = true, v.c.cfg.Now()
	return nil
}

// stop records live.stop with how long the view lasted, once per start.
func (v *liveView) stop(why string) {
	if !v.started {
		return
	}
	v.started = false
	rec := v.c.record(v.s, actions.LiveStop, v.target, v.client)
	rec.Detail = audit.Clip(fmt.Sprintf("watched %s (quality %s); %s", v.c.cfg.Now().Sub(v.startedAt).Round(100*time.Millisecond), qualityName(v.quality.Sub), why), audit.MaxDetail)
	if _, err := v.c.cfg.Audit.Append(context.Background(), rec); err != nil {
		v.c.log.Error("audit log: end of a live view not recorded", "user", v.s.user.Name, "error", err)
	}
}

func qualityName(sub bool) string {
	if sub {
		return "sub"
	}
	return "main"
}

// record is an audit record of the session's user, allowed.
func (c *Console) record(s session, action string, target audit.Target, client string) audit.Record {
	return audit.Record{
		Actor:  audit.Actor{User: s.user.Name, Role: string(s.user.Role), Designation: s.user.Designation},
		Action: action, Target: target, Client: audit.Clip(client, audit.MaxText), Outcome: audit.OutcomeOK,
	}
}

// refuse records a refused request; the refusal stands whether or not the
// record could be written.
func (c *Console) refuse(r *http.Request, s session, action string, target audit.Target, reason, why string) {
	rec := c.record(s, action, target, r.RemoteAddr)
	rec.Outcome, rec.Reason, rec.Detail = audit.OutcomeDenied, audit.Clip(reason, audit.MaxText), audit.Clip(why, audit.MaxDetail)
	c.log.Warn("console request refused", "user", s.user.Name, "action", action, "why", why)
	if _, err := c.cfg.Audit.Append(context.WithoutCancel(r.Context()), rec); err != nil {
		c.log.Error("audit log: refusal not recorded", "action", action, "error", err)
	}
}
