package agentv1

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Framing of relayed access units (RelayFrame.payload), shared by the
// agent that cuts them and central that joins them.
const (
	// RelayPartSize is the most payload one RelayFrame carries.
	RelayPartSize = 32 << 10
	// MaxRelayFrame bounds one access unit, all parts joined: far above
	// any keyframe of a 4K camera, low enough that garbage cannot make
	// central hold much memory.
	MaxRelayFrame = 16 << 20
	// FetchChunkSize is the most data one FetchChunk carries.
	FetchChunkSize = 32 << 10
)

// AppendNALUs appends NAL units to dst, each after its length (4 bytes,
// big-endian).
func AppendNALUs(dst []byte, nalus [][]byte) []byte {
	for _, n := range nalus {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(n)))
		dst = append(dst, n...)
	}
	return dst
}

// ErrBadPayload is returned by SplitNALUs for a payload that is not a
// sequence of length-prefixed NAL units.
var ErrBadPayload = errors.New("relay payload is not length-prefixed NAL units")

// SplitNALUs is the inverse of AppendNALUs. The NAL units share payload's
// memory.
func SplitNALUs(payload []byte) ([][]byte, error) {
	var out [][]byte
	for len(payload) > 0 {
		if len(payload) < 4 {
			return nil, fmt.Errorf("%w: %d stray bytes at the end", ErrBadPayload, len(payload))
		}
		n := binary.BigEndian.Uint32(payload)
		payload = payload[4:]
		if n == 0 || uint64(n) > uint64(len(payload)) {
			return nil, fmt.Errorf("%w: a NAL unit of %d bytes where %d are left", ErrBadPayload, n, len(payload))
		}
		out = append(out, payload[:n:n])
		payload = payload[n:]
	}
	return out, nil
}
