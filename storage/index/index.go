// Package index is the district agent's bbolt index of recorded segments:
// what the object store holds, looked up by id, by camera and time, and by
// expiry time for the retention sweeper.
//
// The index is a cache of facts about the store, never the authority on what
// may be deleted. A missing or empty index file opens as an empty index; that
// must never be read as "these objects are unknown, delete them". Code that
// reconciles the store with the index rebuilds the index from the store when
// Created reports a fresh index, and only ever deletes what Expiring returns.
//
// Writes go through one writer goroutine that commits whatever has queued
// while the previous commit was syncing (group commit), so concurrent writers
// share bbolt's fsync pair instead of paying one each. Reads use short bbolt
// read transactions and never call user code while one is open.
package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Errors returned by the index. Callers test them with errors.Is; the
// returned errors wrap them with the operation and the segment id or path.
var (
	// ErrNotFound means no segment has the id.
	ErrNotFound = errors.New("segment not found")
	// ErrInvalidSegment means Put or Update was given a segment that cannot
	// be indexed (empty id, bad district or camera, end before start, ...).
	// Nothing was changed.
	ErrInvalidSegment = errors.New("invalid segment")
	// ErrInUse means another process (or another Open in this one) holds
	// the index file and the lock wait of Options.Timeout ran out.
	ErrInUse = errors.New("index in use by another process")
	// ErrCorrupt means the file is not a bbolt file, is damaged, or holds a
	// record that cannot be decoded. Open never modifies such a file.
	ErrCorrupt = errors.New("index file is corrupt or not an index")
	// ErrSchemaTooNew means the file was written by a newer vigil whose
	// schema this one does not know. The file is left untouched.
	ErrSchemaTooNew = errors.New("index schema is newer than this program")
	// ErrReadOnly means a write was attempted on an index opened ReadOnly.
	ErrReadOnly = errors.New("index is read-only")
	// ErrClosed means the index has been closed.
	ErrClosed = errors.New("index is closed")
)

// schemaVersion is written in the meta bucket. Bump it when the bucket layout
// or record format changes incompatibly, and teach Open to migrate.
const schemaVersion = 1

var (
	bucketMeta     = []byte("meta")
	bucketSegments = []byte("segments")    // id → record (codec.go)
	bucketCamera   = []byte("by_camera")   // "<district>/<camera>" 0x00 start-ms id → empty
	bucketExpiry   = []byte("by_expiry")   // expires-ms id → empty; unheld segments only
	bucketSpans    = []byte("camera_span") // "<district>/<camera>" → longest End-Start seen, ns

	keySchema = []byte("schema")
)

const (
	defaultTimeout         = time.Second
	defaultInitialMmapSize = 64 << 20
)

// Options configure Open. The zero value is usable.
type Options struct {
	// Timeout is how long Open waits for the file lock before failing with
	// ErrInUse. Zero means 1s; a negative value means do not wait at all
	// beyond a single attempt.
	Timeout time.Duration
	// ReadOnly opens the file with a shared lock, for inspection by the CLI
	// while the agent is stopped. A missing or empty file reads as an empty
	// index and is not created.
	ReadOnly bool
	// InitialMmapSize is the initial size of the memory map. Read
	// transactions block the remap that growing the file needs, so mapping
	// generously up front keeps writers from waiting on readers. Zero means
	// 64 MiB.
	InitialMmapSize int
	// NoSync skips fsync on commit: for tests and benchmarks whose subject
	// is not durability. Never set in production: a crash loses writes.
	NoSync bool
}

// Index is the segment index. Its methods are safe for concurrent use.
type Index struct {
	path     string
	db       *bolt.DB // nil for a ReadOnly open of a missing or empty file
	readOnly bool
	created  bool

	// mu guards closed. submit holds it shared while sending to ops so
	// that Close can close ops without racing a sender.
	mu      sync.RWMutex
	closed  bool
	ops     chan *writeOp
	stopped chan struct{}
	// reportsAdded wakes the outbox's sender (outbox.go).
	reportsAdded chan struct{}

	// Test and benchmark instrumentation.
	commits      atomic.Int64 // bbolt write transactions committed
	visited      atomic.Int64 // secondary-index keys visited by List and Expiring
	beforeCommit func()       // called inside each write transaction before commit
}

// Open opens the index file at path, creating it unless opts.ReadOnly.
//
// A missing or empty file is an empty index, and Created reports true. This
// is never a reason to delete anything: a process that finds a fresh index
// must rebuild it from the object store, not remove objects the index does
// not know (a recorder that did so lost every recording: Frigate #7838).
//
// A file another process holds fails after opts.Timeout with an error
// matching ErrInUse. A damaged or foreign file fails with ErrCorrupt and a
// file written by a newer schema with ErrSchemaTooNew; neither is modified.
func Open(path string, opts Options) (*Index, error) {
	if opts.Timeout == 0 {
		opts.Timeout = defaultTimeout
	}
	if opts.Timeout < 0 {
		// bbolt treats 0 as "wait forever"; the shortest finite wait is
		// one attempt plus its 50ms retry.
		opts.Timeout = time.Nanosecond
	}
	if opts.InitialMmapSize <= 0 {
		opts.InitialMmapSize = defaultInitialMmapSize
	}

	ix := &Index{path: path, readOnly: opts.ReadOnly, reportsAdded: make(chan struct{}, 1)}
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist) || (err == nil && info.Size() == 0):
		ix.created = true
		if opts.ReadOnly {
			// bbolt would try to initialise the file, which a read-only
			// open must not do; an empty index is the honest answer.
			return ix, nil
		}
	case err != nil:
		return nil, fmt.Errorf("index: open %s: %w", path, err)
	case info.IsDir():
		return nil, fmt.Errorf("index: open %s: is a directory", path)
	}

	db, err := openBolt(path, &bolt.Options{
		Timeout:         opts.Timeout,
		ReadOnly:        opts.ReadOnly,
		InitialMmapSize: opts.InitialMmapSize,
	})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, &inUseError{path: path}
		case errors.Is(err, ErrCorrupt):
			return nil, fmt.Errorf("index: open %s: %w", path, err)
		case errors.As(err, new(*fs.PathError)), errors.As(err, new(syscall.Errno)):
			// Permissions, a missing directory, a full disk: not the
			// file's content.
			return nil, fmt.Errorf("index: open %s: %w", path, err)
		}
		// What is left are bbolt's complaints about the content: not a
		// bbolt file, bad checksums, another format version, too short.
		return nil, fmt.Errorf("index: open %s: %w: %w", path, ErrCorrupt, err)
	}
	ix.db = db
	db.NoSync = opts.NoSync
	if err := ix.checkSchema(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("index: open %s: %w", path, err)
	}
	if ix.readOnly {
		return ix, nil
	}
	ix.ops = make(chan *writeOp, maxBatch)
	ix.stopped = make(chan struct{})
	go ix.run()
	return ix, nil
}

// openBolt is bolt.Open made safe for damaged files. bbolt reads the
// freelist through its memory map while opening, so a file truncated below
// its own high-water mark faults (SIGBUS), and damaged pages make it panic.
// Both would kill the agent with no word about the file; here they become
// ErrCorrupt. The file handle is closed so that the lock is released, but
// the mapping bbolt made cannot be undone and stays until the process ends.
func openBolt(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	var file *os.File
	opts.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		file = f
		return f, err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				_ = file.Close()
			}
			db, err = nil, fmt.Errorf("%w: reading it crashed bbolt (truncated or damaged pages): %v", ErrCorrupt, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, opts)
	if err != nil {
		return nil, err
	}
	// Reads would fault later on the same damage: check now that the file
	// holds every page the meta page says it has.
	info, err := file.Stat()
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	var want int64
	_ = db.View(func(tx *bolt.Tx) error { want = tx.Size(); return nil })
	if info.Size() < want {
		_ = db.Close()
		return nil, fmt.Errorf("%w: file is %d bytes, its pages need %d (truncated?)", ErrCorrupt, info.Size(), want)
	}
	return db, nil
}

// inUseError carries the operator-facing message while matching ErrInUse.
type inUseError struct{ path string }

func (e *inUseError) Error() string {
	return fmt.Sprintf("index %s is in use by another process (is the agent running?)", e.path)
}

func (e *inUseError) Unwrap() error { return ErrInUse }

// checkSchema reads the schema version and, for a writable index with no
// schema yet, creates the buckets. It writes nothing to a file it refuses.
// (bbolt itself writes on a writable open only to save a freelist that a
// NoFreelistSync writer left unsaved; vigil never sets that option.)
func (ix *Index) checkSchema() error {
	var version uint32
	var fresh bool
	err := ix.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			// An empty bbolt file is a fresh index; one with other
			// buckets belongs to something else.
			if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				return fmt.Errorf("%w: unexpected bucket %q and no schema", ErrCorrupt, name)
			}); err != nil {
				return err
			}
			fresh = true
			return nil
		}
		v := meta.Get(keySchema)
		if len(v) != 4 {
			return fmt.Errorf("%w: schema version is %d bytes", ErrCorrupt, len(v))
		}
		version = binary.BigEndian.Uint32(v)
		return nil
	})
	if err != nil {
		return err
	}
	if version > schemaVersion {
		return fmt.Errorf("%w: file has schema %d, this program knows up to %d; upgrade vigil", ErrSchemaTooNew, version, schemaVersion)
	}
	if fresh {
		ix.created = true
	}
	if ix.readOnly {
		if !fresh {
			// A read-only open cannot create buckets, so they must exist.
			return ix.db.View(func(tx *bolt.Tx) error {
				for _, name := range [][]byte{bucketSegments, bucketCamera, bucketExpiry, bucketSpans} {
					if tx.Bucket(name) == nil {
						return fmt.Errorf("%w: bucket %q missing", ErrCorrupt, name)
					}
				}
				return nil
			})
		}
		return nil
	}
	if !fresh {
		return ix.initUsage()
	}
	return ix.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketSegments, bucketCamera, bucketExpiry, bucketSpans} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		return meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, schemaVersion))
	})
}

// Created reports whether Open found no index (a missing or empty file, or a
// bbolt file without a schema) and started an empty one. A caller that
// reconciles with the object store must then rebuild the index from the
// store; an empty index never means the store's objects are unknown.
func (ix *Index) Created() bool { return ix.created }

// Path is the file the index was opened from.
func (ix *Index) Path() string { return ix.path }

// Close waits for queued writes to commit, then closes the file. Writes after
// Close fail with ErrClosed. Closing twice is harmless.
func (ix *Index) Close() error {
	ix.mu.Lock()
	wasOpen := !ix.closed
	ix.closed = true
	if wasOpen && ix.ops != nil {
		close(ix.ops)
	}
	ix.mu.Unlock()
	if !wasOpen {
		return nil
	}
	if ix.stopped != nil {
		<-ix.stopped
	}
	if ix.db == nil {
		return nil
	}
	if err := ix.db.Close(); err != nil {
		return fmt.Errorf("index: close %s: %w", ix.path, err)
	}
	return nil
}
