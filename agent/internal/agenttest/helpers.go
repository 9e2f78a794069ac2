package agenttest

import (
	"bytes"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent/camerasim"
)

// LogBuffer is a log sink safe for concurrent writers.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// NewLogger returns a debug logger into a buffer that is printed when the
// test fails.
func NewLogger(t testing.TB) (*slog.Logger, *LogBuffer) {
	t.Helper()
	lb := &LogBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", lb.String())
		}
	})
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// WaitFor polls cond until it holds, failing the test after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// FreeAddr returns a loopback TCP address nobody listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// StartSim serves the clips (all embedded ones when none are given) on
// listen until the test ends.
func StartSim(t testing.TB, listen string, clips ...*camerasim.Clip) *camerasim.Server {
	t.Helper()
	if len(clips) == 0 {
		var err error
		if clips, err = camerasim.EmbeddedClips(); err != nil {
			t.Fatal(err)
		}
	}
	sim, err := camerasim.New(camerasim.Config{Listen: listen, Clips: clips})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}
