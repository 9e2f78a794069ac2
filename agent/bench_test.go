package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent/camerasim"
	"github.com/vigil-cctv/vigil/agent/config"
	"github.com/vigil-cctv/vigil/agent/internal/agenttest"
	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/index"
)

// Environment of the recording benchmark.
const (
	// benchCamerasEnv lists the camera counts, default "10,50,100".
	benchCamerasEnv = "VIGIL_BENCH_CAMERAS"
	// benchSecondsEnv is how long each count records, default 60.
	benchSecondsEnv = "VIGIL_BENCH_SECONDS"
	// childSimEnv makes the test binary a camera simulator process:
	// "LISTEN COUNT CLIP".
	childSimEnv = "VIGIL_TEST_CAMERASIM"
)

func init() {
	if spec := os.Getenv(childSimEnv); spec != "" {
		os.Exit(runChildSim(spec))
	}
}

func runChildSim(spec string) int {
	f := strings.Fields(spec)
	if len(f) != 3 {
		fmt.Fprintln(os.Stderr, "bad", childSimEnv)
		return 2
	}
	n, _ := strconv.Atoi(f[1])
	clip, err := camerasim.LoadClip(f[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sim, err := camerasim.New(camerasim.Config{Listen: f[0], Clips: []*camerasim.Clip{clip}, Count: n})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := sim.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	<-ctx.Done()
	sim.Close()
	return 0
}

// benchClip returns the 1080p 4 Mbit/s clip, generating it the first time.
func benchClip(b *testing.B) string {
	b.Helper()
	path, err := filepath.Abs("camerasim/testdata/bench/bench-1080p.mp4")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := os.Stat(path); err == nil {
		return path
	}
	out, err := exec.Command("camerasim/testdata/make-bench-clip.sh", path).CombinedOutput()
	if err != nil {
		b.Fatalf("make-bench-clip: %v\n%s", err, out)
	}
	return path
}

// BenchmarkAgentContinuous records N simulated 1080p 4 Mbit/s cameras in
// continuous mode for 60 s, cameras served by a separate process, and
// reports the agent process's CPU seconds per camera-minute and peak RSS.
// Run with -benchtime 1x (make bench does).
func BenchmarkAgentContinuous(b *testing.B) {
	counts := []int{10, 50, 100}
	if s := os.Getenv(benchCamerasEnv); s != "" {
		counts = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("%s: bad count %q", benchCamerasEnv, f)
			}
			counts = append(counts, n)
		}
	}
	seconds := 60
	if s := os.Getenv(benchSecondsEnv); s != "" {
		var err error
		if seconds, err = strconv.Atoi(s); err != nil || seconds < 5 {
			b.Fatalf("%s: bad value %q", benchSecondsEnv, s)
		}
	}
	clip := benchClip(b)
	for _, n := range counts {
		b.Run(fmt.Sprintf("cameras=%d", n), func(b *testing.B) {
			for range b.N {
				benchRecord(b, n, time.Duration(seconds)*time.Second, clip)
			}
		})
	}
}

func benchRecord(b *testing.B, n int, dur time.Duration, clip string) {
	addr := agenttest.FreeAddr(b)
	sim := exec.Command(os.Args[0], "-test.run=^$")
	sim.Env = append(os.Environ(), childSimEnv+"="+fmt.Sprintf("%s %d %s", addr, n, clip))
	sim.Stderr = os.Stderr
	if err := sim.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		sim.Process.Signal(syscall.SIGTERM)
		sim.Wait()
	}()

	dir := b.TempDir()
	cfg := &config.Config{
		District: "bench", DataDir: filepath.Join(dir, "data"),
		Storage: config.Storage{FS: &config.FSStorage{Path: filepath.Join(dir, "footage")}},
	}
	for i := 1; i <= n; i++ {
		cfg.Cameras = append(cfg.Cameras, config.Camera{
			ID: fmt.Sprintf("cam%d", i), URL: fmt.Sprintf("rtsp://%s/cam%d", addr, i),
			Mode: config.ModeContinuous, Transport: config.TransportTCP,
		})
	}
	if err := cfg.CheckAndSetDefaults(); err != nil {
		b.Fatal(err)
	}
	// Give the simulator a moment to listen.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("camera simulator did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	path := writeYAML(b, cfg)
	logs := &agenttest.LogBuffer{}
	b.ResetTimer()
	agent := exec.Command(os.Args[0], "-test.run=^$")
	agent.Env = append(os.Environ(), childConfigEnv+"="+path)
	agent.Stderr = logs
	if err := agent.Start(); err != nil {
		b.Fatal(err)
	}
	time.Sleep(dur)
	agent.Process.Signal(syscall.SIGTERM)
	if err := agent.Wait(); err != nil {
		b.Fatalf("agent: %v\n%s", err, tail(logs.String(), 2000))
	}
	b.StopTimer()
	ru := agent.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())

	ix, err := index.Open(filepath.Join(cfg.DataDir, "index.db"), index.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer ix.Close()
	var recorded time.Duration
	var bytes int64
	segs := 0
	ix.ForEach(func(s storage.Segment) error {
		recorded += s.Duration()
		bytes += s.Bytes
		segs++
		return nil
	})
	cameraMinutes := float64(n) * dur.Minutes()
	b.ReportMetric(cpu.Seconds()/cameraMinutes, "cpu-s/camera-min")
	b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MiB")
	b.ReportMetric(recorded.Minutes()/cameraMinutes, "recorded/expected")
	b.ReportMetric(float64(bytes)*8/1e6/recorded.Seconds(), "Mbit/s/camera")
	b.ReportMetric(float64(segs), "segments")
	if strings.Contains(logs.String(), "level=ERROR") {
		b.Logf("agent logged errors:\n%s", tail(logs.String(), 2000))
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
