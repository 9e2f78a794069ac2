package consoletest

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// viewerStats is what the viewer process measured.
type viewerStats struct {
	// FirstFrameMS is, per viewer, the time from asking for the view to
	// the first video fragment.
	FirstFrameMS []float64 `json:"first_frame_ms"`
	// LatencyMS is, per fragment, the time from the agent receiving the
	// frame from the camera to the viewer receiving it from central.
	LatencyMS []float64 `json:"latency_ms"`
	Fragments int       `json:"fragments"`
	Errors    []string  `json:"errors"`
}

// Environment of the viewer process the benchmark starts.
const (
	envViewerURL      = "VIGIL_BENCH_VIEWER_URL"
	envViewerUser     = "VIGIL_BENCH_VIEWER_USER"
	envViewerPassword = "VIGIL_BENCH_VIEWER_PASSWORD"
	envViewerCameras  = "VIGIL_BENCH_VIEWER_CAMERAS"
	envViewerCount    = "VIGIL_BENCH_VIEWER_COUNT"
	envViewerSeconds  = "VIGIL_BENCH_VIEWER_SECONDS"
)

// TestViewerProcess is not a test: it is the viewers of BenchmarkLiveViewers,
// run in a process of their own so that their CPU is not counted as
// central's. It does nothing unless the benchmark started it.
func TestViewerProcess(t *testing.T) {
	base := os.Getenv(envViewerURL)
	if base == "" {
		t.Skip("run by BenchmarkLiveViewers only")
	}
	count, _ := strconv.Atoi(os.Getenv(envViewerCount))
	seconds, _ := strconv.Atoi(os.Getenv(envViewerSeconds))
	cameras := strings.Split(os.Getenv(envViewerCameras), ",")
	stats := runViewers(base, os.Getenv(envViewerUser), os.Getenv(envViewerPassword), cameras, count, time.Duration(seconds)*time.Second)
	json.NewEncoder(os.Stdout).Encode(stats)
}

// runViewers opens count live views spread over the cameras, all at once,
// and reads them for d.
func runViewers(base, user, password string, cameras []string, count int, d time.Duration) viewerStats {
	var st viewerStats
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback benchmark of central's own certificate
	body := fmt.Sprintf(`{"user":%q,"password":%q}`, user, password)
	resp, err := hc.Post(base+"api/login", "application/json", strings.NewReader(body))
	if err != nil {
		st.Errors = append(st.Errors, err.Error())
		return st
	}
	var info struct {
		CSRF string `json:"csrf"`
	}
	json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			camera := cameras[i%len(cameras)]
			u := strings.Replace(base, "https://", "wss://", 1) + "api/live?quality=sub&camera=" + camera + "&csrf=" + info.CSRF
			asked := time.Now()
			conn, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: hc, HTTPHeader: http.Header{"Origin": {strings.TrimSuffix(base, "/")}}})
			if err != nil {
				mu.Lock()
				st.Errors = append(st.Errors, err.Error())
				mu.Unlock()
				return
			}
			defer conn.CloseNow()
			conn.SetReadLimit(16 << 20)
			first := true
			var lat []float64
			frags := 0
			for {
				typ, msg, err := conn.Read(ctx)
				if err != nil {
					break
				}
				now := time.Now()
				if typ != websocket.MessageBinary || len(msg) < 9 || msg[0] != 1 {
					continue
				}
				frags++
				if first {
					first = false
					mu.Lock()
					st.FirstFrameMS = append(st.FirstFrameMS, float64(now.Sub(asked).Microseconds())/1000)
					mu.Unlock()
					continue // the first fragments are the kept GOP: old by design
				}
				received := time.UnixMicro(int64(binary.BigEndian.Uint64(msg[1:9])))
				lat = append(lat, float64(now.Sub(received).Microseconds())/1000)
			}
			mu.Lock()
			// Skip the first second of each view: the GOP kept for a fast
			// start is older than live, on purpose.
			if len(lat) > 25 {
				st.LatencyMS = append(st.LatencyMS, lat[25:]...)
			}
			st.Fragments += frags
			mu.Unlock()
		}()
	}
	wg.Wait()
	return st
}

func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLiveViewers measures the console's live video with K viewers
// over 16 cameras: time from asking for a view to its first frame, the
// latency central adds between the agent and the viewer (from the agent's
// timestamp on each frame), and the CPU of central (with the agent and the
// simulated cameras, which run in the same process: their cost without
// viewers is measured first and subtracted). The viewers run in a process
// of their own.
func BenchmarkLiveViewers(b *testing.B) {
	const cameras = 16
	const window = 10 * time.Second
	e := startEnv(b, clipsNamed(b, "walk"), cameras)
	var ids []string
	for n := 1; n <= cameras; n++ {
		ids = append(ids, fmt.Sprintf("%s/cam%d", district, n))
	}
	measure := func() time.Duration {
		c0, t0 := cpuTime(), time.Now()
		time.Sleep(window)
		return time.Duration(float64(cpuTime()-c0) / time.Since(t0).Seconds())
	}
	baseline := measure() // CPU-seconds per second with nobody watching
	b.Logf("baseline (16 cameras recorded, no viewer): %.3f cores", baseline.Seconds())
	for _, k := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("viewers=%d", k), func(b *testing.B) {
			for range b.N {
				// Let the previous round's relays stop.
				e.waitFor(20*time.Second, "relays of the previous round to stop", func() bool { return e.central.Hub().Relays() == 0 })
				cmd := exec.Command(os.Args[0], "-test.run=^TestViewerProcess$", "-test.count=1")
				cmd.Env = append(os.Environ(),
					envViewerURL+"="+e.console, envViewerUser+"=olga", envViewerPassword+"="+e.passwords["olga"],
					envViewerCameras+"="+strings.Join(ids, ","), envViewerCount+"="+strconv.Itoa(k),
					envViewerSeconds+"="+strconv.Itoa(int((window+5*time.Second)/time.Second)))
				var out strings.Builder
				cmd.Stdout = &out
				cmd.Stderr = os.Stderr
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				time.Sleep(3 * time.Second) // views start, relays and GOPs settle
				cores := measure()
				if err := cmd.Wait(); err != nil {
					b.Fatalf("viewer process: %v\n%s", err, out.String())
				}
				var st viewerStats
				line := out.String()
				if i := strings.Index(line, "{"); i >= 0 {
					line = line[i:]
				}
				if j := strings.Index(line, "\n"); j >= 0 {
					line = line[:j]
				}
				if err := json.Unmarshal([]byte(line), &st); err != nil {
					b.Fatalf("viewer output %q: %v", out.String(), err)
				}
				if len(st.Errors) > 0 || len(st.FirstFrameMS) != k {
					b.Fatalf("%d of %d views got a frame; errors: %v", len(st.FirstFrameMS), k, st.Errors)
				}
				b.ReportMetric(percentile(st.FirstFrameMS, 0.5), "first-frame-p50-ms")
				b.ReportMetric(slices.Max(st.FirstFrameMS), "first-frame-max-ms")
				b.ReportMetric(percentile(st.LatencyMS, 0.5), "latency-p50-ms")
				b.ReportMetric(percentile(st.LatencyMS, 0.95), "latency-p95-ms")
				b.ReportMetric((cores - baseline).Seconds(), "viewing-cores")
				b.ReportMetric(cores.Seconds(), "total-cores")
				b.ReportMetric(float64(st.Fragments)/(window+5*time.Second).Seconds(), "frames/s")
			}
		})
	}
}

// BenchmarkBrowserWall measures a real wall in Chromium with 4 and 16
// tiles of 16 cameras: the time from the end of the login to every tile showing a
// picture (the page logged in, the wall shown), and the latency the page itself measures between the agent's
// timestamp and the arrival of each frame over the WebSocket (after the
// browser's event loop, before decoding).
func BenchmarkBrowserWall(b *testing.B) {
	const cameras = 16
	e := startEnv(b, clipsNamed(b, "walk"), cameras)
	for _, tiles := range []int{4, 16} {
		b.Run(fmt.Sprintf("tiles=%d", tiles), func(b *testing.B) {
			for range b.N {
				e.waitFor(20*time.Second, "relays of the previous round to stop", func() bool { return e.central.Hub().Relays() == 0 })
				ctx := browser(b)
				e.login(ctx, "olga")
				start := time.Now()
				run(b, ctx, 10*time.Second, "choose the layout", chromedpClickLayout(tiles))
				waitJS(b, ctx, 30*time.Second, "every tile to show a picture", fmt.Sprintf(
					`(() => { const v = [...document.querySelectorAll('.tile video')]; return v.length === %d && v.every(x => x.readyState >= 2 && x.videoWidth > 0); })()`, tiles))
				allPlaying := time.Since(start)
				time.Sleep(10 * time.Second)
				lat := evalJS[[]float64](b, ctx, `[...document.querySelectorAll('.tile')].flatMap(t => (t.latencies || []).slice(25))`)
				if len(lat) == 0 {
					b.Fatal("the page measured no latency")
				}
				b.ReportMetric(float64(allPlaying.Milliseconds()), "logged-in-to-pictures-ms")
				b.ReportMetric(percentile(lat, 0.5), "page-latency-p50-ms")
				b.ReportMetric(percentile(lat, 0.95), "page-latency-p95-ms")
			}
		})
	}
}
