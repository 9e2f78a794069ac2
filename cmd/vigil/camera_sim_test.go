package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCameraSimBadArguments(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"count zero", []string{"--count", "0"}, "--count must be between 1 and 1000, got 0"},
		{"count too high", []string{"--count", "1001"}, "--count must be between 1 and 1000"},
		{"count not a number", []string{"--count", "many"}, "invalid argument"},
		{"listen without port", []string{"--listen", "localhost"}, `--listen "localhost": want HOST:PORT`},
		{"listen bad port", []string{"--listen", "127.0.0.1:99999"}, "port must be a number"},
		{"missing clips dir", []string{"--clips", "/nonexistent/clips", "--listen", "127.0.0.1:0"}, "/nonexistent/clips"},
		{"empty clips dir", []string{"--clips", t.TempDir(), "--listen", "127.0.0.1:0"}, "no clips"},
		{"positional argument", []string{"extra"}, "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newRootCommand()
			var out, errOut bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&errOut)
			root.SetArgs(append([]string{"camera-sim"}, tc.args...))
			err := root.Execute()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error should be one line: %q", err)
			}
			if out.Len() > 0 {
				t.Errorf("nothing should be printed, got %q", out.String())
			}
		})
	}
}

// syncBuffer is written by the command's goroutine and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestCameraSimRunsUntilCancelled(t *testing.T) {
	root := newRootCommand()
	var out, errOut syncBuffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"camera-sim", "--listen", "127.0.0.1:0", "--count", "6"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(out.String(), "\n") < 6 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 {
		cancel()
		t.Fatalf("want one line per camera, got %q (stderr %q)", out.String(), errOut.String())
	}
	for i, want := range []string{"/cam1 ", "still", "/cam2 ", "walk (h264"} {
		if !strings.Contains(lines[i/2], want) {
			t.Errorf("line %d %q should contain %q", i/2+1, lines[i/2], want)
		}
	}
	if !strings.Contains(lines[5], "/cam6 ") || !strings.Contains(lines[5], "walk ") {
		t.Errorf("cam6 should loop the second clip again: %q", lines[5])
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("camera-sim returned %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("camera-sim still running after cancel")
	}
}
