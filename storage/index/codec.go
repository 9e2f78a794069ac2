package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/vigil-cctv/vigil/storage"
)

// Records are stored in a small binary format rather than JSON: decoding is
// what List, Expiring and ForEach spend their time on, and the binary form
// decodes several times faster (BenchmarkDecode in codec_test.go). The first
// byte is the format version so that a later format can coexist with this one.
//
// Format 1:
//
//	version byte (1)
//	ID, District, Camera, SHA256, Codec, Key: uvarint length + bytes each
//	Start, End, Expires: varint Unix nanoseconds each
//	Bytes: varint
//	MotionScore: 8 bytes, IEEE 754 bits, big-endian
//	flags byte: bit 0 Missing, bit 1 Recovered
//	HeldBy: uvarint count, then uvarint length + bytes each
//
// Times come back in UTC: a segment's instants matter, not the zone of the
// process that recorded them.
const recordFormat1 = 1

const (
	flagMissing   = 1 << 0
	flagRecovered = 1 << 1
)

// maxHolds bounds the HeldBy count a decoder will allocate for, so that a
// damaged length cannot make it allocate gigabytes.
const maxHolds = 1 << 16

var errRecord = errors.New("malformed record")

func encodeSegment(s *storage.Segment) []byte {
	n := 1 + 3*binary.MaxVarintLen64 + binary.MaxVarintLen64 + 8 + 1 + binary.MaxVarintLen64
	for _, f := range []string{s.ID, s.District, s.Camera, s.SHA256, s.Codec, s.Key} {
		n += binary.MaxVarintLen64 + len(f)
	}
	for _, h := range s.HeldBy {
		n += binary.MaxVarintLen64 + len(h)
	}
	b := make([]byte, 0, n)
	b = append(b, recordFormat1)
	for _, f := range []string{s.ID, s.District, s.Camera, s.SHA256, s.Codec, s.Key} {
		b = appendString(b, f)
	}
	b = binary.AppendVarint(b, s.Start.UnixNano())
	b = binary.AppendVarint(b, s.End.UnixNano())
	b = binary.AppendVarint(b, s.Expires.UnixNano())
	b = binary.AppendVarint(b, s.Bytes)
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(s.MotionScore))
	var flags byte
	if s.Missing {
		flags |= flagMissing
	}
	if s.Recovered {
		flags |= flagRecovered
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(s.HeldBy)))
	for _, h := range s.HeldBy {
		b = appendString(b, h)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeSegment parses a record. It copies what it keeps, so b may be memory
// owned by a bbolt transaction.
func decodeSegment(b []byte) (storage.Segment, error) {
	// One string holds the whole record and the string fields are slices
	// of it: one allocation instead of one per field.
	d := decoder{b: b, all: string(b)}
	if v := d.byte(); d.err == nil && v != recordFormat1 {
		return storage.Segment{}, fmt.Errorf("%w: unknown format %d", errRecord, v)
	}
	var s storage.Segment
	s.ID = d.string()
	s.District = d.string()
	s.Camera = d.string()
	s.SHA256 = d.string()
	s.Codec = d.string()
	s.Key = d.string()
	s.Start = d.time()
	s.End = d.time()
	s.Expires = d.time()
	s.Bytes = d.varint()
	s.MotionScore = math.Float64frombits(d.uint64())
	flags := d.byte()
	if flags&^(flagMissing|flagRecovered) != 0 {
		d.fail("unknown flags %#x", flags)
	}
	s.Missing = flags&flagMissing != 0
	s.Recovered = flags&flagRecovered != 0
	if n := d.uvarint(); n > 0 {
		if n > maxHolds || n > uint64(len(d.b)) {
			d.fail("hold count %d", n)
		} else {
			s.HeldBy = make([]string, n)
			for i := range s.HeldBy {
				s.HeldBy[i] = d.string()
			}
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return storage.Segment{}, d.err
	}
	return s, nil
}

// decoder reads fields in order and remembers the first error, so the
// field-by-field code above stays linear.
type decoder struct {
	b   []byte // what is left to read
	all string // the whole record
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errRecord, fmt.Sprintf(format, args...))
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uint64() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail("truncated")
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail("string length %d exceeds record", n)
		return ""
	}
	off := len(d.all) - len(d.b)
	d.b = d.b[n:]
	return d.all[off : off+int(n)]
}

func (d *decoder) time() time.Time {
	ns := d.varint()
	if d.err != nil {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// Secondary keys. Times are Unix milliseconds, big-endian, so that byte order
// is time order; validate keeps every indexed time at or after 1970 so that
// the unsigned encoding never wraps. The id suffix makes keys unique when two
// segments share a millisecond.

// cameraName is the "<district>/<camera>" form used in keys and by Cameras.
func cameraName(district, camera string) string { return district + "/" + camera }

// cameraPrefix ends in 0x00, which no camera name contains, so that the
// prefix of camera "a" never matches keys of camera "a-2".
func cameraPrefix(district, camera string) []byte {
	p := make([]byte, 0, len(district)+len(camera)+2)
	p = append(p, district...)
	p = append(p, '/')
	p = append(p, camera...)
	return append(p, 0)
}

func cameraKey(s *storage.Segment) []byte {
	p := cameraPrefix(s.District, s.Camera)
	k := make([]byte, 0, len(p)+8+len(s.ID))
	k = append(k, p...)
	k = binary.BigEndian.AppendUint64(k, uint64(s.Start.UnixMilli()))
	return append(k, s.ID...)
}

func expiryKey(s *storage.Segment) []byte {
	k := make([]byte, 0, 8+len(s.ID))
	k = binary.BigEndian.AppendUint64(k, uint64(s.Expires.UnixMilli()))
	return append(k, s.ID...)
}

// msKey is the 8-byte big-endian form of a millisecond count, clamped at 0.
func msKey(ms int64) []byte {
	if ms < 0 {
		ms = 0
	}
	return binary.BigEndian.AppendUint64(nil, uint64(ms))
}
