package consoletest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigil-cctv/vigil/agent"
	"github.com/vigil-cctv/vigil/agent/camerasim"
	agentconfig "github.com/vigil-cctv/vigil/agent/config"
	"github.com/vigil-cctv/vigil/agent/enroll"
	"github.com/vigil-cctv/vigil/central/audit"
	centralconfig "github.com/vigil-cctv/vigil/central/config"
	"github.com/vigil-cctv/vigil/central/server"
	"github.com/vigil-cctv/vigil/central/users"
)

// district is the test's district; otherDistrict has an operator but no
// agent.
const (
	district      = "north"
	otherDistrict = "south"
)

// env is central, one agent and its simulated cameras, all in process.
type env struct {
	t         testing.TB
	dir       string
	sim       *camerasim.Server
	central   *server.Server
	stopCtl   func()
	agentCfg  *agentconfig.Config
	agentMu   sync.Mutex
	agentStop func()
	passwords map[string]string
	console   string
	log       *slog.Logger
}

// clipsNamed picks the embedded clips, in the order given.
func clipsNamed(t testing.TB, names ...string) []*camerasim.Clip {
	all, err := camerasim.EmbeddedClips()
	if err != nil {
		t.Fatal(err)
	}
	var out []*camerasim.Clip
	for _, n := range names {
		i := slices.IndexFunc(all, func(c *camerasim.Clip) bool { return c.Name == n })
		if i < 0 {
			t.Fatalf("no embedded clip %q", n)
		}
		out = append(out, all[i])
	}
	return out
}

// startEnv starts cameras playing the clips (cam1, cam2, …), central with
// its console, one user per role (and an operator of another district),
// and an agent recording every camera continuously in short segments.
func startEnv(t testing.TB, clips []*camerasim.Clip, count int) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), passwords: map[string]string{}}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() && os.Getenv("VIGIL_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	sim, err := camerasim.New(camerasim.Config{Listen: "127.0.0.1:0", Clips: clips, Count: count, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	e.sim = sim
	e.log = log

	ccfg := &centralconfig.Config{DataDir: filepath.Join(e.dir, "central"), AgentListen: "127.0.0.1:0", APIListen: "127.0.0.1:0", ConsoleListen: "127.0.0.1:0"}
	if err := ccfg.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(ccfg, server.Options{Logger: log, Users: users.Options{Argon2: users.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("central: %v", err)
	}
	var once sync.Once
	e.stopCtl = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("central: %v", err)
			}
		})
	}
	e.central, e.console = srv, srv.ConsoleURL()

	for _, u := range []struct {
		name      string
		role      users.Role
		districts []string
	}{
		{"olga", users.RoleOperator, []string{district}},
		{"oscar", users.RoleOperator, []string{otherDistrict}},
		{"otto", users.RoleOfficer, nil},
		{"ada", users.RoleAuditor, nil},
		{"root", users.RoleAdmin, nil},
	} {
		pw := "pw-" + u.name + "-0123456789"
		if _, err := srv.Users().Add(u.name, u.role, u.districts, "test designation", pw); err != nil {
			t.Fatal(err)
		}
		e.passwords[u.name] = pw
	}

	acfg := &agentconfig.Config{
		District: district, DataDir: filepath.Join(e.dir, "agent"),
		Storage: agentconfig.Storage{FS: &agentconfig.FSStorage{Path: filepath.Join(e.dir, "footage")}},
	}
	for n := 1; n <= sim.Count(); n++ {
		acfg.Cameras = append(acfg.Cameras, agentconfig.Camera{
			ID: fmt.Sprintf("cam%d", n), URL: sim.URL(n), Transport: agentconfig.TransportTCP,
			Mode: agentconfig.ModeContinuous, MaxLength: agentconfig.Duration(4 * time.Second),
		})
	}
	if err := acfg.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	e.agentCfg = acfg
	tok, _, err := srv.Tokens().Create(district, 10*time.Minute, srv.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enroll.Enroll(context.Background(), enroll.Options{
		Central: srv.AgentAddr(), Token: tok.String(), DataDir: acfg.DataDir, District: district, Logger: log,
	}); err != nil {
		t.Fatal(err)
	}
	e.startAgent()
	t.Cleanup(e.stop)
	e.waitFor(30*time.Second, "the agent to connect and its cameras to be up", func() bool {
		if !srv.Registry().Connected(district) {
			return false
		}
		agents, err := srv.Registry().Agents()
		if err != nil || len(agents) == 0 {
			return false
		}
		up := 0
		for _, c := range agents[0].Cameras {
			if c.GetState() == "up" {
				up++
			}
		}
		return up == sim.Count()
	})
	return e
}

func (e *env) startAgent() {
	e.t.Helper()
	e.agentMu.Lock()
	defer e.agentMu.Unlock()
	a, err := agent.New(e.agentCfg, agent.Options{Logger: e.log})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	e.agentStop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("agent: %v", err)
			}
		})
	}
}

func (e *env) stopAgent() {
	e.agentMu.Lock()
	stop := e.agentStop
	e.agentMu.Unlock()
	if stop != nil {
		stop()
	}
}

func (e *env) stop() {
	e.stopAgent()
	e.stopCtl()
}

func (e *env) waitFor(timeout time.Duration, what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// records returns the audit records of an action (all when "").
func (e *env) records(action string) []audit.Record {
	e.t.Helper()
	recs, err := e.central.Audit().Query(audit.Filter{Action: action, Limit: audit.MaxQueryLimit})
	if err != nil {
		e.t.Fatal(err)
	}
	return recs
}

// client is an HTTP client of the console with its own cookie jar.
func (e *env) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar:       jar,
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // loopback test server with central's own CA
	}
}

// apiLogin logs a client in and returns the CSRF token.
func (e *env) apiLogin(c *http.Client, user string) string {
	e.t.Helper()
	body := fmt.Sprintf(`{"user":%q,"password":%q}`, user, e.passwords[user])
	resp, err := c.Post(e.console+"api/login", "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var info struct {
		CSRF  string `json:"csrf"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil || resp.StatusCode != http.StatusOK {
		e.t.Fatalf("login %s: %d %v %s", user, resp.StatusCode, err, info.Error)
	}
	return info.CSRF
}

// chromium finds Debian's browser.
func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed (make test installs Debian's chromium package)")
	return ""
}

// browser starts a headless Chromium; the context ends with the test.
func browser(t testing.TB) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		// Central's certificate comes from its own CA, which this
		// throwaway profile does not trust.
		chromedp.IgnoreCertErrors,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.WindowSize(1280, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// run runs browser actions with a timeout, failing the test on error.
func run(t testing.TB, ctx context.Context, timeout time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := chromedp.Do(tctx, actions...); err != nil {
		t.Fatalf("%s: %v\npage:\n%s", what, err, pageText(ctx))
	}
}

// login fills the page's login form.
func (e *env) login(ctx context.Context, user string) {
	e.t.Helper()
	run(e.t, ctx, 20*time.Second, "log in as "+user,
		chromedp.Navigate(e.console),
		chromedp.WaitVisible(chromedp.CSS("#login-user")),
		chromedp.SendKeys(chromedp.CSS("#login-user"), user),
		chromedp.SendKeys(chromedp.CSS("#login-password"), e.passwords[user]),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#whoami")),
	)
}

// evalBool evaluates a JavaScript expression until it is true.
func waitJS(t testing.TB, ctx context.Context, timeout time.Duration, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := chromedp.Run(tctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s (last error: %v)\npage:\n%s", timeout, what, err, pageText(ctx))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func evalJS[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// get fetches a console URL with a client, returning status and body.
func get(t testing.TB, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// pageText is what the page shows, for failure messages.
func pageText(ctx context.Context) string {
	tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	text, err := chromedp.Run(tctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 3000) : ''`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return text
}

// chromedpClickLayout shows the wall as n tiles.
func chromedpClickLayout(n int) chromedp.Action[chromedp.Void] {
	sel := chromedp.CSS(fmt.Sprintf(`button[data-layout="%d"]`, n))
	return chromedp.Steps(chromedp.WaitVisible(sel), chromedp.Click(sel))
}
