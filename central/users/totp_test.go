package users

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// rfcSecret is the HMAC-SHA-1 key of the test vectors of RFC 4226
// (appendix D) and RFC 6238 (appendix B).
var rfcSecret = []byte("12345678901234567890")

func TestHOTPVectors(t *testing.T) {
	want := []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"}
	for count, code := range want {
		if got := hotp(rfcSecret, uint64(count), 6); got != code {
			t.Errorf("HOTP count %d = %s, want %s", count, got, code)
		}
	}
}

func TestTOTPVectors(t *testing.T) {
	// RFC 6238 appendix B, SHA-1 rows: 8 digits. Six digits are the last
	// six of those (the same number, modulo 10^6).
	cases := []struct {
		unix int64
		step uint64
		code string
	}{
		{59, 0x1, "94287082"},
		{1111111109, 0x23523EC, "07081804"},
		{1111111111, 0x23523ED, "14050471"},
		{1234567890, 0x273EF07, "89005924"},
		{2000000000, 0x3F940AA, "69279037"},
		{20000000000, 0x27BC86AA, "65353130"},
	}
	secret := totpEncoding.EncodeToString(rfcSecret)
	for _, c := range cases {
		at := time.Unix(c.unix, 0).UTC()
		if got := totpStep(at); got != c.step {
			t.Errorf("%v: step %#x, want %#x", at, got, c.step)
		}
		if got := hotp(rfcSecret, totpStep(at), 8); got != c.code {
			t.Errorf("%v: 8 digits %s, want %s", at, got, c.code)
		}
		got, err := TOTPCode(secret, at)
		if err != nil || got != c.code[2:] {
			t.Errorf("%v: TOTPCode = %s %v, want %s", at, got, err, c.code[2:])
		}
	}
	if _, err := TOTPCode("not base32!", time.Now()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad secret: %v", err)
	}
}

func TestMatchTOTPInput(t *testing.T) {
	now := time.Unix(1234567890, 0)
	code := hotp(rfcSecret, totpStep(now), 6)
	cases := []struct {
		code string
		want bool
	}{
		{code, true},
		{code[:3] + " " + code[3:], true}, // as apps print it
		{code[:3] + "-" + code[3:], true},
		{code[:5], false},
		{code + "0", false},
		{"", false},
		{"12a456", false},
		{"١٢٣٤٥٦", false}, // digits, but not ASCII
	}
	for _, c := range cases {
		if _, got := matchTOTP(rfcSecret, c.code, now, 0); got != c.want {
			t.Errorf("matchTOTP(%q) = %v, want %v", c.code, got, c.want)
		}
	}
	if _, ok := matchTOTP(nil, code, now, 0); ok {
		t.Fatal("a code matched no key")
	}
}

// mustEnableTOTP enrols and confirms a second factor for name at the
// store's current time and returns the secret.
func (e *testEnv) mustEnableTOTP(t testing.TB, name string) string {
	t.Helper()
	secret, _, err := e.EnrollTOTP(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.ConfirmTOTP(name, e.code(t, secret, 0)); err != nil {
		t.Fatal(err)
	}
	return secret
}

// code is the app's code for secret at the store's time plus offset.
func (e *testEnv) code(t testing.TB, secret string, offset time.Duration) string {
	t.Helper()
	c, err := TOTPCode(secret, e.clock.Now().Add(offset))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnrollTOTP(t *testing.T) {
	e := mustNew(t, nil)
	e.mustAdd(t, "olga", RoleOperator, []string{"north"}, goodPassword)
	secret, uri, err := e.EnrollTOTP("olga")
	if err != nil {
		t.Fatal(err)
	}
	key, err := totpEncoding.DecodeString(secret)
	if err != nil || len(key) != TOTPSecretBytes || strings.Contains(secret, "=") {
		t.Fatalf("secret %q: %d bytes, %v", secret, len(key), err)
	}
	want := "otpauth://totp/vigil:olga?secret=" + secret + "&issuer=vigil&algorithm=SHA1&digits=6&period=30"
	if uri != want {
		t.Fatalf("uri %s\nwant %s", uri, want)
	}
	again, _, err := e.EnrollTOTP("olga")
	if err != nil || again == secret {
		t.Fatalf("second enrolment: same secret or %v", err)
	}
	for what, err := range map[string]error{
		"enrol":   func() error { _, _, err := e.EnrollTOTP("nobody"); return err }(),
		"confirm": e.ConfirmTOTP("nobody", "123456"),
		"disable": e.DisableTOTP("nobody"),
	} {
		if !errors.Is(err, ErrNoSuchUser) {
			t.Errorf("%s for an unknown user: %v", what, err)
		}
	}
}

// TestTOTPPendingNotEnforced checks that an enrolment changes nothing
// until a code of the new secret confirms it, so a mistyped or misread
// enrolment cannot lock anyone out.
func TestTOTPPendingNotEnforced(t *testing.T) {
	e := mustNew(t, nil)
	e.mustAdd(t, "olga", RoleOperator, []string{"north"}, goodPassword)
	const addr = "192.0.2.1:1"
	if err := e.ConfirmTOTP("olga", "123456"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("confirm with nothing pending: %v", err)
	}
	secret, _, err := e.EnrollTOTP("olga")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, u, err := e.Login("olga", goodPassword, addr); err != nil || u.TOTP {
		t.Fatalf("login while pending: %+v %v", u, err)
	}
	if err := e.ConfirmTOTP("olga", e.code(t, secret, 2*TOTPPeriod)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("confirm with a wrong code: %v", err)
	}
	if u, _ := e.Get("olga"); u.TOTP {
		t.Fatal("a wrong code activated the second factor")
	}
	e.mustLogin(t, "olga", goodPassword, addr)

	if err := e.ConfirmTOTP("olga", e.code(t, secret, 0)); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.Get("olga"); !u.TOTP {
		t.Fatal("confirmed, but User.TOTP is false")
	}
	if list, _ := e.List(); len(list) != 1 || !list[0].TOTP {
		t.Fatalf("list: %+v", list)
	}
	if _, _, _, err := e.Login("olga", goodPassword, addr); !errors.Is(err, ErrSecondFactorRequired) {
		t.Fatalf("login without a code once confirmed: %v", err)
	}
	// The confirming code is spent: it cannot log in.
	if _, _, _, err := e.LoginTOTP("olga", goodPassword, e.code(t, secret, 0), addr); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("login with the confirming code: %v", err)
	}

	// A new enrolment leaves the active secret in force until confirmed.
	e.clock.Advance(TOTPPeriod)
	next, _, err := e.EnrollTOTP("olga")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := e.LoginTOTP("olga", goodPassword, e.code(t, next, 0), addr); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("login with the pending secret's code: %v", err)
	}
	if _, _, _, err := e.LoginTOTP("olga", goodPassword, e.code(t, secret, 0), addr); err != nil {
		t.Fatalf("login with the active secret while another is pending: %v", err)
	}
	e.clock.Advance(TOTPPeriod)
	if err := e.ConfirmTOTP("olga", e.code(t, next, 0)); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(TOTPPeriod)
	if _, _, _, err := e.LoginTOTP("olga", goodPassword, e.code(t, secret, 0), addr); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("login with the replaced secret: %v", err)
	}
	if _, _, _, err := e.LoginTOTP("olga", goodPassword, e.code(t, next, 0), addr); err != nil {
		t.Fatalf("login with the new secret: %v", err)
	}
}

func TestTOTPSkew(t *testing.T) {
	cases := []struct {
		offset time.Duration // of the device's clock from the server's
		ok     bool
	}{
		{-2 * TOTPPeriod, false},
		{-TOTPPeriod, true},
		{-time.Second, true},
		{0, true},
		{TOTPPeriod, true},
		{2 * TOTPPeriod, false},
	}
	for _, c := range cases {
		t.Run(c.offset.String(), func(t *testing.T) {
			e := mustNew(t, nil)
			e.mustAdd(t, "olga", RoleOperator, []string{"north"}, goodPassword)
			secret := e.mustEnableTOTP(t, "olga")
			e.clock.Advance(10 * time.Minute)
			_, _, u, err := e.LoginTOTP("olga", goodPassword, e.code(t, secret, c.offset), "192.0.2.1:1")
			if c.ok && (err != nil || !u.TOTP) {
				t.Fatalf("refused: %v", err)
			}
			if !c.ok && !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("accepted or wrong error: %v", err)
			}
		})
	}
}

// TestTOTPReplay checks that a code is accepted once: not again, and no
// code of an earlier step once a later one was used.
func TestTOTPReplay(t *testing.T) {
	e := mustNew(t, func(o *Options) { o.MaxFailures = 100 })
	e.mustAdd(t, "olga", RoleOperator, []string{"north"}, goodPassword)
	secret := e.mustEnableTOTP(t, "olga")
	e.clock.Advance(5 * time.Minute)

	code := e.code(t, secret, 0)
	if _, _, _, err := e.LoginTOTP("olga", goodPassword, code, "192.0.2.1:1"); err != nil {
		t.Fatal(err)
	}
	since := e.clock.Now()
	if _, _, _, err := e.LoginTOTP("olga", goodPassword, code, "192.0.2.2:1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("same code again: %v", err)
	}
	// The previous step's code is within the skew but older than the one
	// used; the next step's is fine, and then the current one is old.
	if _, _, _, err := e.LoginTOTP("olga", goodPassword, e.code(t, secret, -TOTPPeriod), "192.0.2.2:1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("earlier step's code: %v", err)
	}
	if _, _, _, err := e.LoginTOTP("olga", goodPassword, e.code(t, secret, TOTPPeriod), "192.0.2.2:1"); err != nil {
		t.Fatalf("next step's code: %v", err)
	}
	e.clock.Advance(TOTPPeriod)
	if _, _, _, err := e.LoginTOTP("olga", goodPassword, e.code(t, secret, 0), "192.0.2.2:1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("code of the step already used: %v", err)
	}
	f, err := e.FailedLogins(since)
	if err != nil || len(f) != 3 {
		t.Fatalf("failures %+v %v", f, err)
	}
	for _, x := range f {
		if x.Reason != ReasonBadSecondFactor || x.User != "olga" {
			t.Fatalf("recorded %+v", x)
		}
	}
	// The used step survives a restart: it is in the record.
	if _, _, _, err := e.reopen(t).LoginTOTP("olga", goodPassword, e.code(t, secret, 0), "192.0.2.3:1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("replay after restart: %v", err)
	}

	// Concurrent logins with one fresh code: the step is claimed in the
	// login transaction, so exactly one wins.
	e.clock.Advance(5 * time.Minute)
	code = e.code(t, secret, 0)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ok, bad int
	)
	for i := range 8 {
		wg.Go(func() {
			_, _, _, err := e.LoginTOTP("olga", goodPassword, code, fmt.Sprintf("192.0.3.%d:1", i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrBadCredentials):
				bad++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok != 1 || bad != 7 {
		t.Fatalf("%d accepted, %d refused; want 1 and 7", ok, bad)
	}
}

// TestSecondFactorRequiredOnlyAfterPassword checks that the "give a code"
// answer needs the right password of an enabled user, so that it tells
// nothing to someone guessing names or passwords.
func TestSecondFactorRequiredOnlyAfterPassword(t *testing.T) {
	e := mustNew(t, func(o *Options) { o.MaxFailures = 100 })
	e.mustAdd(t, "olga", RoleOperator, []string{"north"}, goodPassword)
	e.mustAdd(t, "gone", RoleAuditor, nil, goodPassword)
	e.mustAdd(t, "plain", RoleAuditor, nil, goodPassword)
	secret := e.mustEnableTOTP(t, "olga")
	goneSecret := e.mustEnableTOTP(t, "gone")
	if err := e.Disable("gone"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)

	cases := []struct {
		name, user, password string
		code                 func() string
		reason               FailureReason // "" when ErrSecondFactorRequired
	}{
		{"right password, no code", "olga", goodPassword, nil, ""},
		{"wrong password, no code", "olga", "wrong password!", nil, ReasonBadPassword},
		{"wrong password, right code", "olga", "wrong password!", func() string { return e.code(t, secret, 0) }, ReasonBadPassword},
		{"unknown user, no code", "nobody", goodPassword, nil, ReasonUnknownUser},
		{"disabled, right password, no code", "gone", goodPassword, nil, ReasonDisabled},
		{"disabled, right password and code", "gone", goodPassword, func() string { return e.code(t, goneSecret, 0) }, ReasonDisabled},
		{"right password, wrong code", "olga", goodPassword, func() string { return e.code(t, secret, 5*TOTPPeriod) }, ReasonBadSecondFactor},
		{"right password, garbage code", "olga", goodPassword, func() string { return "letmein" }, ReasonBadSecondFactor},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code := ""
			if c.code != nil {
				code = c.code()
			}
			e.clock.Advance(time.Second)
			since := e.clock.Now()
			before := e.verifications.Load()
			tok, _, u, err := e.LoginTOTP(c.user, c.password, code, "192.0.2.9:1")
			if n := e.verifications.Load() - before; n != 1 {
				t.Fatalf("%d verifications, want 1", n)
			}
			if tok != "" || u.Name != "" {
				t.Fatalf("session opened: %q %+v", tok, u)
			}
			f, ferr := e.FailedLogins(since)
			if ferr != nil {
				t.Fatal(ferr)
			}
			if c.reason == "" {
				if !errors.Is(err, ErrSecondFactorRequired) || errors.Is(err, ErrBadCredentials) {
					t.Fatalf("got %v, want ErrSecondFactorRequired", err)
				}
				if len(f) != 0 {
					t.Fatalf("recorded as a failure: %+v", f)
				}
				return
			}
			if !errors.Is(err, ErrBadCredentials) || errors.Is(err, ErrSecondFactorRequired) {
				t.Fatalf("got %v, want ErrBadCredentials", err)
			}
			if len(f) != 1 || f[0].Reason != c.reason {
				t.Fatalf("recorded %+v, want reason %s", f, c.reason)
			}
		})
	}
	// A code given to a user without a second factor is ignored.
	if _, _, _, err := e.LoginTOTP("plain", goodPassword, "000000", "192.0.2.9:1"); err != nil {
		t.Fatalf("user without a second factor, with a code: %v", err)
	}
}

// TestTOTPThrottled checks that wrong codes count like wrong passwords,
// across a restart, and that asking for the code neither counts nor
// clears the count.
func TestTOTPThrottled(t *testing.T) {
	e := mustNew(t, func(o *Options) { o.MaxFailures = 3; o.FailureWindow = time.Minute })
	e.mustAdd(t, "olga", RoleOperator, []string{"north"}, goodPassword)
	secret := e.mustEnableTOTP(t, "olga")
	e.clock.Advance(time.Minute)
	wrong := func(i int) {
		t.Helper()
		e.clock.Advance(time.Second)
		if _, _, _, err := e.LoginTOTP("olga", goodPassword, e.code(t, secret, 10*TOTPPeriod), fmt.Sprintf("10.8.0.%d:1", i)); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("wrong code %d: %v", i, err)
		}
	}
	noCode := func(i int) {
		t.Helper()
		if _, _, _, err := e.Login("olga", goodPassword, fmt.Sprintf("10.8.1.%d:1", i)); !errors.Is(err, ErrSecondFactorRequired) {
			t.Fatalf("no code %d: %v", i, err)
		}
	}
	// Asking for the code many times locks nothing...
	for i := range 10 {
		noCode(i)
	}
	// ...and does not forget failures, else guesses could go on forever
	// between code-less attempts.
	wrong(0)
	wrong(1)
	noCode(10)
	wrong(2)
	_, _, _, err := e.LoginTOTP("olga", goodPassword, e.code(t, secret, 0), "10.8.2.1:1")
	var tm *TooManyAttemptsError
	if !errors.As(err, &tm) || tm.Scope != "user" {
		t.Fatalf("after three wrong codes: %v", err)
	}
	if _, _, _, err := e.reopen(t).LoginTOTP("olga", goodPassword, e.code(t, secret, 0), "10.8.2.2:1"); !errors.Is(err, ErrTooManyAttempts) {
		t.Fatalf("after restart: %v", err)
	}
	e.clock.Advance(time.Minute)
	if _, _, _, err := e.LoginTOTP("olga", goodPassword, e.code(t, secret, 0), "10.8.2.3:1"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestTOTPDisable checks that removing the second factor lets the password
// alone log in again, and that no TOTP change ends sessions.
func TestTOTPDisable(t *testing.T) {
	e := mustNew(t, nil)
	e.mustAdd(t, "olga", RoleOperator, []string{"north"}, goodPassword)
	tok := e.mustLogin(t, "olga", goodPassword, "192.0.2.1:1")
	alive := func(when string) {
		t.Helper()
		if _, _, err := e.Authenticate(tok); err != nil {
			t.Fatalf("session ended by %s: %v", when, err)
		}
	}
	secret, _, err := e.EnrollTOTP("olga")
	if err != nil {
		t.Fatal(err)
	}
	alive("enrol")
	if err := e.ConfirmTOTP("olga", e.code(t, secret, 0)); err != nil {
		t.Fatal(err)
	}
	alive("confirm")
	if err := e.DisableTOTP("olga"); err != nil {
		t.Fatal(err)
	}
	alive("disable")
	if u, _ := e.Get("olga"); u.TOTP {
		t.Fatal("still enabled")
	}
	e.mustLogin(t, "olga", goodPassword, "192.0.2.1:1")
	if err := e.DisableTOTP("olga"); err != nil {
		t.Fatalf("disable twice: %v", err)
	}
	// Disabling drops a pending enrolment too.
	if _, _, err := e.EnrollTOTP("olga"); err != nil {
		t.Fatal(err)
	}
	if err := e.DisableTOTP("olga"); err != nil {
		t.Fatal(err)
	}
	if err := e.ConfirmTOTP("olga", e.code(t, secret, 0)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("confirm after disable: %v", err)
	}
}
