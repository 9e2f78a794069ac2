package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	centralconfig "github.com/vigil-cctv/vigil/central/config"
)

// TestPeopleCLI drives login, user management, tokens, agents list and
// logout as an administrator and an operator would, against a central in
// this process.
func TestPeopleCLI(t *testing.T) {
	home := t.TempDir()
	t.Setenv("VIGIL_HOME", home)
	dir := t.TempDir()
	ccfg := &centralconfig.Config{DataDir: filepath.Join(dir, "central"), AgentListen: freeAddr(t), APIListen: freeAddr(t), ConsoleListen: "127.0.0.1:0"}
	if err := ccfg.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	central := startCentralProcess(t, ccfg)
	defer central.stop(t)
	ctx := context.Background()
	run := func(stdin string, args ...string) (string, error) {
		t.Helper()
		root := newRootCommand()
		var out, errOut strings.Builder
		root.SetOut(&out)
		root.SetErr(&errOut)
		root.SetIn(strings.NewReader(stdin))
		root.SetArgs(args)
		err := root.ExecuteContext(ctx)
		return out.String() + errOut.String(), err
	}
	api := central.APIAddr()
	fp := central.Fingerprint()

	// First login without the fingerprint is refused with a clear hint.
	if _, err := run(central.AdminPassword+"\n", "login", "--central", api, "--user", "admin", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "--ca-fingerprint") {
		t.Fatalf("first login without a pin: %v", err)
	}
	if _, err := run("wrong password\n", "login", "--central", api, "--user", "admin", "--password-stdin", "--ca-fingerprint", fp); err == nil || !strings.Contains(err.Error(), "wrong user name or password") {
		t.Fatalf("bad password: %v", err)
	}
	out, err := run(central.AdminPassword+"\n", "login", "--central", api, "--user", "admin", "--password-stdin", "--ca-fingerprint", fp)
	if err != nil || !strings.Contains(out, "logged in") {
		t.Fatalf("login: %v %s", err, out)
	}
	st, err := os.Stat(filepath.Join(home, "session.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("session file: %v %v", st, err)
	}
	if out, err := run("operator pass 1\n", "user", "add", "olga", "--role", "operator", "--district", "north", "--designation", "act 7/2026", "--password-stdin"); err != nil || !strings.Contains(out, "added olga") {
		t.Fatalf("user add: %v %s", err, out)
	}
	if _, err := run("operator pass 1\n", "user", "add", "olga", "--role", "operator", "--district", "north", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("duplicate user: %v", err)
	}
	if _, err := run("x\n", "user", "add", "bob", "--role", "janitor", "--password-stdin"); err == nil {
		t.Fatal("unknown role accepted")
	}
	out, err = run("", "user", "list", "-o", "json")
	var list []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 {
		t.Fatalf("user list: %v %s", err, out)
	}
	out, err = run("", "central", "token", "create", "--district", "north")
	if err != nil || !strings.HasPrefix(out, "vigil-enroll-v1."+fp+".") {
		t.Fatalf("token create: %v %s", err, out)
	}
	out, err = run("", "agents", "list", "-o", "json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("agents list: %v %q", err, out)
	}

	// The operator may list recordings of north, not of south, and may not
	// manage users.
	if _, err := run("operator pass 1\n", "login", "--central", api, "--user", "olga", "--password-stdin"); err != nil {
		t.Fatalf("operator login (pin kept): %v", err)
	}
	if out, err := run("", "recordings", "list", "--camera", "north/gate", "--from", "-1h"); err != nil || !strings.Contains(out, "no recordings") {
		t.Fatalf("operator lists north: %v %s", err, out)
	}
	if _, err := run("", "recordings", "list", "--camera", "south/gate", "--from", "-1h"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("operator lists south: %v", err)
	}
	if _, err := run("", "user", "list"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("operator lists users: %v", err)
	}
	if _, err := run("wrong current\noperator pass 2\n", "user", "passwd", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "current password is wrong") {
		t.Fatalf("own password with a wrong current one: %v", err)
	}
	if out, err := run("operator pass 1\noperator pass 2\n", "user", "passwd", "--password-stdin"); err != nil || !strings.Contains(out, "log in again") {
		t.Fatalf("own password: %v %s", err, out)
	}
	if _, err := run("", "agents", "list"); err == nil || !strings.Contains(err.Error(), "run vigil login") {
		t.Fatalf("the password change must end the session: %v", err)
	}
	if _, err := run("operator pass 2\n", "login", "--central", api, "--user", "olga", "--password-stdin"); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
	if out, err := run("", "logout"); err != nil || !strings.Contains(out, "logged out") {
		t.Fatalf("logout: %v %s", err, out)
	}
	if _, err := run("", "agents", "list"); err == nil || !strings.Contains(err.Error(), "run vigil login") {
		t.Fatalf("after logout: %v", err)
	}
}
