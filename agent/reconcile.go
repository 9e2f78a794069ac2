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

	"github.com/vigil-cctv/vigil/agent/segmenter"
	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/index"
)

// quarantineDir receives spool files that cannot be read as segments; they
// are kept for a person to look at, never deleted by the agent.
const quarantineDir = "quarantine"

// recoverSpool queues what a previous run left in the spool: finished
// segments not yet stored, and segments cut short by a crash (trimmed to
// their last complete fragment).
func (a *Agent) recoverSpool() {
	dirs, err := os.ReadDir(a.spoolDir)
	if err != nil {
		a.raise(AlarmSpoolRecovery, fmt.Sprintf("read spool: %v", err))
		return
	}
	var recovered, failed int
	for _, d := range dirs {
		if !d.IsDir() || d.Name() == quarantineDir {
			continue
		}
		camera := d.Name()
		if storage.ValidateName("camera", camera) != nil {
			continue
		}
		files, err := os.ReadDir(filepath.Join(a.spoolDir, camera))
		if err != nil {
			a.raise(AlarmSpoolRecovery, fmt.Sprintf("read spool of %s: %v", camera, err))
			continue
		}
		for _, f := range files {
			path := filepath.Join(a.spoolDir, camera, f.Name())
			if !strings.HasSuffix(f.Name(), segmenter.PartSuffix) && !strings.HasSuffix(f.Name(), segmenter.CompleteSuffix) {
				continue
			}
			fin, err := segmenter.RecoverFile(path)
			if err != nil {
				failed++
				a.quarantine(path, err)
				continue
			}
			if fin == nil {
				continue // held no footage
			}
			recovered++
			a.uploads.enqueue(camera, fin)
		}
	}
	if recovered > 0 || failed > 0 {
		a.log.Info("spool recovered", "segments", recovered, "quarantined", failed)
	}
}

func (a *Agent) quarantine(path string, cause error) {
	dir := filepath.Join(a.spoolDir, quarantineDir)
	dst := filepath.Join(dir, filepath.Base(filepath.Dir(path))+"-"+filepath.Base(path))
	err := os.MkdirAll(dir, 0o700)
	if err == nil {
		err = os.Rename(path, dst)
	}
	msg := fmt.Sprintf("unreadable spool file %s: %v", path, cause)
	if err != nil {
		msg += fmt.Sprintf(" (could not move it aside: %v)", err)
	} else {
		msg += " (moved to " + dst + ")"
	}
	a.raise(AlarmSpoolRecovery, msg)
}

// reconcileWhenReady runs reconcile once, logging its outcome.
func (a *Agent) reconcileWhenReady(ctx context.Context) {
	res, err := a.reconcile(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.raise(AlarmReconcile, fmt.Sprintf("reconcile index and store: %v", err))
		}
		return
	}
	a.clear(AlarmReconcile)
	a.log.Info("index and store reconciled", "objects", res.Objects, "indexed", res.Indexed,
		"missing", res.Missing, "unplayable", res.Unplayable)
}

// ReconcileResult counts what reconciliation found.
type ReconcileResult struct {
	Objects    int // segment objects in the store
	Indexed    int // objects that had no index entry and were indexed
	Missing    int // index entries without an object, now marked missing
	Unplayable int // objects without an index entry that are not playable segments
}

// reconcile makes index and store agree: objects without an index entry are
// indexed (after checking they are playable segments), entries without an
// object are marked missing and reported. It deletes nothing, ever: an
// empty or lost index is a reason to rebuild it, not to destroy footage.
func (a *Agent) reconcile(ctx context.Context) (ReconcileResult, error) {
	var res ReconcileResult
	seen := make(map[string]bool)
	var orphans []storage.KeyParts
	var firstUnplayable string
	err := a.store.List(ctx, a.cfg.District+"/", func(obj storage.ObjectInfo) error {
		kp, err := storage.ParseSegmentKey(obj.Key)
		if err != nil {
			return nil // not ours to judge
		}
		res.Objects++
		seen[kp.ID] = true
		if _, err := a.index.Get(kp.ID); errors.Is(err, index.ErrNotFound) {
			orphans = append(orphans, kp)
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("list store: %w", err)
	}
	for _, kp := range orphans {
		if a.uploads.storedThisRun(kp.ID) {
			continue
		}
		seg, err := a.indexOrphan(ctx, kp)
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			res.Unplayable++
			if firstUnplayable == "" {
				firstUnplayable = storage.SegmentKey(kp.District, kp.Camera, kp.Start, kp.ID)
			}
			a.log.Error("object in the store is not a playable segment; left alone", "id", kp.ID, "error", err)
			continue
		}
		res.Indexed++
		a.log.Info("indexed object found in the store", "key", seg.Key)
	}

	var missing, found []string
	var firstMissing string
	err = a.index.ForEach(func(seg storage.Segment) error {
		switch {
		case !seen[seg.ID] && !seg.Missing && !a.uploads.storedThisRun(seg.ID):
			missing = append(missing, seg.ID)
			if firstMissing == "" {
				firstMissing = seg.Key
			}
		case seen[seg.ID] && seg.Missing:
			found = append(found, seg.ID)
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("walk index: %w", err)
	}
	for _, id := range missing {
		if err := a.index.SetMissing(id, true); err != nil {
			return res, err
		}
	}
	for _, id := range found {
		if err := a.index.SetMissing(id, false); err != nil {
			return res, err
		}
	}
	res.Missing = len(missing)
	if res.Missing > 0 {
		a.raise(AlarmMissingObjects, fmt.Sprintf("%d indexed segments are missing from the store (first: %s)", res.Missing, firstMissing))
	}
	if res.Unplayable > 0 {
		a.raise(AlarmUnplayable, fmt.Sprintf("%d objects in the store are not playable segments and were not indexed (first: %s)", res.Unplayable, firstUnplayable))
	}
	return res, nil
}

// indexOrphan reads an object that has no index entry, checks that it is a
// playable segment, and indexes it.
func (a *Agent) indexOrphan(ctx context.Context, kp storage.KeyParts) (storage.Segment, error) {
	key := storage.SegmentKey(kp.District, kp.Camera, kp.Start, kp.ID)
	rc, _, err := a.store.Get(ctx, key)
	if err != nil {
		return storage.Segment{}, err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(a.cfg.DataDir, ".reconcile-*")
	if err != nil {
		return storage.Segment{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(tmp, h), rc)
	if err != nil {
		return storage.Segment{}, fmt.Errorf("read %s: %w", key, err)
	}
	info, err := segmenter.Probe(tmp, size)
	if err != nil {
		return storage.Segment{}, err
	}
	if !info.Complete {
		return storage.Segment{}, fmt.Errorf("%s: %d bytes of garbage after the last fragment", key, size-info.ValidSize)
	}
	seg := storage.Segment{
		ID: kp.ID, District: kp.District, Camera: kp.Camera,
		Start: kp.Start, End: kp.Start.Add(info.Duration),
		Bytes: size, SHA256: hex.EncodeToString(h.Sum(nil)), Codec: info.Codec,
		Key: key, Recovered: true,
	}
	seg.Expires = seg.Start.Add(a.retentionOf(kp.Camera))
	if err := a.index.Put(ctx, &seg); err != nil {
		return storage.Segment{}, err
	}
	return seg, nil
}
