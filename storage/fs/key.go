package fs

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/vigil-cctv/vigil/storage"
)

// Limits follow S3 (1024-byte keys) and common filesystems (255-byte names),
// so that a key valid here is valid in every store.
const (
	maxKeyLen     = 1024
	maxElementLen = 255
)

// ValidateKey reports whether key can name an object. Keys are relative
// slash-separated paths; the rules are strict because a key becomes a path
// under the store root and must never reach outside it or collide with the
// store's own dot-named files (temporary files, hold markers).
func ValidateKey(key string) error {
	if err := validateKey(key); err != nil {
		return fmt.Errorf("%w %q: %s", storage.ErrInvalidKey, key, err)
	}
	return nil
}

// keyError is a plain reason, wrapped by ValidateKey.
type keyError string

func (e keyError) Error() string { return string(e) }

func validateKey(key string) error {
	switch {
	case key == "":
		return keyError("empty")
	case len(key) > maxKeyLen:
		return keyError("longer than 1024 bytes")
	case !utf8.ValidString(key):
		return keyError("not UTF-8")
	case strings.HasPrefix(key, "/"):
		return keyError("absolute")
	case strings.Contains(key, `\`):
		return keyError("contains a backslash")
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return keyError("contains a control character")
		}
	}
	for elem := range strings.SplitSeq(key, "/") {
		switch {
		case elem == "":
			return keyError("empty path element")
		case elem == "..":
			return keyError(`contains ".."`)
		case strings.HasPrefix(elem, "."):
			return keyError("path element starts with a dot")
		case len(elem) > maxElementLen:
			return keyError("path element longer than 255 bytes")
		}
	}
	return nil
}
