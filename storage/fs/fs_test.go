package fs_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/fs"
	"github.com/vigil-cctv/vigil/storage/storagetest"
)

func mustOpen(t testing.TB, root string) *fs.Store {
	t.Helper()
	s, err := fs.Open(root)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	storagetest.RunContract(t, func(t *testing.T) storage.ObjectStore {
		return mustOpen(t, t.TempDir())
	})
}

const key = "d1/cam1/2026/01/02/1767312000000-0123456789abcdef.mp4"

// The path of an object is a user contract: <root>/<key>, nothing else.
func TestLayout(t *testing.T) {
	root := t.TempDir()
	s := mustOpen(t, root)
	data := storagetest.Data(1, 1234)
	storagetest.MustPut(t, s, key, data)

	got, err := os.ReadFile(filepath.Join(root, "d1", "cam1", "2026", "01", "02", "1767312000000-0123456789abcdef.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Error("file content differs from the object")
	}
	if p, err := s.Path(key); err != nil || p != filepath.Join(root, filepath.FromSlash(key)) {
		t.Errorf("Path = %q, %v", p, err)
	}
	// Nothing else is left in the tree: no temporary file, no marker.
	var files []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if !slices.Equal(files, []string{key}) {
		t.Errorf("files under root = %q, want only %q", files, key)
	}
}

// A file put there by hand (restored from backup) is an object.
func TestFilePlacedByHand(t *testing.T) {
	root := t.TempDir()
	s := mustOpen(t, root)
	p := filepath.Join(root, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("restored"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, _ := storagetest.MustGet(t, s, key)
	if string(got) != "restored" {
		t.Errorf("Get = %q", got)
	}
}

func TestOpenRemovesStaleTemps(t *testing.T) {
	root := t.TempDir()
	s := mustOpen(t, root)
	storagetest.MustPut(t, s, key, []byte("kept"))
	dir := filepath.Dir(filepath.Join(root, filepath.FromSlash(key)))
	stale := []string{
		filepath.Join(dir, ".tmp-123456"),
		filepath.Join(root, ".tmp-9"),
	}
	for _, p := range stale {
		if err := os.WriteFile(p, []byte("half a segment"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// List skips them even before a reopen.
	if keys := storagetest.MustList(t, s, ""); !slices.Equal(keys, []string{key}) {
		t.Errorf("List = %q, want [%q]", keys, key)
	}

	s2 := mustOpen(t, root)
	for _, p := range stale {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived Open: %v", p, err)
		}
	}
	got, _ := storagetest.MustGet(t, s2, key)
	if string(got) != "kept" {
		t.Errorf("object changed by Open: %q", got)
	}
}

func TestDeletePrunesEmptyDirectories(t *testing.T) {
	root := t.TempDir()
	s := mustOpen(t, root)
	other := "d1/cam1/2026/01/03/1767398400000-0123456789abcdef.mp4"
	storagetest.MustPut(t, s, key, []byte("a"))
	storagetest.MustPut(t, s, other, []byte("b"))

	if err := s.Delete(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "d1/cam1/2026/01/02")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty day directory kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "d1/cam1/2026/01")); err != nil {
		t.Errorf("month directory with another day removed: %v", err)
	}

	if err := s.Delete(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatalf("root removed: %v", err)
	}
	if len(entries) != 0 {
		t.Errorf("root not emptied: %v", entries)
	}
	// The store goes on working in the emptied root.
	storagetest.MustPut(t, s, key, []byte("again"))
}

// A failed Put leaves neither a temporary file nor the directories it made.
func TestFailedPutLeavesNothing(t *testing.T) {
	root := t.TempDir()
	s := mustOpen(t, root)
	err := s.Put(t.Context(), key, strings.NewReader("short"), 100)
	if err == nil {
		t.Fatal("short Put succeeded")
	}
	entries, err := os.ReadDir(root)
	if err != nil || len(entries) != 0 {
		t.Errorf("root after a failed Put = %v, %v; want empty", entries, err)
	}
}

func TestHoldMarkerPersists(t *testing.T) {
	root := t.TempDir()
	s := mustOpen(t, root)
	storagetest.MustPut(t, s, key, []byte("evidence"))
	if err := s.SetLegalHold(t.Context(), key, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, ".legal-holds", filepath.FromSlash(key))); err != nil {
		t.Errorf("hold marker: %v", err)
	}
	// Listing does not show the marker tree.
	if keys := storagetest.MustList(t, s, ""); !slices.Equal(keys, []string{key}) {
		t.Errorf("List = %q", keys)
	}

	s2 := mustOpen(t, root)
	if held, err := s2.LegalHold(t.Context(), key); err != nil || !held {
		t.Errorf("after reopen LegalHold = %v, %v", held, err)
	}
	if err := s2.Delete(t.Context(), key); !errors.Is(err, storage.ErrHeld) {
		t.Errorf("Delete after reopen = %v, want ErrHeld", err)
	}
	if err := s2.SetLegalHold(t.Context(), key, false); err != nil {
		t.Fatal(err)
	}
	// Released: the marker tree is pruned back to its root.
	entries, err := os.ReadDir(filepath.Join(root, ".legal-holds"))
	if err != nil || len(entries) != 0 {
		t.Errorf(".legal-holds after release = %v, %v; want empty", entries, err)
	}
	if err := s2.Delete(t.Context(), key); err != nil {
		t.Errorf("Delete after release: %v", err)
	}
}

// A marker whose object vanished (removed by hand) still refuses a Put, and
// releasing it clears it.
func TestStaleMarker(t *testing.T) {
	root := t.TempDir()
	s := mustOpen(t, root)
	storagetest.MustPut(t, s, key, []byte("x"))
	if err := s.SetLegalHold(t.Context(), key, true); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, filepath.FromSlash(key))); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), key, strings.NewReader("y"), 1); !errors.Is(err, storage.ErrHeld) {
		t.Errorf("Put over a stale marker = %v, want ErrHeld", err)
	}
	if err := s.SetLegalHold(t.Context(), key, false); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("release of a missing object = %v, want ErrNotFound", err)
	}
	storagetest.MustPut(t, s, key, []byte("y"))
}

func TestOpenRefusesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Open(p); err == nil {
		t.Error("Open of a regular file succeeded")
	}
	if _, err := fs.Open(""); err == nil {
		t.Error("Open of an empty path succeeded")
	}
}

func TestListSkipsForeignFiles(t *testing.T) {
	root := t.TempDir()
	s := mustOpen(t, root)
	storagetest.MustPut(t, s, key, []byte("x"))
	dir := filepath.Dir(filepath.Join(root, filepath.FromSlash(key)))
	os.WriteFile(filepath.Join(dir, ".DS_Store"), nil, 0o600)
	os.Symlink(filepath.Join(dir, filepath.Base(key)), filepath.Join(dir, "link.mp4"))
	os.Mkdir(filepath.Join(dir, "empty"), 0o700)
	if keys := storagetest.MustList(t, s, ""); !slices.Equal(keys, []string{key}) {
		t.Errorf("List = %q, want [%q]", keys, key)
	}
	if _, err := s.Stat(t.Context(), "d1/cam1/2026/01/02/link.mp4"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat(symlink) = %v, want ErrNotFound", err)
	}
}

func TestUsage(t *testing.T) {
	s := mustOpen(t, t.TempDir())
	used, capacity, free, err := s.Usage(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if capacity <= 0 || used < 0 || free < 0 || used > capacity || free > capacity {
		t.Errorf("Usage = used %d, capacity %d, free %d", used, capacity, free)
	}
}

func TestValidateKey(t *testing.T) {
	for _, k := range storagetest.InvalidKeys {
		if err := fs.ValidateKey(k); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
	for _, k := range []string{key, "a", "a/b", "a..b/c", "é/ü.mp4", "a b/c-d_e.f"} {
		if err := fs.ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%q) = %v", k, err)
		}
	}
	if err := fs.ValidateKey(strings.Repeat("a", 256)); err == nil {
		t.Error("256-byte element accepted")
	}
	if err := fs.ValidateKey(strings.Repeat("a/", 512) + "a"); err == nil {
		t.Error("1025-byte key accepted")
	}
}

// A valid key never leaves the root, whatever it contains.
func FuzzValidateKey(f *testing.F) {
	for _, k := range append(storagetest.InvalidKeys, key, "a/b") {
		f.Add(k)
	}
	root := filepath.FromSlash("/store/root")
	f.Fuzz(func(t *testing.T, k string) {
		if fs.ValidateKey(k) != nil {
			return
		}
		p := filepath.Join(root, filepath.FromSlash(k))
		if !strings.HasPrefix(p, root+string(filepath.Separator)) {
			t.Errorf("valid key %q leaves the root: %s", k, p)
		}
		if filepath.ToSlash(filepath.Clean(filepath.FromSlash(k))) != k {
			t.Errorf("valid key %q is not clean", k)
		}
		for _, elem := range strings.Split(k, "/") {
			if strings.HasPrefix(elem, ".") {
				t.Errorf("valid key %q has a dot element", k)
			}
		}
	})
}

func BenchmarkPut(b *testing.B) {
	s := mustOpen(b, b.TempDir())
	data := storagetest.Data(1, 4<<20)
	b.SetBytes(int64(len(data)))
	i := 0
	for b.Loop() {
		k := fmt.Sprintf("d1/cam1/2026/01/02/%d-0123456789abcdef.mp4", i)
		i++
		if err := s.Put(b.Context(), k, bytes.NewReader(data), int64(len(data))); err != nil {
			b.Fatal(err)
		}
	}
}

// Deletes and hold releases prune directories that concurrent Puts and
// holds are creating files in: every operation must still succeed.
func TestPutDeleteRace(t *testing.T) {
	s := mustOpen(t, t.TempDir())
	const workers, rounds = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*2)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				k := fmt.Sprintf("d1/cam1/2026/01/02/%d-%d.mp4", w, i)
				if err := s.Put(t.Context(), k, strings.NewReader("x"), 1); err != nil {
					errs <- err
					continue
				}
				if i%2 == 0 {
					// Hold markers are pruned like the footage tree.
					if err := s.SetLegalHold(t.Context(), k, true); err != nil {
						errs <- err
					}
					if err := s.Delete(t.Context(), k); !errors.Is(err, storage.ErrHeld) {
						errs <- fmt.Errorf("Delete(held) = %v", err)
					}
					if err := s.SetLegalHold(t.Context(), k, false); err != nil {
						errs <- err
					}
				}
				if err := s.Delete(t.Context(), k); err != nil {
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
	if keys := storagetest.MustList(t, s, ""); len(keys) != 0 {
		t.Errorf("left: %q", keys)
	}
}
