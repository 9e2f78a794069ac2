package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	centralconfig "github.com/vigil-cctv/vigil/central/config"
	"github.com/vigil-cctv/vigil/central/server"
	"github.com/vigil-cctv/vigil/central/users"
)

// stepClock is central's clock in TestSecondFactorCLI: it starts at the
// real time (certificates, session expiry) and is moved on a TOTP step at a
// time, so that each code is fresh without waiting 30 s.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *stepClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestSecondFactorCLI drives a second factor through the command line
// against a central in this process: enable, confirm, log in with --totp
// and at the prompt, the TOTP column of user list, and removal by an
// administrator.
func TestSecondFactorCLI(t *testing.T) {
	home := t.TempDir()
	t.Setenv("VIGIL_HOME", home)
	ccfg := &centralconfig.Config{DataDir: filepath.Join(t.TempDir(), "central"), AgentListen: freeAddr(t), APIListen: freeAddr(t), ConsoleListen: "127.0.0.1:0"}
	if err := ccfg.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	clock := &stepClock{t: time.Now()}
	srv, err := server.New(ccfg, server.Options{
		Logger: slog.New(slog.DiscardHandler), Now: clock.Now,
		Users: users.Options{Argon2: users.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	central := &runningCentral{Server: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { central.done <- srv.Run(ctx) }()
	defer central.stop(t)
	select {
	case <-srv.Ready():
	case err := <-central.done:
		t.Fatalf("central: %v", err)
	}

	terminal := false
	stdinIsTerminal = func() bool { return terminal }
	t.Cleanup(func() { stdinIsTerminal = func() bool { return false } })

	run := func(stdin string, args ...string) (string, error) {
		t.Helper()
		root := newRootCommand()
		var out, errOut strings.Builder
		root.SetOut(&out)
		root.SetErr(&errOut)
		root.SetIn(strings.NewReader(stdin))
		root.SetArgs(args)
		err := root.ExecuteContext(context.Background())
		return out.String() + errOut.String(), err
	}
	api, fp := central.APIAddr(), central.Fingerprint()
	login := func(user, password string, extra ...string) (string, error) {
		t.Helper()
		return run(password+"\n", append([]string{"login", "--central", api, "--user", user, "--password-stdin", "--ca-fingerprint", fp}, extra...)...)
	}
	code := func(secret string) string {
		t.Helper()
		clock.Advance(users.TOTPPeriod) // one code per step: each is accepted once
		c, err := users.TOTPCode(secret, clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	const pw = "operator pass 1"
	if out, err := login("admin", central.AdminPassword); err != nil {
		t.Fatalf("admin login: %v %s", err, out)
	}
	if out, err := run(pw+"\n", "user", "add", "olga", "--role", "operator", "--district", "north", "--password-stdin"); err != nil {
		t.Fatalf("user add: %v %s", err, out)
	}
	if _, err := run("", "user", "totp", "confirm", "123456"); err == nil || !strings.Contains(err.Error(), "no second factor enrolment pending") {
		t.Fatalf("confirm with nothing pending: %v", err)
	}

	// olga enables hers.
	if out, err := login("olga", pw); err != nil {
		t.Fatalf("olga login: %v %s", err, out)
	}
	out, err := run("", "user", "totp", "enable")
	if err != nil {
		t.Fatalf("enable: %v %s", err, out)
	}
	m := regexp.MustCompile(`(?m)^secret: ([A-Z2-7]{32})$`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "otpauth://totp/vigil:olga?secret="+m[1]+"&issuer=vigil&algorithm=SHA1&digits=6&period=30") {
		t.Fatalf("enable printed:\n%s", out)
	}
	secret := m[1]
	// Not confirmed: nothing changes for logins.
	if out, err := login("olga", pw); err != nil {
		t.Fatalf("login while pending: %v %s", err, out)
	}
	if _, err := run("", "user", "totp", "confirm", "000000"); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("confirm with a wrong code: %v", err)
	}
	if out, err := run("", "user", "totp", "confirm", code(secret)); err != nil || !strings.Contains(out, "enabled") {
		t.Fatalf("confirm: %v %s", err, out)
	}

	// Logins now need the code: said clearly when none can be asked for,
	// asked for at a terminal, taken from --totp.
	if _, err := login("olga", pw); err == nil || !strings.Contains(err.Error(), "second factor required") || !strings.Contains(err.Error(), "--totp") {
		t.Fatalf("login without a code, no terminal: %v", err)
	}
	if _, err := login("olga", pw, "--totp", "000000"); err == nil || !strings.Contains(err.Error(), "wrong user name, password or authenticator code") {
		t.Fatalf("login with a wrong code: %v", err)
	}
	if _, err := login("olga", "not her password", "--totp", code(secret)); err == nil || !strings.Contains(err.Error(), "wrong user name") {
		t.Fatalf("login with a wrong password and a right code: %v", err)
	}
	good := code(secret)
	if out, err := login("olga", pw, "--totp", good); err != nil || !strings.Contains(out, "logged in") {
		t.Fatalf("login with --totp: %v %s", err, out)
	}
	if _, err := login("olga", pw, "--totp", good); err == nil {
		t.Fatal("the same code logged in twice")
	}
	terminal = true
	out, err = run(pw+"\n"+code(secret)+"\n", "login", "--central", api, "--user", "olga", "--password-stdin")
	if err != nil || !strings.Contains(out, "code of your authenticator app: ") || !strings.Contains(out, "logged in") {
		t.Fatalf("login, code at the prompt: %v %s", err, out)
	}
	if _, err := run(pw+"\n\n", "login", "--central", api, "--user", "olga", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "no code") {
		t.Fatalf("login, nothing at the prompt: %v", err)
	}
	terminal = false

	// An administrator sees it and removes it (enrolling is for oneself:
	// enable takes no name, and central refuses it for anyone else).
	if out, err := login("admin", central.AdminPassword); err != nil {
		t.Fatalf("admin login: %v %s", err, out)
	}
	out, err = run("", "user", "list", "-o", "json")
	var list []struct {
		Name string `json:"name"`
		TOTP bool   `json:"totp"`
	}
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 {
		t.Fatalf("user list: %v %s", err, out)
	}
	for _, u := range list {
		if u.TOTP != (u.Name == "olga") {
			t.Errorf("user list -o json: %s totp=%v", u.Name, u.TOTP)
		}
	}
	out, err = run("", "user", "list")
	if err != nil || !regexp.MustCompile(`(?m)^NAME\s+ROLE\s+DISTRICTS\s+STATE\s+TOTP\s`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^olga\s+operator\s+north\s+active\s+yes\s`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^admin\s+admin\s+all\s+active\s+no\s`).MatchString(out) {
		t.Fatalf("user list:\n%s %v", out, err)
	}
	if out, err := run("", "user", "totp", "disable", "olga"); err != nil || !strings.Contains(out, "removed") {
		t.Fatalf("admin disables olga's second factor: %v %s", err, out)
	}
	if out, err := login("olga", pw); err != nil {
		t.Fatalf("login after removal: %v %s", err, out)
	}
	// Someone else's is for administrators only.
	if _, err := run("", "user", "totp", "disable", "admin"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("operator disables the admin's second factor: %v", err)
	}
	if out, err := login("admin", central.AdminPassword); err != nil {
		t.Fatalf("admin login: %v %s", err, out)
	}
	if _, err := run("", "user", "totp", "disable", "nobody"); err == nil || !strings.Contains(err.Error(), "no such user") {
		t.Fatalf("disable for an unknown user: %v", err)
	}
}
