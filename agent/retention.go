package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-cctv/vigil/agent/config"
	"github.com/vigil-cctv/vigil/agent/segmenter"
	"github.com/vigil-cctv/vigil/proto/actions"

	"github.com/vigil-cctv/vigil/agent/link"
	"github.com/vigil-cctv/vigil/agent/retention"
	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/index"
)

// clockTolerance is how far the agent's clock may be from central's before
// an alarm is raised.
const clockTolerance = time.Minute

// setupRetention builds the sweeper and the hold handler.
func (a *Agent) setupRetention() error {
	store := func(ctx context.Context) (storage.ObjectStore, error) { return a.store.get(ctx) }
	a.holds = &retention.Holds{Index: a.index, Store: store, Log: a.logged, Now: a.expiryNow}
	cfg := retention.Config{
		Index: a.index, Store: store, Now: a.expiryNow, Log: a.logged,
		Capacity:  a.capacity(),
		HighWater: a.cfg.Storage.HighWatermark, LowWater: a.cfg.Storage.LowWatermark,
		Raise: a.raise, Clear: a.clear, Logger: a.opts.Logger,
	}
	if a.opts.SweepEvery > 0 {
		cfg.Interval = a.opts.SweepEvery
	}
	if a.reporting {
		cfg.Report = func(seg storage.Segment, reason string, at time.Time) ([]byte, error) {
			return link.SegmentDeleted(seg, reason, at)
		}
	}
	sw, err := retention.New(cfg)
	if err != nil {
		return err
	}
	a.sweeper = sw
	return nil
}

// logged is a district log entry with its report to central once
// reporting has started.
func (a *Agent) logged(e index.JournalEntry) *index.Logged {
	l := &index.Logged{Entry: e}
	if a.reporting {
		l.Report = link.Journal
	}
	return l
}

// expiryNow is the clock expiry is judged by: the agent's, but never ahead
// of central's (estimated from its last Welcome and this process's
// monotonic clock). Deleting early cannot be undone; an agent clock
// running ahead (a bad NTP step) would otherwise destroy footage before
// its time. A clock running behind is alarmed (checkClock).
func (a *Agent) expiryNow() time.Time {
	now := time.Now()
	if a.link != nil {
		if central, ok := a.link.CentralNow(); ok && central.Before(now) {
			return central
		}
	}
	return now
}

// checkClock raises or clears the clock alarm from the offset measured at
// the link's last Hello.
func (a *Agent) checkClock() {
	if a.link == nil {
		return
	}
	st := a.link.Status()
	off := st.ClockOffset
	if off > clockTolerance || off < -clockTolerance {
		a.raise(AlarmClock, fmt.Sprintf("agent clock differs from central's by %s: expiry follows the earlier of the two clocks; fix NTP", off.Round(time.Second)))
	} else if !st.Since.IsZero() {
		a.clear(AlarmClock)
	}
}

// capacity measures the store for disk-pressure shedding: the quota
// against the index's total when a quota is set, else the filesystem of an
// fs store; nil (no shedding) for s3 without a quota.
func (a *Agent) capacity() func(context.Context) (retention.Capacity, error) {
	if q := a.cfg.Storage.QuotaBytes; q > 0 {
		return func(context.Context) (retention.Capacity, error) {
			used, err := a.index.Usage()
			return retention.Capacity{Used: used, Total: q}, err
		}
	}
	if a.cfg.Storage.FS == nil {
		a.log.Warn("storage.quota_bytes not set: no disk-pressure shedding on s3")
		return nil
	}
	return func(ctx context.Context) (retention.Capacity, error) {
		st, err := a.store.get(ctx)
		if err != nil {
			return retention.Capacity{}, err
		}
		u, ok := st.(usageReporter)
		if !ok {
			return retention.Capacity{}, nil
		}
		used, total, _, err := u.Usage(ctx)
		return retention.Capacity{Used: used, Total: total}, err
	}
}

// runRetention finishes interrupted hold changes, then sweeps until ctx
// ends. A retention shortened in the configuration is applied to recorded
// footage by reconciliation at start (and reported to central).
func (a *Agent) runRetention(ctx context.Context) {
	if err := a.holds.Resume(ctx); err != nil {
		a.raise(AlarmHolds, fmt.Sprintf("holds not fully in force in the store: %v", err))
	}
	go a.sweepQuarantineEvery(ctx, time.Minute/2)
	a.sweeper.Run(ctx)
}

// sweepQuarantineEvery applies retention to spool files set aside as not
// segments (quarantine): they hold pieces of footage too, and must not
// outlive it.
func (a *Agent) sweepQuarantineEvery(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		a.sweepQuarantine(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweepQuarantine deletes quarantined files whose start (from their name,
// "<camera>-<start-ms>-<id>.mp4[.part]"; else their modification time less
// the longest a segment may last) is older than the camera's retention.
func (a *Agent) sweepQuarantine(ctx context.Context) {
	dir := filepath.Join(a.cfg.DataDir, quarantineDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.raise(retention.AlarmDeletionFailed, fmt.Sprintf("quarantine: %v", err))
		}
		return
	}
	now := a.expiryNow()
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		camera, start, ok := quarantinedStart(e.Name())
		if !ok {
			info, err := e.Info()
			if err != nil {
				continue
			}
			start = info.ModTime().Add(-config.MaxSegmentLength)
		}
		if now.Before(start.Add(a.retentionOf(camera))) {
			continue
		}
		if held, err := a.index.Covering(a.cfg.District, validCamera(camera), start, start.Add(config.MaxSegmentLength)); err != nil || len(held) > 0 {
			continue // footage a hold covers, or cannot tell: kept
		}
		path := filepath.Join(dir, e.Name())
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			a.raise(retention.AlarmDeletionFailed, fmt.Sprintf("quarantined file %s past retention not deleted: %v", path, err))
			continue
		}
		a.journal(ctx, index.JournalEntry{Time: time.Now(), Action: actions.SegmentDeleted, Camera: validCamera(camera),
			Detail: clipText(fmt.Sprintf("reason retention; quarantined spool file %s; start %s", e.Name(), start.UTC().Format(time.RFC3339Nano)))})
	}
}

// quarantinedStart reads the camera and start of a quarantined file name.
func quarantinedStart(name string) (camera string, start time.Time, ok bool) {
	base := strings.TrimSuffix(strings.TrimSuffix(name, segmenter.PartSuffix), segmenter.CompleteSuffix)
	// The camera id may itself contain '-': the start is the second-last
	// field.
	parts := strings.Split(base, "-")
	if len(parts) < 3 {
		return "", time.Time{}, false
	}
	ms, err := strconv.ParseInt(parts[len(parts)-2], 10, 64)
	if err != nil || ms <= 0 {
		return "", time.Time{}, false
	}
	return strings.Join(parts[:len(parts)-2], "-"), time.UnixMilli(ms), true
}

// validCamera is camera if it is a valid id, else "" (for the log).
func validCamera(camera string) string {
	if storage.ValidateName("camera", camera) != nil {
		return ""
	}
	return camera
}

// command carries out central's hold commands.
func (a *Agent) command(ctx context.Context, cmd *agentv1.Command) *agentv1.CommandAck {
	ack := &agentv1.CommandAck{RequestId: cmd.GetRequestId()}
	switch body := cmd.Body.(type) {
	case *agentv1.Command_HoldApply:
		h := body.HoldApply
		n, err := a.holds.Apply(ctx, index.Hold{
			ID: h.GetHoldId(), District: a.cfg.District, Cameras: h.GetCameras(),
			From: h.GetFrom().AsTime(), To: h.GetTo().AsTime(), Authority: h.GetAuthority(), Case: h.GetCaseRef(),
		})
		ack.Segments = int64(n)
		if err != nil {
			ack.Error = clipText(err.Error())
			a.raise(AlarmHolds, fmt.Sprintf("hold %s: %v", h.GetHoldId(), err))
			return ack
		}
		a.clear(AlarmHolds)
		a.log.Info("hold applied", "hold", h.GetHoldId(), "segments", n)
		ack.Ok = true
	case *agentv1.Command_HoldRelease:
		n, err := a.holds.Release(ctx, body.HoldRelease.GetHoldId(), body.HoldRelease.GetReason())
		ack.Segments = int64(n)
		if err != nil {
			ack.Error = clipText(err.Error())
			a.raise(AlarmHolds, fmt.Sprintf("release of hold %s: %v", body.HoldRelease.GetHoldId(), err))
			return ack
		}
		a.log.Info("hold released", "hold", body.HoldRelease.GetHoldId(), "segments", n)
		ack.Ok = true
	default:
		ack.Error = fmt.Sprintf("command %T not supported by this agent", cmd.Body)
	}
	return ack
}
