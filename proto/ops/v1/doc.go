// Package opsv1 is the API of the people using vigil through the CLI,
// generated from ops.proto by proto/generate.sh. Edit the .proto, then run
// make proto.
package opsv1
