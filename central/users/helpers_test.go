package users

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// fastArgon2 keeps tests quick; the benchmarks use the defaults.
var fastArgon2 = Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}

// fakeClock is a settable clock shared by a Store and its test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testEnv is a store on a fresh bbolt file with a fake clock.
type testEnv struct {
	*Store
	db    *bbolt.DB
	path  string
	clock *fakeClock
	opts  Options
}

// mustOpenDB opens a bbolt file and closes it when the test ends.
func mustOpenDB(t testing.TB, path string) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

// mustNew makes a store with fast hashing and a fake clock; edit adjusts
// the options.
func mustNew(t testing.TB, edit func(*Options)) *testEnv {
	t.Helper()
	path := filepath.Join(t.TempDir(), "central.db")
	db := mustOpenDB(t, path)
	clock := newFakeClock()
	opts := Options{Now: clock.Now, Argon2: fastArgon2}
	if edit != nil {
		edit(&opts)
	}
	s, err := New(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{Store: s, db: db, path: path, clock: clock, opts: opts}
}

// reopen makes a second Store on the same database, as after a restart.
func (e *testEnv) reopen(t testing.TB) *Store {
	t.Helper()
	s, err := New(e.db, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *testEnv) mustAdd(t testing.TB, name string, role Role, districts []string, password string) User {
	t.Helper()
	u, err := e.Add(name, role, districts, "det. 12/2026", password)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (e *testEnv) mustLogin(t testing.TB, name, password, addr string) string {
	t.Helper()
	tok, _, _, err := e.Login(name, password, addr)
	if err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	return tok
}
