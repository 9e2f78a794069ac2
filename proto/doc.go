// Package proto holds the versioned gRPC contracts of vigil and the test
// that keeps their generated Go code in step with the .proto files:
// agent/v1 (vigil.agent.v1: enrolment and the agent link) and ops/v1
// (vigil.ops.v1: the API behind the CLI). Regenerate with make proto.
package proto
