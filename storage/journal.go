package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// JournalEntry is one entry of a district's chained log: what happened to
// footage and to the agent (deletions, holds, local accesses), each entry
// bound to the one before by its hash.
type JournalEntry struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Action  string    `json:"action"`
	Camera  string    `json:"camera"`
	Segment string    `json:"segment"`
	Detail  string    `json:"detail"`
	// Prev is the hash of the previous entry (hex), empty for the first.
	Prev string `json:"prev"`
	// Hash is JournalHash of the entry, hex.
	Hash string `json:"hash"`
}

// ErrBadJournal means a journal entry is invalid or the chain is broken.
var ErrBadJournal = errors.New("journal entry invalid")

// JournalHash is SHA-256(previous hash bytes || the entry's JSON with Hash
// empty and Time in UTC): what the agent computes and central checks.
func JournalHash(e JournalEntry) (string, error) {
	e.Hash = ""
	e.Time = e.Time.UTC()
	body, err := json.Marshal(e)
	if err != nil {
		return "", err
	}
	prev, err := hex.DecodeString(e.Prev)
	if err != nil {
		return "", fmt.Errorf("%w: previous hash: %v", ErrBadJournal, err)
	}
	h := sha256.New()
	h.Write(prev)
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil)), nil
}
