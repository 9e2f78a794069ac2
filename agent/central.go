package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-cctv/vigil/agent/enroll"
	"github.com/vigil-cctv/vigil/agent/link"
	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/index"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Version is the agent's version, sent to central.
var Version = "dev"

// setupLink prepares the link to central when the agent is enrolled. An
// agent that never was enrolled records alone; nothing is queued for
// central. Reporting starts with a report of every segment already indexed,
// in one transaction, so central's catalog ends up equal to the index; once
// started it never stops, even while the identity cannot be used, so that
// nothing is left out when the link works again.
func (a *Agent) setupLink() error {
	oid, err := a.index.OutboxID()
	if err != nil {
		return err
	}
	a.reporting = oid != ""
	id, err := enroll.Load(a.cfg.DataDir)
	switch {
	case errors.Is(err, enroll.ErrNotEnrolled):
		if a.reporting {
			a.raise(AlarmIdentity, "agent identity missing: reports for central wait in the outbox (run vigil agent enroll)")
		} else {
			a.log.Info("not enrolled with central: recording locally only (see vigil agent enroll)")
		}
		return nil
	case err != nil:
		// Record anyway: the footage matters more than the link.
		a.raise(AlarmIdentity, fmt.Sprintf("agent identity unusable, not connecting to central: %v", err))
		return nil
	case id.District != a.cfg.District:
		return fmt.Errorf("agent: enrolled for district %q but configured for %q", id.District, a.cfg.District)
	}
	if id.ExpiresSoon(time.Now()) {
		a.raise(AlarmIdentity, fmt.Sprintf("agent certificate expires %s: enrol again", id.Certificate().NotAfter.Format(time.DateOnly)))
	}
	if !a.reporting {
		journal, err := a.journalPayloads()
		if err != nil {
			return err
		}
		n, err := a.index.StartOutbox(context.Background(), segmentStored, journal...)
		if err != nil {
			return err
		}
		a.reporting = true
		a.log.Info("reporting to central started", "segments_to_report", n)
	}
	var cams []string
	for _, c := range a.cfg.Cameras {
		cams = append(cams, c.ID)
	}
	a.link, err = link.New(link.Config{
		District: a.cfg.District, Central: id.Central, TLS: id.ClientTLS(), Index: a.index,
		Version: Version, Cameras: cams, Heartbeat: a.heartbeat, Resync: a.resync, Logger: a.opts.Logger,
		Commands: a.command, Streams: a.streamCommand, Holds: a.holdIDs,
	})
	return err
}

// holdIDs are the holds the agent keeps (applied or being applied or
// released), reported in the Hello.
func (a *Agent) holdIDs() ([]string, error) {
	hs, err := a.index.Holds()
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(hs))
	for _, h := range hs {
		ids = append(ids, h.ID)
	}
	return ids, nil
}

func segmentStored(s storage.Segment) ([]byte, error) { return link.SegmentStored(s, time.Now()) }

// journalPayloads are reports of every entry of the district's chained log
// still kept; central skips those it has already linked.
func (a *Agent) journalPayloads() ([][]byte, error) {
	var out [][]byte
	for next := uint64(1); ; {
		batch, err := a.index.JournalEntries(next, 1024)
		if err != nil {
			return nil, err
		}
		for _, e := range batch {
			next = e.Seq + 1
			p, err := link.Journal(e)
			if err != nil {
				// Central sees the gap and records it; one bad entry must
				// not stop every later one from being reported.
				a.log.Error("journal entry cannot be reported", "seq", e.Seq, "error", err)
				continue
			}
			out = append(out, p)
		}
		if len(batch) < 1024 {
			return out, nil
		}
	}
}

// journal records what happens at the district in its chained log, reported
// to central in the same transaction once reporting has started.
func (a *Agent) journal(ctx context.Context, e index.JournalEntry) error {
	var report func(index.JournalEntry) ([]byte, error)
	if a.reporting {
		report = link.Journal
	}
	_, err := a.index.Journal(ctx, e, report)
	if err != nil {
		a.log.Error("journal", "action", e.Action, "error", err)
	}
	return err
}

// resync replaces the outbox with the agent's whole state: every indexed
// segment, every camera's status, and the chained log.
func (a *Agent) resync(ctx context.Context) error {
	extra, err := a.journalPayloads()
	if err != nil {
		return err
	}
	for _, c := range a.cameras {
		p, err := link.CameraStatus(a.cameraStatusReport(c.status()), time.Now())
		if err != nil {
			return err
		}
		extra = append(extra, p)
	}
	n, err := a.index.RestartOutbox(ctx, segmentStored, extra...)
	if err == nil {
		a.log.Warn("outbox restarted to resynchronise central", "segments", n)
	}
	return err
}

// indexSegment indexes a stored segment, with its report to central in the
// same transaction once reporting has started.
func (a *Agent) indexSegment(ctx context.Context, seg *storage.Segment) error {
	if !a.reporting {
		return a.index.Put(ctx, seg)
	}
	payload, err := segmentStored(*seg)
	if err != nil {
		return err
	}
	_, err = a.index.PutReported(ctx, seg, payload)
	return err
}

// updateSegment changes an indexed segment, reporting the new state to
// central once reporting has started.
func (a *Agent) updateSegment(id string, fn func(*storage.Segment) error) error {
	if !a.reporting {
		return a.index.Update(id, fn)
	}
	return a.index.UpdateReported(id, fn, segmentStored)
}

func (a *Agent) cameraStatusReport(st CameraStatus) *agentv1.CameraStatus {
	return &agentv1.CameraStatus{
		RetentionSeconds: int64(a.retentionOf(st.ID) / time.Second),
		Camera:           st.ID, State: string(st.Stream.State), Since: timestamppb.New(st.Stream.Since),
		LastError: clipText(st.Stream.LastError), Codec: string(st.Stream.Codec),
		Width: int32(st.Stream.Width), Height: int32(st.Stream.Height),
		Recording: st.Recording, Detector: clipText(st.Detector),
	}
}

// clipText keeps status texts within what central accepts.
func clipText(s string) string {
	const maxText = 1000
	if len(s) > maxText {
		return s[:maxText]
	}
	return s
}

// reportCameras queues a report whenever a camera's state changes, until
// ctx ends.
func (a *Agent) reportCameras(ctx context.Context) {
	last := map[string]*agentv1.CameraStatus{}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		for _, c := range a.cameras {
			st := c.status()
			cs := a.cameraStatusReport(st)
			if prev := last[st.ID]; prev != nil && prev.State == cs.State && prev.Detector == cs.Detector &&
				prev.LastError == cs.LastError && prev.Recording == cs.Recording {
				continue
			}
			payload, err := link.CameraStatus(cs, time.Now())
			if err == nil {
				_, err = a.index.AppendReport(ctx, payload)
			}
			if err != nil {
				if ctx.Err() == nil {
					a.log.Error("queue camera status report", "camera", st.ID, "error", err)
				}
				continue
			}
			last[st.ID] = cs
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// usageReporter is implemented by stores that know their capacity.
type usageReporter interface {
	Usage(ctx context.Context) (used, capacity, free int64, err error)
}

// heartbeat is the agent's state sent to central every few seconds.
func (a *Agent) heartbeat() *agentv1.Heartbeat {
	a.checkClock()
	st := a.Status()
	hb := &agentv1.Heartbeat{SpooledSegments: int64(st.Spooled)}
	if c, ok := a.sweeper.LastCapacity(); ok && c.Total > 0 {
		// What disk pressure is judged by (the quota when one is set).
		hb.StorageUsedBytes, hb.StorageCapacityBytes = c.Used, c.Total
	} else if u, ok := a.store.opened().(usageReporter); ok {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if used, capacity, _, err := u.Usage(ctx); err == nil {
			hb.StorageUsedBytes, hb.StorageCapacityBytes = used, capacity
		}
		cancel()
	}
	for _, al := range st.Alarms {
		hb.Alarms = append(hb.Alarms, &agentv1.Alarm{Code: al.Code, Message: clipText(al.Message), Since: timestamppb.New(al.Since)})
	}
	return hb
}
