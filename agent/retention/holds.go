package retention

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/vigil-cctv/vigil/proto/actions"
	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/index"
)

// Holds applies and releases judicial holds at the district. The index is
// where a hold takes effect (one transaction, ordered against every
// deletion); the store's own legal hold on each object follows, so that
// the store refuses deletion too, by anyone. Release goes the other way:
// the store's legal holds are lifted while the index still keeps the
// segments, and only then does the index let them expire.
type Holds struct {
	Index *index.Index
	Store func(context.Context) (storage.ObjectStore, error)
	// Log makes a district log entry (with its report when reporting).
	Log func(index.JournalEntry) *index.Logged
	Now func() time.Time
	// Parallel bounds concurrent legal-hold calls to the store; default 16.
	Parallel int

	mu sync.Mutex // one hold change at a time
}

// Apply puts the hold in force and sets the store's legal hold on every
// object it covers. It returns the number of segments covered. Applying
// the same hold again is harmless and covers what was recorded since.
func (hs *Holds) Apply(ctx context.Context, h index.Hold) (int, error) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	app, err := hs.Index.ApplyHold(ctx, h, func(c []storage.Segment) *index.Logged {
		return hs.Log(index.JournalEntry{Time: hs.now(), Action: actions.HoldApplied,
			Detail: fmt.Sprintf("hold %s (authority %q, case %q): %d segments of %s from %s to %s", h.ID, h.Authority, h.Case,
				len(c), strings.Join(h.Cameras, ","), h.From.UTC().Format(time.RFC3339), h.To.UTC().Format(time.RFC3339))})
	})
	if err != nil {
		return 0, err
	}
	// A resent hold already applied needs the store's legal hold only on
	// what it newly covers.
	todo := app.Covered
	if app.WasApplied {
		todo = app.Added
	}
	if err := hs.setLegalHolds(ctx, todo, true); err != nil {
		// In force in the index already: nothing can delete the
		// segments; the state stays "applying" and is retried.
		return len(app.Covered), err
	}
	if err := hs.Index.SetHoldState(ctx, h.ID, index.HoldApplied); err != nil {
		return len(app.Covered), err
	}
	return len(app.Covered), nil
}

// Release lifts the hold: the store's legal holds of the segments no other
// hold keeps, then the index's. It returns the number of segments the hold
// covered; releasing an unknown hold returns 0 and no error.
func (hs *Holds) Release(ctx context.Context, id, reason string) (int, error) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	only, err := hs.Index.BeginRelease(ctx, id)
	if errors.Is(err, index.ErrHoldNotFound) {
		// Released before its apply arrived (or released already): an
		// apply coming later must not bring it back.
		return 0, hs.Index.MarkReleased(ctx, id)
	}
	if err != nil {
		return 0, err
	}
	if err := hs.setLegalHolds(ctx, only, false); err != nil {
		// Still held in the index: nothing expires until a retry.
		return 0, err
	}
	return hs.Index.FinishRelease(ctx, id, func(n int) *index.Logged {
		return hs.Log(index.JournalEntry{Time: hs.now(), Action: actions.HoldReleased,
			Detail: fmt.Sprintf("hold %s released: %d segments no longer kept by it; reason %q", id, n, reason)})
	})
}

// Resume finishes what a crash interrupted: holds still applying get their
// store legal holds, holds being released are released.
func (hs *Holds) Resume(ctx context.Context) error {
	holds, err := hs.Index.Holds()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range holds {
		switch h.State {
		case index.HoldApplying:
			_, err = hs.Apply(ctx, h)
		case index.HoldReleasing:
			_, err = hs.Release(ctx, h.ID, "release interrupted, finished at restart")
		default:
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("hold %s: %w", h.ID, err))
		}
	}
	return errors.Join(errs...)
}

// Protect sets the store's legal hold on a segment indexed after its hold
// was placed (the index made it held as it was indexed).
func (hs *Holds) Protect(ctx context.Context, seg storage.Segment) error {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	// Read again under the lock: a release that finished meanwhile must
	// not be undone by a legal hold set after it.
	cur, err := hs.Index.Get(seg.ID)
	if errors.Is(err, index.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !cur.Held() {
		return nil
	}
	return hs.setLegalHolds(ctx, []storage.Segment{cur}, true)
}

func (hs *Holds) now() time.Time {
	if hs.Now != nil {
		return hs.Now()
	}
	return time.Now()
}

// setLegalHolds sets or lifts the store's legal hold on each segment's
// object, in parallel. A missing object is not an error when lifting.
func (hs *Holds) setLegalHolds(ctx context.Context, segs []storage.Segment, on bool) error {
	if len(segs) == 0 {
		return nil
	}
	store, err := hs.Store(ctx)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	par := hs.Parallel
	if par <= 0 {
		par = 16
	}
	work := make(chan storage.Segment)
	var (
		mu     sync.Mutex
		failed int
		first  error
		wg     sync.WaitGroup
	)
	for range min(par, len(segs)) {
		wg.Go(func() {
			for s := range work {
				// A missing object needs no legal hold: nobody can delete
				// it (reconciliation reports it missing).
				err := store.SetLegalHold(ctx, s.Key, on)
				if err != nil && !errors.Is(err, storage.ErrNotFound) {
					mu.Lock()
					failed++
					if first == nil {
						first = fmt.Errorf("segment %s: %w", s.ID, err)
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, s := range segs {
		work <- s
	}
	close(work)
	wg.Wait()
	if failed > 0 {
		verb := "set"
		if !on {
			verb = "lift"
		}
		return fmt.Errorf("could not %s the store's legal hold on %d of %d objects: %w", verb, failed, len(segs), first)
	}
	return nil
}
