package audit

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Outcomes of an audited action.
const (
	// OutcomeOK: the action was allowed and is being carried out. Records are
	// written before the action, so "ok" means "allowed", not "completed".
	OutcomeOK = "ok"
	// OutcomeDenied: authorisation refused the action.
	OutcomeDenied = "denied"
	// OutcomeFailed: the action was allowed but failed for a reason of the
	// request (no such segment, agent offline, wrong password).
	OutcomeFailed = "failed"
	// OutcomeError: the action failed on a fault of the system.
	OutcomeError = "error"
)

// Bounds of a record's fields, in bytes of UTF-8.
const (
	MaxAction = 64
	MaxText   = 1024
	MaxDetail = 4096
	// MaxEncoded bounds the canonical encoding: every text field at its
	// bound with every byte escaped, plus the fixed part. Unmarshal refuses
	// longer input before parsing it.
	MaxEncoded = 6*(9*MaxText+MaxAction+MaxDetail) + 1024
)

// Record is one entry of the audit log.
type Record struct {
	// Seq is the record's position in the log, assigned by the log: the
	// first record has Seq 0 (the tlog record index). Callers pass 0.
	Seq uint64
	// Time is when the log recorded it, assigned by the log from
	// Options.Now. Callers leave it zero.
	Time time.Time
	// Actor is who acted.
	Actor Actor
	// Action is a code from the table in actions.go (or a new one of the
	// same form): lowercase letters in dot-separated words.
	Action string
	// Target is what was acted on.
	Target Target
	// Reason is the reason the actor stated, if the action needs one.
	Reason string
	// Client is the client's network address.
	Client string
	// Outcome is one of the Outcome constants.
	Outcome string
	// Detail is free text: the refusal's error, an agent's report.
	Detail string
}

// Actor is who acted. Agents appear as User "agent:<district>", Role
// "agent"; central itself (retention, reconciliation) as User "central",
// Role "system".
type Actor struct {
	User string
	Role string
	// Designation is the reference of the act that designated the user to
	// the role (DESIGN.md: individual, documented designation).
	Designation string
}

// Target is what an action was about. Empty fields, and zero times, are
// "none".
type Target struct {
	District string
	Camera   string
	// From and To are the span of footage concerned (a recording viewed, a
	// hold placed); zero for none.
	From, To time.Time
	Segment  string
	Hold     string
	// User is the user acted on, for user.* actions.
	User string
}

// encodingVersion is the "v" of the canonical encoding: a later encoding
// must take a new number, so that old records keep their bytes and hashes.
const encodingVersion = 1

// timeLayout has a fixed number of fractional digits so that every instant
// has exactly one encoding, and sorts as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// Marshal returns the canonical encoding of r, the bytes the log stores and
// hashes. It is JSON, readable by any JSON decoder, but defined here rather
// than by encoding/json so that it cannot change with the Go release:
//
//	{"v":1,"seq":N,"time":"T","actor":{"user":S,"role":S,"designation":S},
//	 "action":S,"target":{"district":S,"camera":S,"from":T,"to":T,
//	 "segment":S,"hold":S,"user":S},"reason":S,"client":S,"outcome":S,
//	 "detail":S}
//
// on one line without spaces, every field always present and in this order.
// Times are UTC with nine fractional digits ("2026-03-01T10:00:00.000000000Z"),
// a zero time is "". Strings escape '"' and '\\' with a backslash, bytes
// below 0x20 as \u00xx (lowercase hex), and nothing else. Marshal validates
// r first (the Seq may be anything, the Time must be set).
func (r Record) Marshal() ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	if r.Time.IsZero() {
		return nil, fmt.Errorf("%w: time not set", ErrInvalid)
	}
	return r.appendCanonical(make([]byte, 0, 512)), nil
}

func (r Record) appendCanonical(b []byte) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, encodingVersion, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"time":`...)
	b = appendTime(b, r.Time)
	b = append(b, `,"actor":{"user":`...)
	b = appendString(b, r.Actor.User)
	b = append(b, `,"role":`...)
	b = appendString(b, r.Actor.Role)
	b = append(b, `,"designation":`...)
	b = appendString(b, r.Actor.Designation)
	b = append(b, `},"action":`...)
	b = appendString(b, r.Action)
	b = append(b, `,"target":{"district":`...)
	b = appendString(b, r.Target.District)
	b = append(b, `,"camera":`...)
	b = appendString(b, r.Target.Camera)
	b = append(b, `,"from":`...)
	b = appendTime(b, r.Target.From)
	b = append(b, `,"to":`...)
	b = appendTime(b, r.Target.To)
	b = append(b, `,"segment":`...)
	b = appendString(b, r.Target.Segment)
	b = append(b, `,"hold":`...)
	b = appendString(b, r.Target.Hold)
	b = append(b, `,"user":`...)
	b = appendString(b, r.Target.User)
	b = append(b, `},"reason":`...)
	b = appendString(b, r.Reason)
	b = append(b, `,"client":`...)
	b = appendString(b, r.Client)
	b = append(b, `,"outcome":`...)
	b = appendString(b, r.Outcome)
	b = append(b, `,"detail":`...)
	b = appendString(b, r.Detail)
	return append(b, '}')
}

// appendTime writes t in timeLayout, quoted, by hand: time's general
// formatter was a third of the cost of verifying a record.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	if !t.IsZero() {
		t = t.UTC()
		year, month, day := t.Date()
		hour, minute, sec := t.Clock()
		b = appendDigits(b, year, 4)
		b = append(b, '-')
		b = appendDigits(b, int(month), 2)
		b = append(b, '-')
		b = appendDigits(b, day, 2)
		b = append(b, 'T')
		b = appendDigits(b, hour, 2)
		b = append(b, ':')
		b = appendDigits(b, minute, 2)
		b = append(b, ':')
		b = appendDigits(b, sec, 2)
		b = append(b, '.')
		b = appendDigits(b, t.Nanosecond(), 9)
		b = append(b, 'Z')
	}
	return append(b, '"')
}

// appendDigits writes v, which validate keeps within width digits, with
// leading zeros.
func appendDigits(b []byte, v, width int) []byte {
	var buf [9]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, buf[:width]...)
}

const hexDigits = "0123456789abcdef"

// appendString quotes s, which validate has checked is valid UTF-8.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Unmarshal decodes a record from its canonical encoding. It refuses any
// other byte string, even one that a JSON decoder would read as the same
// record (other spacing, field order, escaping, number or time format, a
// duplicated, unknown or missing field): a stored record whose bytes changed
// in any way is detected here, not only by its hash. It reads the fixed
// layout of Marshal, then encodes what it read and compares the bytes, so
// that whatever it accepts is exactly Marshal's output. The errors wrap
// ErrNonCanonical.
func Unmarshal(data []byte) (Record, error) {
	if len(data) > MaxEncoded {
		return Record{}, fmt.Errorf("%w: %d bytes, more than %d", ErrNonCanonical, len(data), MaxEncoded)
	}
	d := decoder{data: data, text: string(data)}
	var r Record
	var tm, from, to string
	d.lit(`{"v":`)
	if v := d.uint(); d.err == nil && v != encodingVersion {
		return Record{}, fmt.Errorf("%w: encoding version %d, want %d", ErrNonCanonical, v, encodingVersion)
	}
	d.lit(`,"seq":`)
	r.Seq = d.uint()
	d.lit(`,"time":`)
	tm = d.str()
	d.lit(`,"actor":{"user":`)
	r.Actor.User = d.str()
	d.lit(`,"role":`)
	r.Actor.Role = d.str()
	d.lit(`,"designation":`)
	r.Actor.Designation = d.str()
	d.lit(`},"action":`)
	r.Action = d.str()
	d.lit(`,"target":{"district":`)
	r.Target.District = d.str()
	d.lit(`,"camera":`)
	r.Target.Camera = d.str()
	d.lit(`,"from":`)
	from = d.str()
	d.lit(`,"to":`)
	to = d.str()
	d.lit(`,"segment":`)
	r.Target.Segment = d.str()
	d.lit(`,"hold":`)
	r.Target.Hold = d.str()
	d.lit(`,"user":`)
	r.Target.User = d.str()
	d.lit(`},"reason":`)
	r.Reason = d.str()
	d.lit(`,"client":`)
	r.Client = d.str()
	d.lit(`,"outcome":`)
	r.Outcome = d.str()
	d.lit(`,"detail":`)
	r.Detail = d.str()
	d.lit(`}`)
	if d.err == nil && d.i != len(data) {
		d.fail("data after the record")
	}
	if d.err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrNonCanonical, d.err)
	}
	var err error
	if r.Time, err = parseTime(tm); err != nil {
		return Record{}, fmt.Errorf("%w: time: %v", ErrNonCanonical, err)
	}
	if r.Target.From, err = parseTime(from); err != nil {
		return Record{}, fmt.Errorf("%w: target from: %v", ErrNonCanonical, err)
	}
	if r.Target.To, err = parseTime(to); err != nil {
		return Record{}, fmt.Errorf("%w: target to: %v", ErrNonCanonical, err)
	}
	if err := r.validate(); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrNonCanonical, err)
	}
	if r.Time.IsZero() {
		return Record{}, fmt.Errorf("%w: no time", ErrNonCanonical)
	}
	if again := r.appendCanonical(make([]byte, 0, len(data))); !bytes.Equal(again, data) {
		return Record{}, fmt.Errorf("%w: bytes differ from the record's encoding at offset %d", ErrNonCanonical, firstDiff(again, data))
	}
	return r, nil
}

// decoder reads the fixed layout of the canonical encoding. It stops at
// the first error (the later calls do nothing); it accepts a little more
// than Marshal writes (any \u escape), which the final comparison refuses.
type decoder struct {
	data []byte
	// text is data as a string, so that strings without escapes are
	// slices of it rather than copies.
	text string
	i    int
	err  error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("offset %d: %s", d.i, fmt.Sprintf(format, args...))
	}
}

// lit consumes the literal s.
func (d *decoder) lit(s string) {
	if d.err != nil {
		return
	}
	if !strings.HasPrefix(d.text[d.i:], s) {
		d.fail("want %s", s)
		return
	}
	d.i += len(s)
}

// uint reads a decimal number without sign, fraction, exponent or leading
// zero.
func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	j := d.i
	for j < len(d.data) && d.data[j] >= '0' && d.data[j] <= '9' {
		j++
	}
	digits := d.text[d.i:j]
	if digits == "" || (len(digits) > 1 && digits[0] == '0') {
		d.fail("want a number")
		return 0
	}
	v, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		d.fail("number %s: %v", digits, err)
		return 0
	}
	d.i = j
	return v
}

// str reads a quoted string.
func (d *decoder) str() string {
	if d.err != nil {
		return ""
	}
	if d.i >= len(d.data) || d.data[d.i] != '"' {
		d.fail("want a string")
		return ""
	}
	start := d.i + 1
	j := start
	for j < len(d.data) && d.data[j] != '"' && d.data[j] != '\\' && d.data[j] >= 0x20 {
		j++
	}
	if j < len(d.data) && d.data[j] == '"' {
		// The common case: no escapes.
		d.i = j + 1
		return d.text[start:j]
	}
	buf := []byte(d.text[start:j])
	for j < len(d.data) {
		c := d.data[j]
		switch {
		case c == '"':
			d.i = j + 1
			return string(buf)
		case c < 0x20:
			d.i = j
			d.fail("control character in a string")
			return ""
		case c != '\\':
			buf = append(buf, c)
			j++
		case j+1 < len(d.data) && (d.data[j+1] == '"' || d.data[j+1] == '\\'):
			buf = append(buf, d.data[j+1])
			j += 2
		case j+5 < len(d.data) && d.data[j+1] == 'u':
			v, err := strconv.ParseUint(d.text[j+2:j+6], 16, 16)
			if err != nil || v >= 0x20 {
				d.i = j
				d.fail("escape %s", d.text[j:j+6])
				return ""
			}
			buf = append(buf, byte(v))
			j += 6
		default:
			d.i = j
			d.fail("bad escape")
			return ""
		}
	}
	d.i = j
	d.fail("unterminated string")
	return ""
}

// parseTime reads timeLayout ("" is the zero time). It checks the layout,
// not the ranges: an impossible date (February 30) is normalised by
// time.Date, and Unmarshal's comparison with the re-encoding refuses it.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if len(s) != len(timeLayout) {
		return time.Time{}, fmt.Errorf("%q: want the layout %s", s, timeLayout)
	}
	var f [7]int
	for i, field := range [7]struct{ at, n int }{{0, 4}, {5, 2}, {8, 2}, {11, 2}, {14, 2}, {17, 2}, {20, 9}} {
		for _, c := range []byte(s[field.at : field.at+field.n]) {
			if c < '0' || c > '9' {
				return time.Time{}, fmt.Errorf("%q: want the layout %s", s, timeLayout)
			}
			f[i] = f[i]*10 + int(c-'0')
		}
	}
	if s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' || s[29] != 'Z' {
		return time.Time{}, fmt.Errorf("%q: want the layout %s", s, timeLayout)
	}
	return time.Date(f[0], time.Month(f[1]), f[2], f[3], f[4], f[5], f[6], time.UTC), nil
}

func firstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// validOutcome reports whether s is one of the Outcome constants.
func validOutcome(s string) bool {
	switch s {
	case OutcomeOK, OutcomeDenied, OutcomeFailed, OutcomeError:
		return true
	}
	return false
}

// ValidAction reports whether s has the form of an action code: 1 to
// MaxAction bytes of lowercase ASCII letters in dot-separated words
// ("live.start", "user.add"). The prefix filter "user.*" of Query is not an
// action code.
func ValidAction(s string) bool {
	if s == "" || len(s) > MaxAction || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
		case c == '.' && s[i-1] != '.':
		default:
			return false
		}
	}
	return true
}

// validate checks everything but Seq and Time, which the log assigns.
func (r Record) validate() error {
	if !ValidAction(r.Action) {
		return fmt.Errorf("%w: action %q: want lowercase words separated by dots, at most %d bytes", ErrInvalid, Clip(r.Action, 80), MaxAction)
	}
	if !validOutcome(r.Outcome) {
		return fmt.Errorf("%w: outcome %q: want %s, %s, %s or %s", ErrInvalid, Clip(r.Outcome, 80), OutcomeOK, OutcomeDenied, OutcomeFailed, OutcomeError)
	}
	texts := []struct {
		name, value string
		max         int
	}{
		{"actor user", r.Actor.User, MaxText},
		{"actor role", r.Actor.Role, MaxText},
		{"actor designation", r.Actor.Designation, MaxText},
		{"target district", r.Target.District, MaxText},
		{"target camera", r.Target.Camera, MaxText},
		{"target segment", r.Target.Segment, MaxText},
		{"target hold", r.Target.Hold, MaxText},
		{"target user", r.Target.User, MaxText},
		{"reason", r.Reason, MaxText},
		{"client", r.Client, MaxText},
		{"detail", r.Detail, MaxDetail},
	}
	for _, t := range texts {
		if len(t.value) > t.max {
			return fmt.Errorf("%w: %s: %d bytes, more than %d (see Clip)", ErrInvalid, t.name, len(t.value), t.max)
		}
		if !utf8.ValidString(t.value) {
			return fmt.Errorf("%w: %s: not valid UTF-8 (see Clip)", ErrInvalid, t.name)
		}
	}
	for _, t := range []struct {
		name string
		t    time.Time
	}{{"time", r.Time}, {"target from", r.Target.From}, {"target to", r.Target.To}} {
		// Outside these years the fixed-width layout cannot hold the time.
		if !t.t.IsZero() && (t.t.UTC().Year() < 1 || t.t.UTC().Year() > 9999) {
			return fmt.Errorf("%w: %s: year %d outside 1-9999", ErrInvalid, t.name, t.t.UTC().Year())
		}
	}
	return nil
}

// Clip returns s cut to at most n bytes at a character boundary, with
// invalid UTF-8 replaced by U+FFFD. Callers use it on text that comes from
// outside (a reason typed by a user, an error message) so that a refused
// request with an overlong or malformed field can still be recorded.
func Clip(s string, n int) string {
	if !utf8.ValidString(s) {
		s = string(bytes.ToValidUTF8([]byte(s), []byte("\uFFFD")))
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
