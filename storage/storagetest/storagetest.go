// Package storagetest is the contract every storage.ObjectStore must meet,
// as one suite that each backend's tests run against a real instance (a temp
// directory for fs, a MinIO server for s3), so that the agent can rely on the
// same behaviour whichever store a district uses.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/storage"
)

// RunContract runs the contract suite. newStore must return an empty store
// for each call; it is called once per subtest and should register its own
// cleanup.
func RunContract(t *testing.T, newStore func(t *testing.T) storage.ObjectStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.ObjectStore)
	}{
		{"RoundTrip", testRoundTrip},
		{"Stat", testStat},
		{"Overwrite", testOverwrite},
		{"ListPrefixOrder", testListPrefixOrder},
		{"ListEmpty", testListEmpty},
		{"ListStopsOnError", testListStopsOnError},
		{"Missing", testMissing},
		{"DeleteThenGet", testDeleteThenGet},
		{"DeleteMissing", testDeleteMissing},
		{"HoldBlocksDelete", testHoldBlocksDelete},
		{"HoldReleased", testHoldReleased},
		{"PutHeldKey", testPutHeldKey},
		{"InvalidKeys", testInvalidKeys},
		{"FailingReader", testFailingReader},
		{"ShortReader", testShortReader},
		{"ConcurrentPuts", testConcurrentPuts},
		{"ContextCanceled", testContextCanceled},
		{"ContextCanceledDuringPut", testContextCanceledDuringPut},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// Keys follow the segment layout, as the agent writes them.
const (
	keyA = "d1/cam1/2026/01/02/1767312000000-0123456789abcdef.mp4"
	keyB = "d1/cam1/2026/01/02/1767312060000-fedcba9876543210.mp4"
)

// Data returns n deterministic pseudo-random bytes.
func Data(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// MustPut stores data under key or fails the test.
func MustPut(t testing.TB, s storage.ObjectStore, key string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

// MustGet reads the object under key or fails the test.
func MustGet(t testing.TB, s storage.ObjectStore, key string) ([]byte, storage.ObjectInfo) {
	t.Helper()
	rc, info, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): read: %v", key, err)
	}
	return b, info
}

// MustList returns the keys listed under prefix.
func MustList(t testing.TB, s storage.ObjectStore, prefix string) []string {
	t.Helper()
	var keys []string
	err := s.List(t.Context(), prefix, func(info storage.ObjectInfo) error {
		keys = append(keys, info.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys
}

func assertGone(t *testing.T, s storage.ObjectStore, key string) {
	t.Helper()
	if _, err := s.Stat(t.Context(), key); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat(%q) = %v, want ErrNotFound", key, err)
	}
	if rc, _, err := s.Get(t.Context(), key); !errors.Is(err, storage.ErrNotFound) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("Get(%q) = %v, want ErrNotFound", key, err)
	}
	if keys := MustList(t, s, key); slices.Contains(keys, key) {
		t.Errorf("List(%q) = %q, want %q absent", key, keys, key)
	}
}

func testRoundTrip(t *testing.T, s storage.ObjectStore) {
	for i, n := range []int{0, 1, 1000, 3<<20 + 17} {
		key := fmt.Sprintf("d1/cam1/2026/01/02/%d-0123456789abcdef.mp4", i)
		want := Data(uint64(i), n)
		MustPut(t, s, key, want)
		got, info := MustGet(t, s, key)
		if !bytes.Equal(got, want) {
			t.Errorf("Get(%q): %d bytes differ from the %d put", key, len(got), len(want))
		}
		if info.Key != key || info.Size != int64(n) {
			t.Errorf("Get(%q) info = %+v, want key %q size %d", key, info, key, n)
		}
	}
}

func testStat(t *testing.T, s storage.ObjectStore) {
	before := time.Now()
	data := Data(1, 4321)
	MustPut(t, s, keyA, data)
	info, err := s.Stat(t.Context(), keyA)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if info.Key != keyA || info.Size != int64(len(data)) {
		t.Errorf("Stat = %+v, want key %q size %d", info, keyA, len(data))
	}
	// Loose bounds: S3 keeps second precision and the server has its own clock.
	if info.Modified.Before(before.Add(-time.Minute)) || info.Modified.After(time.Now().Add(time.Minute)) {
		t.Errorf("Stat modified = %v, want about %v", info.Modified, before)
	}
}

func testOverwrite(t *testing.T, s storage.ObjectStore) {
	MustPut(t, s, keyA, Data(1, 5000))
	want := Data(2, 3000)
	MustPut(t, s, keyA, want)
	got, info := MustGet(t, s, keyA)
	if !bytes.Equal(got, want) || info.Size != int64(len(want)) {
		t.Errorf("after overwrite: got %d bytes (size %d), want the %d bytes of the second put", len(got), info.Size, len(want))
	}
	if keys := MustList(t, s, ""); !slices.Equal(keys, []string{keyA}) {
		t.Errorf("List = %q, want [%q]", keys, keyA)
	}
}

func testListPrefixOrder(t *testing.T, s storage.ObjectStore) {
	// Put out of order, with names where a directory walk and byte order
	// disagree ("cam1-b" < "cam1/" since '-' < '/').
	keys := []string{
		"d2/cam1/2026/01/01/5-aaaaaaaaaaaaaaaa.mp4",
		"d1/cam1/2026/01/03/3-aaaaaaaaaaaaaaaa.mp4",
		"d1/cam1-b/2026/01/01/1-aaaaaaaaaaaaaaaa.mp4",
		"d1/cam1/2026/01/02/20-aaaaaaaaaaaaaaaa.mp4",
		"d1/cam1/2026/01/02/100-aaaaaaaaaaaaaaaa.mp4",
		"d1/cam1/2026/01/02/2-aaaaaaaaaaaaaaaa.mp4",
		"d1-x/cam1/2026/01/01/1-aaaaaaaaaaaaaaaa.mp4",
		"d1/cam1.mp4",
	}
	for i, k := range keys {
		MustPut(t, s, k, Data(uint64(i), 10+i))
	}
	sorted := slices.Sorted(slices.Values(keys))
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", sorted},
		{"d1", []string{
			"d1-x/cam1/2026/01/01/1-aaaaaaaaaaaaaaaa.mp4",
			"d1/cam1-b/2026/01/01/1-aaaaaaaaaaaaaaaa.mp4",
			"d1/cam1.mp4",
			"d1/cam1/2026/01/02/100-aaaaaaaaaaaaaaaa.mp4",
			"d1/cam1/2026/01/02/2-aaaaaaaaaaaaaaaa.mp4",
			"d1/cam1/2026/01/02/20-aaaaaaaaaaaaaaaa.mp4",
			"d1/cam1/2026/01/03/3-aaaaaaaaaaaaaaaa.mp4",
		}},
		{"d1/cam1/", []string{
			"d1/cam1/2026/01/02/100-aaaaaaaaaaaaaaaa.mp4",
			"d1/cam1/2026/01/02/2-aaaaaaaaaaaaaaaa.mp4",
			"d1/cam1/2026/01/02/20-aaaaaaaaaaaaaaaa.mp4",
			"d1/cam1/2026/01/03/3-aaaaaaaaaaaaaaaa.mp4",
		}},
		{"d1/cam1/2026/01/02/2", []string{
			"d1/cam1/2026/01/02/2-aaaaaaaaaaaaaaaa.mp4",
			"d1/cam1/2026/01/02/20-aaaaaaaaaaaaaaaa.mp4",
		}},
		{"d1/cam1/2026/01/03/3-aaaaaaaaaaaaaaaa.mp4", []string{"d1/cam1/2026/01/03/3-aaaaaaaaaaaaaaaa.mp4"}},
		{"d2/", []string{"d2/cam1/2026/01/01/5-aaaaaaaaaaaaaaaa.mp4"}},
		{"d3", nil},
		{"d1/cam1/2027/", nil},
	}
	for _, tc := range tests {
		if got := MustList(t, s, tc.prefix); !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) =\n%q\nwant\n%q", tc.prefix, got, tc.want)
		}
	}
	// Sizes are reported.
	err := s.List(t.Context(), "d2/", func(info storage.ObjectInfo) error {
		if info.Size != 10 {
			t.Errorf("List size of %q = %d, want 10", info.Key, info.Size)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testListEmpty(t *testing.T, s storage.ObjectStore) {
	for _, prefix := range []string{"", "d1/", "d1/cam1/2026/01/02/"} {
		if keys := MustList(t, s, prefix); len(keys) != 0 {
			t.Errorf("List(%q) on an empty store = %q", prefix, keys)
		}
	}
}

func testListStopsOnError(t *testing.T, s storage.ObjectStore) {
	MustPut(t, s, keyA, []byte("a"))
	MustPut(t, s, keyB, []byte("b"))
	stop := errors.New("stop here")
	calls := 0
	err := s.List(t.Context(), "", func(storage.ObjectInfo) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("List with failing fn = %v after %d calls, want %v after 1", err, calls, stop)
	}
}

func testMissing(t *testing.T, s storage.ObjectStore) {
	assertGone(t, s, keyA)
	// A key whose "directory" is an object, and a key that is a "directory".
	MustPut(t, s, keyA, []byte("x"))
	for _, key := range []string{keyA + "/x", "d1/cam1/2026"} {
		assertGone(t, s, key)
		if _, err := s.LegalHold(t.Context(), key); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("LegalHold(%q) = %v, want ErrNotFound", key, err)
		}
	}
	if err := s.SetLegalHold(t.Context(), keyB, true); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("SetLegalHold(missing) = %v, want ErrNotFound", err)
	}
	if err := s.Put(t.Context(), keyB, bytes.NewReader([]byte("y")), 1); err != nil {
		t.Errorf("Put after SetLegalHold of the missing key: %v", err)
	}
}

func testDeleteThenGet(t *testing.T, s storage.ObjectStore) {
	MustPut(t, s, keyA, Data(1, 100))
	MustPut(t, s, keyB, Data(2, 100))
	if err := s.Delete(t.Context(), keyA); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	assertGone(t, s, keyA)
	if got, _ := MustGet(t, s, keyB); !bytes.Equal(got, Data(2, 100)) {
		t.Error("Delete of one key changed another")
	}
	if err := s.Delete(t.Context(), keyA); err != nil {
		t.Errorf("second Delete: %v", err)
	}
}

func testDeleteMissing(t *testing.T, s storage.ObjectStore) {
	if err := s.Delete(t.Context(), keyA); err != nil {
		t.Errorf("Delete(missing) = %v, want nil", err)
	}
}

func testHoldBlocksDelete(t *testing.T, s storage.ObjectStore) {
	data := Data(3, 2000)
	MustPut(t, s, keyA, data)
	if held, err := s.LegalHold(t.Context(), keyA); err != nil || held {
		t.Fatalf("LegalHold before SetLegalHold = %v, %v; want false, nil", held, err)
	}
	if err := s.SetLegalHold(t.Context(), keyA, true); err != nil {
		t.Fatalf("SetLegalHold(on): %v", err)
	}
	if err := s.SetLegalHold(t.Context(), keyA, true); err != nil {
		t.Fatalf("SetLegalHold(on) twice: %v", err)
	}
	if held, err := s.LegalHold(t.Context(), keyA); err != nil || !held {
		t.Fatalf("LegalHold = %v, %v; want true, nil", held, err)
	}
	err := s.Delete(t.Context(), keyA)
	if !errors.Is(err, storage.ErrHeld) {
		t.Fatalf("Delete(held) = %v, want ErrHeld", err)
	}
	if got, _ := MustGet(t, s, keyA); !bytes.Equal(got, data) {
		t.Error("held object changed by the refused Delete")
	}
	if keys := MustList(t, s, ""); !slices.Equal(keys, []string{keyA}) {
		t.Errorf("List = %q, want [%q]", keys, keyA)
	}
	// Other objects are not affected by the hold.
	MustPut(t, s, keyB, []byte("b"))
	if err := s.Delete(t.Context(), keyB); err != nil {
		t.Errorf("Delete(unheld neighbour): %v", err)
	}
	releaseHold(t, s, keyA)
}

// releaseHold lets stores whose cleanup empties the store (an S3 bucket)
// remove the object.
func releaseHold(t *testing.T, s storage.ObjectStore, key string) {
	t.Helper()
	if err := s.SetLegalHold(context.WithoutCancel(t.Context()), key, false); err != nil {
		t.Errorf("SetLegalHold(off): %v", err)
	}
}

func testHoldReleased(t *testing.T, s storage.ObjectStore) {
	MustPut(t, s, keyA, Data(4, 100))
	if err := s.SetLegalHold(t.Context(), keyA, true); err != nil {
		t.Fatalf("SetLegalHold(on): %v", err)
	}
	if err := s.SetLegalHold(t.Context(), keyA, false); err != nil {
		t.Fatalf("SetLegalHold(off): %v", err)
	}
	if held, err := s.LegalHold(t.Context(), keyA); err != nil || held {
		t.Fatalf("LegalHold after release = %v, %v; want false, nil", held, err)
	}
	if err := s.Delete(t.Context(), keyA); err != nil {
		t.Fatalf("Delete after release: %v", err)
	}
	assertGone(t, s, keyA)
}

func testPutHeldKey(t *testing.T, s storage.ObjectStore) {
	data := Data(5, 1000)
	MustPut(t, s, keyA, data)
	if err := s.SetLegalHold(t.Context(), keyA, true); err != nil {
		t.Fatalf("SetLegalHold(on): %v", err)
	}
	err := s.Put(t.Context(), keyA, bytes.NewReader([]byte("replacement")), 11)
	if !errors.Is(err, storage.ErrHeld) {
		t.Errorf("Put(held key) = %v, want ErrHeld", err)
	}
	if got, _ := MustGet(t, s, keyA); !bytes.Equal(got, data) {
		t.Error("held object changed by the refused Put")
	}
	releaseHold(t, s, keyA)
	// Released, it can be overwritten again.
	MustPut(t, s, keyA, []byte("new"))
	if got, _ := MustGet(t, s, keyA); string(got) != "new" {
		t.Errorf("after release and Put: %q, want %q", got, "new")
	}
}

// InvalidKeys are refused by every store with ErrInvalidKey.
var InvalidKeys = []string{
	"",
	"/d1/cam1/x.mp4",
	"..",
	"../x",
	"d1/../x",
	"d1/..",
	".",
	"d1/./x",
	"d1//x",
	"d1/",
	`d1\x`,
	"d1/x\x00",
	"d1/x\ny",
	"d1/x\x7f",
	".legal-holds/x",
	"d1/.tmp-x",
	"d1/.hidden",
	"d1/\xff",
}

func testInvalidKeys(t *testing.T, s storage.ObjectStore) {
	ctx := t.Context()
	for _, key := range InvalidKeys {
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, storage.ErrInvalidKey) {
				t.Errorf("%s(%q) = %v, want ErrInvalidKey", op, key, err)
			}
		}
		check("Put", s.Put(ctx, key, bytes.NewReader([]byte("x")), 1))
		_, _, err := s.Get(ctx, key)
		check("Get", err)
		_, err = s.Stat(ctx, key)
		check("Stat", err)
		check("Delete", s.Delete(ctx, key))
		check("SetLegalHold", s.SetLegalHold(ctx, key, true))
		_, err = s.LegalHold(ctx, key)
		check("LegalHold", err)
	}
	if keys := MustList(t, s, ""); len(keys) != 0 {
		t.Errorf("invalid keys left objects: %q", keys)
	}
}

// failingReader returns n bytes, then err.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func testFailingReader(t *testing.T, s storage.ObjectStore) {
	broken := errors.New("camera went away")
	data := Data(6, 2<<20)
	err := s.Put(t.Context(), keyA, &failingReader{data: data[:1<<20], err: broken}, int64(len(data)))
	if err == nil {
		t.Fatal("Put with a failing reader succeeded")
	}
	assertGone(t, s, keyA)

	// A failed overwrite keeps the old object whole.
	old := Data(7, 5000)
	MustPut(t, s, keyB, old)
	err = s.Put(t.Context(), keyB, &failingReader{data: data[:1<<20], err: broken}, int64(len(data)))
	if err == nil {
		t.Fatal("overwriting Put with a failing reader succeeded")
	}
	if got, _ := MustGet(t, s, keyB); !bytes.Equal(got, old) {
		t.Error("failed overwrite changed the object")
	}
}

func testShortReader(t *testing.T, s storage.ObjectStore) {
	data := Data(8, 1000)
	err := s.Put(t.Context(), keyA, bytes.NewReader(data[:500]), int64(len(data)))
	if err == nil {
		t.Fatal("Put of a body shorter than its size succeeded")
	}
	assertGone(t, s, keyA)
}

func testConcurrentPuts(t *testing.T, s storage.ObjectStore) {
	const writers, perWriter = 8, 4
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				// Same and different directories, as cameras of one district.
				key := fmt.Sprintf("d1/cam%d/2026/01/02/%d-0123456789abcdef.mp4", w%3, w*perWriter+i)
				data := Data(uint64(w*perWriter+i), 64<<10+w)
				if err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data))); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	keys := MustList(t, s, "d1/")
	if len(keys) != writers*perWriter {
		t.Fatalf("List after concurrent puts: %d keys, want %d", len(keys), writers*perWriter)
	}
	for w := range writers {
		for i := range perWriter {
			key := fmt.Sprintf("d1/cam%d/2026/01/02/%d-0123456789abcdef.mp4", w%3, w*perWriter+i)
			if got, _ := MustGet(t, s, key); !bytes.Equal(got, Data(uint64(w*perWriter+i), 64<<10+w)) {
				t.Errorf("%s: content differs", key)
			}
		}
	}
}

func testContextCanceled(t *testing.T, s storage.ObjectStore) {
	MustPut(t, s, keyA, []byte("a"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context = %v, want context.Canceled", op, err)
		}
	}
	check("Put", s.Put(ctx, keyB, bytes.NewReader([]byte("b")), 1))
	_, _, err := s.Get(ctx, keyA)
	check("Get", err)
	_, err = s.Stat(ctx, keyA)
	check("Stat", err)
	check("List", s.List(ctx, "", func(storage.ObjectInfo) error { return nil }))
	check("Delete", s.Delete(ctx, keyA))
	check("SetLegalHold", s.SetLegalHold(ctx, keyA, true))
	_, err = s.LegalHold(ctx, keyA)
	check("LegalHold", err)

	assertGone(t, s, keyB)
	if held, err := s.LegalHold(t.Context(), keyA); err != nil || held {
		t.Errorf("LegalHold after canceled SetLegalHold = %v, %v; want false, nil", held, err)
	}
	MustGet(t, s, keyA) // not deleted
}

// cancelingReader cancels its context after the first read, then goes on
// supplying data: the store, not the reader, must notice.
type cancelingReader struct {
	r      io.Reader
	cancel context.CancelFunc
	reads  int
}

func (c *cancelingReader) Read(p []byte) (int, error) {
	c.reads++
	if c.reads == 2 {
		c.cancel()
	}
	return c.r.Read(p)
}

func testContextCanceledDuringPut(t *testing.T, s storage.ObjectStore) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	data := Data(9, 8<<20)
	r := &cancelingReader{r: bytes.NewReader(data), cancel: cancel}
	err := s.Put(ctx, keyA, r, int64(len(data)))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Put canceled midway = %v, want context.Canceled", err)
	}
	assertGone(t, s, keyA)
}
