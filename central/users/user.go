package users

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vigil-cctv/vigil/storage"
)

// Role is what a person does in the organisation; it decides which calls
// they may make (see package central/authz).
type Role string

// The roles of DESIGN.md. A user has exactly one.
const (
	RoleOperator Role = "operator"
	RoleOfficer  Role = "officer"
	RoleAuditor  Role = "auditor"
	RoleAdmin    Role = "admin"
)

// Roles returns every role, in a fixed order.
func Roles() []Role {
	return []Role{RoleOperator, RoleOfficer, RoleAuditor, RoleAdmin}
}

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	return slices.Contains(Roles(), r)
}

// ParseRole returns the role named s (exact, lowercase).
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", fmt.Errorf("%w: unknown role %q: use operator, officer, auditor or admin", ErrInvalid, s)
	}
	return r, nil
}

// User is a person who can log in to central.
type User struct {
	Name string
	Role Role
	// Districts the user may act on; empty means every district.
	Districts []string
	// Designation is the reference of the written act that authorises this
	// person (DESIGN.md: individual credentials, designated operators).
	Designation string
	Disabled    bool
	Created     time.Time
	// TOTP is true when the user has a confirmed second factor: LoginTOTP
	// then asks for a code. A pending enrolment does not count.
	TOTP bool
}

// InScope reports whether the user may act on district. An empty district
// is never in scope, so a request that forgot to name one is not taken as
// "all districts".
func (u User) InScope(district string) bool {
	if district == "" {
		return false
	}
	if len(u.Districts) == 0 {
		return true
	}
	return slices.Contains(u.Districts, district)
}

const (
	// MinPasswordLen is the shortest password Add and SetPassword accept,
	// in characters.
	MinPasswordLen = 12
	// maxPasswordBytes bounds what is hashed; longer input is a mistake or
	// an attack, not a password.
	maxPasswordBytes = 1024
	// maxDesignationBytes keeps the designation a reference, not a document.
	maxDesignationBytes = 256
)

// namePattern is the syntax of user names: short, lowercase, and safe to
// print in logs, file names and audit records without quoting.
var namePattern = regexp.MustCompile(`^[a-z][a-z0-9._-]{0,31}$`)

// ValidateName checks the syntax of a user name.
func ValidateName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%w: user name %q: use 1-32 of a-z, 0-9, '.', '_' or '-', starting with a letter", ErrInvalid, name)
	}
	return nil
}

// ValidatePassword checks a new password against the length rules.
func ValidatePassword(password string) error {
	if n := utf8.RuneCountInString(password); n < MinPasswordLen {
		return fmt.Errorf("%w: password too short: %d characters, need at least %d", ErrInvalid, n, MinPasswordLen)
	}
	if len(password) > maxPasswordBytes {
		return fmt.Errorf("%w: password too long: %d bytes, at most %d", ErrInvalid, len(password), maxPasswordBytes)
	}
	return nil
}

// normalizeDistricts validates the districts and returns them sorted and
// without duplicates, so that equal scopes compare and print the same.
func normalizeDistricts(districts []string) ([]string, error) {
	out := make([]string, 0, len(districts))
	for _, d := range districts {
		if err := storage.ValidateName("district", d); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		out = append(out, d)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func validateDesignation(s string) error {
	if len(s) > maxDesignationBytes {
		return fmt.Errorf("%w: designation too long: %d bytes, at most %d", ErrInvalid, len(s), maxDesignationBytes)
	}
	if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return fmt.Errorf("%w: designation %q: must be printable text", ErrInvalid, s)
	}
	return nil
}
