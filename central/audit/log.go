package audit

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Buckets of the audit file. The file is the log's alone, so the names need
// no prefix.
var (
	// bucketMeta holds metaFormat, which marks the file as an audit log.
	bucketMeta = []byte("meta")
	// bucketRecords maps a record's Seq (8 bytes big-endian) to its
	// canonical encoding.
	bucketRecords = []byte("records")
	// bucketHashes maps a tlog stored hash index (8 bytes big-endian) to
	// the 32-byte hash: the leaf hashes and the completed subtree hashes,
	// as tlog.StoredHashes lays them out.
	bucketHashes = []byte("hashes")
	// bucketTimes indexes records by time for Query: key sortable time (8
	// bytes) then Seq (8 bytes), empty value.
	bucketTimes = []byte("times")
	// bucketCheckpoints maps a tree size (8 bytes big-endian) to the signed
	// checkpoint note of the tree of that size.
	bucketCheckpoints = []byte("checkpoints")

	metaFormat      = []byte("format")
	metaFormatValue = []byte("vigil audit log 1")
)

// Defaults of Options.
const (
	DefaultCheckpointEvery   = 10 * time.Second
	DefaultCheckpointRecords = 1000
	DefaultMaxBatch          = 8192
)

// Options configure a Log.
type Options struct {
	// Signer signs checkpoints and Verifier checks them (LoadOrCreateKey).
	// Both are required unless ReadOnly, and must be the same key.
	Signer   note.Signer
	Verifier note.Verifier
	// Now is the clock that times records (default time.Now). It is read
	// once per commit: records committed together share their time.
	Now func() time.Time
	// CheckpointEvery and CheckpointRecords say how often a checkpoint is
	// written while records come in: after every CheckpointRecords records
	// (default 1000) and, for the records since the last checkpoint, within
	// CheckpointEvery (default 10 s). An idle log writes none.
	CheckpointEvery   time.Duration
	CheckpointRecords uint64
	// MaxBatch bounds the records committed in one transaction (default
	// 8192); an AppendBatch larger than it still commits whole.
	MaxBatch int
	// ReadOnly opens an existing file for reading and verification only:
	// typically a copy, or the file of a stopped central. It needs no key
	// and checks nothing at open, since verifying is the reader's job.
	ReadOnly bool
	Logger   *slog.Logger

	// noSync skips fsync: for building large benchmark fixtures only.
	noSync bool
	// tick replaces the checkpoint timer in tests.
	tick <-chan time.Time
	// beforeCommit, if set, runs last in every write transaction; an error
	// makes the transaction fail. Tests inject disk faults with it.
	beforeCommit func(*bbolt.Tx) error
}

func (o *Options) checkAndSetDefaults() error {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CheckpointEvery < 0 || o.MaxBatch < 0 {
		return errors.New("audit: options: negative checkpoint interval or batch size")
	}
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = DefaultCheckpointEvery
	}
	if o.CheckpointRecords == 0 {
		o.CheckpointRecords = DefaultCheckpointRecords
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ReadOnly {
		return nil
	}
	if o.Signer == nil || o.Verifier == nil {
		return errors.New("audit: options: a signer and a verifier are required to write the log")
	}
	return checkPair(o.Signer, o.Verifier)
}

// Log is the audit log. It is safe for concurrent use: appends go through
// one writer goroutine, reads run in bbolt read transactions beside it.
type Log struct {
	db   *bbolt.DB
	path string
	opts Options
	log  *slog.Logger

	// size is the number of committed records.
	size atomic.Uint64
	// latest is the latest checkpoint note (nil while there is none).
	latest atomic.Pointer[[]byte]
	// failed holds the error of the commit that failed, after which no
	// append is accepted.
	failed atomic.Pointer[error]

	// mu guards closed and every send on reqs, so that Close can close reqs
	// once no send is in progress.
	mu     sync.RWMutex
	closed bool
	reqs   chan *request
	// done is closed when the writer has stopped.
	done chan struct{}

	closeOnce sync.Once
	closeErr  error
	// finalErr is the error of the checkpoint written at Close.
	finalErr error

	// Owned by the writer goroutine: the size and time of the latest
	// checkpoint.
	cpSize uint64
	cpTime time.Time

	// Counters for the benchmarks and the logs.
	commits   atomic.Uint64
	committed atomic.Uint64
}

// request is one AppendBatch or CheckpointNow waiting for the writer.
type request struct {
	ctx        context.Context
	recs       []Record
	checkpoint bool
	res        chan result
}

type result struct {
	recs       []Record
	checkpoint []byte
	err        error
}

// Open opens the audit log in the bbolt file at path, creating it unless
// opts.ReadOnly. The file is the log's alone; it must not be shared with
// other state.
//
// In read-write mode Open checks that the latest checkpoint verifies with
// opts.Verifier and matches the stored tree, and refuses to open otherwise
// (ErrKeyMismatch for a checkpoint signed by another key, ErrTampered for
// one that does not match): appending to a log already broken would only
// bury the evidence. Full verification is Verify's job.
func Open(path string, opts Options) (*Log, error) {
	if err := opts.checkAndSetDefaults(); err != nil {
		return nil, err
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		// Another process holding the file (a running central) must give
		// an error, not a hang.
		Timeout:  time.Second,
		ReadOnly: opts.ReadOnly,
		NoSync:   opts.noSync,
		// The map freelist keeps commits cheap as the file grows.
		FreelistType: bbolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	l := &Log{
		db:   db,
		path: path,
		opts: opts,
		log:  opts.Logger.With("component", "audit"),
		reqs: make(chan *request, 1024),
		done: make(chan struct{}),
	}
	if err := l.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	if opts.ReadOnly {
		close(l.done)
		return l, nil
	}
	l.cpTime = opts.Now()
	go l.run()
	l.log.Info("audit log open", "path", path, "records", l.Size(), "checkpoint", l.cpSize)
	return l, nil
}

// load creates the buckets (read-write) or checks they exist (read-only),
// reads the size and the latest checkpoint and, read-write, checks them.
func (l *Log) load() error {
	if !l.opts.ReadOnly {
		err := l.db.Update(func(tx *bbolt.Tx) error {
			for _, name := range [][]byte{bucketMeta, bucketRecords, bucketHashes, bucketTimes, bucketCheckpoints} {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			meta := tx.Bucket(bucketMeta)
			switch v := meta.Get(metaFormat); {
			case v == nil:
				return meta.Put(metaFormat, metaFormatValue)
			case !bytes.Equal(v, metaFormatValue):
				return fmt.Errorf("format %q, want %q", v, metaFormatValue)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return l.db.View(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil || !bytes.Equal(meta.Get(metaFormat), metaFormatValue) {
			return errors.New("not an audit log file")
		}
		recs, hashes, cps := tx.Bucket(bucketRecords), tx.Bucket(bucketHashes), tx.Bucket(bucketCheckpoints)
		if recs == nil || hashes == nil || cps == nil || tx.Bucket(bucketTimes) == nil {
			return errors.New("not an audit log file: buckets missing")
		}
		var size uint64
		if k, _ := recs.Cursor().Last(); k != nil {
			size = decodeU64(k) + 1
		}
		l.size.Store(size)
		k, v := cps.Cursor().Last()
		if k != nil {
			l.cpSize = decodeU64(k)
			cp := bytes.Clone(v)
			l.latest.Store(&cp)
		}
		if l.opts.ReadOnly {
			return nil
		}
		var nhashes uint64
		if k, _ := hashes.Cursor().Last(); k != nil {
			nhashes = decodeU64(k) + 1
		}
		if want := uint64(tlog.StoredHashCount(int64(size))); nhashes != want {
			return fmt.Errorf("%w: %d stored hashes for %d records, want %d: verify a copy to find the first bad record", ErrTampered, nhashes, size, want)
		}
		if k == nil {
			return nil
		}
		return l.checkLatest(v, hashes)
	})
}

// checkLatest checks the latest stored checkpoint against the stored tree.
func (l *Log) checkLatest(signed []byte, hashes *bbolt.Bucket) error {
	tree, err := OpenCheckpoint(signed, l.opts.Verifier)
	if err != nil {
		var unknown *note.UnverifiedNoteError
		if errors.As(err, &unknown) {
			return fmt.Errorf("%w: the latest checkpoint (size %d) was not signed by key %s+%08x: the log's key was replaced",
				ErrKeyMismatch, l.cpSize, l.opts.Verifier.Name(), l.opts.Verifier.KeyHash())
		}
		return fmt.Errorf("%w: latest checkpoint (size %d): %w", ErrTampered, l.cpSize, err)
	}
	if uint64(tree.N) != l.cpSize {
		return fmt.Errorf("%w: checkpoint stored under size %d is of size %d", ErrTampered, l.cpSize, tree.N)
	}
	if l.cpSize > l.Size() {
		return tampered(l.Size(), "latest checkpoint covers %d records, the log has %d", l.cpSize, l.Size())
	}
	root, err := tlog.TreeHash(tree.N, bucketHashReader{hashes})
	if err != nil {
		return err
	}
	if root != tree.Hash {
		return fmt.Errorf("%w: stored tree at size %d has root %s, its checkpoint %s: verify a copy to find the first bad record", ErrTampered, tree.N, root, tree.Hash)
	}
	return nil
}

// Append records rec and returns it with its Seq and Time. It returns only
// once the record is durably committed, with its tree hashes; on any error
// the action being recorded must be refused. rec.Seq and rec.Time must be
// zero: the log assigns them, Seq being the record's tlog index (0 for the
// first record, Size() before the append for this one).
//
// If ctx ends while the record waits for the writer, Append returns the
// context's error; the record may still be committed in the batch under
// way, which records an attempt that the caller then refused: the log errs
// on the side of recording.
func (l *Log) Append(ctx context.Context, rec Record) (Record, error) {
	recs, err := l.AppendBatch(ctx, []Record{rec})
	if err != nil {
		return Record{}, err
	}
	return recs[0], nil
}

// AppendBatch records recs atomically, at consecutive sequence numbers, in
// one commit: either all are recorded or none. It is for records that come
// together, such as a district's chain forwarded by its agent.
func (l *Log) AppendBatch(ctx context.Context, recs []Record) ([]Record, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	if l.opts.ReadOnly {
		return nil, fmt.Errorf("audit: append: %w", ErrReadOnly)
	}
	for i, r := range recs {
		if r.Seq != 0 || !r.Time.IsZero() {
			return nil, fmt.Errorf("audit: append: record %d: %w: seq and time are assigned by the log", i, ErrInvalid)
		}
		if err := r.validate(); err != nil {
			return nil, fmt.Errorf("audit: append: record %d: %w", i, err)
		}
	}
	res, err := l.submit(ctx, &request{ctx: ctx, recs: slices.Clone(recs)})
	if err != nil {
		return nil, fmt.Errorf("audit: append: %w", err)
	}
	return res.recs, nil
}

// CheckpointNow makes the writer sign a checkpoint of the whole log now, if
// records were added since the last one, and returns the latest checkpoint.
// The CLI's "audit checkpoint" uses it, so that what an auditor keeps covers
// everything recorded so far.
func (l *Log) CheckpointNow(ctx context.Context) ([]byte, error) {
	if l.opts.ReadOnly {
		return nil, fmt.Errorf("audit: checkpoint: %w", ErrReadOnly)
	}
	res, err := l.submit(ctx, &request{ctx: ctx, checkpoint: true})
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoint: %w", err)
	}
	if res.checkpoint == nil {
		return nil, fmt.Errorf("audit: checkpoint: %w", ErrNoCheckpoint)
	}
	return res.checkpoint, nil
}

// submit hands req to the writer and waits for its result.
func (l *Log) submit(ctx context.Context, req *request) (result, error) {
	req.res = make(chan result, 1)
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return result{}, ErrClosed
	}
	if err := l.failure(); err != nil {
		l.mu.RUnlock()
		return result{}, err
	}
	select {
	case l.reqs <- req:
	case <-ctx.Done():
		l.mu.RUnlock()
		return result{}, ctx.Err()
	}
	l.mu.RUnlock()
	select {
	case res := <-req.res:
		return res, res.err
	case <-ctx.Done():
		return result{}, ctx.Err()
	}
}

// failure is the error every append gets once a commit has failed.
func (l *Log) failure() error {
	if p := l.failed.Load(); p != nil {
		return fmt.Errorf("%w: %v", ErrFailed, *p)
	}
	return nil
}

// run is the writer: it takes every request waiting, commits them in one
// transaction, answers them, and writes the timed checkpoints.
func (l *Log) run() {
	defer close(l.done)
	tick := l.opts.tick
	if tick == nil {
		t := time.NewTicker(l.opts.CheckpointEvery)
		defer t.Stop()
		tick = t.C
	}
	var batch []*request
	for {
		select {
		case req, ok := <-l.reqs:
			if !ok {
				l.finalErr = l.commit(nil, true)
				return
			}
			batch = append(batch[:0], req)
			n := len(req.recs)
			open := true
		drain:
			for n < l.opts.MaxBatch {
				select {
				case req, ok := <-l.reqs:
					if !ok {
						open = false
						break drain
					}
					batch = append(batch, req)
					n += len(req.recs)
				default:
					break drain
				}
			}
			l.commit(batch, false)
			clear(batch)
			if !open {
				l.finalErr = l.commit(nil, true)
				return
			}
		case <-tick:
			l.commit(nil, true)
		}
	}
}

// commit writes the records of batch, with their hashes, time index entries
// and the checkpoints due, in one transaction, then answers every request.
// force asks for a checkpoint of the whole log if it grew since the last
// one (timer, Close, CheckpointNow).
func (l *Log) commit(batch []*request, force bool) error {
	todo := batch[:0:0]
	nrec := 0
	for _, req := range batch {
		if err := req.ctx.Err(); err != nil {
			req.res <- result{err: err}
			continue
		}
		if err := l.failure(); err != nil {
			req.res <- result{err: err}
			continue
		}
		todo = append(todo, req)
		nrec += len(req.recs)
		force = force || req.checkpoint
	}
	if l.failure() != nil {
		return l.failure()
	}
	size := l.size.Load()
	if nrec == 0 && !(force && size > l.cpSize) {
		// Nothing to write: answer checkpoint requests with the latest.
		for _, req := range todo {
			req.res <- result{checkpoint: l.latestCheckpoint()}
		}
		return nil
	}

	n, cpSize, cpTime := size, l.cpSize, l.cpTime
	// One reading of the clock for the batch: its records are committed at
	// the same instant.
	now := l.opts.Now().Round(0).UTC()
	var latest []byte
	err := l.db.Update(func(tx *bbolt.Tx) error {
		records, hashes := tx.Bucket(bucketRecords), tx.Bucket(bucketHashes)
		times, cps := tx.Bucket(bucketTimes), tx.Bucket(bucketCheckpoints)
		// Keys only ever grow (times nearly so): full pages waste nothing.
		records.FillPercent, hashes.FillPercent, cps.FillPercent = 1, 1, 1
		times.FillPercent = 0.95
		hr := bucketHashReader{hashes}
		checkpoint := func() error {
			cp, err := l.writeCheckpoint(cps, hr, n)
			if err != nil {
				return err
			}
			latest, cpSize, cpTime = cp, n, now
			return nil
		}
		for _, req := range todo {
			for i := range req.recs {
				rec := &req.recs[i]
				rec.Seq = n
				rec.Time = now
				// bbolt keeps keys and values until the commit: fresh
				// slices for each.
				data := rec.appendCanonical(make([]byte, 0, 512))
				if err := records.Put(encodeU64(n), data); err != nil {
					return err
				}
				stored, err := tlog.StoredHashes(int64(n), data, hr)
				if err != nil {
					return err
				}
				base := uint64(tlog.StoredHashIndex(0, int64(n)))
				for k := range stored {
					if err := hashes.Put(encodeU64(base+uint64(k)), stored[k][:]); err != nil {
						return err
					}
				}
				if err := times.Put(timeKey(rec.Time, n), []byte{}); err != nil {
					return err
				}
				n++
				if n-cpSize >= l.opts.CheckpointRecords {
					if err := checkpoint(); err != nil {
						return err
					}
				}
			}
		}
		if n > cpSize && (force || now.Sub(cpTime) >= l.opts.CheckpointEvery) {
			if err := checkpoint(); err != nil {
				return err
			}
		}
		if l.opts.beforeCommit != nil {
			return l.opts.beforeCommit(tx)
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("commit: %w", err)
		l.failed.CompareAndSwap(nil, &err)
		l.log.Error("audit log write failed: refusing every append until reopened", "err", err, "records", nrec, "size", size)
		for _, req := range todo {
			req.res <- result{err: err}
		}
		return err
	}
	l.size.Store(n)
	l.cpSize, l.cpTime = cpSize, cpTime
	if latest != nil {
		l.latest.Store(&latest)
	}
	l.commits.Add(1)
	l.committed.Add(uint64(nrec))
	cp := l.latestCheckpoint()
	for _, req := range todo {
		req.res <- result{recs: req.recs, checkpoint: cp}
	}
	return nil
}

// writeCheckpoint signs and stores the checkpoint of the tree of size n.
func (l *Log) writeCheckpoint(cps *bbolt.Bucket, hr tlog.HashReader, n uint64) ([]byte, error) {
	root, err := tlog.TreeHash(int64(n), hr)
	if err != nil {
		return nil, err
	}
	cp, err := signCheckpoint(l.opts.Signer, tlog.Tree{N: int64(n), Hash: root})
	if err != nil {
		return nil, err
	}
	return cp, cps.Put(encodeU64(n), cp)
}

// Close stops the writer, once every append already queued is answered and
// a last checkpoint of the whole log is written, and closes the file. Later
// calls return the first call's result.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		var errs []error
		if !l.opts.ReadOnly {
			l.mu.Lock()
			l.closed = true
			l.mu.Unlock()
			close(l.reqs)
			<-l.done
			if l.finalErr != nil && l.failed.Load() == nil {
				errs = append(errs, fmt.Errorf("audit: close: final checkpoint: %w", l.finalErr))
			}
		} else {
			l.mu.Lock()
			l.closed = true
			l.mu.Unlock()
		}
		if err := l.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("audit: close: %w", err))
		}
		l.closeErr = errors.Join(errs...)
		l.log.Info("audit log closed", "path", l.path, "records", l.Size())
	})
	return l.closeErr
}

// latestCheckpoint returns the latest checkpoint, or nil.
func (l *Log) latestCheckpoint() []byte {
	if p := l.latest.Load(); p != nil {
		return *p
	}
	return nil
}

func encodeU64(v uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v)
}

func decodeU64(b []byte) uint64 {
	if len(b) != 8 {
		// Keys are written by this package only; a key of another length
		// is damage, which the callers' checks then report.
		return ^uint64(0)
	}
	return binary.BigEndian.Uint64(b)
}

// timeKey is the key of a record in bucketTimes: the time as nanoseconds
// since 1970 with the sign bit flipped, so that keys sort as times do, then
// the Seq.
func timeKey(t time.Time, seq uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(t.UnixNano())^(1<<63))
	binary.BigEndian.PutUint64(k[8:], seq)
	return k
}

// bucketHashReader reads tlog stored hashes from bucketHashes.
type bucketHashReader struct{ b *bbolt.Bucket }

func (r bucketHashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var key [8]byte
	for i, x := range indexes {
		binary.BigEndian.PutUint64(key[:], uint64(x))
		v := r.b.Get(key[:])
		if len(v) != tlog.HashSize {
			return nil, fmt.Errorf("stored hash %d missing", x)
		}
		copy(out[i][:], v)
	}
	return out, nil
}
