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
	"net/http"
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

	// closing ends the live views (hijacked connections, which the HTTP
	// server's shutdown does not wait for); views counts them.
	closing context.Context
	close   context.CancelFunc
	views   sync.WaitGroup

	mu       sync.Mutex
	lastSeen map[string]time.Time // session token → last use
	tickets  map[string]ticket    // playback tickets
}

// New checks the configuration and makes the console.
func New(cfg Config) (*Console, error) {
	if cfg.Users == nil || cfg.Audit == nil || cfg.Catalog == nil || cfg.Registry == nil || cfg.Holds == nil || cfg.Hub == nil || cfg.Invoke == nil {
		return nil, errors.New("console: Users, Audit, Catalog, Registry, Holds, Hub and Invoke are required")
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
	closing, cancel := context.WithCancel(context.Background())
	return &Console{
		cfg: cfg, log: cfg.Logger.With("component", "console"), csrfKey: key,
		closing: closing, close: cancel,
		lastSeen: map[string]time.Time{}, tickets: map[string]ticket{},
	}, nil
}

// Close ends every live view, each recording its live.stop, and waits for
// them.
func (c *Console) Close() {
	c.close()
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
	mux.HandleFunc("GET /api/recordings", c.handleRecordings)
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
		}
		next.ServeHTTP(w, r)
	})
}

// maxBody bounds a JSON request body.
const maxBody = 64 << 10

// readJSON decodes a request body strictly.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "malformed request: "+err.Error())
		return false
	}
	return true
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
