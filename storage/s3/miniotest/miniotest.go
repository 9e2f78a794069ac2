// Package miniotest runs a real MinIO server on the loopback for tests.
//
// The server binary comes from $VIGIL_MINIO, else <repo>/.tools/bin/minio;
// when neither exists it is built once with `go install` (about four
// minutes on a cold cache), under a file lock so that test packages running
// in parallel do not build it twice. A test that cannot get a server fails:
// the S3 store is never silently left untested.
//
// MinIO is AGPL: it runs as a separate process and is never imported.
package miniotest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/vigil-cctv/vigil/storage/s3"
)

// MinIOModule is the MinIO version built when no binary is at hand.
const MinIOModule = "github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

const (
	startTimeout = 30 * time.Second
	buildTimeout = 20 * time.Minute
	startTries   = 3
)

// Server is a running MinIO server, stopped when its test ends.
type Server struct {
	// Endpoint is host:port, plain http.
	Endpoint  string
	AccessKey string
	SecretKey string
}

// Config returns a configuration for a fresh, not yet created bucket on the
// server: s3.Open creates it with Object Lock.
func (s *Server) Config(t testing.TB) s3.Config {
	t.Helper()
	return s3.Config{
		Endpoint:  s.Endpoint,
		Bucket:    "vigil-test-" + randomHex(t, 8),
		AccessKey: s.AccessKey,
		SecretKey: s.SecretKey,
	}
}

// Start runs a MinIO server with its data in a temporary directory of t,
// and stops it when t ends. It fails t if no server can be had.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary(t)
	if err != nil {
		t.Fatalf("miniotest: no minio server binary: %v", err)
	}
	srv := &Server{AccessKey: "vigil-" + randomHex(t, 6), SecretKey: randomHex(t, 20)}
	// The free port found may be taken before MinIO binds it: try again.
	for try := 1; ; try++ {
		err := srv.start(t, bin)
		if err == nil {
			return srv
		}
		if try == startTries {
			t.Fatalf("miniotest: start %s: %v", bin, err)
		}
		t.Logf("miniotest: start failed, retrying: %v", err)
	}
}

func (s *Server) start(t testing.TB, bin string) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	consoleAddr, err := freeAddr()
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "server", t.TempDir(), "--address", addr, "--console-address", consoleAddr, "--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_UPDATE=off",
		"MINIO_BROWSER=off",
	)
	out := &syncBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}

	deadline := time.Now().Add(startTimeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	httpClient := &http.Client{Timeout: time.Second}
	// Live answers as soon as the listener is up, ready a little later;
	// both can answer 200 while S3 requests still get "Server not
	// initialized yet". Only the operation the store starts with, creating
	// a bucket with Object Lock, proves the server usable.
	var last error
	for !s.usable(ctx, httpClient, addr, &last) {
		select {
		case <-exited:
			return fmt.Errorf("minio exited before serving (%v); output:\n%s", waitErr, out.String())
		case <-ctx.Done():
			stop()
			return fmt.Errorf("minio not usable after %v (last: %v); output:\n%s", startTimeout, last, out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.Endpoint = addr
	t.Cleanup(stop)
	return nil
}

// usable reports whether the server is live and creates and removes a
// bucket with Object Lock; last keeps the reason it is not.
func (s *Server) usable(ctx context.Context, hc *http.Client, addr string, last *error) bool {
	resp, err := hc.Get("http://" + addr + "/minio/health/live")
	if err != nil {
		*last = err
		return false
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		*last = fmt.Errorf("health/live: %s", resp.Status)
		return false
	}
	c, err := minio.New(addr, &minio.Options{
		Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		// Failures here are retried by the caller, which watches the
		// process and the deadline.
		MaxRetries: 1,
	})
	if err != nil {
		*last = err
		return false
	}
	const probe = "miniotest-probe"
	if err := c.MakeBucket(ctx, probe, minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		*last = err
		return false
	}
	if err := c.RemoveBucket(ctx, probe); err != nil {
		*last = err
		return false
	}
	return true
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Binary returns the path of a minio server binary, building it if needed.
func Binary(t testing.TB) (string, error) {
	t.Helper()
	if p := os.Getenv("VIGIL_MINIO"); p != "" {
		if err := executable(p); err != nil {
			return "", fmt.Errorf("$VIGIL_MINIO: %w", err)
		}
		return p, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	tools := filepath.Join(root, ".tools")
	bin := filepath.Join(tools, "bin", "minio")
	if executable(bin) == nil {
		return bin, nil
	}
	if err := os.MkdirAll(filepath.Join(tools, "bin"), 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(tools, "minio-build.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	// Another test package may have built it while we waited.
	if executable(bin) == nil {
		return bin, nil
	}
	t.Logf("miniotest: building %s into %s (about 4 minutes on a cold cache)", MinIOModule, filepath.Dir(bin))
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("%s is missing and no go command to build it: %w", bin, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	// Install into a scratch directory and rename: go install writes its
	// target in place, and a build killed halfway must not leave a
	// truncated binary where the next run would take it for a good one.
	scratch, err := os.MkdirTemp(tools, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(scratch)
	cmd := exec.CommandContext(ctx, goBin, "install", MinIOModule)
	// Run outside the module so its go.mod does not constrain the build.
	cmd.Dir = scratch
	cmd.Env = append(os.Environ(), "GOBIN="+scratch, "GOFLAGS=-buildvcs=false", "GOWORK=off")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go install %s: %w\n%s", MinIOModule, err, out.String())
	}
	if err := os.Rename(filepath.Join(scratch, "minio"), bin); err != nil {
		return "", fmt.Errorf("go install %s: %w", MinIOModule, err)
	}
	t.Logf("miniotest: built minio in %v", time.Since(start).Round(time.Second))
	return bin, nil
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// repoRoot walks up from the working directory (a package directory under
// go test) to the directory holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: set $VIGIL_MINIO to a minio binary")
		}
		dir = parent
	}
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// syncBuffer collects the server's output for failure messages.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Keep the start of the output, where startup errors are, bounded.
	n := len(p)
	if room := 1<<20 - b.buf.Len(); room < n {
		p = p[:max(room, 0)]
	}
	b.buf.Write(p)
	return n, nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.buf.String())
}
