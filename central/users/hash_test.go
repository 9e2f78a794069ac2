package users

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"go.etcd.io/bbolt"
)

func TestHashRoundTrip(t *testing.T) {
	h, err := hashPassword("s3cret password", fastArgon2)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("encoding %q", h)
	}
	h2, _ := hashPassword("s3cret password", fastArgon2)
	if h == h2 {
		t.Fatal("same hash twice: salt not random")
	}
	ok, p, err := verifyPassword("s3cret password", h)
	if !ok || err != nil || p != fastArgon2 {
		t.Fatalf("verify: %v %+v %v", ok, p, err)
	}
	if ok, _, _ := verifyPassword("s3cret passwore", h); ok {
		t.Fatal("wrong password verified")
	}
}

func TestParseHashRejects(t *testing.T) {
	good, _ := hashPassword("x", fastArgon2)
	parts := strings.Split(good, "$")
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	cases := map[string]string{
		"empty":        "",
		"bcrypt":       "$2a$10$abcdefghijklmnopqrstuv",
		"argon2i":      with(1, "argon2i"),
		"version":      with(2, "v=16"),
		"params":       with(3, "m=64,t=1"),
		"zero time":    with(3, "m=64,t=0,p=1"),
		"huge memory":  with(3, "m=99999999,t=1,p=1"),
		"huge time":    with(3, "m=64,t=1000,p=1"),
		"tiny memory":  with(3, "m=8,t=1,p=4"),
		"salt base64":  with(4, "!!!"),
		"short salt":   with(4, "AAAA"),
		"short key":    with(5, "AAAA"),
		"extra fields": good + "$x",
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := parseHash(h); !errors.Is(err, errBadHash) {
				t.Fatalf("parseHash(%q): %v", h, err)
			}
		})
	}
}

// TestRehashOnLogin checks a hash made with old parameters keeps working
// and is replaced with one using the current parameters at login.
func TestRehashOnLogin(t *testing.T) {
	e := mustNew(t, nil)
	e.mustAdd(t, "olga", RoleOperator, []string{"north"}, goodPassword)
	newer := Argon2Params{Time: 2, MemoryKiB: 128, Threads: 1}
	e.opts.Argon2 = newer
	s2 := e.reopen(t)
	if _, _, _, err := s2.Login("olga", goodPassword, "10.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	var rec record
	if err := e.db.View(func(tx *bbolt.Tx) error {
		return json.Unmarshal(tx.Bucket(bucketAccounts).Get([]byte("olga")), &rec)
	}); err != nil {
		t.Fatal(err)
	}
	if h, err := parseHash(rec.Hash); err != nil || h.params != newer {
		t.Fatalf("stored hash %q, %v", rec.Hash, err)
	}
	if _, _, _, err := s2.Login("olga", goodPassword, "10.0.0.1:1"); err != nil {
		t.Fatalf("login after rehash: %v", err)
	}
}

// TestCorruptHash checks an unusable stored hash is an error, not a
// successful login, and not counted as a guess.
func TestCorruptHash(t *testing.T) {
	e := mustNew(t, nil)
	e.mustAdd(t, "olga", RoleOperator, []string{"north"}, goodPassword)
	if err := e.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		r, err := getRecord(b, "olga")
		if err != nil {
			return err
		}
		r.Hash = "$argon2id$garbage"
		return putRecord(b, r)
	}); err != nil {
		t.Fatal(err)
	}
	_, _, _, err := e.Login("olga", goodPassword, "10.0.0.1:1")
	if err == nil || errors.Is(err, ErrBadCredentials) || !errors.Is(err, errBadHash) {
		t.Fatalf("login with corrupt hash: %v", err)
	}
	if f, _ := e.FailedLogins(e.clock.Now().Add(-1)); len(f) != 0 {
		t.Fatalf("recorded as a failure: %+v", f)
	}
}
