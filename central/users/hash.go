package users

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the argon2id cost parameters for new hashes. Each stored
// hash carries the parameters it was made with, so changing them affects new
// and re-hashed passwords only; old hashes keep verifying, and Login
// re-hashes a password made with other parameters after it has verified it.
type Argon2Params struct {
	// Time is the number of passes over the memory (default 1).
	Time uint32
	// MemoryKiB is the memory used per hash, in KiB (default 64 MiB).
	MemoryKiB uint32
	// Threads is the parallelism (default 2).
	Threads uint8
}

// Defaults follow the RFC 9106 second recommended option, scaled to one
// pass, which costs tens of milliseconds on a server core.
const (
	defaultArgon2Time      = 1
	defaultArgon2MemoryKiB = 64 * 1024
	defaultArgon2Threads   = 2

	saltLen = 16
	keyLen  = 32

	// Upper bounds on parameters read back from a stored hash: a corrupted
	// record must not make one login allocate gigabytes or spin for minutes.
	maxArgon2Time      = 64
	maxArgon2MemoryKiB = 4 * 1024 * 1024
)

func (p Argon2Params) withDefaults() Argon2Params {
	if p.Time == 0 {
		p.Time = defaultArgon2Time
	}
	if p.MemoryKiB == 0 {
		p.MemoryKiB = defaultArgon2MemoryKiB
	}
	if p.Threads == 0 {
		p.Threads = defaultArgon2Threads
	}
	return p
}

func (p Argon2Params) check() error {
	if p.Time > maxArgon2Time {
		return fmt.Errorf("argon2 time %d above %d", p.Time, maxArgon2Time)
	}
	if p.MemoryKiB > maxArgon2MemoryKiB {
		return fmt.Errorf("argon2 memory %d KiB above %d", p.MemoryKiB, maxArgon2MemoryKiB)
	}
	// argon2 needs at least 8 KiB per lane.
	if p.MemoryKiB < 8*uint32(p.Threads) {
		return fmt.Errorf("argon2 memory %d KiB below 8 KiB per thread (%d threads)", p.MemoryKiB, p.Threads)
	}
	return nil
}

var b64 = base64.RawStdEncoding

// hashPassword returns the PHC string form of an argon2id hash:
// $argon2id$v=19$m=<KiB>,t=<time>,p=<threads>$<salt>$<key>.
func hashPassword(password string, p Argon2Params) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash: salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

var errBadHash = errors.New("hash: malformed stored hash")

type parsedHash struct {
	params    Argon2Params
	salt, key []byte
}

func parseHash(encoded string) (parsedHash, error) {
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return parsedHash{}, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return parsedHash{}, fmt.Errorf("%w: version %q", errBadHash, parts[2])
	}
	var h parsedHash
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &h.params.MemoryKiB, &h.params.Time, &h.params.Threads); err != nil {
		return parsedHash{}, fmt.Errorf("%w: parameters %q", errBadHash, parts[3])
	}
	if h.params.Time == 0 || h.params.Threads == 0 {
		return parsedHash{}, fmt.Errorf("%w: parameters %q", errBadHash, parts[3])
	}
	if err := h.params.check(); err != nil {
		return parsedHash{}, fmt.Errorf("%w: %w", errBadHash, err)
	}
	var err error
	if h.salt, err = b64.DecodeString(parts[4]); err != nil || len(h.salt) < 8 {
		return parsedHash{}, fmt.Errorf("%w: salt", errBadHash)
	}
	if h.key, err = b64.DecodeString(parts[5]); err != nil || len(h.key) < 16 {
		return parsedHash{}, fmt.Errorf("%w: key", errBadHash)
	}
	return h, nil
}

// verifyPassword reports whether password matches the encoded hash, and the
// parameters the hash was made with.
func verifyPassword(password, encoded string) (bool, Argon2Params, error) {
	h, err := parseHash(encoded)
	if err != nil {
		return false, Argon2Params{}, err
	}
	key := argon2.IDKey([]byte(password), h.salt, h.params.Time, h.params.MemoryKiB, h.params.Threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(key, h.key) == 1, h.params, nil
}
