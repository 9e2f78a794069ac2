// Package retention destroys footage when the law says it must go: a
// segment expires at its start plus the camera's retention (seven days at
// most) and is deleted within a minute after, every version of the object
// included; and when the store fills up, the oldest footage no hold covers
// goes first. Held segments are never touched: the index keeps them out of
// the expiry index, and every deletion is first claimed in an index
// transaction that a hold cannot interleave with (storage/index/expire.go).
//
// Each deletion is written to the district's chained log and reported to
// central in the same transaction that forgets the segment. A deletion the
// store refuses is retried at every sweep and raised as an alarm, never
// dropped: retention that silently stops is how a recorder keeps footage it
// must not (Frigate #2790).
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vigil-cctv/vigil/proto/actions"
	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/index"
)

// Deletion reasons, as reported to central.
const (
	ReasonRetention = "retention"
	ReasonPressure  = "pressure"
)

// Alarm codes raised by the sweeper.
const (
	AlarmDeletionFailed = "deletion_failed"
	AlarmStorageFull    = "storage_full"
	AlarmPressure       = "storage_pressure"
	AlarmUnknownHold    = "unknown_hold"
	AlarmSweepFailed    = "retention_stopped"
)

// Capacity is how full the store is, in bytes.
type Capacity struct {
	Used, Total int64
}

// Config configures a Sweeper.
type Config struct {
	Index *index.Index
	// Store returns the object store (it may be unreachable for a while).
	Store func(context.Context) (storage.ObjectStore, error)
	// Now is the clock expiry is judged by. The agent passes one that is
	// never ahead of central's: an early deletion cannot be undone.
	Now func() time.Time
	// Interval between sweeps; default 10 s, so a segment goes well within
	// the minute after its expiry.
	Interval time.Duration
	// Batch bounds the segments claimed per index transaction; default 500.
	Batch int
	// Capacity, when set, enables disk-pressure shedding: above HighWater
	// (a fraction of Total, default 0.90) the oldest unheld segments are
	// deleted early until usage is below LowWater (default 0.85).
	Capacity            func(context.Context) (Capacity, error)
	HighWater, LowWater float64
	// Log makes the district log entry of a deletion (with its outbox
	// report when the agent reports to central).
	Log func(index.JournalEntry) *index.Logged
	// Report makes the outbox report of a deletion; nil when the agent
	// does not report to central.
	Report func(seg storage.Segment, reason string, at time.Time) ([]byte, error)
	// Raise and Clear set and clear operator alarms.
	Raise  func(code, message string)
	Clear  func(code string)
	Logger *slog.Logger
}

// CheckAndSetDefaults validates the configuration.
func (c *Config) CheckAndSetDefaults() error {
	switch {
	case c.Index == nil:
		return errors.New("retention: no index")
	case c.Store == nil:
		return errors.New("retention: no store")
	case c.Log == nil:
		return errors.New("retention: no district log")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Interval <= 0 {
		c.Interval = 10 * time.Second
	}
	if c.Batch <= 0 {
		c.Batch = 500
	}
	if c.HighWater <= 0 || c.HighWater > 1 {
		c.HighWater = 0.90
	}
	if c.LowWater <= 0 || c.LowWater >= c.HighWater {
		c.LowWater = c.HighWater - 0.05
	}
	if c.Raise == nil {
		c.Raise = func(string, string) {}
	}
	if c.Clear == nil {
		c.Clear = func(string) {}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Sweeper deletes expired segments, and the oldest under disk pressure.
type Sweeper struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	full     bool
	failing  map[string]bool // segment ids whose deletion failed at the last sweep (logged)
	failed   map[string]bool // those failing in the sweep under way
	lastCap  Capacity
	capKnown bool
}

// New returns a sweeper; Run starts it.
func New(cfg Config) (*Sweeper, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	return &Sweeper{cfg: cfg, log: cfg.Logger.With("component", "sweeper"), failing: map[string]bool{}}, nil
}

// Run sweeps every Interval until ctx ends.
func (s *Sweeper) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("sweep", "error", err)
			s.cfg.Raise(AlarmSweepFailed, fmt.Sprintf("retention sweep failed (retried every %s): %v", s.cfg.Interval, err))
		} else if err == nil {
			s.cfg.Clear(AlarmSweepFailed)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Result is what one sweep did.
type Result struct {
	// Deleted counts segments destroyed, by reason.
	Deleted map[string]int
	// Failed counts deletions that failed (retried at the next sweep);
	// an object the store keeps under a legal hold is not counted: it is
	// kept as held (AlarmUnknownHold).
	Failed int
	// Full is set when the store is above its high watermark with only
	// held footage left.
	Full bool
}

// Sweep runs one pass: it finishes claims left by an earlier pass, deletes
// what has expired, then sheds the oldest footage if the store is too full.
func (s *Sweeper) Sweep(ctx context.Context) (Result, error) {
	res := Result{Deleted: map[string]int{}}
	s.mu.Lock()
	s.failed = map[string]bool{}
	s.mu.Unlock()
	defer s.endSweep()
	store, err := s.cfg.Store(ctx)
	if err != nil {
		return res, fmt.Errorf("retention: store: %w", err)
	}
	claims, err := s.cfg.Index.Claims()
	if err != nil {
		return res, err
	}
	for _, c := range claims {
		s.destroyAll(ctx, store, []storage.Segment{c.Segment}, c.Reason, &res)
	}
	for {
		// Expired at start + retention: due at that instant, not after.
		segs, err := s.cfg.Index.ClaimExpiring(ctx, index.ClaimRequest{Before: s.cfg.Now().Add(time.Nanosecond), Limit: s.cfg.Batch, Reason: ReasonRetention})
		if err != nil {
			return res, err
		}
		s.destroyAll(ctx, store, segs, ReasonRetention, &res)
		if len(segs) < s.cfg.Batch || ctx.Err() != nil {
			break
		}
	}
	if s.cfg.Capacity != nil {
		if err := s.shed(ctx, store, &res); err != nil {
			return res, err
		}
	}
	res.Full = s.Full()
	if n := res.Deleted[ReasonRetention] + res.Deleted[ReasonPressure]; n > 0 {
		s.log.Info("swept", "retention", res.Deleted[ReasonRetention], "pressure", res.Deleted[ReasonPressure], "failed", res.Failed)
	}
	return res, ctx.Err()
}

// endSweep keeps the failures of this sweep for the next one (a failure
// is logged once while it lasts) and clears the alarms whose cause is gone.
func (s *Sweeper) endSweep() {
	s.mu.Lock()
	s.failing, s.failed = s.failed, nil
	failing := len(s.failing)
	s.mu.Unlock()
	if failing == 0 {
		s.cfg.Clear(AlarmDeletionFailed)
	}
	if n, err := s.cfg.Index.PlaceholderHeld(); err == nil && n == 0 {
		s.cfg.Clear(AlarmUnknownHold)
	} else if err == nil {
		s.cfg.Raise(AlarmUnknownHold, fmt.Sprintf("%d segments are under a legal hold in the store that this agent does not know (index rebuilt?): kept; central resends its holds; to let one go, place and release a hold over its span", n))
	}
}

// shed deletes the oldest unheld segments (the soonest to expire) while the
// store is above its high watermark, down to the low one. With nothing
// unheld left, the store is full of held footage: recording stops and an
// alarm says so.
func (s *Sweeper) shed(ctx context.Context, store storage.ObjectStore, res *Result) error {
	c, err := s.cfg.Capacity(ctx)
	if err != nil {
		return fmt.Errorf("retention: capacity: %w", err)
	}
	s.setCapacity(c)
	if c.Total <= 0 {
		return nil
	}
	high, low := int64(float64(c.Total)*s.cfg.HighWater), int64(float64(c.Total)*s.cfg.LowWater)
	if c.Used < high {
		s.cfg.Clear(AlarmPressure)
		s.setFull(ctx, false, c)
		return nil
	}
	// On a filesystem shared with other data, deleting footage cannot bring
	// usage under the low watermark if the rest alone is above it: then
	// no footage is shed for nothing, and the alarm says why.
	footage, err := s.cfg.Index.Usage()
	if err != nil {
		return err
	}
	if other := c.Used - footage; other >= low {
		s.cfg.Raise(AlarmPressure, fmt.Sprintf("store %d%% full, %d%% of it not footage: deleting footage cannot make room; free the disk",
			c.Used*100/c.Total, other*100/c.Total))
		return nil
	}
	s.cfg.Raise(AlarmPressure, fmt.Sprintf("store %d%% full (high watermark %d%%): deleting the oldest unheld footage early",
		c.Used*100/c.Total, int(s.cfg.HighWater*100)))
	for c.Used >= low && ctx.Err() == nil {
		// A claim is a decision (what is claimed is deleted, at the next
		// sweep if not now), so claim only the bytes that bring usage
		// under the low watermark.
		segs, err := s.cfg.Index.ClaimExpiring(ctx, index.ClaimRequest{Before: time.Unix(0, 1<<63-1), Limit: s.cfg.Batch,
			Bytes: c.Used - low + 1, Reason: ReasonPressure})
		if err != nil {
			return err
		}
		if len(segs) == 0 {
			s.setFull(ctx, true, c)
			return nil
		}
		before := res.Deleted[ReasonPressure]
		s.destroyAll(ctx, store, segs, ReasonPressure, res)
		if res.Deleted[ReasonPressure] == before {
			// The store refuses every deletion: claiming more would not
			// help (the alarm is raised); try again at the next sweep.
			return nil
		}
		if c, err = s.cfg.Capacity(ctx); err != nil {
			return fmt.Errorf("retention: capacity: %w", err)
		}
		s.setCapacity(c)
	}
	s.setFull(ctx, false, c)
	return nil
}

func (s *Sweeper) setCapacity(c Capacity) {
	s.mu.Lock()
	s.lastCap, s.capKnown = c, true
	s.mu.Unlock()
}

// LastCapacity is the store's usage as last measured (ok false before the
// first measure or without a capacity).
func (s *Sweeper) LastCapacity() (Capacity, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastCap, s.capKnown
}

func (s *Sweeper) setFull(ctx context.Context, full bool, c Capacity) {
	s.mu.Lock()
	was := s.full
	s.full = full
	s.mu.Unlock()
	if full == was {
		return
	}
	pct := int64(0)
	if c.Total > 0 {
		pct = c.Used * 100 / c.Total
	}
	if full {
		msg := fmt.Sprintf("store %d%% full and only held footage is left: new segments are NOT recorded until a hold is released or storage is added", pct)
		s.cfg.Raise(AlarmStorageFull, msg)
		s.journal(ctx, index.JournalEntry{Action: actions.StorageFull, Detail: msg})
		return
	}
	s.cfg.Clear(AlarmStorageFull)
	s.journal(ctx, index.JournalEntry{Action: actions.StorageResumed, Detail: fmt.Sprintf("store %d%% full: recording resumed", pct)})
}

// Full reports whether the store is full of held footage: new segments
// must not be written.
func (s *Sweeper) Full() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.full
}

func (s *Sweeper) journal(ctx context.Context, e index.JournalEntry) {
	e.Time = s.cfg.Now()
	l := s.cfg.Log(e)
	if _, err := s.cfg.Index.Journal(ctx, l.Entry, l.Report); err != nil {
		s.log.Error("district log", "action", e.Action, "error", err)
	}
}

// destroyParallel bounds concurrent deletions: the store's calls overlap
// and the index commits of their records share fsyncs (group commit).
const destroyParallel = 16

// destroyAll destroys claimed segments concurrently.
func (s *Sweeper) destroyAll(ctx context.Context, store storage.ObjectStore, segs []storage.Segment, reason string, res *Result) {
	if len(segs) == 1 {
		s.destroy(ctx, store, segs[0], reason, res)
		return
	}
	work := make(chan storage.Segment)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range min(destroyParallel, len(segs)) {
		wg.Go(func() {
			var part Result
			part.Deleted = map[string]int{}
			for seg := range work {
				s.destroy(ctx, store, seg, reason, &part)
			}
			mu.Lock()
			for k, v := range part.Deleted {
				res.Deleted[k] += v
			}
			res.Failed += part.Failed
			mu.Unlock()
		})
	}
	for _, seg := range segs {
		work <- seg
	}
	close(work)
	wg.Wait()
}

// destroy deletes a claimed segment's object (every version), then forgets
// it with its log entry and report. On failure the claim is given back
// (the next sweep claims it again if it is still due), the first failure
// of each segment is logged and an alarm raised.
func (s *Sweeper) destroy(ctx context.Context, store storage.ObjectStore, seg storage.Segment, reason string, res *Result) {
	err := store.Delete(ctx, seg.Key)
	if err == nil {
		at := s.cfg.Now().UTC()
		logged := s.cfg.Log(index.JournalEntry{
			Time: at, Action: actions.SegmentDeleted, Camera: seg.Camera, Segment: seg.ID,
			Detail: fmt.Sprintf("reason %s; sha256 %s; start %s; expires %s; deleted %s; key %s",
				reason, seg.SHA256, seg.Start.UTC().Format(time.RFC3339Nano), seg.Expires.UTC().Format(time.RFC3339Nano),
				at.Format(time.RFC3339Nano), seg.Key),
		})
		var report []byte
		if s.cfg.Report != nil {
			if report, err = s.cfg.Report(seg, reason, at); err != nil {
				err = fmt.Errorf("report: %w", err)
			}
		}
		if err == nil {
			err = s.cfg.Index.DeleteClaimed(ctx, seg.ID, logged, report)
		}
		if err == nil {
			res.Deleted[reason]++
			return
		}
	}
	if ctx.Err() != nil {
		return
	}
	// Give the segment back rather than keep the claim: a hold placed
	// before the next attempt must still be able to cover it. An object
	// the store holds is kept as held by a hold the index does not know
	// (index rebuilt after a loss): never deleted, and alarmed.
	storeHeld := errors.Is(err, storage.ErrHeld)
	if uerr := s.cfg.Index.Unclaim(ctx, seg.ID, storeHeld); uerr != nil {
		err = fmt.Errorf("%w (and giving the segment back failed: %v)", err, uerr)
	}
	if storeHeld {
		s.journal(ctx, index.JournalEntry{Action: actions.SegmentDeleteFailed, Camera: seg.Camera, Segment: seg.ID,
			Detail: fmt.Sprintf("reason %s: the store holds it under a legal hold the index did not know; kept as held", reason)})
		return
	}
	res.Failed++
	s.mu.Lock()
	first := !s.failing[seg.ID]
	s.failed[seg.ID] = true
	n := len(s.failed)
	s.mu.Unlock()
	s.cfg.Raise(AlarmDeletionFailed, fmt.Sprintf("%d expired segments could not be deleted (retried every sweep); last: %s of %s: %v", n, seg.ID, seg.Camera, err))
	if first {
		s.log.Error("deletion failed; retrying at every sweep", "segment", seg.ID, "camera", seg.Camera, "reason", reason, "error", err)
		s.journal(ctx, index.JournalEntry{Action: actions.SegmentDeleteFailed, Camera: seg.Camera, Segment: seg.ID,
			Detail: fmt.Sprintf("reason %s: %v", reason, err)})
	}
}
