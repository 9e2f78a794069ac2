package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/vigil-cctv/vigil/central/audit"
	"github.com/vigil-cctv/vigil/central/users"
	"github.com/vigil-cctv/vigil/proto/actions"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

// consoleClient is a browser-like client of the console: a cookie jar and
// the CSRF token of its session.
type consoleClient struct {
	t    *testing.T
	base string
	http *http.Client
	csrf string
}

func (c *testCentral) consoleClient(t *testing.T) *consoleClient {
	jar, _ := cookiejar.New(nil)
	return &consoleClient{t: t, base: strings.TrimSuffix(c.ConsoleURL(), "/"), http: &http.Client{
		Jar: jar, Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // loopback test of central's own certificate
	}}
}

// do sends a request; csrf adds the session's token.
func (cc *consoleClient) do(method, path, body string, csrf bool) (int, string) {
	cc.t.Helper()
	req, err := http.NewRequest(method, cc.base+path, strings.NewReader(body))
	if err != nil {
		cc.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if csrf {
		req.Header.Set("X-CSRF-Token", cc.csrf)
	}
	resp, err := cc.http.Do(req)
	if err != nil {
		cc.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// doBackground is a refresh the page makes by itself.
func (cc *consoleClient) doBackground(method, path string) (int, string) {
	cc.t.Helper()
	req, _ := http.NewRequest(method, cc.base+path, nil)
	req.Header.Set("X-Vigil-Background", "1")
	resp, err := cc.http.Do(req)
	if err != nil {
		cc.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (cc *consoleClient) login(user, password string) int {
	cc.t.Helper()
	body, _ := json.Marshal(map[string]string{"user": user, "password": password})
	code, out := cc.do(http.MethodPost, "/api/login", string(body), false)
	var info struct {
		CSRF string `json:"csrf"`
	}
	json.Unmarshal([]byte(out), &info)
	cc.csrf = info.CSRF
	return code
}

// dialLive opens a live view; it returns the HTTP status of a refusal.
func (cc *consoleClient) dialLive(camera, csrf string) (int, *websocket.Conn) {
	cc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := strings.Replace(cc.base, "https://", "wss://", 1) + "/api/live?camera=" + camera + "&quality=sub&csrf=" + csrf
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: cc.http, HTTPHeader: http.Header{"Origin": {cc.base}}})
	if err != nil {
		if resp == nil {
			cc.t.Fatalf("dial live: %v", err)
		}
		return resp.StatusCode, nil
	}
	return http.StatusSwitchingProtocols, conn
}

func TestConsoleNeedsASession(t *testing.T) {
	c := startCentral(t)
	cc := c.consoleClient(t)
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/api/session", ""},
		{"GET", "/api/cameras", ""},
		{"POST", "/api/recordings", `{"camera":"north/cam1","from":"2026-01-01T00:00:00Z","to":"2026-01-02T00:00:00Z"}`},
		{"GET", "/api/agents", ""},
		{"POST", "/api/recordings/open", `{"id":"x","camera":"north/cam1","reason":"a long enough reason"}`},
		{"GET", "/api/play/whatever", ""},
		{"POST", "/api/ops/ListHolds", `{}`},
		{"POST", "/api/ops/AuditLog", `{}`},
		{"POST", "/api/logout", ""},
		{"GET", "/api/live?camera=north/cam1", ""},
		{"GET", "/api/no-such-thing", ""},
	} {
		if code, body := cc.do(r.method, r.path, r.body, false); code != http.StatusUnauthorized || !strings.Contains(body, `"error"`) {
			t.Errorf("%s %s without a session: %d %s", r.method, r.path, code, body)
		}
	}
	if code, _ := cc.dialLive("north/cam1", "x"); code != http.StatusUnauthorized {
		t.Errorf("live WebSocket without a session: %d", code)
	}
	// A forged cookie is no session either.
	req, _ := http.NewRequest(http.MethodGet, cc.base+"/api/session", nil)
	req.AddCookie(&http.Cookie{Name: "__Host-vigil-session", Value: "forged"})
	resp, err := cc.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged session cookie: %d", resp.StatusCode)
	}
	// The page itself is public, and locked down.
	resp, err = cc.http.Get(cc.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("page: %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
}

func TestConsoleLoginCookieAndCSRF(t *testing.T) {
	c := startCentral(t)
	c.addPeople(t, [3]string{"olga", "operator", "north"})
	cc := c.consoleClient(t)
	if code := cc.login("olga", "wrong password"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", code)
	}
	if recs := auditRecords(t, c, actions.LoginFail); len(recs) == 0 {
		t.Error("a failed console login is not recorded")
	}
	// A login form another site posts is refused, as are bodies that are
	// not JSON.
	req, _ := http.NewRequest(http.MethodPost, cc.base+"/api/login", strings.NewReader(`{"user":"olga","password":"`+testPassword+`"}`))
	req.Header.Set("Content-Type", "text/plain")
	if resp, err := cc.http.Do(req); err != nil || resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("login as text/plain: %v %v", resp, err)
	}
	req, _ = http.NewRequest(http.MethodPost, cc.base+"/api/login", strings.NewReader(`{"user":"olga","password":"`+testPassword+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://evil.example")
	if resp, err := cc.http.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("login from another site: %v %v", resp, err)
	}
	req, _ = http.NewRequest(http.MethodPost, cc.base+"/api/login", strings.NewReader(`{"user":"olga","password":"`+testPassword+`"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := cc.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var ck *http.Cookie
	for _, k := range resp.Cookies() {
		ck = k
	}
	if resp.StatusCode != http.StatusOK || ck == nil || !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteStrictMode || !strings.HasPrefix(ck.Name, "__Host-") {
		t.Fatalf("login: %d, cookie %+v", resp.StatusCode, ck)
	}
	if code := cc.login("olga", testPassword); code != http.StatusOK || cc.csrf == "" {
		t.Fatalf("login: %d", code)
	}
	if code, body := cc.do(http.MethodPost, "/api/ops/WhoAmI", `{}`, false); code != http.StatusForbidden || !strings.Contains(body, "CSRF") {
		t.Errorf("a request without the CSRF token: %d %s", code, body)
	}
	saved := cc.csrf
	cc.csrf = "forged"
	if code, _ := cc.do(http.MethodPost, "/api/ops/WhoAmI", `{}`, true); code != http.StatusForbidden {
		t.Errorf("a request with a wrong CSRF token: %d", code)
	}
	cc.csrf = saved
	if code, body := cc.do(http.MethodPost, "/api/ops/WhoAmI", `{}`, true); code != http.StatusOK || !strings.Contains(body, `"name":"olga"`) {
		t.Errorf("WhoAmI through the bridge: %d %s", code, body)
	}
	if code, _ := cc.dialLive("north/cam1", ""); code != http.StatusForbidden {
		t.Errorf("live WebSocket without the CSRF token: %d", code)
	}
	// The bridge is the CLI's API: same roles.
	if code, _ := cc.do(http.MethodPost, "/api/ops/AuditLog", `{}`, true); code != http.StatusForbidden {
		t.Errorf("an operator read the audit log: %d", code)
	}
	if code, _ := cc.do(http.MethodPost, "/api/ops/Login", `{}`, true); code != http.StatusNotFound {
		t.Errorf("a method outside the bridge: %d", code)
	}
	if code, _ := cc.do(http.MethodPost, "/api/ops/ListHolds", `{"bogus":1}`, true); code != http.StatusForbidden && code != http.StatusBadRequest {
		t.Errorf("garbage request: %d", code)
	}
	if code, _ := cc.do(http.MethodPost, "/api/recordings/open", `not json`, true); code != http.StatusBadRequest {
		t.Errorf("garbage open request: %d", code)
	}
	if code, _ := cc.do(http.MethodPost, "/api/logout", "", true); code != http.StatusNoContent {
		t.Errorf("logout: %d", code)
	}
	if code, _ := cc.do(http.MethodGet, "/api/session", "", false); code != http.StatusUnauthorized {
		t.Errorf("session after logout: %d", code)
	}
}

func TestConsoleDistrictScopeIsEnforcedAndRecorded(t *testing.T) {
	c := startCentral(t)
	c.addPeople(t, [3]string{"olga", "operator", "north"}, [3]string{"ada", "auditor", ""})
	cc := c.consoleClient(t)
	if code := cc.login("olga", testPassword); code != http.StatusOK {
		t.Fatal(code)
	}
	if code, _ := cc.dialLive("south/cam1", cc.csrf); code != http.StatusForbidden {
		t.Fatalf("operator of north opening south's camera: %d", code)
	}
	code, body := cc.do(http.MethodPost, "/api/recordings/open", `{"id":"abc","camera":"south/cam1","reason":"I am curious about it"}`, true)
	if code != http.StatusForbidden {
		t.Fatalf("operator of north opening south's recording: %d %s", code, body)
	}
	var live, view bool
	for _, r := range auditRecords(t, c, "") {
		if r.Actor.User != "olga" || r.Outcome != audit.OutcomeDenied || r.Target.District != "south" {
			continue
		}
		live = live || r.Action == actions.LiveStart
		view = view || r.Action == actions.RecordingView && r.Reason == "I am curious about it"
	}
	if !live || !view {
		t.Errorf("refusals not on record as denied: live %v, view %v", live, view)
	}
	// Malformed camera names are refused before anything.
	if code, _ := cc.dialLive("south", cc.csrf); code != http.StatusBadRequest {
		t.Errorf("camera without a district: %d", code)
	}
	if code, _ := cc.dialLive("north/cam1", cc.csrf); code != http.StatusNotFound {
		t.Errorf("unknown camera of the operator's district: %d", code)
	}
}

func TestConsoleIdleTimeout(t *testing.T) {
	c := startCentral(t)
	c.addPeople(t, [3]string{"olga", "operator", "north"})
	cc := c.consoleClient(t)
	if code := cc.login("olga", testPassword); code != http.StatusOK {
		t.Fatal(code)
	}
	c.clock.Advance(10 * time.Minute)
	if code, _ := cc.do(http.MethodGet, "/api/session", "", false); code != http.StatusOK {
		t.Fatalf("session used within the idle timeout: %d", code)
	}
	c.clock.Advance(14 * time.Minute)
	if code, _ := cc.do(http.MethodGet, "/api/cameras", "", false); code != http.StatusOK {
		t.Fatalf("each use restarts the idle clock: %d", code)
	}
	// The page's own refreshes do not keep the session alive, and are not
	// recorded: 15 of them a minute apart, then the session has been
	// unused for 16 minutes and ends, on record.
	before := len(auditRecords(t, c, ""))
	for i := 1; i <= 16; i++ {
		c.clock.Advance(time.Minute)
		code, body := cc.doBackground(http.MethodGet, "/api/agents")
		if i <= 15 && code != http.StatusOK {
			t.Fatalf("background refresh after %d min: %d %s", i, code, body)
		}
		if i == 16 && (code != http.StatusUnauthorized || !strings.Contains(body, "without use")) {
			t.Fatalf("session idle for 16 min: %d %s", code, body)
		}
	}
	recs := auditRecords(t, c, "")
	if len(recs) != before+1 || recs[len(recs)-1].Action != actions.Logout || !strings.Contains(recs[len(recs)-1].Detail, "without use") {
		t.Errorf("background refreshes wrote %d audit records, want only the idle logout's", len(recs)-before)
	}
	// Ended for good, not just for this request.
	if code, _ := cc.do(http.MethodGet, "/api/session", "", false); code != http.StatusUnauthorized {
		t.Fatalf("idle session came back: %d", code)
	}
}

func TestConsoleLoginWithSecondFactor(t *testing.T) {
	c := startCentral(t)
	people := c.addPeople(t, [3]string{"olga", "operator", "north"})
	ctx := context.Background()
	enrol, err := people["olga"].EnrollTOTP(ctx, &opsv1.EnrollTOTPRequest{Name: "olga"})
	if err != nil {
		t.Fatal(err)
	}
	code := func() string {
		c.clock.Advance(users.TOTPPeriod) // a code is accepted once per step
		s, err := users.TOTPCode(enrol.GetSecret(), c.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if _, err := people["olga"].ConfirmTOTP(ctx, &opsv1.ConfirmTOTPRequest{Name: "olga", Code: code()}); err != nil {
		t.Fatal(err)
	}
	cc := c.consoleClient(t)
	status, body := cc.do(http.MethodPost, "/api/login", `{"user":"olga","password":"`+testPassword+`"}`, false)
	if status != http.StatusUnauthorized || !strings.Contains(body, `"totp_required":true`) {
		t.Fatalf("password alone: %d %s", status, body)
	}
	status, _ = cc.do(http.MethodPost, "/api/login", `{"user":"olga","password":"`+testPassword+`","totp":"000000"}`, false)
	if status != http.StatusUnauthorized {
		t.Fatalf("wrong code: %d", status)
	}
	status, body = cc.do(http.MethodPost, "/api/login", `{"user":"olga","password":"`+testPassword+`","totp":"`+code()+`"}`, false)
	if status != http.StatusOK || !strings.Contains(body, `"csrf"`) {
		t.Fatalf("password and code: %d %s", status, body)
	}
}
