package audit

import (
	"errors"
	"fmt"
)

// Errors of this package. Callers compare with errors.Is; the returned errors
// usually wrap these with the record, size or file concerned.
var (
	// ErrInvalid wraps every validation failure of a Record given to Append
	// or Marshal: the caller is wrong, not the log.
	ErrInvalid = errors.New("audit: invalid record")

	// ErrNonCanonical is returned by Unmarshal for bytes that decode but are
	// not the canonical encoding of the record they decode to, and for bytes
	// that do not decode at all. A stored record that fails so has been
	// altered.
	ErrNonCanonical = errors.New("audit: not a canonical record")

	// ErrClosed is returned by the methods of a closed Log.
	ErrClosed = errors.New("audit: log closed")

	// ErrFailed is returned by Append once a commit has failed: the log's
	// state on disk is then unknown to this process, so it refuses every
	// further append until it is reopened rather than risk losing records
	// silently.
	ErrFailed = errors.New("audit: log failed on an earlier write; reopen it")

	// ErrReadOnly is returned by Append and CheckpointNow on a log opened
	// with Options.ReadOnly.
	ErrReadOnly = errors.New("audit: log opened read-only")

	// ErrNoCheckpoint is returned by Checkpoint while the log has none yet
	// (it is empty).
	ErrNoCheckpoint = errors.New("audit: no checkpoint yet")

	// ErrOutOfRange is returned for sequence numbers or tree sizes beyond
	// the log, and for ranges whose start is after their end.
	ErrOutOfRange = errors.New("audit: out of range")

	// ErrBadCheckpoint is returned for a checkpoint, typically one an
	// auditor kept, that is malformed, names another log or does not verify
	// with the verifier given. It says nothing about the log itself.
	ErrBadCheckpoint = errors.New("audit: bad checkpoint")

	// ErrKeyMismatch is returned when the keys given or found do not belong
	// together: a signer and a verifier of different keys, a public key file
	// that is not the private key's, or a log whose latest checkpoint was
	// signed by another key than the one it is opened with.
	ErrKeyMismatch = errors.New("audit: key mismatch")

	// ErrTampered is wrapped by every *TamperError.
	ErrTampered = errors.New("audit: log tampered with")
)

// TamperError is the error of Verify, of the reads and of Open when the
// stored log is not what was written. errors.Is(err, ErrTampered) is true
// for it.
//
// Seq names the first record that cannot be shown intact:
//   - a record that does not decode canonically, carries another sequence
//     number than its position, or whose leaf hash differs from the stored
//     one: that record;
//   - a stored interior tree hash that differs from the recomputed one: the
//     record whose append stored it (the last leaf of that subtree);
//   - a checkpoint larger than the log (the tail was removed): the log's
//     size, i.e. the first missing record;
//   - a stored checkpoint that is malformed, names another log, does not
//     verify with the verifier, or whose root differs from the recomputed
//     root at its size: the size of the last checkpoint before it that
//     verified (0 if none), i.e. the first record of the range that
//     checkpoint vouched for and no earlier one did (a checkpoint too
//     damaged to read its size counts as coming right after the stored
//     one before it);
//   - a kept checkpoint (VerifyAgainst) whose root differs: the size of the
//     largest earlier kept checkpoint that matched (0 if none). Checkpoints
//     stored in the log do not narrow it down, since whoever rewrote the log
//     may have re-signed them.
type TamperError struct {
	Seq    uint64
	Reason string
}

func (e *TamperError) Error() string {
	return fmt.Sprintf("%v: first bad record %d: %s", ErrTampered, e.Seq, e.Reason)
}

func (e *TamperError) Unwrap() error { return ErrTampered }

func tampered(seq uint64, format string, args ...any) *TamperError {
	return &TamperError{Seq: seq, Reason: fmt.Sprintf(format, args...)}
}
