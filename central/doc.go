// Package central is the operations room server: agent registry, holds
// registry, audit log, authorisation and the operators' console.
//
// Not built yet: the recording pipeline (agent, storage) came first; the
// central room and the agent link are the next piece of work. Nothing here
// is used by the agent, which works alone by design.
package central
