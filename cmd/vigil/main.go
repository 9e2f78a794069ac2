// Command vigil is the one binary of the vigil CCTV system: district agent,
// central room, simulated cameras, demo, and the CLI of operators, officers,
// auditors and administrators. Each command group lives in its own file.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run())
}

// run executes the command line and turns its error into an exit status: one
// clear line on stderr, status 1.
func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCommand()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "vigil: %v\n", err)
		return 1
	}
	return 0
}
