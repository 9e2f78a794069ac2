package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-cctv/vigil/agent/config"
	"github.com/vigil-cctv/vigil/agent/segmenter"
	"github.com/vigil-cctv/vigil/proto/actions"
	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/index"
)

// quarantineDir (in the data dir) receives spool files that are not
// segments at all; they are kept for a person to look at. Their names keep
// the start time, so retention can still be applied to them.
const quarantineDir = "quarantine"

// tmpDir (in the data dir) holds copies of store objects being checked; it
// is emptied at every start.
const tmpDir = "tmp"

// spoolFile is a file left in the spool by a previous run.
type spoolFile struct {
	camera, path string
}

// listSpool returns what a previous run left in the spool. It must run
// before the cameras start, so that a segment being written now is never
// taken for a leftover.
func (a *Agent) listSpool() []spoolFile {
	dirs, err := os.ReadDir(a.spoolDir)
	if err != nil {
		a.raise(AlarmSpoolRecovery, fmt.Sprintf("read spool: %v", err))
		return nil
	}
	var out []spoolFile
	for _, d := range dirs {
		camera := d.Name()
		if !d.IsDir() || storage.ValidateName("camera", camera) != nil {
			continue
		}
		files, err := os.ReadDir(filepath.Join(a.spoolDir, camera))
		if err != nil {
			a.raise(AlarmSpoolRecovery, fmt.Sprintf("read spool of %s: %v", camera, err))
			continue
		}
		for _, f := range files {
			if strings.HasSuffix(f.Name(), segmenter.PartSuffix) || strings.HasSuffix(f.Name(), segmenter.CompleteSuffix) {
				out = append(out, spoolFile{camera, filepath.Join(a.spoolDir, camera, f.Name())})
			}
		}
	}
	return out
}

// recoverSpool queues the leftovers for upload: finished segments not yet
// stored, and segments cut short by a crash (trimmed to their last complete
// fragment). A file that is not a segment is moved aside; one that cannot
// be read now (an I/O error) stays for the next start, with an alarm.
func (a *Agent) recoverSpool(files []spoolFile) {
	var recovered, quarantined, failed int
	for _, sf := range files {
		fin, err := segmenter.RecoverFile(sf.path)
		switch {
		case errors.Is(err, segmenter.ErrCorrupt):
			quarantined++
			a.quarantine(sf, err)
		case err != nil:
			failed++
			a.raise(AlarmSpoolRecovery, fmt.Sprintf("cannot recover %s now (left in place for the next start): %v", sf.path, err))
		case fin != nil:
			recovered++
			a.uploads.enqueue(sf.camera, fin)
		}
	}
	if len(files) > 0 {
		a.log.Info("spool recovered", "segments", recovered, "quarantined", quarantined, "failed", failed)
	}
}

func (a *Agent) quarantine(sf spoolFile, cause error) {
	dir := filepath.Join(a.cfg.DataDir, quarantineDir)
	dst := filepath.Join(dir, sf.camera+"-"+filepath.Base(sf.path))
	err := os.MkdirAll(dir, 0o700)
	if err == nil {
		err = os.Rename(sf.path, dst)
	}
	msg := fmt.Sprintf("spool file %s is not a segment: %v", sf.path, cause)
	a.journal(context.Background(), index.JournalEntry{Time: time.Now(), Action: actions.SpoolQuarantined, Camera: sf.camera, Detail: clipText(msg)})
	if err != nil {
		msg += fmt.Sprintf(" (could not move it aside: %v)", err)
	} else {
		msg += " (moved to " + dst + ")"
	}
	a.raise(AlarmSpoolRecovery, msg)
}

// reconcileWhenReady runs reconcile once the store can be reached.
func (a *Agent) reconcileWhenReady(ctx context.Context) {
	defer a.uploads.stopTracking()
	for {
		res, err := a.reconcile(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			a.clear(AlarmReconcile)
			a.log.Info("index and store reconciled", "objects", res.Objects, "indexed", res.Indexed,
				"missing", res.Missing, "unplayable", res.Unplayable, "expiry_shortened", res.Shortened)
			return
		}
		a.raise(AlarmReconcile, fmt.Sprintf("reconcile index and store (retrying): %v", err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(storeRetry):
		}
	}
}

// ReconcileResult counts what reconciliation found.
type ReconcileResult struct {
	Objects    int // segment objects in the store
	Indexed    int // objects that had no index entry and were indexed
	Missing    int // index entries without an object, now marked missing
	Unplayable int // objects without an index entry that are not playable segments
	Shortened  int // entries whose expiry moved earlier to a shorter retention
}

// reconcile makes index and store agree: objects without an index entry are
// indexed (after checking they are playable segments), entries without an
// object are marked missing and reported, and expiries follow a retention
// that was shortened since. It deletes nothing, ever: an empty or lost index
// is a reason to rebuild it, not to destroy footage.
func (a *Agent) reconcile(ctx context.Context) (ReconcileResult, error) {
	var res ReconcileResult
	store, err := a.store.get(ctx)
	if err != nil {
		return res, err
	}
	indexed := make(map[string]storage.Segment)
	if err := a.index.ForEach(func(seg storage.Segment) error {
		indexed[seg.ID] = seg
		return nil
	}); err != nil {
		return res, fmt.Errorf("walk index: %w", err)
	}

	seen := make(map[string]bool)
	var orphans []storage.KeyParts
	err = store.List(ctx, a.cfg.District+"/", func(obj storage.ObjectInfo) error {
		kp, err := storage.ParseSegmentKey(obj.Key)
		if err != nil {
			return nil // not ours to judge
		}
		res.Objects++
		seen[kp.ID] = true
		if _, ok := indexed[kp.ID]; !ok {
			orphans = append(orphans, kp)
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("list store: %w", err)
	}

	var firstUnplayable string
	for _, kp := range orphans {
		if a.uploads.handling(kp.ID) {
			continue // being stored and indexed by this run
		}
		seg, err := a.indexOrphan(ctx, store, kp)
		if errors.Is(err, segmenter.ErrCorrupt) || errors.Is(err, segmenter.ErrNoFootage) {
			res.Unplayable++
			key := storage.SegmentKey(kp.District, kp.Camera, kp.Start, kp.ID)
			if firstUnplayable == "" {
				firstUnplayable = key
			}
			// Footage all the same (a fragment of someone's image), so
			// retention and holds must reach it: indexed as unplayable.
			if err := a.indexUnplayable(ctx, store, kp); err != nil {
				return res, err
			}
			a.log.Error("object in the store is not a playable segment; indexed as unplayable so that retention deletes it", "key", key, "error", err)
			continue
		}
		if err != nil {
			return res, err
		}
		res.Indexed++
		a.log.Info("indexed object found in the store", "key", seg.Key)
	}

	var firstMissing string
	for id, seg := range indexed {
		switch {
		case !seen[id] && !seg.Missing && !a.uploads.handling(id):
			// Listed before it was stored? Ask the store once more.
			if _, err := store.Stat(ctx, seg.Key); !errors.Is(err, storage.ErrNotFound) {
				if err != nil {
					return res, err
				}
				continue
			}
			if err := a.updateSegment(id, func(s *storage.Segment) error { s.Missing = true; return nil }); err != nil {
				return res, err
			}
			a.journal(ctx, index.JournalEntry{Time: time.Now(), Action: actions.SegmentMissing, Camera: seg.Camera, Segment: id, Detail: seg.Key})
			res.Missing++
			if firstMissing == "" {
				firstMissing = seg.Key
			}
		case seen[id] && seg.Missing:
			if err := a.updateSegment(id, func(s *storage.Segment) error { s.Missing = false; return nil }); err != nil {
				return res, err
			}
			a.journal(ctx, index.JournalEntry{Time: time.Now(), Action: actions.SegmentFound, Camera: seg.Camera, Segment: id, Detail: seg.Key})
		}
		// Retention is a maximum: a shortened one applies to what exists.
		if limit := seg.Start.Add(a.retentionOf(seg.Camera)); seg.Expires.After(limit) {
			if err := a.updateSegment(id, func(s *storage.Segment) error {
				s.Expires = s.Start.Add(a.retentionOf(s.Camera))
				return nil
			}); err != nil {
				return res, err
			}
			res.Shortened++
		}
	}
	if res.Missing > 0 {
		a.raise(AlarmMissingObjects, fmt.Sprintf("%d indexed segments are missing from the store (first: %s)", res.Missing, firstMissing))
	}
	if res.Unplayable > 0 {
		a.raise(AlarmUnplayable, fmt.Sprintf("%d objects in the store are not playable segments; indexed as unplayable, they expire like any footage (first: %s)", res.Unplayable, firstUnplayable))
	}
	return res, nil
}

// indexOrphan checks that an object without an index entry is a playable
// segment, and indexes it. Errors wrapping segmenter.ErrCorrupt or
// ErrNoFootage mean it is not; others are I/O errors.
func (a *Agent) indexOrphan(ctx context.Context, store storage.ObjectStore, kp storage.KeyParts) (storage.Segment, error) {
	key := storage.SegmentKey(kp.District, kp.Camera, kp.Start, kp.ID)
	rc, obj, err := store.Get(ctx, key)
	if err != nil {
		return storage.Segment{}, err
	}
	defer rc.Close()
	// The fs store hands out the file itself: probe it in place. Others are
	// copied once to a local file rather than probed with many small reads.
	r, ok := rc.(*os.File)
	if !ok {
		tmp, err := os.CreateTemp(filepath.Join(a.cfg.DataDir, tmpDir), "object-*")
		if err != nil {
			return storage.Segment{}, err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		if _, err := io.Copy(tmp, rc); err != nil {
			return storage.Segment{}, fmt.Errorf("read %s: %w", key, err)
		}
		r = tmp
	}
	info, err := segmenter.Probe(r, obj.Size)
	if err != nil {
		return storage.Segment{}, err
	}
	if !info.Complete {
		return storage.Segment{}, fmt.Errorf("%w: %s has %d bytes of garbage after the last fragment", segmenter.ErrCorrupt, key, obj.Size-info.ValidSize)
	}
	seg := storage.Segment{
		ID: kp.ID, District: kp.District, Camera: kp.Camera,
		Start: kp.Start, End: kp.Start.Add(info.Duration),
		Bytes: obj.Size, SHA256: info.SHA256, Codec: info.Codec,
		Key: key, Recovered: true,
	}
	seg.Expires = seg.Start.Add(a.retentionOf(kp.Camera))
	if err := keepStoreHold(ctx, store, &seg); err != nil {
		return storage.Segment{}, err
	}
	if err := a.indexSegment(ctx, &seg); err != nil {
		return storage.Segment{}, err
	}
	return seg, nil
}

// keepStoreHold marks a segment found in the store held when its object
// carries a legal hold: the index that knew which hold was lost, and the
// store's word is kept until central's holds arrive again.
func keepStoreHold(ctx context.Context, store storage.ObjectStore, seg *storage.Segment) error {
	on, err := store.LegalHold(ctx, seg.Key)
	if err != nil {
		return fmt.Errorf("legal hold of %s: %w", seg.Key, err)
	}
	if on {
		seg.HeldBy = []string{index.PlaceholderHold}
	}
	return nil
}

// CodecUnplayable marks an indexed object that is not a playable segment:
// kept under retention and holds like any footage, never offered for
// playback.
const CodecUnplayable = "unplayable"

// indexUnplayable indexes an object that is not a playable segment, with
// the start its key gives, so that it expires (and can be held) like the
// footage it is a piece of.
func (a *Agent) indexUnplayable(ctx context.Context, store storage.ObjectStore, kp storage.KeyParts) error {
	key := storage.SegmentKey(kp.District, kp.Camera, kp.Start, kp.ID)
	rc, _, err := store.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	seg := storage.Segment{
		ID: kp.ID, District: kp.District, Camera: kp.Camera,
		// Its length is unknown: the longest a segment may last, so that
		// a hold over any part of it covers it.
		Start: kp.Start, End: kp.Start.Add(config.MaxSegmentLength),
		Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil)), Codec: CodecUnplayable,
		Key: key, Recovered: true,
	}
	seg.Expires = seg.Start.Add(a.retentionOf(kp.Camera))
	if err := keepStoreHold(ctx, store, &seg); err != nil {
		return err
	}
	return a.indexSegment(ctx, &seg)
}
