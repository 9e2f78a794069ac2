package audit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Origin returns the origin line of the checkpoints signed with the key
// named keyName: the log is named after its key, so a checkpoint of another
// log, or of another kind of tlog, cannot pass for one of this log.
func Origin(keyName string) string { return keyName + "/audit" }

// formatCheckpoint is the text of a checkpoint note: tlog.FormatTree's
// layout, with the log's origin in its first line instead of the Go
// checksum database's fixed "go.sum database tree" (C2SP tlog-checkpoint).
func formatCheckpoint(origin string, t tlog.Tree) []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", origin, t.N, t.Hash)
}

// parseCheckpointText is the strict inverse of formatCheckpoint: exactly
// three lines, a canonical decimal size and a 32-byte hash in standard
// base64. It does not look at signatures.
func parseCheckpointText(text string) (origin string, t tlog.Tree, err error) {
	lines := strings.Split(text, "\n")
	if len(lines) != 4 || lines[3] != "" || lines[0] == "" {
		return "", tlog.Tree{}, errors.New("want three lines: origin, size, root hash")
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return "", tlog.Tree{}, fmt.Errorf("bad tree size %q", lines[1])
	}
	h, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize {
		return "", tlog.Tree{}, fmt.Errorf("bad root hash %q", lines[2])
	}
	t.N = n
	copy(t.Hash[:], h)
	return lines[0], t, nil
}

// signCheckpoint signs the checkpoint of tree t with s.
func signCheckpoint(s note.Signer, t tlog.Tree) ([]byte, error) {
	msg, err := note.Sign(&note.Note{Text: string(formatCheckpoint(Origin(s.Name()), t))}, s)
	if err != nil {
		return nil, fmt.Errorf("audit: sign checkpoint: %w", err)
	}
	return msg, nil
}

// OpenCheckpoint checks a signed checkpoint: it must be a well-formed note
// carrying a valid signature by verifier, and its text must be a checkpoint
// of the log named by the verifier's key (Origin). It returns the tree the
// checkpoint commits to. Errors wrap ErrBadCheckpoint.
func OpenCheckpoint(signed []byte, verifier note.Verifier) (tlog.Tree, error) {
	t, _, err := inspectCheckpoint(signed, verifier)
	return t, err
}

// inspectCheckpoint is OpenCheckpoint that also says whether the returned
// tree could be read, signature or not, so that Verify can place a
// checkpoint that fails at its size.
func inspectCheckpoint(signed []byte, verifier note.Verifier) (t tlog.Tree, readable bool, err error) {
	if verifier == nil {
		return tlog.Tree{}, false, fmt.Errorf("%w: no verifier", ErrBadCheckpoint)
	}
	n, openErr := note.Open(signed, note.VerifierList(verifier))
	var text string
	switch {
	case openErr == nil:
		text = n.Text
	default:
		// Read the text without trusting it, only to learn the size.
		var unverified *note.UnverifiedNoteError
		if errors.As(openErr, &unverified) {
			text = unverified.Note.Text
		} else if i := bytes.LastIndex(signed, []byte("\n\n")); i >= 0 {
			text = string(signed[:i+1])
		}
	}
	origin, t, parseErr := parseCheckpointText(text)
	readable = parseErr == nil
	switch {
	case openErr != nil:
		return t, readable, fmt.Errorf("%w: signature: %w", ErrBadCheckpoint, openErr)
	case parseErr != nil:
		return t, false, fmt.Errorf("%w: %v", ErrBadCheckpoint, parseErr)
	case origin != Origin(verifier.Name()):
		return t, true, fmt.Errorf("%w: origin %q, want %q", ErrBadCheckpoint, origin, Origin(verifier.Name()))
	}
	return t, true, nil
}
