// Package proto will hold the versioned gRPC definitions between agents,
// central and the CLI, with their committed generated code.
//
// Not written yet: it comes with the central room and the agent link.
package proto
