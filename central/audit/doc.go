// Package audit is central's register of accesses, the one the law asks for
// (Garante provision of 8 April 2010 §3.3.1, GDPR art. 5(2) and 32): who
// saw, copied, held or deleted what, when, why, from where and with what
// outcome. It is append-only, tamper-evident and verifiable by auditors who
// do not trust central.
//
// # Storage
//
// The log lives in its own bbolt file (Open, normally <data dir>/audit.db),
// apart from central's other state, so that its permissions, backups and
// offline copies can be handled on their own. Records are stored in their
// canonical encoding (Record.Marshal), which is what is hashed: the leaf hash
// of record i is tlog.RecordHash of its stored bytes, and the records form a
// Merkle tree in the RFC 6962 style as implemented by
// golang.org/x/mod/sumdb/tlog. The tree's stored hashes are kept beside the
// records so that proofs need no recomputation.
//
// Sequence numbers are the tlog record indexes: the first record has Seq 0,
// record Seq n is leaf n, and a tree of size N holds records 0..N-1.
//
// # Checkpoints
//
// A checkpoint is a note (golang.org/x/mod/sumdb/note) signed with central's
// Ed25519 key whose text is, in the C2SP tlog-checkpoint layout,
//
//	<origin>
//	<tree size, decimal>
//	<root hash, base64>
//
// where the origin is Origin(key name), e.g. "vigil-central/audit". One is
// written in the same transaction as the records it covers whenever
// Options.CheckpointRecords records have accumulated, at least every
// Options.CheckpointEvery while records keep coming, and on Close. Every
// checkpoint is kept, so each can be re-verified later, and an auditor can
// keep one outside the system (the CLI's "audit checkpoint") to prove later
// that the log still extends it (VerifyAgainst): that is what catches a log
// rewritten by someone holding central's private key.
//
// # Durability
//
// Append returns only once the record, its tree hashes and any checkpoint
// due are committed and synced to disk. A single writer goroutine batches
// every append waiting into one transaction (group commit), so concurrent
// appenders share the fsyncs. If a commit fails, every append of the batch
// fails and so does every later one until the log is reopened: callers must
// refuse the action they were about to record (fail closed).
//
// # Verification
//
// Verify recomputes everything from the stored record bytes: canonical
// decoding, sequence continuity, every leaf and tree hash (compared with the
// stored ones), every checkpoint's signature and root, and the consistency
// of consecutive checkpoints. It works on a live *Log, on a read-only copy
// of the file (Options.ReadOnly) and on records downloaded over the API
// (Bundle), and names the first bad record in a *TamperError.
package audit
