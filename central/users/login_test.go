package users

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

func TestLoginCredentials(t *testing.T) {
	e := mustNew(t, func(o *Options) { o.MaxFailures = 100 })
	e.mustAdd(t, "olga", RoleOperator, []string{"north"}, goodPassword)
	e.mustAdd(t, "gone", RoleAuditor, nil, goodPassword)
	if err := e.Disable("gone"); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, user, password string
		reason               FailureReason // "" for success
	}{
		{"ok", "olga", goodPassword, ""},
		{"bad password", "olga", goodPassword + "x", ReasonBadPassword},
		{"empty password", "olga", "", ReasonBadPassword},
		{"unknown user", "nobody", goodPassword, ReasonUnknownUser},
		{"invalid name", "Robert'); DROP", goodPassword, ReasonUnknownUser},
		{"disabled, right password", "gone", goodPassword, ReasonDisabled},
		{"disabled, wrong password", "gone", "nope nope nope", ReasonBadPassword},
	}
	var failMsgs []string
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.verifications.Load()
			e.clock.Advance(time.Second)
			since := e.clock.Now()
			tok, exp, u, err := e.Login(c.user, c.password, "192.0.2.7:40000")
			// Every outcome costs exactly one argon2 verification, so
			// unknown and disabled names take as long as wrong passwords.
			if n := e.verifications.Load() - before; n != 1 {
				t.Fatalf("%d verifications, want 1", n)
			}
			if c.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				if u.Name != c.user || !exp.Equal(e.clock.Now().Add(DefaultSessionTTL)) || len(tok) != 43 {
					t.Fatalf("got %q %v %+v", tok, exp, u)
				}
				return
			}
			if !errors.Is(err, ErrBadCredentials) || tok != "" || u.Name != "" {
				t.Fatalf("got %q %+v %v, want ErrBadCredentials", tok, u, err)
			}
			failMsgs = append(failMsgs, err.Error())
			f, ferr := e.FailedLogins(since)
			if ferr != nil || len(f) != 1 || f[0].Reason != c.reason || f[0].User != c.user || f[0].Address != "192.0.2.7:40000" {
				t.Fatalf("recorded %+v, %v; want reason %s", f, ferr, c.reason)
			}
		})
	}
	// The caller cannot tell the failures apart.
	for _, m := range failMsgs {
		if m != failMsgs[0] {
			t.Fatalf("failure messages differ: %q", failMsgs)
		}
	}
}

// TestLoginTiming checks that an unknown name is not answered measurably
// faster than a wrong password: both run argon2 with the same parameters.
func TestLoginTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("timing")
	}
	e := mustNew(t, func(o *Options) {
		o.Argon2 = Argon2Params{Time: 1, MemoryKiB: 16 * 1024, Threads: 1}
		o.MaxFailures = 1000
	})
	e.mustAdd(t, "olga", RoleAuditor, nil, goodPassword)
	median := func(user string) time.Duration {
		var ds []time.Duration
		for i := range 7 {
			start := time.Now()
			_, _, _, err := e.Login(user, "wrong wrong wrong", fmt.Sprintf("10.1.0.%d:1", i))
			ds = append(ds, time.Since(start))
			if !errors.Is(err, ErrBadCredentials) {
				t.Fatal(err)
			}
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	known, unknown := median("olga"), median("nobody")
	if ratio := float64(unknown) / float64(known); ratio < 0.5 || ratio > 2 {
		t.Fatalf("unknown user %v vs wrong password %v", unknown, known)
	}
}

func TestRateLimitPerUser(t *testing.T) {
	e := mustNew(t, func(o *Options) { o.MaxFailures = 3; o.FailureWindow = time.Minute })
	e.mustAdd(t, "olga", RoleOperator, []string{"north"}, goodPassword)
	e.mustAdd(t, "otto", RoleOfficer, nil, goodPassword)

	// Three failures at t0, t0+20s, t0+40s, each from another address so
	// that only the per-user limit applies.
	for i := range 3 {
		if i > 0 {
			e.clock.Advance(20 * time.Second)
		}
		if _, _, _, err := e.Login("olga", "wrong password!", fmt.Sprintf("10.0.0.%d:1", i)); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	// Locked, even with the right password and from a fresh address; the
	// password is not even checked.
	before := e.verifications.Load()
	_, _, _, err := e.Login("olga", goodPassword, "10.9.9.9:1")
	var tm *TooManyAttemptsError
	if !errors.As(err, &tm) || !errors.Is(err, ErrTooManyAttempts) || tm.Scope != "user" {
		t.Fatalf("fourth attempt: %v", err)
	}
	if tm.RetryAfter != 20*time.Second { // the t0 failure leaves the window at t0+60s
		t.Fatalf("retry after %v, want 20s", tm.RetryAfter)
	}
	if e.verifications.Load() != before {
		t.Fatal("password checked while locked")
	}
	// Another user from the same addresses is not affected.
	e.mustLogin(t, "otto", goodPassword, "10.0.0.1:1")

	// The window slides: at t0+60s the first failure is out, one attempt
	// is allowed; failing it locks again until the t0+20s one leaves.
	e.clock.Advance(20 * time.Second)
	if _, _, _, err := e.Login("olga", "wrong again!!", "10.0.0.5:1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("after slide: %v", err)
	}
	_, _, _, err = e.Login("olga", goodPassword, "10.0.0.6:1")
	if !errors.As(err, &tm) || tm.RetryAfter != 20*time.Second {
		t.Fatalf("locked again: %v", err)
	}
	e.clock.Advance(20 * time.Second)
	e.mustLogin(t, "olga", goodPassword, "10.0.0.6:1")

	// A success forgets the user's failures: two more failures do not lock.
	for i := range 2 {
		if _, _, _, err := e.Login("olga", "wrong password!", fmt.Sprintf("10.0.1.%d:1", i)); !errors.Is(err, ErrBadCredentials) {
			t.Fatal(err)
		}
	}
	e.mustLogin(t, "olga", goodPassword, "10.0.1.9:1")
}

func TestRateLimitPerAddress(t *testing.T) {
	e := mustNew(t, func(o *Options) { o.MaxFailures = 3; o.FailureWindow = time.Minute })
	e.mustAdd(t, "olga", RoleOperator, []string{"north"}, goodPassword)

	cases := []struct {
		name     string
		attempts []string // addresses of three failures, one name each
		probe    string   // an address that must now be refused
		other    string   // an address that must still be served
	}{
		{"ipv4, ports differ", []string{"198.51.100.4:1000", "198.51.100.4:1001", "198.51.100.4:1002"}, "198.51.100.4:2000", "198.51.100.5:1000"},
		{"ipv6 /64", []string{"[2001:db8:1:2::1]:1000", "[2001:db8:1:2::2]:1000", "[2001:db8:1:2:ffff::9]:1"}, "[2001:db8:1:2::abcd]:7", "[2001:db8:1:3::1]:1000"},
		{"ipv4-mapped", []string{"[::ffff:203.0.113.9]:1", "203.0.113.9:2", "[::ffff:203.0.113.9]:3"}, "203.0.113.9:4", "203.0.113.10:1"},
		{"no port", []string{"unix-socket", "unix-socket", "unix-socket"}, "unix-socket", "192.0.2.200:1"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for j, a := range c.attempts {
				if _, _, _, err := e.Login(fmt.Sprintf("guess%d-%d", i, j), goodPassword, a); !errors.Is(err, ErrBadCredentials) {
					t.Fatal(err)
				}
			}
			_, _, _, err := e.Login("olga", goodPassword, c.probe)
			var tm *TooManyAttemptsError
			if !errors.As(err, &tm) || tm.Scope != "address" || tm.RetryAfter != time.Minute {
				t.Fatalf("probe from %s: %v", c.probe, err)
			}
			// A success does not unlock an address: it may hold one good
			// password and guess others.
			e.mustLogin(t, "olga", goodPassword, c.other)
			if _, _, _, err := e.Login("olga", goodPassword, c.probe); !errors.Is(err, ErrTooManyAttempts) {
				t.Fatalf("probe after another address's success: %v", err)
			}
		})
	}
	e.clock.Advance(time.Minute + time.Second)
	e.mustLogin(t, "olga", goodPassword, "198.51.100.4:3000")
}

// TestRateLimitSurvivesRestart checks the limiter is rebuilt from the
// recorded failures, so restarting central does not reset it.
func TestRateLimitSurvivesRestart(t *testing.T) {
	e := mustNew(t, func(o *Options) { o.MaxFailures = 3; o.FailureWindow = time.Minute })
	e.mustAdd(t, "olga", RoleOperator, []string{"north"}, goodPassword)
	e.mustAdd(t, "otto", RoleOfficer, nil, goodPassword)
	// otto: two failures, a success, two failures: not locked after restart.
	for i, pw := range []string{"bad password 1", "bad password 2", goodPassword, "bad password 3", "bad password 4"} {
		e.clock.Advance(time.Second)
		_, _, _, err := e.Login("otto", pw, fmt.Sprintf("10.2.0.%d:1", i))
		if (pw == goodPassword) != (err == nil) {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		e.clock.Advance(time.Second)
		if _, _, _, err := e.Login("olga", "bad password", fmt.Sprintf("10.3.0.%d:1", i)); !errors.Is(err, ErrBadCredentials) {
			t.Fatal(err)
		}
	}
	// A throttled attempt is recorded but does not count after restart.
	if _, _, _, err := e.Login("olga", "bad password", "10.3.0.9:1"); !errors.Is(err, ErrTooManyAttempts) {
		t.Fatal(err)
	}

	s2 := e.reopen(t)
	if _, _, _, err := s2.Login("olga", goodPassword, "10.4.0.1:1"); !errors.Is(err, ErrTooManyAttempts) {
		t.Fatalf("after restart: %v", err)
	}
	if _, _, _, err := s2.Login("otto", goodPassword, "10.4.0.2:1"); err != nil {
		t.Fatalf("otto after restart: %v", err)
	}
	// An administrator's password reset unlocks the name.
	if err := s2.SetPassword("olga", "reset by admin!"); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s2.Login("olga", "reset by admin!", "10.4.0.1:1"); err != nil {
		t.Fatalf("after reset: %v", err)
	}
	// And the reset holds across a restart too.
	s3 := e.reopen(t)
	if _, _, _, err := s3.Login("olga", "reset by admin!", "10.4.0.3:1"); err != nil {
		t.Fatalf("after reset and restart: %v", err)
	}
	// Outside the window nothing is replayed.
	e.clock.Advance(2 * time.Minute)
	for i := range 3 {
		if _, _, _, err := s3.Login("nobody", "x", "10.5.0.1:1"); !errors.Is(err, ErrBadCredentials) {
			t.Fatal(i, err)
		}
	}
	e.clock.Advance(2 * time.Minute)
	s4 := e.reopen(t)
	if _, _, _, err := s4.Login("olga", "reset by admin!", "10.5.0.1:1"); err != nil {
		t.Fatalf("old failures replayed: %v", err)
	}
}

// TestConcurrentGuesses checks that a burst of parallel guesses gets no more
// password checks than the limit allows, since attempts in flight count.
func TestConcurrentGuesses(t *testing.T) {
	e := mustNew(t, func(o *Options) { o.MaxFailures = 5 })
	e.mustAdd(t, "olga", RoleOperator, []string{"north"}, goodPassword)
	var (
		wg                 sync.WaitGroup
		mu                 sync.Mutex
		bad, throttled, ok int
	)
	for i := range 60 {
		wg.Go(func() {
			_, _, _, err := e.Login("olga", fmt.Sprintf("guess number %d", i), fmt.Sprintf("10.6.%d.%d:1", i/200, i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrBadCredentials):
				bad++
			case errors.Is(err, ErrTooManyAttempts):
				throttled++
			case err == nil:
				ok++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if bad != 5 || throttled != 55 || ok != 0 {
		t.Fatalf("bad %d throttled %d ok %d; want 5, 55, 0", bad, throttled, ok)
	}
	if n := e.verifications.Load(); n != 5 {
		t.Fatalf("%d passwords checked, want 5", n)
	}
}

func TestConcurrentLogins(t *testing.T) {
	e := mustNew(t, nil)
	for i := range 10 {
		e.mustAdd(t, fmt.Sprintf("user%d", i), RoleAuditor, nil, goodPassword)
	}
	const n = 100
	tokens := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Ten logins per user, all from one address: a busy control
			// room behind NAT must not lock itself out with good logins.
			name := fmt.Sprintf("user%d", i%10)
			tok, _, u, err := e.Login(name, goodPassword, "10.7.0.1:1")
			if err != nil || u.Name != name {
				t.Errorf("login %d: %v", i, err)
				return
			}
			if got, _, err := e.Authenticate(tok); err != nil || got.Name != name {
				t.Errorf("authenticate %d: %+v %v", i, got, err)
			}
			tokens[i] = tok
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, tok := range tokens {
		if seen[tok] {
			t.Fatal("duplicate token")
		}
		seen[tok] = true
	}
}

func TestSessions(t *testing.T) {
	e := mustNew(t, func(o *Options) { o.SessionTTL = time.Hour })
	e.mustAdd(t, "olga", RoleOperator, []string{"north"}, goodPassword)
	tok, exp, _, err := e.Login("olga", goodPassword, "10.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	u, gotExp, err := e.Authenticate(tok)
	if err != nil || u.Name != "olga" || u.Role != RoleOperator || !gotExp.Equal(exp) {
		t.Fatalf("Authenticate: %+v %v %v", u, gotExp, err)
	}
	if !exp.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("expires %v", exp)
	}

	t.Run("bad tokens", func(t *testing.T) {
		other := base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
		for _, bad := range []string{"", "x", tok + "A", tok[:42], strings.ToUpper(tok[:1]) + "!" + tok[2:], other} {
			if _, _, err := e.Authenticate(bad); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("Authenticate(%q): %v", bad, err)
			}
		}
	})

	t.Run("expiry", func(t *testing.T) {
		e.clock.Advance(time.Hour - time.Second)
		if _, _, err := e.Authenticate(tok); err != nil {
			t.Fatalf("a second before expiry: %v", err)
		}
		e.clock.Advance(time.Second)
		_, _, err := e.Authenticate(tok)
		if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("at expiry: %v", err)
		}
		if n := countSessions(t, e.db); n != 0 {
			t.Fatalf("%d sessions left after expiry", n)
		}
	})

	t.Run("logout", func(t *testing.T) {
		a := e.mustLogin(t, "olga", goodPassword, "10.0.0.1:1")
		b := e.mustLogin(t, "olga", goodPassword, "10.0.0.1:1")
		if err := e.Logout(a); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.Authenticate(a); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("after logout: %v", err)
		}
		if _, _, err := e.Authenticate(b); err != nil {
			t.Fatalf("logout ended another session: %v", err)
		}
		if err := e.Logout(a); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("second logout: %v", err)
		}
		if err := e.Logout("garbage"); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("logout garbage: %v", err)
		}
	})

	t.Run("expired sessions swept at login", func(t *testing.T) {
		for range 3 {
			e.mustLogin(t, "olga", goodPassword, "10.0.0.1:1")
		}
		e.clock.Advance(2 * time.Hour)
		e.mustLogin(t, "olga", goodPassword, "10.0.0.1:1")
		if n := countSessions(t, e.db); n != 1 {
			t.Fatalf("%d sessions, want 1", n)
		}
	})
}

func countSessions(t *testing.T, db *bbolt.DB) int {
	t.Helper()
	n := 0
	if err := db.View(func(tx *bbolt.Tx) error {
		n = tx.Bucket(bucketSessions).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestNoSecretsInDB reads the database file and checks neither the token
// nor the password is in it, in any encoding we use.
func TestNoSecretsInDB(t *testing.T) {
	e := mustNew(t, nil)
	const password = "plaintext-needle-0123"
	e.mustAdd(t, "olga", RoleOperator, []string{"north"}, password)
	tok := e.mustLogin(t, "olga", password, "10.0.0.1:1")
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(e.path)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := tokenKey(tok)
	if !bytes.Contains(data, key) {
		t.Fatal("the token's hash is not in the file: the scan reads the wrong data")
	}
	for what, needle := range map[string][]byte{
		"token":           []byte(tok),
		"raw token":       raw,
		"token prefix":    []byte(tok[:16]),
		"password":        []byte(password),
		"password base64": []byte(base64.RawStdEncoding.EncodeToString([]byte(password))),
	} {
		if bytes.Contains(data, needle) {
			t.Errorf("%s found in the database file", what)
		}
	}
}

func TestFailedLogins(t *testing.T) {
	e := mustNew(t, func(o *Options) { o.MaxFailures = 2 })
	e.mustAdd(t, "olga", RoleOperator, []string{"north"}, goodPassword)
	t0 := e.clock.Now()
	steps := []struct {
		user, password, addr string
	}{
		{"olga", "wrong one here", "10.0.0.1:1"},
		{"olga", goodPassword, "10.0.0.1:2"}, // success: not recorded
		{"ghost", "whatever pass", "10.0.0.2:1"},
		{"olga", "wrong two here", "10.0.0.3:1"},
		{"olga", "wrong three!!", "10.0.0.3:2"},
		{"olga", goodPassword, "10.0.0.4:1"}, // locked
		{strings.Repeat("n", 200), "x", "10.0.0.5:1"},
	}
	for _, s := range steps {
		e.clock.Advance(time.Second)
		_, _, _, _ = e.Login(s.user, s.password, s.addr)
	}
	got, err := e.FailedLogins(t0)
	if err != nil {
		t.Fatal(err)
	}
	want := []Failure{
		{t0.Add(1 * time.Second), "olga", "10.0.0.1:1", ReasonBadPassword},
		{t0.Add(3 * time.Second), "ghost", "10.0.0.2:1", ReasonUnknownUser},
		{t0.Add(4 * time.Second), "olga", "10.0.0.3:1", ReasonBadPassword},
		{t0.Add(5 * time.Second), "olga", "10.0.0.3:2", ReasonBadPassword},
		{t0.Add(6 * time.Second), "olga", "10.0.0.4:1", ReasonThrottled},
		{t0.Add(7 * time.Second), strings.Repeat("n", maxRecordedName), "10.0.0.5:1", ReasonUnknownUser},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d failures: %+v", len(got), got)
	}
	for i := range want {
		if !got[i].Time.Equal(want[i].Time) || got[i].User != want[i].User || got[i].Address != want[i].Address || got[i].Reason != want[i].Reason {
			t.Errorf("failure %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	later, err := e.FailedLogins(t0.Add(5 * time.Second))
	if err != nil || len(later) != 3 {
		t.Fatalf("since filter: %d, %v", len(later), err)
	}
	n, err := e.PruneFailedLogins(t0.Add(5 * time.Second))
	if err != nil || n != 3 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	if all, _ := e.FailedLogins(time.Time{}); len(all) != 3 {
		t.Fatalf("after prune: %+v", all)
	}
}
