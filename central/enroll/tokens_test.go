package enroll

import (
	"bytes"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/vigil-cctv/vigil/proto/identity"
)

var fp = strings.Repeat("ab", 32)

func TestTokensCreate(t *testing.T) {
	clk := newClock()
	tokens, db := mustTokens(t, clk.Now)
	tok, expires, err := tokens.Create("north", 0, fp)
	if err != nil {
		t.Fatal(err)
	}
	if !expires.Equal(clk.Now().Add(DefaultTTL)) {
		t.Errorf("expires %v, want now + %v", expires, DefaultTTL)
	}
	if len(tok.Secret) != 43 || strings.Contains(tok.Secret, "=") {
		t.Errorf("secret %q", tok.Secret)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(tok.Secret); err != nil || len(raw) != 32 {
		t.Errorf("secret is not 32 bytes of base64url: %v", err)
	}
	if parsed, err := identity.ParseToken(tok.String()); err != nil || parsed != tok {
		t.Errorf("printed token does not parse back: %v", err)
	}
	if tok.Fingerprint != fp {
		t.Error("fingerprint not carried")
	}
	second, _, err := tokens.Create("north", MaxTTL, fp)
	if err != nil || second.Secret == tok.Secret {
		t.Fatalf("second token: %v", err)
	}

	// Only the hash is stored.
	err = db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			if !bytes.HasPrefix(name, []byte("enroll.")) {
				t.Errorf("bucket %q outside enroll.", name)
			}
			return b.ForEach(func(k, v []byte) error {
				for _, s := range []string{tok.Secret, second.Secret} {
					if bytes.Contains(k, []byte(s)) || bytes.Contains(v, []byte(s)) {
						t.Error("secret stored in clear")
					}
				}
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}

	bad := []struct {
		district string
		ttl      time.Duration
		fp       string
		want     string
	}{
		{"North", 0, fp, "district id"},
		{"", 0, fp, "district id"},
		{"a/b", 0, fp, "district id"},
		{"north", -time.Second, fp, "lifetime"},
		{"north", MaxTTL + time.Second, fp, "lifetime"},
		{"north", 0, "", "CA fingerprint"},
		{"north", 0, strings.ToUpper(fp), "CA fingerprint"},
	}
	for _, b := range bad {
		if _, _, err := tokens.Create(b.district, b.ttl, b.fp); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("Create(%q, %v, %q) = %v, want %q", b.district, b.ttl, b.fp, err, b.want)
		}
	}
}

func TestTokensRedeem(t *testing.T) {
	clk := newClock()
	dbPath := filepath.Join(t.TempDir(), "central.db")
	db, err := bbolt.Open(dbPath, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := NewTokens(db, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	north, _, _ := tokens.Create("north", time.Hour, fp)
	south, _, _ := tokens.Create("south", time.Hour, fp)
	short, _, _ := tokens.Create("east", time.Minute, fp)

	if _, err := tokens.Redeem("nonsense"); !errors.Is(err, ErrTokenUnknown) {
		t.Errorf("unknown: %v", err)
	}
	// Refused for another district: not spent.
	if _, err := tokens.redeem(north.Secret, "south", ""); !errors.Is(err, errWrongDistrict) {
		t.Errorf("wrong district: %v", err)
	}
	if d, err := tokens.Redeem(north.Secret); err != nil || d != "north" {
		t.Fatalf("redeem: %q %v", d, err)
	}
	if _, err := tokens.Redeem(north.Secret); !errors.Is(err, ErrTokenUsed) || err.Error() != "enroll: redeem: token already used" {
		t.Errorf("second redeem: %v", err)
	}
	clk.Add(time.Minute)
	if _, err := tokens.Redeem(short.Secret); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("expired: %v", err)
	}
	if d, err := tokens.check(south.Secret); err != nil || d != "south" {
		t.Errorf("check: %q %v", d, err)
	}

	// After a restart: the spent token stays spent, with when, and the
	// other still works.
	db.Close()
	db = mustDB(t, dbPath)
	tokens, err = NewTokens(db, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Redeem(north.Secret); !errors.Is(err, ErrTokenUsed) {
		t.Errorf("after restart: %v", err)
	}
	err = db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketTokens).Get(secretKey(north.Secret))
		if !bytes.Contains(v, []byte(`"used":true`)) || !bytes.Contains(v, []byte(`"used_at"`)) {
			t.Errorf("record %s", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := tokens.Redeem(south.Secret); err != nil || d != "south" {
		t.Errorf("after restart: %q %v", d, err)
	}
}

// TestRedeemRace: one token redeemed at once by many: one wins.
func TestRedeemRace(t *testing.T) {
	tokens, _ := mustTokens(t, nil)
	tok, _, err := tokens.Create("north", 0, fp)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 20 {
		wg.Go(func() {
			_, err := tokens.Redeem(tok.Secret)
			if err != nil && !errors.Is(err, ErrTokenUsed) {
				t.Error(err)
			}
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d wins", wins)
	}
}

func TestNewTokensNoDB(t *testing.T) {
	if _, err := NewTokens(nil, nil); err == nil {
		t.Fatal("no error")
	}
}
