// Package agentv1 is the wire contract between district agents and central
// (enrolment and the link stream), generated from agent.proto by
// proto/generate.sh. Edit the .proto, then run make proto.
package agentv1
