package audit

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/vigil-cctv/vigil/proto/actions"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"
)

// t0 is when the fake clocks of the tests start.
var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// fakeClock is a clock that moves only when told, by step at each reading
// if step is set.
type fakeClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

func newClock(step time.Duration) *fakeClock { return &fakeClock{now: t0, step: step} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.now
	c.now = c.now.Add(c.step)
	return t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// testKey is a fresh key pair named name.
type testKey struct {
	signer   note.Signer
	verifier note.Verifier
	vkey     string
}

func mustKey(t testing.TB, name string) testKey {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{s, v, vkey}
}

// mustOpen opens a log at path with key k and the options changed by opt,
// and closes it at the end of the test.
func mustOpen(t testing.TB, path string, k testKey, opt func(*Options)) *Log {
	t.Helper()
	o := Options{Signer: k.signer, Verifier: k.verifier}
	if opt != nil {
		opt(&o)
	}
	l, err := Open(path, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// mustOpenRO opens path read-only, for verification.
func mustOpenRO(t testing.TB, path string) *Log {
	t.Helper()
	l, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("Open read-only: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// sample is the i-th record of a varied test population.
func sample(i int) Record {
	codes := []string{actions.LiveStart, actions.RecordingView, actions.HoldPlace, actions.UserAdd, actions.SegmentDeleted, actions.LoginFail}
	outcomes := []string{OutcomeOK, OutcomeOK, OutcomeDenied, OutcomeOK, OutcomeFailed, OutcomeError}
	r := Record{
		Actor:   Actor{User: fmt.Sprintf("user%d", i%7), Role: "operator", Designation: "det. 2026/14"},
		Action:  codes[i%len(codes)],
		Target:  Target{District: fmt.Sprintf("district%d", i%3), Camera: fmt.Sprintf("cam%d", i%5)},
		Reason:  fmt.Sprintf("incident report %d: \"theft\" at the east gate", i),
		Client:  fmt.Sprintf("10.1.%d.%d:5%04d", i%250, i%200, i%10000),
		Outcome: outcomes[i%len(outcomes)],
	}
	if r.Action == actions.RecordingView || r.Action == actions.HoldPlace {
		r.Target.From = t0.Add(-time.Duration(i) * time.Minute)
		r.Target.To = r.Target.From.Add(90 * time.Second)
		r.Target.Segment = fmt.Sprintf("seg-%06d", i)
	}
	if r.Action == actions.UserAdd {
		r.Target.User = fmt.Sprintf("new%d", i)
	}
	return r
}

// mustAppend appends sample records first..first+n-1, one Append each.
func mustAppend(t testing.TB, l *Log, first, n int) []Record {
	t.Helper()
	out := make([]Record, 0, n)
	for i := first; i < first+n; i++ {
		rec, err := l.Append(context.Background(), sample(i))
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		out = append(out, rec)
	}
	return out
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// editCopy copies the audit file at src into a new file of dir and edits
// the copy's buckets directly with bbolt, as someone with access to the
// disk would. It returns the copy's path.
func editCopy(t testing.TB, src string, edit func(tx *bbolt.Tx) error) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "audit-copy.db")
	copyFile(t, src, dst)
	if edit == nil {
		return dst
	}
	db, err := bbolt.Open(dst, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(edit); err != nil {
		t.Fatalf("editing the copy: %v", err)
	}
	return dst
}

// wantTamper asserts err is a *TamperError naming seq.
func wantTamper(t testing.TB, err error, seq uint64) *TamperError {
	t.Helper()
	var te *TamperError
	if !errors.As(err, &te) {
		t.Fatalf("error %v, want a *TamperError at seq %d", err, seq)
	}
	if !errors.Is(err, ErrTampered) {
		t.Fatalf("errors.Is(%v, ErrTampered) is false", err)
	}
	if te.Seq != seq {
		t.Fatalf("tamper error at seq %d, want %d: %v", te.Seq, seq, err)
	}
	return te
}
