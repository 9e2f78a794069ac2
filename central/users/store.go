package users

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
)

// Bucket names in central's bbolt file. The "users." prefix keeps them apart
// from the buckets of the other central packages.
var (
	bucketAccounts = []byte("users.accounts")
	bucketSessions = []byte("users.sessions")
	bucketFailures = []byte("users.failed_logins")
)

// BootstrapFile is the name, in the data directory, of the file that holds
// the bootstrap administrator's password.
const BootstrapFile = "admin-password"

// Defaults of Options.
const (
	DefaultSessionTTL    = 8 * time.Hour
	DefaultMaxFailures   = 5
	DefaultFailureWindow = 15 * time.Minute
)

// Options configure a Store. The zero value gives the defaults.
type Options struct {
	// Now is the clock (default time.Now); tests inject one to expire
	// sessions and slide the failure window without sleeping.
	Now func() time.Time
	// SessionTTL is how long a login token is valid (default 8 h).
	SessionTTL time.Duration
	// Argon2 are the cost parameters of new password hashes (defaults
	// time 1, 64 MiB, 2 threads). Tests lower them.
	Argon2 Argon2Params
	// MaxFailures failed logins within FailureWindow, for one user name or
	// one client address, lock further attempts (defaults 5 and 15 min).
	MaxFailures   int
	FailureWindow time.Duration
	// MaxParallelHashes bounds the argon2 computations running at once
	// (default GOMAXPROCS): each takes Argon2.MemoryKiB of memory, and a
	// flood of logins must not exhaust the server's memory.
	MaxParallelHashes int
	Logger            *slog.Logger
}

func (o *Options) checkAndSetDefaults() error {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SessionTTL < 0 || o.MaxFailures < 0 || o.FailureWindow < 0 || o.MaxParallelHashes < 0 {
		return errors.New("users: options: negative session TTL, failure limit, failure window or hash parallelism")
	}
	if o.SessionTTL == 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	if o.MaxFailures == 0 {
		o.MaxFailures = DefaultMaxFailures
	}
	if o.FailureWindow == 0 {
		o.FailureWindow = DefaultFailureWindow
	}
	if o.MaxParallelHashes == 0 {
		o.MaxParallelHashes = runtime.GOMAXPROCS(0)
	}
	o.Argon2 = o.Argon2.withDefaults()
	if err := o.Argon2.check(); err != nil {
		return fmt.Errorf("users: options: %w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Store is the user database. It is safe for concurrent use.
type Store struct {
	db   *bbolt.DB
	opts Options
	log  *slog.Logger
	lim  *limiter

	// hashSem holds one token per argon2 computation in progress.
	hashSem chan struct{}
	// dummyHash is verified for unknown names, so that they cost what a
	// wrong password costs and cannot be told apart by timing.
	dummyHash string
	// verifications counts argon2 verifications done, so that tests can
	// check an unknown name costs one like a wrong password does.
	verifications atomic.Int64

	// throttled holds when a refused (throttled) attempt was last recorded,
	// per name and address.
	throttledMu sync.Mutex
	throttled   map[string]time.Time
}

// record is a user as stored: the public User plus what never leaves the
// package.
type record struct {
	Name        string    `json:"name"`
	Role        Role      `json:"role"`
	Districts   []string  `json:"districts,omitempty"`
	Designation string    `json:"designation,omitempty"`
	Disabled    bool      `json:"disabled,omitempty"`
	Created     time.Time `json:"created"`
	Hash        string    `json:"hash"`
	// PasswordSet is when the password was last set.
	PasswordSet time.Time `json:"password_set"`
	LastLogin   time.Time `json:"last_login,omitzero"`
	// FailuresClearedAt is the last successful login or password change:
	// failures before it no longer count against the name when the limiter
	// is rebuilt at start.
	FailuresClearedAt time.Time `json:"failures_cleared_at,omitzero"`
	// TOTPSecret is the active second-factor key, nil when there is none;
	// TOTPPending a key from EnrollTOTP not yet confirmed.
	TOTPSecret  []byte `json:"totp_secret,omitempty"`
	TOTPPending []byte `json:"totp_pending,omitempty"`
	// TOTPLastStep is the time step of the last code accepted: codes of it
	// and of earlier steps are refused, so an overheard code cannot be
	// replayed within its validity. Written in the login transaction.
	TOTPLastStep uint64 `json:"totp_last_step,omitempty"`
}

func (r *record) user() User {
	return User{
		Name:        r.Name,
		Role:        r.Role,
		Districts:   append([]string(nil), r.Districts...),
		Designation: r.Designation,
		Disabled:    r.Disabled,
		Created:     r.Created,
		TOTP:        len(r.TOTPSecret) > 0,
	}
}

// New opens the user store in db, creating its buckets if needed, and
// rebuilds the login limiter from the failures recorded in the current
// window.
func New(db *bbolt.DB, opts Options) (*Store, error) {
	if db == nil {
		return nil, errors.New("users: nil database")
	}
	if err := opts.checkAndSetDefaults(); err != nil {
		return nil, err
	}
	s := &Store{
		db:      db,
		opts:    opts,
		log:     opts.Logger.With("component", "users"),
		lim:     newLimiter(opts.MaxFailures, opts.FailureWindow),
		hashSem: make(chan struct{}, opts.MaxParallelHashes),
	}
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketAccounts, bucketSessions, bucketFailures} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("bucket %s: %w", b, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("users: open: %w", err)
	}
	// The dummy's password is random and thrown away: nothing can match it.
	s.dummyHash, err = s.hash(rand.Text())
	if err != nil {
		return nil, fmt.Errorf("users: open: %w", err)
	}
	if err := s.seedLimiter(); err != nil {
		return nil, fmt.Errorf("users: open: %w", err)
	}
	return s, nil
}

// seedLimiter replays the failures of the current window into the limiter.
func (s *Store) seedLimiter() error {
	since := s.opts.Now().Add(-s.opts.FailureWindow)
	return s.db.View(func(tx *bbolt.Tx) error {
		accounts := tx.Bucket(bucketAccounts)
		c := tx.Bucket(bucketFailures).Cursor()
		for k, v := c.Seek(failureKeyPrefix(since)); k != nil; k, v = c.Next() {
			var f Failure
			if err := json.Unmarshal(v, &f); err != nil {
				return fmt.Errorf("failed login %x: %w", k, err)
			}
			if f.Reason == ReasonThrottled {
				// Refused attempts never counted: they did not test a password.
				continue
			}
			s.lim.seed(addrKey(f.Address), f.Time)
			if rec, err := getRecord(accounts, f.User); err == nil && !f.Time.After(rec.FailuresClearedAt) {
				continue
			}
			s.lim.seed(userKey(f.User), f.Time)
		}
		return nil
	})
}

// hash hashes a password with the current parameters, waiting for a free
// hashing slot.
func (s *Store) hash(password string) (string, error) {
	s.hashSem <- struct{}{}
	defer func() { <-s.hashSem }()
	return hashPassword(password, s.opts.Argon2)
}

func (s *Store) verify(password, encoded string) (bool, Argon2Params, error) {
	s.verifications.Add(1)
	s.hashSem <- struct{}{}
	defer func() { <-s.hashSem }()
	return verifyPassword(password, encoded)
}

func getRecord(b *bbolt.Bucket, name string) (*record, error) {
	v := b.Get([]byte(name))
	if v == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoSuchUser, name)
	}
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("user %q: decode: %w", name, err)
	}
	return &r, nil
}

func putRecord(b *bbolt.Bucket, r *record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("user %q: encode: %w", r.Name, err)
	}
	return b.Put([]byte(r.Name), v)
}

// Add creates a user. districts empty means every district, which an
// operator may not have: operators watch the districts assigned to them.
func (s *Store) Add(name string, role Role, districts []string, designation, password string) (User, error) {
	rec, err := s.newRecord(name, role, districts, designation, password)
	if err != nil {
		return User{}, fmt.Errorf("users: add: %w", err)
	}
	err = s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		if b.Get([]byte(name)) != nil {
			return fmt.Errorf("%w: %q", ErrUserExists, name)
		}
		return putRecord(b, rec)
	})
	if err != nil {
		return User{}, fmt.Errorf("users: add: %w", err)
	}
	s.log.Info("user added", "user", name, "role", role, "districts", rec.Districts, "designation", designation)
	return rec.user(), nil
}

// newRecord validates a new user and hashes the password, outside any
// transaction since hashing is slow.
func (s *Store) newRecord(name string, role Role, districts []string, designation, password string) (*record, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return nil, err
	}
	ds, err := normalizeDistricts(districts)
	if err != nil {
		return nil, err
	}
	if role == RoleOperator && len(ds) == 0 {
		return nil, fmt.Errorf("%w: an operator needs at least one district", ErrInvalid)
	}
	if err := validateDesignation(designation); err != nil {
		return nil, err
	}
	if err := ValidatePassword(password); err != nil {
		return nil, err
	}
	h, err := s.hash(password)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now().UTC()
	return &record{
		Name:        name,
		Role:        role,
		Districts:   ds,
		Designation: designation,
		Created:     now,
		Hash:        h,
		PasswordSet: now,
	}, nil
}

// Get returns the user called name.
func (s *Store) Get(name string) (User, error) {
	var u User
	err := s.db.View(func(tx *bbolt.Tx) error {
		r, err := getRecord(tx.Bucket(bucketAccounts), name)
		if err != nil {
			return err
		}
		u = r.user()
		return nil
	})
	if err != nil {
		return User{}, fmt.Errorf("users: get: %w", err)
	}
	return u, nil
}

// List returns every user, disabled ones included, sorted by name.
func (s *Store) List() ([]User, error) {
	var out []User
	err := s.db.View(func(tx *bbolt.Tx) error {
		// bbolt iterates in key order, which is name order.
		return tx.Bucket(bucketAccounts).ForEach(func(k, v []byte) error {
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("user %q: decode: %w", k, err)
			}
			out = append(out, r.user())
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("users: list: %w", err)
	}
	return out, nil
}

// Disable stops a user from logging in and revokes their sessions at once.
// Users are disabled, never deleted, so that the names in the audit log keep
// pointing at someone. Disabling a disabled user does nothing.
func (s *Store) Disable(name string) error {
	var revoked int
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		r, err := getRecord(b, name)
		if err != nil {
			return err
		}
		if r.Disabled {
			return nil
		}
		if r.Role == RoleAdmin {
			others, err := enabledAdmins(b, name)
			if err != nil {
				return err
			}
			if others == 0 {
				return fmt.Errorf("%w: %q", ErrLastAdmin, name)
			}
		}
		r.Disabled = true
		if err := putRecord(b, r); err != nil {
			return err
		}
		revoked, err = revokeSessions(tx, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("users: disable: %w", err)
	}
	s.log.Info("user disabled", "user", name, "sessions_revoked", revoked)
	return nil
}

// enabledAdmins counts the enabled administrators other than except.
func enabledAdmins(b *bbolt.Bucket, except string) (int, error) {
	n := 0
	err := b.ForEach(func(k, v []byte) error {
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("user %q: decode: %w", k, err)
		}
		if r.Role == RoleAdmin && !r.Disabled && r.Name != except {
			n++
		}
		return nil
	})
	return n, err
}

// SetPassword replaces a user's password and revokes their sessions, so
// that a stolen token dies with the old password. It also lifts a lock on
// the name: an administrator resetting the password is how a locked-out
// person gets back in.
func (s *Store) SetPassword(name, password string) error {
	if err := ValidatePassword(password); err != nil {
		return fmt.Errorf("users: set password: %w", err)
	}
	if _, err := s.Get(name); err != nil {
		// Checked before hashing so that a typo costs nothing.
		return fmt.Errorf("users: set password: %w", ErrNoSuchUser)
	}
	h, err := s.hash(password)
	if err != nil {
		return fmt.Errorf("users: set password: %w", err)
	}
	var revoked int
	err = s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		r, err := getRecord(b, name)
		if err != nil {
			return err
		}
		now := s.opts.Now().UTC()
		r.Hash, r.PasswordSet, r.FailuresClearedAt = h, now, now
		if err := putRecord(b, r); err != nil {
			return err
		}
		revoked, err = revokeSessions(tx, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("users: set password: %w", err)
	}
	s.lim.reset(userKey(name))
	s.log.Info("password set", "user", name, "sessions_revoked", revoked)
	return nil
}

// Bootstrap creates the first administrator when there is no user at all:
// name "admin", every district, designation "bootstrap", and a random
// password that is written once to <dataDir>/admin-password (mode 0600) and
// returned. When users exist it does nothing and returns created false.
//
// The file is written, and synced, before the user is created: a crash in
// between leaves a file and no user, which the next start refuses with an
// error telling to remove the file, rather than an administrator whose
// password nobody has. An existing file is never overwritten.
func (s *Store) Bootstrap(dataDir string) (password string, created bool, err error) {
	some, err := s.anyUser()
	if err != nil {
		return "", false, fmt.Errorf("users: bootstrap: %w", err)
	}
	if some {
		return "", false, nil
	}
	const name = "admin"
	// 26 characters of base32: 130 bits, typable, no ambiguous case.
	password = rand.Text()
	rec, err := s.newRecord(name, RoleAdmin, nil, "bootstrap", password)
	if err != nil {
		return "", false, fmt.Errorf("users: bootstrap: %w", err)
	}
	path := filepath.Join(dataDir, BootstrapFile)
	if err := writeOnce(path, []byte(password+"\n")); err != nil {
		if errors.Is(err, os.ErrExist) {
			return "", false, fmt.Errorf("users: bootstrap: %s exists but there are no users: it is left from an interrupted first start; remove it to create a new administrator: %w", path, err)
		}
		return "", false, fmt.Errorf("users: bootstrap: %w", err)
	}
	raced := false
	err = s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		if k, _ := b.Cursor().First(); k != nil {
			raced = true // someone added a user since anyUser
			return nil
		}
		return putRecord(b, rec)
	})
	if err != nil || raced {
		if rmErr := os.Remove(path); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", path, rmErr))
		}
		if err != nil {
			return "", false, fmt.Errorf("users: bootstrap: %w", err)
		}
		return "", false, nil
	}
	s.log.Warn("bootstrap administrator created; change its password", "user", name, "password_file", path)
	return password, true, nil
}

func (s *Store) anyUser() (bool, error) {
	var some bool
	err := s.db.View(func(tx *bbolt.Tx) error {
		k, _ := tx.Bucket(bucketAccounts).Cursor().First()
		some = k != nil
		return nil
	})
	return some, err
}

// writeOnce creates path with mode 0600, failing if it exists, and syncs
// the file and its directory so the content survives a power cut.
func writeOnce(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		// A partial file would block every later bootstrap.
		if rmErr := os.Remove(path); rmErr != nil {
			werr = errors.Join(werr, fmt.Errorf("remove partial file: %w", rmErr))
		}
		return fmt.Errorf("write %s: %w", path, werr)
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	defer dir.Close()
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	return nil
}
