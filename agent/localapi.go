package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-cctv/vigil/proto/actions"
	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/index"
)

// SocketName is the agent's local API socket inside its data dir. The index
// is locked by the running agent, so local tools (`vigil recordings list
// --agent-data`) ask the agent through this socket; it is mode 0600 and
// reachable only by the agent's own user.
const SocketName = "agent.sock"

// serveLocalAPI listens on the data dir's socket until the returned function
// is called. The index lock taken in New guarantees no other agent uses this
// data dir, so a leftover socket file is stale and replaced. The data dir is
// 0700, so the socket is private from its creation on.
func (a *Agent) serveLocalAPI() (stop func(), err error) {
	path := filepath.Join(a.cfg.DataDir, SocketName)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("agent: local socket: %w", err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("agent: local socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("agent: local socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.Status())
	})
	mux.HandleFunc("GET /v1/recordings", func(w http.ResponseWriter, r *http.Request) {
		q, err := parseRecordingsQuery(r.URL.Query())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		// A local look at footage metadata is a maintenance access: it is
		// recorded in the district's chained log before anything is served.
		if err := a.journal(r.Context(), index.JournalEntry{
			Time: time.Now(), Action: actions.MaintenanceAccess, Camera: q.Camera,
			Detail: fmt.Sprintf("%s: recordings list %s/%s %s to %s", peerOf(r.Context()), q.District, q.Camera,
				q.From.UTC().Format(time.RFC3339), q.To.UTC().Format(time.RFC3339)),
		}); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "cannot record this access, refused: " + err.Error()})
			return
		}
		segs, err := a.index.List(q.District, q.Camera, q.From, q.To)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, segs)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ConnContext: withPeer}
	go srv.Serve(l)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		os.Remove(path)
	}, nil
}

type peerKey struct{}

// withPeer notes who is on the other end of the socket (the kernel says,
// SO_PEERCRED), for the maintenance access record.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	who := "unknown local user"
	if uc, ok := c.(*net.UnixConn); ok {
		if raw, err := uc.SyscallConn(); err == nil {
			raw.Control(func(fd uintptr) {
				if cred, err := syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED); err == nil {
					who = fmt.Sprintf("uid %d pid %d", cred.Uid, cred.Pid)
				}
			})
		}
	}
	return context.WithValue(ctx, peerKey{}, who)
}

func peerOf(ctx context.Context) string {
	who, _ := ctx.Value(peerKey{}).(string)
	return who
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// RecordingsQuery selects the segments of one camera overlapping a span.
type RecordingsQuery struct {
	District, Camera string
	From, To         time.Time
}

// NewRecordingsQuery validates "district/camera" and the span.
func NewRecordingsQuery(camera string, from, to time.Time) (RecordingsQuery, error) {
	var q RecordingsQuery
	d, c, ok := strings.Cut(camera, "/")
	if !ok {
		return q, fmt.Errorf("camera %q: want DISTRICT/CAMERA", camera)
	}
	if err := storage.ValidateName("district", d); err != nil {
		return q, err
	}
	if err := storage.ValidateName("camera", c); err != nil {
		return q, err
	}
	if !from.Before(to) {
		return q, errors.New("from must be before to")
	}
	return RecordingsQuery{District: d, Camera: c, From: from, To: to}, nil
}

// parseRecordingsQuery reads a query of the local API.
func parseRecordingsQuery(v url.Values) (RecordingsQuery, error) {
	from, err := time.Parse(time.RFC3339Nano, v.Get("from"))
	if err != nil {
		return RecordingsQuery{}, fmt.Errorf("from: want RFC 3339 time, got %q", v.Get("from"))
	}
	to, err := time.Parse(time.RFC3339Nano, v.Get("to"))
	if err != nil {
		return RecordingsQuery{}, fmt.Errorf("to: want RFC 3339 time, got %q", v.Get("to"))
	}
	return NewRecordingsQuery(v.Get("camera"), from, to)
}

// LocalClient talks to a running agent through its data dir's socket.
type LocalClient struct {
	hc *http.Client
}

// DialLocal returns a client when an agent is running on dataDir, or an error
// wrapping os.ErrNotExist when none is.
func DialLocal(dataDir string) (*LocalClient, error) {
	path := filepath.Join(dataDir, SocketName)
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return nil, fmt.Errorf("no agent running on %s: %w", dataDir, os.ErrNotExist)
	}
	conn.Close()
	return &LocalClient{hc: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}}, nil
}

// Recordings lists segments through the running agent.
func (c *LocalClient) Recordings(ctx context.Context, q RecordingsQuery) ([]storage.Segment, error) {
	v := url.Values{
		"camera": {q.District + "/" + q.Camera},
		"from":   {q.From.Format(time.RFC3339Nano)},
		"to":     {q.To.Format(time.RFC3339Nano)},
	}
	var segs []storage.Segment
	return segs, c.get(ctx, "http://agent/v1/recordings?"+v.Encode(), &segs)
}

// Status fetches the running agent's status.
func (c *LocalClient) Status(ctx context.Context) (Status, error) {
	var st Status
	return st, c.get(ctx, "http://agent/v1/status", &st)
}

func (c *LocalClient) get(ctx context.Context, target string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("agent: %s", e.Error)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
