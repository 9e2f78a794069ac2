// Package fs is the embedded object store: every object is a plain file, the
// object with key K at <root>/K exactly (a user contract: footage can be read,
// backed up or copied with ordinary tools).
//
// Writes are atomic and durable: Put writes a temporary file beside the target
// (named ".tmp-…", which List skips and Open removes after a crash), fsyncs it,
// renames it over the key and fsyncs the directory. Legal holds are marker
// files under <root>/.legal-holds/K; the store refuses to delete or overwrite a
// held object, as an S3 bucket with Object Lock does, so that callers see the
// same behaviour from both stores.
//
// A Store is safe for concurrent use by one process. Two processes must not
// share a root: the hold check and the write it guards are serialised only
// inside a process.
package fs

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/vigil-cctv/vigil/storage"
)

const (
	// tmpPrefix starts the name of every file being written. Keys cannot
	// have dot-led elements, so no object is ever mistaken for one.
	tmpPrefix = ".tmp-"
	// holdDir holds one empty marker file per held object, at the key's path.
	holdDir = ".legal-holds"
	// Footage is personal data: owner-only permissions.
	dirPerm = 0o700
	// mkdirRetries bounds retries when a concurrent Delete prunes a
	// directory between its creation and the creation of a file in it.
	mkdirRetries = 8
	lockStripes  = 64
)

var _ storage.ObjectStore = (*Store)(nil)

// removeFile is os.Remove, replaced in tests to prove that a failed
// deletion is reported.
var removeFile = os.Remove

// Store is an ObjectStore on a local directory tree.
type Store struct {
	root string
	// locks serialise, per key, the hold check with the change it guards
	// (rename in Put, unlink in Delete, marker change in SetLegalHold).
	// Striped so that memory stays fixed whatever the number of keys.
	locks [lockStripes]sync.Mutex
}

// Open opens the store rooted at root, creating the directory if needed, and
// removes temporary files left by a crash during Put.
func Open(root string) (*Store, error) {
	if root == "" {
		return nil, errors.New("fs: open: empty root path")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("fs: open %s: %w", root, err)
	}
	if err := os.MkdirAll(abs, dirPerm); err != nil {
		return nil, fmt.Errorf("fs: open: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("fs: open: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("fs: open %s: not a directory", abs)
	}
	s := &Store{root: abs}
	if err := s.removeTemps(); err != nil {
		return nil, fmt.Errorf("fs: open %s: remove stale temporary files: %w", abs, err)
	}
	return s, nil
}

// Root is the absolute path of the store's directory.
func (s *Store) Root() string { return s.root }

// Path is the file that holds (or would hold) the object with the key.
func (s *Store) Path(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", fmt.Errorf("fs: %w", err)
	}
	return s.path(key), nil
}

func (s *Store) path(key string) string {
	return filepath.Join(s.root, filepath.FromSlash(key))
}

func (s *Store) holdPath(key string) string {
	return filepath.Join(s.root, holdDir, filepath.FromSlash(key))
}

func (s *Store) lock(key string) func() {
	h := fnv.New32a()
	h.Write([]byte(key))
	mu := &s.locks[h.Sum32()%lockStripes]
	mu.Lock()
	return mu.Unlock
}

// removeTemps deletes every temporary file under the root: each is the
// remainder of a Put that never reached its rename.
func (s *Store) removeTemps() error {
	var errs []error
	err := filepath.WalkDir(s.root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && strings.HasPrefix(d.Name(), tmpPrefix) {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		return nil
	})
	return errors.Join(append(errs, err)...)
}

// Put writes the object atomically: a reader sees the old object or the new
// one, and a crash leaves the old object or the new one, never a part.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("fs: put: %w", err)
	}
	if err := s.put(ctx, key, r, size); err != nil {
		return fmt.Errorf("fs: put %s: %w", key, err)
	}
	return nil
}

func (s *Store) put(ctx context.Context, key string, r io.Reader, size int64) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Checked again under the lock; this early check only saves writing a
	// whole segment that would be refused.
	if held, err := s.held(key); err != nil {
		return err
	} else if held {
		return storage.ErrHeld
	}

	target := s.path(key)
	dir := filepath.Dir(target)
	f, created, err := s.createTemp(dir)
	if err != nil {
		return err
	}
	tmp := f.Name()
	renamed := false
	defer func() {
		if renamed {
			return
		}
		// The file may already be closed; only the removal matters.
		f.Close()
		if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("remove temporary file: %w", rerr))
		} else if perr := s.prune(dir, s.root); perr != nil {
			// Directories this Put created are empty again.
			err = errors.Join(err, fmt.Errorf("remove empty directory: %w", perr))
		}
	}()

	var n int64
	if size >= 0 {
		n, err = io.CopyN(f, ctxReader{ctx, r}, size)
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("short body: got %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
		}
	} else {
		_, err = io.Copy(f, ctxReader{ctx, r})
	}
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}

	unlock := s.lock(key)
	defer unlock()
	// The rename is the commit point: a caller that gave up by now must
	// not find the object stored.
	if err := ctx.Err(); err != nil {
		return err
	}
	if held, err := s.held(key); err != nil {
		return err
	} else if held {
		return storage.ErrHeld
	}
	if err := os.Rename(tmp, target); err != nil {
		return err
	}
	renamed = true
	if err := syncDir(dir); err != nil {
		return err
	}
	// New directories are durable only once their parents are synced.
	for _, d := range created {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// createTemp creates an empty temporary file in dir, creating dir and its
// missing parents. It returns the parents whose entries changed and so need
// an fsync. A concurrent Delete may prune a directory between its creation
// and the file's: that is retried.
func (s *Store) createTemp(dir string) (*os.File, []string, error) {
	var created []string
	for range mkdirRetries {
		c, err := mkdirs(s.root, dir)
		created = append(created, c...)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, nil, err
		}
		if err == nil {
			f, err := os.CreateTemp(dir, tmpPrefix+"*")
			if err == nil {
				slices.Sort(created)
				return f, slices.Compact(created), nil
			}
			if !errors.Is(err, os.ErrNotExist) {
				return nil, nil, err
			}
		}
	}
	return nil, nil, fmt.Errorf("create %s: directory keeps disappearing", dir)
}

// mkdirs creates dir and its missing parents below root, returning the
// parent of every directory it created.
func mkdirs(root, dir string) ([]string, error) {
	rel, err := filepath.Rel(root, dir)
	if err != nil {
		return nil, err
	}
	if rel == "." {
		return nil, nil
	}
	var created []string
	p := root
	for elem := range strings.SplitSeq(rel, string(filepath.Separator)) {
		parent := p
		p = filepath.Join(p, elem)
		err := os.Mkdir(p, dirPerm)
		switch {
		case err == nil:
			created = append(created, parent)
		case errors.Is(err, os.ErrExist):
			// A file in the way is caught by the next Mkdir or create.
		default:
			return created, err
		}
	}
	return created, nil
}

// ctxReader stops a copy when the context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Get opens the object. The returned reader is an *os.File.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return nil, storage.ObjectInfo{}, fmt.Errorf("fs: get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, storage.ObjectInfo{}, fmt.Errorf("fs: get %s: %w", key, err)
	}
	// Lstat first: symbolic links and directories are not objects.
	if _, err := s.stat(key); err != nil {
		return nil, storage.ObjectInfo{}, fmt.Errorf("fs: get %s: %w", key, err)
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		return nil, storage.ObjectInfo{}, fmt.Errorf("fs: get %s: %w", key, notFound(err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, storage.ObjectInfo{}, fmt.Errorf("fs: get %s: %w", key, err)
	}
	return f, storage.ObjectInfo{Key: key, Size: fi.Size(), Modified: fi.ModTime()}, nil
}

// Stat returns the object's size and modification time.
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("fs: stat: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("fs: stat %s: %w", key, err)
	}
	fi, err := s.stat(key)
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("fs: stat %s: %w", key, err)
	}
	return storage.ObjectInfo{Key: key, Size: fi.Size(), Modified: fi.ModTime()}, nil
}

// stat is Lstat of the object's file, with ErrNotFound for anything that is
// not a regular file.
func (s *Store) stat(key string) (os.FileInfo, error) {
	fi, err := os.Lstat(s.path(key))
	if err != nil {
		return nil, notFound(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, storage.ErrNotFound
	}
	return fi, nil
}

// notFound maps "no such file" (including a file where a directory of the
// key was expected) to storage.ErrNotFound, keeping other errors.
func notFound(err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return storage.ErrNotFound
	}
	return err
}

// Delete removes the object's file, fsyncs its directory and removes the
// directories the removal left empty. A held object is refused with ErrHeld.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("fs: delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fs: delete %s: %w", key, err)
	}
	removed, err := s.remove(key)
	if err != nil {
		return fmt.Errorf("fs: delete %s: %w", key, err)
	}
	if removed {
		if err := s.prune(filepath.Dir(s.path(key)), s.root); err != nil {
			return fmt.Errorf("fs: delete %s: remove empty directory: %w", key, err)
		}
	}
	return nil
}

func (s *Store) remove(key string) (bool, error) {
	unlock := s.lock(key)
	defer unlock()
	if held, err := s.held(key); err != nil {
		return false, err
	} else if held {
		return false, storage.ErrHeld
	}
	if _, err := s.stat(key); errors.Is(err, storage.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	p := s.path(key)
	if err := removeFile(p); err != nil {
		if errors.Is(notFound(err), storage.ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	// The removal is the legal duty: it must survive a power cut.
	if err := s.syncNearest(filepath.Dir(p)); err != nil {
		return true, err
	}
	return true, nil
}

// prune removes dir and its ancestors while they are empty, stopping below
// stop. The removals are not fsynced: an empty directory brought back by a
// crash holds nothing.
func (s *Store) prune(dir, stop string) error {
	for d := dir; d != stop && strings.HasPrefix(d, stop+string(filepath.Separator)); d = filepath.Dir(d) {
		err := os.Remove(d)
		switch {
		case err == nil:
		case errors.Is(err, syscall.ENOTEMPTY), errors.Is(err, syscall.EEXIST):
			return nil
		case errors.Is(err, os.ErrNotExist):
			// Pruned concurrently; its parent may still be empty.
		default:
			return err
		}
	}
	return nil
}

// List walks the objects whose key starts with prefix in lexical key order
// (byte order, as S3), skipping temporary files, hold markers, directories
// and anything that is not a regular file.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fs: list %q: %w", prefix, err)
	}
	// Start at the deepest directory the prefix names, so that listing one
	// camera's day does not read the whole tree. A prefix that is not a
	// valid key path cannot match any object.
	rel := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		rel = prefix[:i+1]
		if validateKey(prefix[:i]) != nil {
			return nil
		}
	}
	err := s.walk(ctx, filepath.Join(s.root, filepath.FromSlash(rel)), rel, prefix, fn)
	if stop := (stopError{}); errors.As(err, &stop) {
		return stop.err
	}
	if err != nil {
		return fmt.Errorf("fs: list %q: %w", prefix, err)
	}
	return nil
}

// stopError carries the error of List's fn, which List returns as is.
type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }

func (s *Store) walk(ctx context.Context, dir, rel, prefix string, fn func(storage.ObjectInfo) error) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(notFound(err), storage.ErrNotFound) {
			// No such directory (or pruned during the walk): no objects.
			return nil
		}
		return err
	}
	type entry struct {
		e     os.DirEntry
		order string
	}
	list := make([]entry, 0, len(entries))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue // temporary files, hold markers, foreign dot files
		}
		order := e.Name()
		if e.IsDir() {
			// Every key below a directory starts with name+"/": sorting
			// by that yields lexical order of whole keys ("a-b" < "a/c").
			order += "/"
		}
		list = append(list, entry{e, order})
	}
	slices.SortFunc(list, func(a, b entry) int { return strings.Compare(a.order, b.order) })

	for _, it := range list {
		if err := ctx.Err(); err != nil {
			return err
		}
		key := rel + it.order
		switch {
		case it.e.IsDir():
			if strings.HasPrefix(key, prefix) || strings.HasPrefix(prefix, key) {
				if err := s.walk(ctx, filepath.Join(dir, it.e.Name()), key, prefix, fn); err != nil {
					return err
				}
			}
		case it.e.Type().IsRegular():
			if !strings.HasPrefix(key, prefix) || validateKey(key) != nil {
				continue
			}
			fi, err := it.e.Info()
			if errors.Is(err, os.ErrNotExist) {
				continue // deleted during the walk
			} else if err != nil {
				return err
			}
			if err := fn(storage.ObjectInfo{Key: key, Size: fi.Size(), Modified: fi.ModTime()}); err != nil {
				return stopError{err}
			}
		}
	}
	return nil
}

// SetLegalHold places or removes the hold marker of an existing object.
// Removing the hold of a missing object clears a stale marker and reports
// ErrNotFound.
func (s *Store) SetLegalHold(ctx context.Context, key string, on bool) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("fs: set legal hold: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fs: set legal hold %s: %w", key, err)
	}
	if err := s.setHold(key, on); err != nil {
		return fmt.Errorf("fs: set legal hold %s: %w", key, err)
	}
	return nil
}

func (s *Store) setHold(key string, on bool) error {
	unlock := s.lock(key)
	defer unlock()
	_, statErr := s.stat(key)
	if statErr != nil && !errors.Is(statErr, storage.ErrNotFound) {
		return statErr
	}
	marker := s.holdPath(key)
	dir := filepath.Dir(marker)
	if !on {
		if err := os.Remove(marker); err != nil {
			if !errors.Is(notFound(err), storage.ErrNotFound) {
				return err
			}
		} else {
			// Released holds need no durability as much as placed
			// ones, but a hold coming back after a crash would block
			// retention: sync.
			if err := s.syncNearest(dir); err != nil {
				return err
			}
			if err := s.prune(dir, filepath.Join(s.root, holdDir)); err != nil {
				return err
			}
		}
		return statErr
	}
	if statErr != nil {
		return statErr
	}
	var created []string
	for i := 0; ; i++ {
		c, err := mkdirs(s.root, dir)
		created = append(created, c...)
		if err == nil {
			f, err := os.OpenFile(marker, os.O_CREATE|os.O_WRONLY, 0o600)
			if err == nil {
				if err := f.Close(); err != nil {
					return err
				}
				break
			}
			if !errors.Is(err, os.ErrNotExist) {
				return err
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if i == mkdirRetries {
			return fmt.Errorf("create %s: directory keeps disappearing", dir)
		}
	}
	// The hold must survive a power cut: sync the marker's directory and
	// every directory that gained an entry.
	slices.Sort(created)
	for _, d := range append(slices.Compact(created), dir) {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// LegalHold reports whether the object is held; ErrNotFound if it does not
// exist.
func (s *Store) LegalHold(ctx context.Context, key string) (bool, error) {
	if err := ValidateKey(key); err != nil {
		return false, fmt.Errorf("fs: legal hold: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("fs: legal hold %s: %w", key, err)
	}
	if _, err := s.stat(key); err != nil {
		return false, fmt.Errorf("fs: legal hold %s: %w", key, err)
	}
	held, err := s.held(key)
	if err != nil {
		return false, fmt.Errorf("fs: legal hold %s: %w", key, err)
	}
	return held, nil
}

// held reports whether a hold marker exists for the key. A marker counts
// even without its object: a hold is never assumed away.
func (s *Store) held(key string) (bool, error) {
	_, err := os.Lstat(s.holdPath(key))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(notFound(err), storage.ErrNotFound):
		return false, nil
	default:
		return false, err
	}
}

// Close does nothing: the store holds no resources between calls.
func (s *Store) Close() error { return nil }

// syncNearest fsyncs dir or, if a concurrent Delete pruned it after our
// unlink, its nearest surviving ancestor: that ancestor's fsync makes the
// prune durable, and a journalling filesystem commits our earlier unlink
// no later than the prune.
func (s *Store) syncNearest(dir string) error {
	for {
		err := syncDir(dir)
		if err == nil || !errors.Is(err, os.ErrNotExist) || dir == s.root {
			return err
		}
		dir = filepath.Dir(dir)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
