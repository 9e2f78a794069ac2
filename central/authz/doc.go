// Package authz decides who may call what on central's operator API
// (vigil.ops.v1.Ops): one table maps each RPC to the roles allowed to call
// it, and district-scoped calls are further limited to the caller's
// districts. Anything not in the table is denied, so a new RPC is unusable
// until someone writes its rule.
//
// The package only decides; the server authenticates the caller (package
// central/users), applies these checks before doing anything, and records
// the outcome in the audit log.
package authz
