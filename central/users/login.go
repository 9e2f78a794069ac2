package users

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/bbolt"
)

// FailureReason says why a login failed. The caller of Login only ever sees
// ErrBadCredentials or ErrTooManyAttempts; the precise reason is kept for
// the audit log. The values are stored: never change one.
type FailureReason string

// The reasons recorded in Failure.
const (
	ReasonUnknownUser FailureReason = "unknown-user"
	ReasonBadPassword FailureReason = "bad-password"
	ReasonDisabled    FailureReason = "disabled"
	// ReasonBadSecondFactor is a right password with a wrong, malformed or
	// replayed TOTP code.
	ReasonBadSecondFactor FailureReason = "bad-second-factor"
	// ReasonThrottled is an attempt refused by the rate limit; its password
	// was not checked, and it does not count towards the limit.
	ReasonThrottled FailureReason = "throttled"
)

// Failure is one failed login, as recorded.
type Failure struct {
	Time time.Time `json:"time"`
	// User is the name as typed (clipped), which may not exist.
	User string `json:"user"`
	// Address is the client address as given to Login (clipped).
	Address string        `json:"address"`
	Reason  FailureReason `json:"reason"`
}

// Limits on what a failure record copies from the request: the name and
// address come from the network and must not grow the database at will.
const (
	maxRecordedName    = 64
	maxRecordedAddress = 128
)

func clip(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "?")
}

// session is a login token's state, stored under the SHA-256 of the token.
type session struct {
	User    string    `json:"user"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Address string    `json:"address"`
}

const tokenBytes = 32

// tokenLen is the length of a token in base64url without padding.
var tokenLen = base64.RawURLEncoding.EncodedLen(tokenBytes)

// tokenKey is the database key of a token, or false if the token cannot be
// one of ours.
func tokenKey(token string) ([]byte, bool) {
	if len(token) != tokenLen {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != tokenBytes {
		return nil, false
	}
	sum := sha256.Sum256(raw)
	return sum[:], true
}

// Login is LoginTOTP without a code: for callers that know only a
// password. For a user with a second factor it returns
// ErrSecondFactorRequired when the password is right.
func (s *Store) Login(name, password, clientAddr string) (token string, expires time.Time, u User, err error) {
	return s.LoginTOTP(name, password, "", clientAddr)
}

// LoginTOTP checks a name, password and, for a user who has confirmed a
// second factor, a TOTP code, and opens a session. An unknown name, a
// wrong password, a disabled user and a wrong code all return
// ErrBadCredentials after the same argon2 work, and all count as failures.
// While the name or the client address has had MaxFailures failures within
// FailureWindow, LoginTOTP returns a *TooManyAttemptsError without looking
// at the password. Every failure, refused attempts included, is recorded
// (FailedLogins) before LoginTOTP returns.
//
// When the user has a second factor and code is empty, the answer is
// ErrSecondFactorRequired, given only once the password has been verified
// right: it is neither a failure nor a success for the limits. A code is
// accepted for the step of the server's clock and the one before and after
// it, and only once: a code of the step last used, or an earlier one, is
// refused as a replay. A code given for a user without a second factor is
// ignored.
//
// clientAddr is the peer address as the server sees it ("host:port"); the
// port is ignored for the limit and an IPv6 address counts as its /64.
// Callers must pass it: every empty address shares one limit.
//
// The token is 32 random bytes in base64url; only its SHA-256 is stored.
func (s *Store) LoginTOTP(name, password, code, clientAddr string) (token string, expires time.Time, u User, err error) {
	recName, recAddr := clip(name, maxRecordedName), clip(clientAddr, maxRecordedAddress)
	ukey, akey := userKey(recName), addrKey(clientAddr)

	if terr := s.lim.admit(s.opts.Now, ukey, akey); terr != nil {
		// Refused attempts are recorded at most once a minute per name and
		// address: a flood of them must not become a flood of fsyncs and
		// disk (each refusal costs the server nothing else).
		if s.throttleNoted(ukey + akey) {
			return "", time.Time{}, User{}, terr
		}
		s.log.Warn("login refused: too many failures", "user", recName, "client", recAddr, "scope", terr.Scope, "retry_after", terr.RetryAfter)
		if rerr := s.recordFailure(recName, recAddr, ReasonThrottled); rerr != nil {
			return "", time.Time{}, User{}, errors.Join(terr, rerr)
		}
		return "", time.Time{}, User{}, terr
	}
	o := outcomeError
	defer func() { s.lim.done(s.opts.Now(), ukey, akey, o) }()

	fail := func(reason FailureReason) (string, time.Time, User, error) {
		o = outcomeFailure
		s.log.Info("login failed", "user", recName, "client", recAddr, "reason", reason)
		if rerr := s.recordFailure(recName, recAddr, reason); rerr != nil {
			return "", time.Time{}, User{}, errors.Join(ErrBadCredentials, rerr)
		}
		return "", time.Time{}, User{}, ErrBadCredentials
	}

	var rec *record
	if ValidateName(name) == nil {
		err := s.db.View(func(tx *bbolt.Tx) error {
			r, err := getRecord(tx.Bucket(bucketAccounts), name)
			if errors.Is(err, ErrNoSuchUser) {
				return nil
			}
			rec = r
			return err
		})
		if err != nil {
			return "", time.Time{}, User{}, fmt.Errorf("users: login: %w", err)
		}
	}
	encoded := s.dummyHash
	if rec != nil {
		encoded = rec.Hash
	}
	ok, params, err := s.verify(password, encoded)
	if err != nil {
		// Only a stored hash can be malformed; the user cannot log in
		// until an administrator sets a new password.
		s.log.Error("login: stored password hash unusable", "user", recName, "err", err)
		return "", time.Time{}, User{}, fmt.Errorf("users: login: %q: %w", name, err)
	}
	switch {
	case rec == nil:
		return fail(ReasonUnknownUser)
	case !ok:
		return fail(ReasonBadPassword)
	case rec.Disabled:
		return fail(ReasonDisabled)
	}

	// The second factor, now that the password is known right.
	var step uint64
	if len(rec.TOTPSecret) > 0 {
		if code == "" {
			// Not a failure: counting it would lock out everyone whose
			// client asks for the code only when told to. Not a success
			// either: that would forget the name's failures, and code
			// guesses could go on unthrottled between code-less attempts.
			o = outcomeIncomplete
			s.log.Info("login: second factor required", "user", recName, "client", recAddr)
			return "", time.Time{}, User{}, ErrSecondFactorRequired
		}
		var ok bool
		if step, ok = matchTOTP(rec.TOTPSecret, code, s.opts.Now(), rec.TOTPLastStep); !ok {
			return fail(ReasonBadSecondFactor)
		}
	}

	// Upgrade a hash made with older parameters now that the password is
	// known; failing to is not a reason to refuse the login.
	var rehash string
	if params != s.opts.Argon2 {
		if rehash, err = s.hash(password); err != nil {
			s.log.Warn("login: rehash with new parameters failed", "user", name, "err", err)
			rehash = ""
		}
	}

	raw := make([]byte, tokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", time.Time{}, User{}, fmt.Errorf("users: login: token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(raw)
	key, _ := tokenKey(token)
	now := s.opts.Now().UTC()
	expires = now.Add(s.opts.SessionTTL)

	var changed FailureReason
	err = s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		cur, err := getRecord(b, name)
		if err != nil {
			return err
		}
		// The password was checked against a snapshot: if the user was
		// disabled or given a new password meanwhile, that check is void.
		if cur.Disabled {
			changed = ReasonDisabled
			return nil
		}
		if cur.Hash != rec.Hash {
			changed = ReasonBadPassword
			return nil
		}
		// Likewise for the second factor: enabled, replaced or removed
		// meanwhile voids the check; and a concurrent login that used
		// the same code first makes this one a replay.
		if !bytes.Equal(cur.TOTPSecret, rec.TOTPSecret) || len(cur.TOTPSecret) > 0 && step <= cur.TOTPLastStep {
			changed = ReasonBadSecondFactor
			return nil
		}
		if len(cur.TOTPSecret) > 0 {
			cur.TOTPLastStep = step
		}
		if rehash != "" {
			cur.Hash = rehash
		}
		cur.LastLogin, cur.FailuresClearedAt = now, now
		if err := putRecord(b, cur); err != nil {
			return err
		}
		sessions := tx.Bucket(bucketSessions)
		if err := dropExpiredSessions(sessions, now); err != nil {
			return err
		}
		v, err := json.Marshal(session{User: name, Created: now, Expires: expires, Address: recAddr})
		if err != nil {
			return fmt.Errorf("session: encode: %w", err)
		}
		u = cur.user()
		return sessions.Put(key, v)
	})
	if err != nil {
		return "", time.Time{}, User{}, fmt.Errorf("users: login: %w", err)
	}
	if changed != "" {
		return fail(changed)
	}
	o = outcomeSuccess
	s.log.Info("login", "user", name, "role", u.Role, "client", recAddr, "expires", expires)
	return token, expires, u, nil
}

// dropExpiredSessions deletes the sessions past their expiry. It runs at
// each login so that tokens never presented again do not pile up.
func dropExpiredSessions(b *bbolt.Bucket, now time.Time) error {
	var dead [][]byte
	err := b.ForEach(func(k, v []byte) error {
		var sess session
		if err := json.Unmarshal(v, &sess); err != nil || !now.Before(sess.Expires) {
			// An undecodable session can never authenticate anyone either.
			dead = append(dead, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range dead {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("delete expired session: %w", err)
		}
	}
	return nil
}

// revokeSessions deletes every session of a user.
func revokeSessions(tx *bbolt.Tx, name string) (int, error) {
	b := tx.Bucket(bucketSessions)
	var dead [][]byte
	err := b.ForEach(func(k, v []byte) error {
		var sess session
		if err := json.Unmarshal(v, &sess); err != nil || sess.User == name {
			dead = append(dead, k)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range dead {
		if err := b.Delete(k); err != nil {
			return 0, fmt.Errorf("revoke session: %w", err)
		}
	}
	return len(dead), nil
}

// Authenticate returns the user and expiry of a session token. It is called
// on every RPC, so it does no password hashing: a SHA-256 and one read
// transaction. Unknown, malformed, expired and revoked tokens, and tokens of
// disabled users, all return an error wrapping ErrUnauthenticated; an
// expired session is deleted.
func (s *Store) Authenticate(token string) (User, time.Time, error) {
	key, ok := tokenKey(token)
	if !ok {
		return User{}, time.Time{}, fmt.Errorf("%w: malformed token", ErrUnauthenticated)
	}
	now := s.opts.Now()
	var (
		u       User
		expires time.Time
		expired bool
	)
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketSessions).Get(key)
		if v == nil {
			return fmt.Errorf("%w: unknown or revoked session", ErrUnauthenticated)
		}
		var sess session
		if err := json.Unmarshal(v, &sess); err != nil {
			return fmt.Errorf("session: decode: %w", err)
		}
		if !now.Before(sess.Expires) {
			expired = true
			return fmt.Errorf("%w: session expired", ErrUnauthenticated)
		}
		r, err := getRecord(tx.Bucket(bucketAccounts), sess.User)
		if errors.Is(err, ErrNoSuchUser) {
			return fmt.Errorf("%w: unknown or revoked session", ErrUnauthenticated)
		}
		if err != nil {
			return err
		}
		if r.Disabled {
			return fmt.Errorf("%w: user disabled", ErrUnauthenticated)
		}
		u, expires = r.user(), sess.Expires
		return nil
	})
	if expired {
		if derr := s.db.Update(func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketSessions).Delete(key)
		}); derr != nil {
			s.log.Error("delete expired session", "err", derr)
		}
	}
	if err != nil {
		if errors.Is(err, ErrUnauthenticated) {
			return User{}, time.Time{}, err
		}
		return User{}, time.Time{}, fmt.Errorf("users: authenticate: %w", err)
	}
	return u, expires, nil
}

// Logout ends the session of a token. An unknown token returns
// ErrUnauthenticated.
func (s *Store) Logout(token string) error {
	key, ok := tokenKey(token)
	if !ok {
		return fmt.Errorf("%w: malformed token", ErrUnauthenticated)
	}
	var name string
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		v := b.Get(key)
		if v == nil {
			return fmt.Errorf("%w: unknown or revoked session", ErrUnauthenticated)
		}
		var sess session
		if json.Unmarshal(v, &sess) == nil {
			name = sess.User
		}
		return b.Delete(key)
	})
	if err != nil {
		if errors.Is(err, ErrUnauthenticated) {
			return err
		}
		return fmt.Errorf("users: logout: %w", err)
	}
	s.log.Info("logout", "user", name)
	return nil
}

// failureKeyPrefix is the big-endian Unix nanoseconds of t: failure keys
// sort by time, so FailedLogins can seek to its start.
func failureKeyPrefix(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(max(t.UnixNano(), 0)))
}

// recordFailure writes one failure durably. The key adds a sequence number
// to the time so that failures in the same nanosecond do not overwrite each
// other.
// throttleNoted reports whether a refusal for key was recorded within the
// last minute, and notes this one otherwise.
func (s *Store) throttleNoted(key string) bool {
	now := s.opts.Now()
	s.throttledMu.Lock()
	defer s.throttledMu.Unlock()
	if s.throttled == nil || len(s.throttled) > 10000 {
		s.throttled = map[string]time.Time{} // bounded: forget everything
	}
	if last, ok := s.throttled[key]; ok && now.Sub(last) < time.Minute {
		return true
	}
	s.throttled[key] = now
	return false
}

func (s *Store) recordFailure(name, addr string, reason FailureReason) error {
	f := Failure{Time: s.opts.Now().UTC(), User: name, Address: addr, Reason: reason}
	v, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("users: record failed login: %w", err)
	}
	err = s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketFailures)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		return b.Put(binary.BigEndian.AppendUint64(failureKeyPrefix(f.Time), seq), v)
	})
	if err != nil {
		s.log.Error("record failed login", "user", name, "client", addr, "err", err)
		return fmt.Errorf("users: record failed login: %w", err)
	}
	return nil
}

// FailedLogins returns the failed logins at or after since, oldest first.
func (s *Store) FailedLogins(since time.Time) ([]Failure, error) {
	var out []Failure
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketFailures).Cursor()
		for k, v := c.Seek(failureKeyPrefix(since)); k != nil; k, v = c.Next() {
			var f Failure
			if err := json.Unmarshal(v, &f); err != nil {
				return fmt.Errorf("failed login %x: decode: %w", k, err)
			}
			out = append(out, f)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("users: failed logins: %w", err)
	}
	return out, nil
}

// PruneFailedLogins deletes the failures recorded before t and returns how
// many it deleted. It is for the audit log to call once it has copied them:
// under a sustained attack refused attempts are recorded too, and would
// otherwise grow the database without end.
func (s *Store) PruneFailedLogins(before time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketFailures)
		end := failureKeyPrefix(before)
		var dead [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k, end) < 0; k, _ = c.Next() {
			dead = append(dead, k)
		}
		for _, k := range dead {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(dead)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("users: prune failed logins: %w", err)
	}
	return n, nil
}
