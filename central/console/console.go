// Package console is the operators' web console of central, served over
// HTTPS: a page embedded in the binary (no CDN, no build step) and the JSON
// API under /api/ it talks to. Every request is authorised like the CLI's,
// with the same roles and district scopes, and every viewing is recorded
// in the audit log before a byte of video leaves: live views (live.start
// before the first frame, live.stop with the duration when the view ends,
// aborted or not) and recordings (recording.view with the reason the
// operator typed). The rest of the API is a bridge to the Ops service, so
// holds, users and the audit log go through the very code the CLI uses.
package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/vigil-cctv/vigil/central/audit"
	"github.com/vigil-cctv/vigil/central/catalog"
	"github.com/vigil-cctv/vigil/central/holds"
	"github.com/vigil-cctv/vigil/central/registry"
	"github.com/vigil-cctv/vigil/central/relay"
	"github.com/vigil-cctv/vigil/central/users"
)

//go:embed web
var webFiles embed.FS

// InvokeFunc calls a method of the Ops service ("ListHolds") as the CLI
// would: through central's authorisation and audit, as the user whose
// session token is given ("" for Login), from the client address given.
type InvokeFunc func(ctx context.Context, method, token, client string, req proto.Message) (proto.Message, error)

// Config configures the console.
type Config struct {
	Users    *users.Store
	Audit    *audit.Log
	Catalog  *catalog.Catalog
	Registry *registry.Registry
	Holds    *holds.Store
	Hub      *relay.Hub
	Invoke   InvokeFunc
	// AgentsStatus answers ListAgents for a user without an audit record:
	// the page's periodic refresh of agent health (no footage) must not
	// fill the append-only log. What the user reads first, and every
	// refresh they ask for, goes through Invoke and is recorded.
	AgentsStatus func(ctx context.Context, u users.User) (proto.Message, error)
	// IdleTimeout ends a session unused for this long (default 15m). An
	// open live view counts as use: a wall is watched, not clicked.
	IdleTimeout time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
}

// Console serves the page and its API.
type Console struct {
	cfg     Config
	log     *slog.Logger
	csrfKey []byte

	// views counts the live views (hijacked connections, which the HTTP
	// server's shutdown does not wait for).
	views sync.WaitGroup

	mu        sync.Mutex
	stopping  bool
	liveViews map[*liveView]context.CancelCauseFunc
	lastSeen  map[string]time.Time // session token → last use
	pruned    time.Time            // when lastSeen was last pruned
	tickets   map[string]ticket    // playback tickets
}

// New checks the configuration and makes the console.
func New(cfg Config) (*Console, error) {
	if cfg.Users == nil || cfg.Audit == nil || cfg.Catalog == nil || cfg.Registry == nil || cfg.Holds == nil || cfg.Hub == nil || cfg.Invoke == nil || cfg.AgentsStatus == nil {
		return nil, errors.New("console: Users, Audit, Catalog, Registry, Holds, Hub, Invoke and AgentsStatus are required")
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 15 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return &Console{
		cfg: cfg, log: cfg.Logger.With("component", "console"), csrfKey: key,
		liveViews: map[*liveView]context.CancelCauseFunc{},
		lastSeen:  map[string]time.Time{}, tickets: map[string]ticket{},
	}, nil
}

// Close ends every live view, each recording its live.stop, and waits for
// them.
func (c *Console) Close() {
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	c.endViews(func(*liveView) bool { return true }, errCentralStopping)
	c.views.Wait()
}

// Handler is the console's whole HTTP surface.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(webFiles, "web")
	files := http.FileServerFS(static)
	mux.Handle("GET /static/", files)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "index.html")
	})
	mux.HandleFunc("POST /api/login", c.handleLogin)
	mux.HandleFunc("POST /api/logout", c.handleLogout)
	mux.HandleFunc("GET /api/session", c.handleSession)
	mux.HandleFunc("GET /api/cameras", c.handleCameras)
	mux.HandleFunc("GET /api/live", c.handleLive)
	mux.HandleFunc("POST /api/recordings", c.handleRecordings)
	mux.HandleFunc("GET /api/agents", c.handleAgents)
	mux.HandleFunc("POST /api/recordings/open", c.handleOpen)
	mux.HandleFunc("GET /api/play/{ticket}", c.handlePlay)
	mux.HandleFunc("POST /api/ops/{method}", c.handleOps)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		// Unknown API paths answer like the others: nothing without a
		// session, then not found.
		if _, ok := c.session(w, r); ok {
			writeError(w, http.StatusNotFound, "no such API: "+r.URL.Path)
		}
	})
	return securityHeaders(mux)
}

// securityHeaders: the page runs only its own code, is never framed, and
// no API answer is cached or sniffed.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Strict-Transport-Security", "max-age=31536000")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if strings.HasPrefix(r.URL.Path, "/api/") {
			h.Set("Cache-Control", "no-store")
			if r.Method != http.MethodGet && r.Method != http.MethodHead && crossSite(r) {
				writeError(w, http.StatusForbidden, "cross-site request refused")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// maxBody bounds a JSON request body.
const maxBody = 64 << 10

// readJSON decodes a request body strictly. It must say it is JSON: a
// form another site posts (text/plain, which needs no preflight) is not.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if !isJSON(r) {
		writeError(w, http.StatusUnsupportedMediaType, "the request must be application/json")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "malformed request: "+err.Error())
		return false
	}
	return true
}

func isJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// crossSite reports a request a browser says comes from another site: no
// state-changing request of the page is ever one (defence beside the
// SameSite cookie and the CSRF token; the login has no token yet).
func crossSite(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return true
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		return err != nil || u.Host != r.Host
	}
	return false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers {"error": msg}: one clear line.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// csrfToken is bound to the session: a page of another origin can make
// the browser send the cookie, never read this value.
func (c *Console) csrfToken(token string) string {
	m := hmac.New(sha256.New, c.csrfKey)
	m.Write([]byte(token))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (c *Console) checkCSRF(token, got string) bool {
	want := c.csrfToken(token)
	return got != "" && hmac.Equal([]byte(got), []byte(want))
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on supported systems
	return base64.RawURLEncoding.EncodeToString(b)
}
