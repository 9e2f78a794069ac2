//go:build unix

package eval

import (
	"fmt"
	"syscall"
	"time"
)

// processCPU returns the CPU time (user + system) of this process and of
// its children that have been waited for: the detector's goroutines and
// the ffmpeg decoders it started and reaped.
func processCPU() (time.Duration, error) {
	var self, children syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &self); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	ns := self.Utime.Nano() + self.Stime.Nano() + children.Utime.Nano() + children.Stime.Nano()
	return time.Duration(ns), nil
}
