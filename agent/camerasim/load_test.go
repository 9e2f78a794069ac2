package camerasim

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// The load test measures what the simulator costs when it stands in for a
// district full of cameras: N paths of the 1080p 4 Mbit/s bench clip, one
// TCP reader each. The simulator runs in a child process (this test binary
// re-executed) so that its CPU time is measured apart from the readers'.
//
//	agent/camerasim/testdata/make-bench-clip.sh agent/camerasim/testdata/bench/bench-1080p.mp4
//	VIGIL_BENCH=1 go test -run TestLoadHundredPaths -v ./agent/camerasim/
const (
	benchClip     = "testdata/bench/bench-1080p.mp4"
	envBench      = "VIGIL_BENCH"
	envBenchServe = "VIGIL_BENCH_SERVE"
	envBenchPaths = "VIGIL_BENCH_PATHS"
)

func TestLoadHundredPaths(t *testing.T) {
	if os.Getenv(envBench) == "" {
		t.Skipf("set %s=1 to run (needs %s, see testdata/make-bench-clip.sh)", envBench, benchClip)
	}
	if _, err := os.Stat(benchClip); err != nil {
		t.Skipf("bench clip missing: run testdata/make-bench-clip.sh %s", benchClip)
	}
	paths := 100
	if v, err := strconv.Atoi(os.Getenv(envBenchPaths)); err == nil && v > 0 {
		paths = v
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadServerProcess$")
	cmd.Env = append(os.Environ(), envBenchServe+"="+benchClip, envBenchPaths+"="+strconv.Itoa(paths))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close() // the child stops when its stdin closes
		cmd.Wait()
	})
	var addr string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "camerasim-addr="); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatal("simulator child did not report its address")
	}
	go io.Copy(io.Discard, stdout)

	var packets, bytes, frames atomic.Int64
	clients := make([]*gortsplib.Client, 0, paths)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for n := 1; n <= paths; n++ {
		u, err := base.ParseURL(fmt.Sprintf("rtsp://%s/cam%d", addr, n))
		if err != nil {
			t.Fatal(err)
		}
		tcp := gortsplib.TransportTCP
		c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp}
		if err := c.Start2(); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		desc, _, err := c.Describe(u)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
			t.Fatal(err)
		}
		// Readers only count, so their cost stays small next to the
		// simulator's on the same machine.
		c.OnPacketRTPAny(func(_ *description.Media, _ format.Format, pkt *rtp.Packet) {
			packets.Add(1)
			bytes.Add(int64(len(pkt.Payload)))
			if pkt.Marker {
				frames.Add(1)
			}
		})
		if _, err := c.Play(nil); err != nil {
			t.Fatal(err)
		}
	}

	time.Sleep(5 * time.Second) // warm-up: connections settled, GC steady
	const window = 20 * time.Second
	simBefore, err := procCPU(cmd.Process.Pid)
	if err != nil {
		t.Skipf("cannot read the child's CPU time: %v", err)
	}
	selfBefore := selfCPU()
	p0, b0, f0 := packets.Load(), bytes.Load(), frames.Load()
	start := time.Now()
	time.Sleep(window)
	elapsed := time.Since(start)
	simAfter, err := procCPU(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	selfAfter := selfCPU()
	p1, b1, f1 := packets.Load(), bytes.Load(), frames.Load()

	simCPU := (simAfter - simBefore).Seconds() / elapsed.Seconds()
	readersCPU := (selfAfter - selfBefore).Seconds() / elapsed.Seconds()
	fps := float64(f1-f0) / elapsed.Seconds() / float64(paths)
	mbps := float64(b1-b0) * 8 / elapsed.Seconds() / 1e6
	t.Logf("%d paths of %s over %v: simulator %.0f%% of one core (RSS %s), readers %.0f%%; "+
		"%.1f fps per path, %.0f Mbit/s, %.0f packets/s in total",
		paths, benchClip, elapsed.Round(time.Millisecond), simCPU*100, procRSS(cmd.Process.Pid), readersCPU*100,
		fps, mbps, float64(p1-p0)/elapsed.Seconds())
	if fps < 25*0.95 {
		t.Errorf("readers got %.1f fps per path, want 25: the simulator cannot keep up", fps)
	}
	if simCPU > 1 {
		t.Errorf("simulator used %.0f%% of a core for %d paths: too costly for a 2-core machine", simCPU*100, paths)
	}
}

// TestLoadServerProcess is the child of TestLoadHundredPaths, not a test.
func TestLoadServerProcess(t *testing.T) {
	file := os.Getenv(envBenchServe)
	if file == "" {
		t.Skip("child process of TestLoadHundredPaths")
	}
	clip, err := LoadClip(file)
	if err != nil {
		t.Fatal(err)
	}
	count, _ := strconv.Atoi(os.Getenv(envBenchPaths))
	s, err := New(Config{Listen: "127.0.0.1:0", Clips: []*Clip{clip}, Count: count})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fmt.Printf("camerasim-addr=%s\n", s.Addr())
	io.Copy(io.Discard, os.Stdin)
}

// procCPU is the user+system CPU time of a process, from /proc (Linux).
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc stat: %q", raw)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc stat: %q", raw)
	}
	const clockTicks = 100 // USER_HZ, fixed on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

func procRSS(pid int) string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return "?"
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
