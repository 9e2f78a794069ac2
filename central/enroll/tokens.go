// Package enroll is central's side of agent enrolment: the one-time,
// expiring tokens an administrator hands to whoever installs an agent, and
// the Enrollment gRPC service that redeems a token for a certificate
// naming the token's district.
//
// A token is the only proof that an agent belongs to a district, so central
// keeps only its SHA-256: someone who reads the database cannot enrol.
package enroll

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/vigil-cctv/vigil/proto/identity"
	"github.com/vigil-cctv/vigil/storage"
)

// Token lifetimes: long enough to install an agent the next day, short
// enough that a token forgotten in a ticket or an e-mail soon stops
// working.
const (
	DefaultTTL = 24 * time.Hour
	MaxTTL     = 7 * 24 * time.Hour
)

// Why a token cannot be redeemed. A token is spent only by a successful
// enrolment; each of these leaves it as it was.
var (
	// ErrTokenUnknown: central never issued this token.
	ErrTokenUnknown = errors.New("token unknown")
	// ErrTokenExpired: the token's lifetime is over.
	ErrTokenExpired = errors.New("token expired")
	// ErrTokenUsed: an agent has already enrolled with this token.
	ErrTokenUsed = errors.New("token already used")
)

// errWrongDistrict: the token was made for another district than the one
// the agent asked for.
var errWrongDistrict = errors.New("wrong district")

// bucketTokens maps SHA-256(secret) to a tokenRecord. Every bucket of this
// package starts with "enroll.", so it can share central's database.
var bucketTokens = []byte("enroll.tokens")

// bucketAgents maps a district to the serial number (hex) of the agent
// certificate issued last for it: the only one its link accepts.
var bucketAgents = []byte("enroll.agents")

type tokenRecord struct {
	District string    `json:"district"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	Used     bool      `json:"used"`
	// UsedAt is kept, with the record, so that an administrator can tell
	// when a token was spent.
	UsedAt time.Time `json:"used_at,omitzero"`
}

// Tokens is the store of enrolment tokens.
type Tokens struct {
	db  *bbolt.DB
	now func() time.Time
}

// NewTokens returns the token store kept in db; now is the clock (nil
// means time.Now).
func NewTokens(db *bbolt.DB, now func() time.Time) (*Tokens, error) {
	if db == nil {
		return nil, errors.New("enroll: no database")
	}
	if now == nil {
		now = time.Now
	}
	err := db.Update(func(tx *bbolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketAgents); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketTokens)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	return &Tokens{db: db, now: now}, nil
}

// Create makes a token with which one agent of district can enrol within
// ttl (0 means DefaultTTL, at most MaxTTL). caFingerprint is this
// central's CA fingerprint, which the token carries so that the agent can
// pin the CA before it sends anything. The secret is returned here and
// never again: only its hash is stored.
func (t *Tokens) Create(district string, ttl time.Duration, caFingerprint string) (identity.Token, time.Time, error) {
	if err := storage.ValidateName("district", district); err != nil {
		return identity.Token{}, time.Time{}, fmt.Errorf("enroll: create token: %w", err)
	}
	switch {
	case ttl == 0:
		ttl = DefaultTTL
	case ttl < 0 || ttl > MaxTTL:
		return identity.Token{}, time.Time{}, fmt.Errorf("enroll: create token: lifetime %v: want more than 0 and at most %v", ttl, MaxTTL)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return identity.Token{}, time.Time{}, fmt.Errorf("enroll: create token: %w", err)
	}
	tok := identity.Token{Fingerprint: caFingerprint, Secret: base64.RawURLEncoding.EncodeToString(raw[:])}
	// The printed form must read back, or the administrator is handed a
	// token that no agent can use.
	if _, err := identity.ParseToken(tok.String()); err != nil {
		return identity.Token{}, time.Time{}, fmt.Errorf("enroll: create token: CA fingerprint %q: %w", caFingerprint, err)
	}
	now := t.now()
	rec := tokenRecord{District: district, Created: now.UTC(), Expires: now.Add(ttl).UTC()}
	val, err := json.Marshal(rec)
	if err != nil {
		return identity.Token{}, time.Time{}, fmt.Errorf("enroll: create token: %w", err)
	}
	key := secretKey(tok.Secret)
	err = t.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		if b.Get(key) != nil {
			return errors.New("token collision") // 256 random bits: a broken random source
		}
		return b.Put(key, val)
	})
	if err != nil {
		return identity.Token{}, time.Time{}, fmt.Errorf("enroll: create token: %w", err)
	}
	return tok, rec.Expires, nil
}

// Redeem spends the token with this secret and returns its district, or
// says why it cannot (ErrTokenUnknown, ErrTokenExpired, ErrTokenUsed). The
// check and the spending are one transaction: two agents racing with the
// same token cannot both win.
func (t *Tokens) Redeem(secret string) (district string, err error) {
	return t.redeem(secret, "", "")
}

// redeem is Redeem that also refuses, without spending it, a token of
// another district than want (when want is not empty), and records serial
// (when not empty) as the district's one valid agent certificate, in the
// same transaction: a district enrolled again leaves its previous
// certificate unusable.
func (t *Tokens) redeem(secret, want, serial string) (district string, err error) {
	key := secretKey(secret)
	err = t.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		rec, err := checkRecord(b.Get(key), t.now())
		if err != nil {
			return err
		}
		if want != "" && rec.District != want {
			return fmt.Errorf("%w: token is for district %q, not %q", errWrongDistrict, rec.District, want)
		}
		rec.Used, rec.UsedAt = true, t.now().UTC()
		val, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		district = rec.District
		if err := b.Put(key, val); err != nil {
			return err
		}
		if serial == "" {
			return nil
		}
		return tx.Bucket(bucketAgents).Put([]byte(district), []byte(serial))
	})
	if err != nil {
		return "", fmt.Errorf("enroll: redeem: %w", err)
	}
	return district, nil
}

// ErrSuperseded means an agent certificate is not the one most recently
// issued for its district.
var ErrSuperseded = errors.New("certificate superseded: the district was enrolled again")

// CheckAgent accepts only the certificate most recently issued to the
// district (by serial number, hex).
func (t *Tokens) CheckAgent(district, serial string) error {
	var current []byte
	err := t.db.View(func(tx *bbolt.Tx) error {
		current = bytes.Clone(tx.Bucket(bucketAgents).Get([]byte(district)))
		return nil
	})
	if err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	if current == nil || string(current) != serial {
		return ErrSuperseded
	}
	return nil
}

// check returns the district of a token that could be redeemed now,
// without spending it.
func (t *Tokens) check(secret string) (district string, err error) {
	err = t.db.View(func(tx *bbolt.Tx) error {
		rec, err := checkRecord(tx.Bucket(bucketTokens).Get(secretKey(secret)), t.now())
		district = rec.District
		return err
	})
	if err != nil {
		return "", fmt.Errorf("enroll: %w", err)
	}
	return district, nil
}

func checkRecord(val []byte, now time.Time) (tokenRecord, error) {
	var rec tokenRecord
	if val == nil {
		return rec, ErrTokenUnknown
	}
	if err := json.Unmarshal(val, &rec); err != nil {
		return rec, fmt.Errorf("corrupt token record: %w", err)
	}
	if !now.Before(rec.Expires) {
		return rec, ErrTokenExpired
	}
	if rec.Used {
		return rec, ErrTokenUsed
	}
	return rec, nil
}

// secretKey is the database key of a token: its secret's SHA-256. A fast
// hash is enough because the secret has 256 random bits.
func secretKey(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}
