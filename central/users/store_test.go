package users

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const goodPassword = "correct horse battery"

func TestAddValidation(t *testing.T) {
	e := mustNew(t, nil)
	e.mustAdd(t, "taken", RoleAuditor, nil, goodPassword)

	long := strings.Repeat("x", 300)
	cases := []struct {
		name        string
		user        string
		role        Role
		districts   []string
		designation string
		password    string
		want        error
		msg         string
	}{
		{"empty name", "", RoleAuditor, nil, "", goodPassword, ErrInvalid, "user name"},
		{"uppercase", "Alice", RoleAuditor, nil, "", goodPassword, ErrInvalid, "user name"},
		{"starts with digit", "1alice", RoleAuditor, nil, "", goodPassword, ErrInvalid, "user name"},
		{"space", "al ice", RoleAuditor, nil, "", goodPassword, ErrInvalid, "user name"},
		{"33 chars", "a" + strings.Repeat("b", 32), RoleAuditor, nil, "", goodPassword, ErrInvalid, "user name"},
		{"unknown role", "alice", Role("root"), nil, "", goodPassword, ErrInvalid, "unknown role"},
		{"empty role", "alice", "", nil, "", goodPassword, ErrInvalid, "unknown role"},
		{"bad district", "alice", RoleOfficer, []string{"North"}, "", goodPassword, ErrInvalid, "district id"},
		{"empty district", "alice", RoleOfficer, []string{""}, "", goodPassword, ErrInvalid, "district id"},
		{"operator without district", "alice", RoleOperator, nil, "", goodPassword, ErrInvalid, "at least one district"},
		{"short password", "alice", RoleAuditor, nil, "", "elevenchars", ErrInvalid, "too short"},
		{"long password", "alice", RoleAuditor, nil, "", strings.Repeat("p", 1025), ErrInvalid, "too long"},
		{"designation control char", "alice", RoleAuditor, nil, "a\nb", goodPassword, ErrInvalid, "printable"},
		{"designation too long", "alice", RoleAuditor, nil, long, goodPassword, ErrInvalid, "designation too long"},
		{"duplicate", "taken", RoleAuditor, nil, "", goodPassword, ErrUserExists, "taken"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.Add(c.user, c.role, c.districts, c.designation, c.password)
			if !errors.Is(err, c.want) {
				t.Fatalf("Add: got %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.msg) || !strings.HasPrefix(err.Error(), "users: add: ") {
				t.Fatalf("Add: error %q lacks %q or the prefix", err, c.msg)
			}
		})
	}
	list, err := e.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("refused adds changed the store: %v", list)
	}
}

func TestAddGetList(t *testing.T) {
	e := mustNew(t, nil)
	// Names accepted at the edges of the syntax.
	for _, name := range []string{"a", "z" + strings.Repeat("9", 31), "mario.rossi", "ops_1-b"} {
		e.mustAdd(t, name, RoleAuditor, nil, goodPassword)
	}
	u, err := e.Add("olga", RoleOperator, []string{"south", "north", "south"}, "det. 7/2026", "twelve chars")
	if err != nil {
		t.Fatal(err)
	}
	want := User{Name: "olga", Role: RoleOperator, Districts: []string{"north", "south"}, Designation: "det. 7/2026", Created: e.clock.Now()}
	if !equalUser(u, want) {
		t.Fatalf("Add returned %+v, want %+v", u, want)
	}
	got, err := e.Get("olga")
	if err != nil || !equalUser(got, want) {
		t.Fatalf("Get: %+v, %v; want %+v", got, err, want)
	}
	if _, err := e.Get("nobody"); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("Get unknown: %v", err)
	}
	list, err := e.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range list {
		names = append(names, u.Name)
	}
	if !slices.IsSorted(names) || len(names) != 5 {
		t.Fatalf("List: %v", names)
	}
	// The caller cannot change the store through a returned slice.
	got.Districts[0] = "east"
	if again, _ := e.Get("olga"); again.Districts[0] != "north" {
		t.Fatal("Get shares the districts slice")
	}
}

func equalUser(a, b User) bool {
	return a.Name == b.Name && a.Role == b.Role && slices.Equal(a.Districts, b.Districts) &&
		a.Designation == b.Designation && a.Disabled == b.Disabled && a.Created.Equal(b.Created)
}

func TestParseRoleAndScope(t *testing.T) {
	for _, r := range Roles() {
		if got, err := ParseRole(string(r)); err != nil || got != r {
			t.Fatalf("ParseRole(%q) = %q, %v", r, got, err)
		}
	}
	for _, s := range []string{"", "Admin", "root", "operator "} {
		if _, err := ParseRole(s); !errors.Is(err, ErrInvalid) {
			t.Fatalf("ParseRole(%q): %v", s, err)
		}
	}
	all := User{Name: "a", Role: RoleAuditor}
	some := User{Name: "b", Role: RoleOperator, Districts: []string{"north"}}
	cases := []struct {
		u        User
		district string
		want     bool
	}{
		{all, "north", true},
		{all, "anywhere", true},
		{all, "", false},
		{some, "north", true},
		{some, "south", false},
		{some, "", false},
	}
	for _, c := range cases {
		if got := c.u.InScope(c.district); got != c.want {
			t.Errorf("%s.InScope(%q) = %v, want %v", c.u.Name, c.district, got, c.want)
		}
	}
}

func TestDisable(t *testing.T) {
	e := mustNew(t, nil)
	e.mustAdd(t, "root", RoleAdmin, nil, goodPassword)
	e.mustAdd(t, "olga", RoleOperator, []string{"north"}, goodPassword)
	e.mustAdd(t, "otto", RoleOfficer, nil, goodPassword)
	olgaTok := e.mustLogin(t, "olga", goodPassword, "10.0.0.1:1")
	olgaTok2 := e.mustLogin(t, "olga", goodPassword, "10.0.0.2:1")
	ottoTok := e.mustLogin(t, "otto", goodPassword, "10.0.0.3:1")

	if err := e.Disable("olga"); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{olgaTok, olgaTok2} {
		if _, _, err := e.Authenticate(tok); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("disabled user's session still valid: %v", err)
		}
	}
	if _, _, err := e.Authenticate(ottoTok); err != nil {
		t.Fatalf("another user's session revoked: %v", err)
	}
	if u, _ := e.Get("olga"); !u.Disabled {
		t.Fatal("Get does not show disabled")
	}
	if err := e.Disable("olga"); err != nil {
		t.Fatalf("disabling twice: %v", err)
	}
	if err := e.Disable("nobody"); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("disable unknown: %v", err)
	}
	// The only enabled administrator stays.
	if err := e.Disable("root"); !errors.Is(err, ErrLastAdmin) {
		t.Fatalf("disable last admin: %v", err)
	}
	e.mustAdd(t, "root2", RoleAdmin, nil, goodPassword)
	if err := e.Disable("root"); err != nil {
		t.Fatalf("disable one of two admins: %v", err)
	}
	if err := e.Disable("root2"); !errors.Is(err, ErrLastAdmin) {
		t.Fatalf("disable last admin: %v", err)
	}
}

func TestSetPassword(t *testing.T) {
	e := mustNew(t, nil)
	e.mustAdd(t, "olga", RoleOperator, []string{"north"}, goodPassword)
	e.mustAdd(t, "otto", RoleOfficer, nil, goodPassword)
	tok := e.mustLogin(t, "olga", goodPassword, "10.0.0.1:1")
	ottoTok := e.mustLogin(t, "otto", goodPassword, "10.0.0.1:1")

	cases := []struct {
		name, user, password string
		want                 error
	}{
		{"short", "olga", "short", ErrInvalid},
		{"unknown user", "nobody", "long enough password", ErrNoSuchUser},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := e.SetPassword(c.user, c.password); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	if _, _, err := e.Authenticate(tok); err != nil {
		t.Fatalf("a refused SetPassword revoked the session: %v", err)
	}

	const newPassword = "a brand new secret"
	if err := e.SetPassword("olga", newPassword); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Authenticate(tok); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("session survived a password change: %v", err)
	}
	if _, _, err := e.Authenticate(ottoTok); err != nil {
		t.Fatalf("another user's session revoked: %v", err)
	}
	if _, _, _, err := e.Login("olga", goodPassword, "10.0.0.1:1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("old password still works: %v", err)
	}
	e.mustLogin(t, "olga", newPassword, "10.0.0.1:1")
}

func TestBootstrap(t *testing.T) {
	t.Run("first start", func(t *testing.T) {
		e := mustNew(t, nil)
		dir := t.TempDir()
		pw, created, err := e.Bootstrap(dir)
		if err != nil || !created {
			t.Fatalf("Bootstrap: %v, created %v", err, created)
		}
		if len(pw) < MinPasswordLen {
			t.Fatalf("password %q too short", pw)
		}
		path := filepath.Join(dir, BootstrapFile)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
		}
		data, err := os.ReadFile(path)
		if err != nil || string(data) != pw+"\n" {
			t.Fatalf("file holds %q, %v", data, err)
		}
		u, err := e.Get("admin")
		if err != nil || u.Role != RoleAdmin || len(u.Districts) != 0 || u.Designation != "bootstrap" {
			t.Fatalf("admin is %+v, %v", u, err)
		}
		_, _, lu, err := e.Login("admin", pw, "127.0.0.1:5")
		if err != nil || lu.Name != "admin" {
			t.Fatalf("login with the bootstrap password: %v", err)
		}

		// Second start: users exist, nothing happens, the file is left as is.
		pw2, created, err := e.Bootstrap(dir)
		if err != nil || created || pw2 != "" {
			t.Fatalf("second Bootstrap: %q, %v, %v", pw2, created, err)
		}
		if again, _ := os.ReadFile(path); string(again) != string(data) {
			t.Fatal("second Bootstrap touched the file")
		}
	})
	t.Run("file already there", func(t *testing.T) {
		// A file left by an interrupted first start is never overwritten.
		e := mustNew(t, nil)
		dir := t.TempDir()
		path := filepath.Join(dir, BootstrapFile)
		if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, created, err := e.Bootstrap(dir)
		if !errors.Is(err, os.ErrExist) || created || !strings.Contains(err.Error(), "remove it") {
			t.Fatalf("Bootstrap over an existing file: %v, created %v", err, created)
		}
		if data, _ := os.ReadFile(path); string(data) != "old\n" {
			t.Fatal("existing file overwritten")
		}
		if list, _ := e.List(); len(list) != 0 {
			t.Fatalf("user created anyway: %v", list)
		}
	})
	t.Run("users exist", func(t *testing.T) {
		e := mustNew(t, nil)
		e.mustAdd(t, "root", RoleAdmin, nil, goodPassword)
		dir := t.TempDir()
		if _, created, err := e.Bootstrap(dir); err != nil || created {
			t.Fatalf("Bootstrap with users: %v, %v", err, created)
		}
		if _, err := os.Stat(filepath.Join(dir, BootstrapFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("file written although users exist: %v", err)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		e := mustNew(t, nil)
		if _, _, err := e.Bootstrap(filepath.Join(t.TempDir(), "nope")); err == nil {
			t.Fatal("no error")
		}
		if list, _ := e.List(); len(list) != 0 {
			t.Fatalf("user created without its password file: %v", list)
		}
	})
}

func TestNewOptions(t *testing.T) {
	db := mustOpenDB(t, filepath.Join(t.TempDir(), "c.db"))
	bad := []Options{
		{SessionTTL: -1},
		{MaxFailures: -1},
		{FailureWindow: -1},
		{Argon2: Argon2Params{MemoryKiB: 8, Threads: 4}},
		{Argon2: Argon2Params{Time: 1000}},
	}
	for _, o := range bad {
		if _, err := New(db, o); err == nil {
			t.Errorf("New(%+v): no error", o)
		}
	}
	if _, err := New(nil, Options{}); err == nil {
		t.Error("New(nil db): no error")
	}
	s, err := New(db, Options{Argon2: fastArgon2})
	if err != nil {
		t.Fatal(err)
	}
	if s.opts.SessionTTL != DefaultSessionTTL || s.opts.MaxFailures != 5 || s.opts.FailureWindow != DefaultFailureWindow {
		t.Fatalf("defaults: %+v", s.opts)
	}
}
