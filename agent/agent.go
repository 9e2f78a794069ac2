// Package agent is the district server: it records the district's cameras
// on motion into object storage and indexes every segment. It works alone:
// cameras, detectors, segmenters, the upload of finished segments and the
// reconciliation of index and store all live here.
//
// Write order is the crash-safety argument: a segment is written and
// fsynced in the spool, then stored as an object, then indexed, and only
// then removed from the spool. A crash at any point leaves either a spool
// file (recovered and uploaded at the next start) or an object without an
// index entry (indexed by reconciliation at the next start).
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vigil-cctv/vigil/agent/config"
	"github.com/vigil-cctv/vigil/agent/link"
	"github.com/vigil-cctv/vigil/agent/retention"
	"github.com/vigil-cctv/vigil/proto/actions"
	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/fs"
	"github.com/vigil-cctv/vigil/storage/index"
	"github.com/vigil-cctv/vigil/storage/s3"
)

// Options are the parts of an agent that are not in its configuration file.
type Options struct {
	Logger *slog.Logger
	// FFmpeg is the ffmpeg binary used by the pixel motion detector.
	FFmpeg string
	// StallTimeout overrides how long a camera may send nothing before it
	// is declared down (default 10s).
	StallTimeout time.Duration
	// OnStored is called after each segment is stored and indexed.
	OnStored func(storage.Segment)
	// Store replaces the store named in the configuration (tests).
	Store storage.ObjectStore
	// SweepEvery overrides how often the retention sweeper runs (10s).
	SweepEvery time.Duration
}

// Agent records one district.
type Agent struct {
	cfg      *config.Config
	opts     Options
	log      *slog.Logger
	store    *lazyStore
	index    *index.Index
	spoolDir string
	uploads  *uploader
	cameras  []*camera
	link     *link.Link // nil when not enrolled with central
	sweeper  *retention.Sweeper
	holds    *retention.Holds
	// reporting is set once the outbox has started: every index change is
	// then queued for central, linked or not.
	reporting bool

	// fetchSlots bounds the segment fetches served at once, and verified
	// remembers the segments found intact a moment ago (streams.go).
	fetchSlots chan struct{}
	verified   verified

	mu      sync.Mutex
	started time.Time
	alarms  map[string]Alarm
}

// Alarm is a condition an operator must act on.
type Alarm struct {
	Code    string    `json:"code"`
	Message string    `json:"message"`
	Since   time.Time `json:"since"`
}

// Alarm codes.
const (
	AlarmStoreFailing   = "store_failing"
	AlarmMissingObjects = "missing_objects"
	AlarmUnplayable     = "unplayable_objects"
	AlarmSpoolRecovery  = "spool_recovery_failed"
	AlarmReconcile      = "reconcile_failed"
	AlarmLocalAPI       = "local_api_failed"
	AlarmSpoolLost      = "spool_file_lost"
	AlarmIdentity       = "identity"
	AlarmClock          = "clock_offset"
	AlarmHolds          = "holds"
	AlarmNotRecording   = "not_recording"
)

// New opens the agent's store, index and spool. Nothing is recorded until
// Run.
func New(cfg *config.Config, opts Options) (*Agent, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	a := &Agent{
		cfg: cfg, opts: opts,
		log:        opts.Logger.With("component", "agent", "district", cfg.District),
		spoolDir:   filepath.Join(cfg.DataDir, "spool"),
		alarms:     make(map[string]Alarm),
		fetchSlots: make(chan struct{}, maxFetches),
	}
	// The data dir holds footage being written and the local API socket:
	// only the agent's user may enter it.
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: data dir: %w", err)
	}
	ix, err := index.Open(filepath.Join(cfg.DataDir, "index.db"), index.Options{})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.index = ix
	for _, dir := range []string{a.spoolDir, filepath.Join(cfg.DataDir, tmpDir)} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			ix.Close()
			return nil, fmt.Errorf("agent: data dir: %w", err)
		}
	}
	// Copies left by a crash during reconciliation.
	if err := clearDir(filepath.Join(cfg.DataDir, tmpDir)); err != nil {
		ix.Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.store = &lazyStore{open: func(ctx context.Context) (storage.ObjectStore, error) { return openStore(ctx, cfg.Storage) }}
	if opts.Store != nil {
		a.store.store = opts.Store
	} else if err := a.tryStore(); err != nil {
		// Record anyway: segments wait in the spool until the store answers.
		a.raise(AlarmStoreFailing, fmt.Sprintf("object store unreachable, recording into the spool: %v", err))
	}
	a.uploads = newUploader(a)
	if err := a.setupLink(); err != nil {
		ix.Close()
		return nil, err
	}
	if err := a.setupRetention(); err != nil {
		ix.Close()
		return nil, err
	}
	for i := range cfg.Cameras {
		cam, err := newCamera(a, &cfg.Cameras[i])
		if err != nil {
			a.closeStorage()
			return nil, err
		}
		a.cameras = append(a.cameras, cam)
	}
	return a, nil
}

func openStore(ctx context.Context, sc config.Storage) (storage.ObjectStore, error) {
	if sc.FS != nil {
		return fs.Open(sc.FS.Path)
	}
	return s3.Open(ctx, sc.S3.StoreConfig())
}

// Index gives read access to the segment index.
func (a *Agent) Index() *index.Index { return a.index }

// tryStore opens the store once, briefly, at start.
func (a *Agent) tryStore() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := a.store.get(ctx)
	return err
}

// clearDir removes the files of dir.
func clearDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// Run records until ctx ends, then closes open segments, finishes pending
// uploads (bounded by a grace period) and closes the index.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	a.started = time.Now()
	a.mu.Unlock()
	defer a.closeStorage()

	// Without the local API the agent still records: an alarm, not a stop.
	if stopAPI, err := a.serveLocalAPI(); err != nil {
		a.raise(AlarmLocalAPI, err.Error())
	} else {
		defer stopAPI()
	}

	upCtx, stopUploads := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); a.uploads.run(upCtx) }()

	// Leftovers are listed before the cameras write anything, and recovered
	// while they record.
	leftovers := a.listSpool()
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.recoverSpool(leftovers)
		a.reconcileWhenReady(ctx)
	}()

	if a.reporting {
		wg.Add(1)
		go func() { defer wg.Done(); a.reportCameras(ctx) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); a.pruneJournal(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); a.runRetention(ctx) }()
	if a.link != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.link.Run(ctx) }()
	}

	var camWG sync.WaitGroup
	for _, cam := range a.cameras {
		camWG.Add(1)
		go func() { defer camWG.Done(); cam.run(ctx) }()
	}
	a.journal(ctx, index.JournalEntry{Time: time.Now(), Action: actions.AgentStarted, Detail: fmt.Sprintf("version %s, %d cameras", Version, len(a.cameras))})
	a.log.Info("agent started", "cameras", len(a.cameras), "retention", a.cfg.Retention.String(), "data_dir", a.cfg.DataDir)
	<-ctx.Done()
	camWG.Wait() // every open segment is closed and queued

	// Give queued uploads a moment; what remains stays in the spool and is
	// uploaded at the next start.
	drained := a.uploads.drain(15 * time.Second)
	stopUploads()
	wg.Wait()
	if !drained {
		a.log.Warn("agent stopped with segments still in the spool; they are uploaded at the next start")
	}
	a.log.Info("agent stopped")
	return nil
}

// journalKeep is how long the district's chained log is kept locally:
// central holds it in its audit log; the local copy is for an inspection on
// site and for resending after a long outage.
const journalKeep = 30 * 24 * time.Hour

// pruneJournal forgets old district log entries daily.
func (a *Agent) pruneJournal(ctx context.Context) {
	tick := time.NewTicker(24 * time.Hour)
	defer tick.Stop()
	for {
		if n, err := a.index.PruneJournal(time.Now().Add(-journalKeep)); err != nil {
			a.log.Error("prune district log", "error", err)
		} else if n > 0 {
			a.log.Info("old district log entries pruned", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (a *Agent) closeStorage() {
	if err := a.index.Close(); err != nil {
		a.log.Error("close index", "error", err)
	}
	if st := a.store.opened(); st != nil && a.opts.Store == nil {
		if err := st.Close(); err != nil {
			a.log.Error("close store", "error", err)
		}
	}
}

func (a *Agent) raise(code, msg string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	al, ok := a.alarms[code]
	if !ok {
		al.Since = time.Now().UTC()
		a.log.Error("alarm raised", "code", code, "message", msg)
	}
	al.Code, al.Message = code, msg
	a.alarms[code] = al
}

func (a *Agent) clear(code string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.alarms[code]; ok {
		delete(a.alarms, code)
		a.log.Info("alarm cleared", "code", code)
	}
}

// Status is the agent's state as operators and central see it.
type Status struct {
	District string         `json:"district"`
	Started  time.Time      `json:"started"`
	Cameras  []CameraStatus `json:"cameras"`
	// Spooled counts finished segments waiting to be stored.
	Spooled int     `json:"spooled"`
	Alarms  []Alarm `json:"alarms"`
	// Central is the link to central; nil when the agent is not enrolled.
	Central *link.Status `json:"central,omitempty"`
	// ReportsPending counts reports central has not yet acknowledged.
	ReportsPending int `json:"reports_pending"`
}

// Status returns a snapshot.
func (a *Agent) Status() Status {
	st := Status{District: a.cfg.District, Spooled: a.uploads.pending(), Alarms: []Alarm{}}
	for _, c := range a.cameras {
		st.Cameras = append(st.Cameras, c.status())
	}
	if a.link != nil {
		ls := a.link.Status()
		st.Central = &ls
	}
	st.ReportsPending, _, _ = a.index.OutboxState()
	a.mu.Lock()
	st.Started = a.started
	for _, al := range a.alarms {
		st.Alarms = append(st.Alarms, al)
	}
	a.mu.Unlock()
	return st
}

// retentionOf returns the retention of a camera, or the district's.
func (a *Agent) retentionOf(camera string) time.Duration {
	if c, ok := a.cfg.CameraByID(camera); ok {
		return c.Retention.Std()
	}
	return a.cfg.Retention.Std()
}

var errStopped = errors.New("agent stopped")
