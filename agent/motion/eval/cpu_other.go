//go:build !unix

package eval

import (
	"errors"
	"time"
)

// processCPU needs getrusage, which district servers (Linux) have.
func processCPU() (time.Duration, error) {
	return 0, errors.New("CPU time of child processes is not available on this platform")
}
