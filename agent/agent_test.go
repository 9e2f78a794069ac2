package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent/camerasim"
	"github.com/vigil-cctv/vigil/agent/config"
	"github.com/vigil-cctv/vigil/agent/ingest"
	"github.com/vigil-cctv/vigil/agent/internal/agenttest"
	"github.com/vigil-cctv/vigil/agent/internal/fftest"
	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/s3"
	"github.com/vigil-cctv/vigil/storage/s3/miniotest"
)

func clipsNamed(t testing.TB, names ...string) []*camerasim.Clip {
	t.Helper()
	var out []*camerasim.Clip
	for _, n := range names {
		out = append(out, agenttest.Clip(t, n))
	}
	return out
}

// testConfig is a district with an fs store in a temp dir.
func testConfig(t testing.TB, cams ...config.Camera) *config.Config {
	t.Helper()
	dir := t.TempDir()
	cfg := &config.Config{
		District: "test", DataDir: filepath.Join(dir, "data"), Cameras: cams,
		Storage: config.Storage{FS: &config.FSStorage{Path: filepath.Join(dir, "footage")}},
	}
	if err := cfg.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

type runningAgent struct {
	*Agent
	cancel   context.CancelFunc
	done     chan error
	logs     *agenttest.LogBuffer
	stopOnce sync.Once

	mu     sync.Mutex
	stored []storage.Segment
}

func startAgent(t testing.TB, cfg *config.Config, opts Options) *runningAgent {
	t.Helper()
	return startAgentWith(t, cfg, opts, nil)
}

// startAgentWith lets a test change the agent between New and Run.
func startAgentWith(t testing.TB, cfg *config.Config, opts Options, edit func(*Agent)) *runningAgent {
	t.Helper()
	ra := &runningAgent{logs: &agenttest.LogBuffer{}, done: make(chan error, 1)}
	opts.Logger = slog.New(slog.NewTextHandler(ra.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.OnStored = func(s storage.Segment) {
		ra.mu.Lock()
		ra.stored = append(ra.stored, s)
		ra.mu.Unlock()
	}
	a, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ra.Agent = a
	if edit != nil {
		edit(a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ra.cancel = cancel
	go func() { ra.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		ra.stop(t)
		if t.Failed() {
			t.Logf("agent logs:\n%s", ra.logs.String())
		}
	})
	return ra
}

// stop cancels the agent and waits for Run to return; later calls do nothing.
func (ra *runningAgent) stop(t testing.TB) {
	ra.stopOnce.Do(func() {
		ra.cancel()
		select {
		case err := <-ra.done:
			if err != nil {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("agent did not stop within 30 s")
		}
	})
}

func (ra *runningAgent) segments() []storage.Segment {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	out := append([]storage.Segment(nil), ra.stored...)
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// checkStoredSegment proves a stored object is a playable segment whose
// container duration agrees with the index.
func checkStoredSegment(t *testing.T, cfg *config.Config, seg storage.Segment, codec string) {
	t.Helper()
	path := filepath.Join(cfg.Storage.FS.Path, seg.Key)
	r, err := fftest.Check(path)
	if err != nil {
		t.Errorf("segment %s: %v", seg.Key, err)
		return
	}
	if r.Codec != codec {
		t.Errorf("segment %s: codec %s, want %s", seg.Key, r.Codec, codec)
	}
	if d := r.Duration - seg.Duration(); d > 500*time.Millisecond || d < -500*time.Millisecond {
		t.Errorf("segment %s: ffprobe says %v, index says %v", seg.Key, r.Duration, seg.Duration())
	}
	if r.DecodeErrors != "" {
		t.Errorf("segment %s: decode errors: %s", seg.Key, r.DecodeErrors)
	}
	st, err := os.Stat(path)
	if err != nil || st.Size() != seg.Bytes {
		t.Errorf("segment %s: size on disk differs from the index (%v)", seg.Key, err)
	}
}

type span struct{ from, to time.Time }

// covered reports whether the union of the segments covers [from, to].
func covered(segs []storage.Segment, from, to time.Time) bool {
	t := from
	for _, s := range segs {
		if s.Start.After(t.Add(100 * time.Millisecond)) {
			continue
		}
		if s.End.After(t) {
			t = s.End
		}
		if !t.Before(to) {
			return true
		}
	}
	return !t.Before(to)
}

// TestEndToEndMotionRecording plays a clip with motion at known seconds to
// an agent in motion mode and checks that every motion interval is stored,
// with its pre- and post-roll, that still periods are not, and that every
// stored segment is a playable file.
func TestEndToEndMotionRecording(t *testing.T) {
	t.Parallel()
	clip := clipsNamed(t, "walk")[0]
	sim := agenttest.StartSim(t, "127.0.0.1:0", clip)
	pre, post := time.Second, 2*time.Second
	cfg := testConfig(t, config.Camera{
		ID: "gate", URL: sim.URL(1), Transport: config.TransportTCP,
		PreRoll: config.Duration(pre), PostRoll: config.Duration(post),
	})
	ra := startAgent(t, cfg, Options{})
	agenttest.WaitFor(t, 10*time.Second, "camera up", func() bool { return ra.Status().Cameras[0].Stream.State == ingest.StateUp })
	upAt := time.Now()

	// Motion events in wall time: the sim says when clip time 0 was sent.
	epoch := sim.Epoch(1)
	var events []span
	for k := 0; k < 3; k++ {
		for _, ev := range clip.Events {
			base := epoch.Add(time.Duration(k) * clip.Duration)
			events = append(events, span{base.Add(ev.Start), base.Add(ev.End)})
		}
	}
	// Record until two events have been seen whole, with post-roll.
	var judged []span
	for _, ev := range events {
		if ev.from.After(upAt.Add(2 * time.Second)) {
			judged = append(judged, ev)
		}
		if len(judged) == 2 {
			break
		}
	}
	stopAt := judged[len(judged)-1].to.Add(post + 3*time.Second)
	time.Sleep(time.Until(stopAt))
	ra.stop(t)

	segs := ra.segments()
	if len(segs) == 0 {
		t.Fatal("nothing recorded")
	}
	t.Logf("camera up at %s; segments %s", upAt.Format("15:04:05.0"), describe(segs))
	for _, ev := range judged {
		t.Logf("motion %s-%s", ev.from.Format("15:04:05.0"), ev.to.Format("15:04:05.0"))
		// Detection may trail the object's entry by a few frames: allow
		// 300 ms on both rolls.
		if !covered(segs, ev.from.Add(-pre+300*time.Millisecond), ev.to.Add(post-300*time.Millisecond)) {
			t.Errorf("motion %s-%s not covered with its rolls by %v", ev.from.Format(time.TimeOnly), ev.to.Format(time.TimeOnly), describe(segs))
		}
	}
	// Still periods: from the end of an event's post-roll (plus detection
	// slack) to the next event's pre-roll (minus a GOP and slack).
	const slack = 1500 * time.Millisecond
	for i := 0; i+1 < len(events); i++ {
		from := events[i].to.Add(post + slack)
		to := events[i+1].from.Add(-pre - time.Second - slack)
		if from.Before(upAt) || !from.Before(to) || to.After(stopAt) {
			continue
		}
		for _, s := range segs {
			if s.Overlaps(from, to) {
				t.Errorf("still period %s-%s recorded by segment %s-%s", from.Format(time.TimeOnly), to.Format(time.TimeOnly),
					s.Start.Format(time.TimeOnly), s.End.Format(time.TimeOnly))
			}
		}
	}
	// Every stored segment plays, and the index has exactly what was stored.
	for _, s := range segs {
		checkStoredSegment(t, cfg, s, "h264")
	}
}

func describe(segs []storage.Segment) string {
	var b strings.Builder
	for _, s := range segs {
		fmt.Fprintf(&b, "[%s-%s] ", s.Start.Format("15:04:05.0"), s.End.Format("15:04:05.0"))
	}
	return b.String()
}

// TestCameraServerRestart stops the camera server mid-stream and starts it
// again on the same address: the open segment is closed and playable, the
// status shows the outage, and recording resumes within 5 s.
func TestCameraServerRestart(t *testing.T) {
	t.Parallel()
	clip := clipsNamed(t, "walk")[0]
	addr := agenttest.FreeAddr(t)
	sim := agenttest.StartSim(t, addr, clip)
	cfg := testConfig(t, config.Camera{ID: "door", URL: sim.URL(1), Mode: config.ModeContinuous, Transport: config.TransportTCP})
	ra := startAgent(t, cfg, Options{})
	agenttest.WaitFor(t, 10*time.Second, "camera up", func() bool { return ra.Status().Cameras[0].Stream.State == ingest.StateUp })
	time.Sleep(4 * time.Second)
	if !ra.Status().Cameras[0].Recording {
		t.Fatal("continuous camera is not recording")
	}
	sim.Close()
	outage := time.Now()
	agenttest.WaitFor(t, 15*time.Second, "camera down", func() bool { return ra.Status().Cameras[0].Stream.State == ingest.StateDown })
	st := ra.Status().Cameras[0]
	if st.Stream.LastError == "" {
		t.Error("down without an error in the status")
	}
	// Retries keep the camera down since the outage began.
	time.Sleep(1500 * time.Millisecond)
	if st := ra.Status().Cameras[0]; st.Stream.State != ingest.StateDown || st.Stream.Since.After(outage.Add(2*time.Second)) {
		t.Errorf("during the outage: state %s since %s (outage at %s)", st.Stream.State,
			st.Stream.Since.Format(time.TimeOnly), outage.Format(time.TimeOnly))
	}
	// The segment that was open when the camera went away is stored.
	agenttest.WaitFor(t, 10*time.Second, "open segment stored", func() bool { return len(ra.segments()) >= 1 })
	first := ra.segments()[0]
	if first.End.Before(outage.Add(-2 * time.Second)) {
		t.Errorf("segment ends at %s, long before the outage at %s", first.End.Format(time.TimeOnly), outage.Format(time.TimeOnly))
	}
	checkStoredSegment(t, cfg, first, "h264")

	sim2 := agenttest.StartSim(t, addr, clip)
	back := time.Now()
	agenttest.WaitFor(t, 5*time.Second, "camera up again within 5 s", func() bool {
		s := ra.Status().Cameras[0]
		return s.Stream.State == ingest.StateUp && s.Stream.Sessions == 2
	})
	t.Logf("reconnected %v after the server came back", time.Since(back).Round(time.Millisecond))
	time.Sleep(3 * time.Second)
	sim2.Close()
	agenttest.WaitFor(t, 15*time.Second, "second segment stored", func() bool { return len(ra.segments()) >= 2 })
	for _, s := range ra.segments() {
		checkStoredSegment(t, cfg, s, "h264")
	}
}

// TestBadCamerasDoNotStopGoodOnes runs a good camera beside a camera whose
// port is closed and one that answers garbage; the good one records.
func TestBadCamerasDoNotStopGoodOnes(t *testing.T) {
	t.Parallel()
	sim := agenttest.StartSim(t, "127.0.0.1:0", clipsNamed(t, "walk")...)
	garbage, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer garbage.Close()
	go func() {
		for {
			c, err := garbage.Accept()
			if err != nil {
				return
			}
			c.Write(bytes.Repeat([]byte("\x00\xffgarbage\r\n"), 100))
			c.Close()
		}
	}()
	cfg := testConfig(t,
		config.Camera{ID: "good", URL: sim.URL(1), Mode: config.ModeContinuous, MaxLength: config.Duration(2 * time.Second)},
		config.Camera{ID: "closed", URL: "rtsp://" + agenttest.FreeAddr(t) + "/x"},
		config.Camera{ID: "garbage", URL: "rtsp://user:hunter2@" + garbage.Addr().String() + "/x"},
	)
	ra := startAgent(t, cfg, Options{StallTimeout: 2 * time.Second})
	agenttest.WaitFor(t, 20*time.Second, "3 segments of the good camera", func() bool { return len(ra.segments()) >= 3 })
	for _, c := range ra.Status().Cameras[1:] {
		if c.Stream.State == ingest.StateUp || c.Stream.LastError == "" {
			t.Errorf("camera %s: state %s, error %q", c.ID, c.Stream.State, c.Stream.LastError)
		}
	}
	if strings.Contains(ra.logs.String(), "hunter2") {
		t.Error("a camera password reached the logs")
	}
	for _, s := range ra.segments() {
		if s.Camera != "good" {
			t.Errorf("segment from camera %s", s.Camera)
		}
	}
}

// TestRecordingToS3 records into a real MinIO server through the s3 store:
// objects land under the segment key layout and read back byte for byte.
func TestRecordingToS3(t *testing.T) {
	t.Parallel()
	minio := miniotest.Start(t)
	sc := minio.Config(t)
	sim := agenttest.StartSim(t, "127.0.0.1:0", clipsNamed(t, "walk-h265")...)
	dir := t.TempDir()
	cfg := &config.Config{
		District: "north", DataDir: dir,
		Cameras: []config.Camera{{ID: "yard", URL: sim.URL(1), Mode: config.ModeContinuous, MaxLength: config.Duration(2 * time.Second)}},
		Storage: config.Storage{S3: &config.S3Storage{Endpoint: sc.Endpoint, Bucket: sc.Bucket, AccessKey: sc.AccessKey, SecretKey: sc.SecretKey}},
	}
	if err := cfg.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	ra := startAgent(t, cfg, Options{})
	agenttest.WaitFor(t, 30*time.Second, "2 segments in MinIO", func() bool { return len(ra.segments()) >= 2 })
	ra.stop(t)
	store, err := s3.Open(context.Background(), sc)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, seg := range ra.segments() {
		if !strings.HasPrefix(seg.Key, "north/yard/") {
			t.Errorf("key %s", seg.Key)
		}
		rc, info, err := store.Get(context.Background(), seg.Key)
		if err != nil {
			t.Fatalf("get %s: %v", seg.Key, err)
		}
		path := filepath.Join(dir, seg.ID+".mp4")
		f, _ := os.Create(path)
		h := sha256.New()
		io.Copy(io.MultiWriter(f, h), rc)
		rc.Close()
		f.Close()
		if info.Size != seg.Bytes || hex.EncodeToString(h.Sum(nil)) != seg.SHA256 {
			t.Errorf("%s: stored object differs from the index (size %d vs %d)", seg.Key, info.Size, seg.Bytes)
		}
		r, err := fftest.Check(path)
		if err != nil || r.Codec != "hevc" || r.DecodeErrors != "" {
			t.Errorf("%s: %+v %v", seg.Key, r, err)
		}
	}
}

// TestDetectStream runs detection on a separate detect stream: motion seen
// there records the main stream. When the detect stream is down, the camera
// records continuously (fail open) and says so in its status.
func TestDetectStream(t *testing.T) {
	t.Parallel()
	clip := clipsNamed(t, "walk")[0]
	sim := agenttest.StartSim(t, "127.0.0.1:0", clip)
	cfg := testConfig(t,
		config.Camera{ID: "withdetect", URL: sim.URL(1), DetectURL: sim.URL(1), Transport: config.TransportTCP,
			PreRoll: config.Duration(time.Second), PostRoll: config.Duration(2 * time.Second)},
		config.Camera{ID: "detectdown", URL: sim.URL(1), DetectURL: "rtsp://" + agenttest.FreeAddr(t) + "/none",
			Transport: config.TransportTCP, MaxLength: config.Duration(3 * time.Second)},
	)
	ra := startAgent(t, cfg, Options{StallTimeout: 2 * time.Second})
	agenttest.WaitFor(t, 10*time.Second, "cameras up", func() bool {
		st := ra.Status()
		return st.Cameras[0].Stream.State == ingest.StateUp && st.Cameras[0].Detect != nil && st.Cameras[0].Detect.State == ingest.StateUp
	})
	upAt := time.Now()
	// The next motion event of the clip, seen whole.
	epoch := sim.Epoch(1)
	var ev span
	for k := 0; ev.from.IsZero(); k++ {
		for _, e := range clip.Events {
			from := epoch.Add(time.Duration(k)*clip.Duration + e.Start)
			if ev.from.IsZero() && from.After(upAt.Add(2*time.Second)) {
				ev = span{from, epoch.Add(time.Duration(k)*clip.Duration + e.End)}
			}
		}
	}
	time.Sleep(time.Until(ev.to.Add(4 * time.Second)))
	st := ra.Status().Cameras
	if st[1].Detector == "" || !strings.Contains(st[1].Detector, "detect stream") {
		t.Errorf("camera with its detect stream down: detector note %q", st[1].Detector)
	}
	ra.stop(t)

	var detected, failOpen []storage.Segment
	for _, s := range ra.segments() {
		switch s.Camera {
		case "withdetect":
			detected = append(detected, s)
		case "detectdown":
			failOpen = append(failOpen, s)
		}
	}
	if !covered(detected, ev.from, ev.to.Add(time.Second)) {
		t.Errorf("motion %s-%s seen on the detect stream not recorded: %s", ev.from.Format(time.TimeOnly), ev.to.Format(time.TimeOnly), describe(detected))
	}
	// Fail open: after the grace period the camera without detection
	// records everything until the end.
	failFrom := upAt.Add(detectorGrace + 2*time.Second)
	if !covered(failOpen, failFrom, ev.to) {
		t.Errorf("camera without working detection did not record %s-%s: %s", failFrom.Format(time.TimeOnly), ev.to.Format(time.TimeOnly), describe(failOpen))
	}
	for _, s := range append(detected, failOpen...) {
		checkStoredSegment(t, cfg, s, "h264")
	}
}
