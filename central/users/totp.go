package users

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/bbolt"
)

// The second factor is a time-based one-time password (RFC 6238) with the
// parameters every authenticator app defaults to: HMAC-SHA-1, 6 digits, a
// 30 s step, counted from the Unix epoch. Other parameters are not offered:
// many apps silently ignore them and would show wrong codes.
const (
	// TOTPSecretBytes is the length of a secret: 160 bits, the HMAC-SHA-1
	// key length RFC 4226 recommends.
	TOTPSecretBytes = 20
	// TOTPDigits is the number of digits of a code.
	TOTPDigits = 6
	// TOTPPeriod is how long one code is valid.
	TOTPPeriod = 30 * time.Second
	// totpSkew is how many steps before and after the server's a code may
	// be from: a phone's clock a little off, or a code typed as it turned.
	totpSkew = 1
	// totpIssuer names the service in authenticator apps.
	totpIssuer = "vigil"
)

// totpEncoding is how secrets are shown to people: base32 without padding,
// which is what authenticator apps accept typed in or in an otpauth URI.
var totpEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// hotp is RFC 4226 HOTP: the HMAC-SHA-1 of the big-endian counter,
// dynamically truncated to a 31-bit number, modulo 10^digits.
func hotp(key []byte, counter uint64, digits int) string {
	mac := hmac.New(sha1.New, key)
	mac.Write(binary.BigEndian.AppendUint64(nil, counter))
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, bin%mod)
}

// totpStep is the RFC 6238 time step counter T of t. Times before the
// epoch are step 0: no real clock is there, and a negative counter has no
// encoding.
func totpStep(t time.Time) uint64 {
	return uint64(max(t.Unix(), 0) / int64(TOTPPeriod/time.Second))
}

// TOTPCode returns the code an authenticator app shows at t for a secret
// as EnrollTOTP returns it (base32, padding optional). Central itself only
// verifies codes; this is for tests and tools that play the app.
func TOTPCode(secret string, t time.Time) (string, error) {
	key, err := totpEncoding.DecodeString(strings.TrimRight(strings.ToUpper(secret), "="))
	if err != nil {
		return "", fmt.Errorf("%w: totp secret: %w", ErrInvalid, err)
	}
	return hotp(key, totpStep(t), TOTPDigits), nil
}

// normalizeCode drops the spaces and dashes apps print in the middle of a
// code ("123 456") and reports whether what is left can be a code at all.
func normalizeCode(code string) (string, bool) {
	code = strings.NewReplacer(" ", "", "-", "").Replace(code)
	if len(code) != TOTPDigits {
		return "", false
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	return code, true
}

// matchTOTP returns the step, within ±totpSkew of now's and after
// lastStep, whose code is code. A code of lastStep or earlier is a replay
// (RFC 6238 §5.2: a code is accepted once) and does not match.
func matchTOTP(key []byte, code string, now time.Time, lastStep uint64) (uint64, bool) {
	code, ok := normalizeCode(code)
	if !ok || len(key) == 0 {
		return 0, false
	}
	cur := totpStep(now)
	var found uint64
	matched := false
	for d := -totpSkew; d <= totpSkew; d++ {
		if d < 0 && cur < uint64(-d) {
			continue
		}
		step := uint64(int64(cur) + int64(d))
		// Every candidate is computed and compared in constant time, so the
		// answer's timing does not say which one matched.
		eq := subtle.ConstantTimeCompare([]byte(hotp(key, step, TOTPDigits)), []byte(code)) == 1
		if eq && step > lastStep && !matched {
			found, matched = step, true
		}
	}
	return found, matched
}

// totpURI is the otpauth URI (Google Authenticator key URI format) that
// apps read from a QR code. Names are [a-z0-9._-] and secrets base32, so
// nothing needs escaping.
func totpURI(name, secret string) string {
	return fmt.Sprintf("otpauth://totp/%s:%s?secret=%s&issuer=%s&algorithm=SHA1&digits=%d&period=%d",
		totpIssuer, name, secret, totpIssuer, TOTPDigits, int(TOTPPeriod/time.Second))
}

// EnrollTOTP makes a new second-factor secret for a user and keeps it
// pending: logins do not ask for it until ConfirmTOTP has seen a code made
// from it, so a person whose app was set up wrong is not locked out. It
// returns the secret in base32 (to type into an app) and as an otpauth URI
// (to show as a QR code). A second call replaces the pending secret; an
// active one stays in force until the new one is confirmed.
//
// The secret is stored in clear in the record, as it must be to compute
// codes: central's database file is as sensitive as the secrets.
func (s *Store) EnrollTOTP(name string) (secret, uri string, err error) {
	key := make([]byte, TOTPSecretBytes)
	if _, err := rand.Read(key); err != nil {
		return "", "", fmt.Errorf("users: enrol totp: %w", err)
	}
	err = s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		r, err := getRecord(b, name)
		if err != nil {
			return err
		}
		r.TOTPPending = key
		return putRecord(b, r)
	})
	if err != nil {
		return "", "", fmt.Errorf("users: enrol totp: %w", err)
	}
	secret = totpEncoding.EncodeToString(key)
	s.log.Info("totp enrolment started", "user", name)
	return secret, totpURI(name, secret), nil
}

// ConfirmTOTP activates the pending secret of EnrollTOTP if code is a
// current code of it; from then on LoginTOTP asks for a code. The step of
// the code is recorded as used, so the code cannot then log in. A wrong
// code, or no pending secret, returns an error wrapping ErrInvalid and
// changes nothing. Sessions are kept: they were opened by this person.
func (s *Store) ConfirmTOTP(name, code string) error {
	now := s.opts.Now()
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		r, err := getRecord(b, name)
		if err != nil {
			return err
		}
		if len(r.TOTPPending) == 0 {
			return fmt.Errorf("%w: no second factor enrolment pending for %q: enrol first", ErrInvalid, name)
		}
		step, ok := matchTOTP(r.TOTPPending, code, now, 0)
		if !ok {
			return fmt.Errorf("%w: the code does not match the new secret (is the device's clock right?)", ErrInvalid)
		}
		r.TOTPSecret, r.TOTPPending, r.TOTPLastStep = r.TOTPPending, nil, step
		return putRecord(b, r)
	})
	if err != nil {
		return fmt.Errorf("users: confirm totp: %w", err)
	}
	s.log.Info("totp enabled", "user", name)
	return nil
}

// DisableTOTP removes a user's second factor, active and pending: logins
// need the password only again. It is how an administrator lets back in
// someone who lost their device. Disabling when there is none does
// nothing. Sessions are kept.
func (s *Store) DisableTOTP(name string) error {
	var had bool
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		r, err := getRecord(b, name)
		if err != nil {
			return err
		}
		if len(r.TOTPSecret) == 0 && len(r.TOTPPending) == 0 {
			return nil
		}
		had = len(r.TOTPSecret) > 0
		r.TOTPSecret, r.TOTPPending, r.TOTPLastStep = nil, nil, 0
		return putRecord(b, r)
	})
	if err != nil {
		return fmt.Errorf("users: disable totp: %w", err)
	}
	if had {
		s.log.Info("totp disabled", "user", name)
	}
	return nil
}
