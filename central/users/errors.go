package users

import (
	"errors"
	"fmt"
	"time"
)

// Errors returned by the Store. Callers compare with errors.Is; the returned
// errors usually wrap these with the name or value concerned.
var (
	// ErrBadCredentials is returned by Login for an unknown user, a wrong
	// password, a disabled user and a wrong or replayed second-factor code
	// alike, so that a caller cannot tell which names exist or are
	// disabled, nor which of password and code was wrong.
	ErrBadCredentials = errors.New("users: bad user name or password")

	// ErrSecondFactorRequired is returned by LoginTOTP when the password
	// is right but the user has a second factor and no code was given. It
	// is returned only after the password was verified (and the user found
	// enabled), so it says nothing about names to someone without the
	// password. It is no failure: the caller asks for the code and tries
	// again.
	ErrSecondFactorRequired = errors.New("users: second factor required")

	// ErrTooManyAttempts is returned by Login, without looking at the
	// password, while the user name or the client address has had too many
	// recent failures. The error is a *TooManyAttemptsError that says when to
	// retry.
	ErrTooManyAttempts = errors.New("users: too many failed login attempts")

	// ErrUnauthenticated is returned by Authenticate and Logout for a token
	// that is unknown, malformed, expired, revoked, or whose user is
	// disabled. The cases are not told apart on purpose.
	ErrUnauthenticated = errors.New("users: not authenticated")

	// ErrInvalid wraps every validation failure of Add and SetPassword
	// (name syntax, role, districts, password length) and the refusals of
	// ConfirmTOTP (wrong code, nothing pending): the request is wrong, not
	// the server.
	ErrInvalid = errors.New("users: invalid argument")

	// ErrUserExists is returned by Add for a name already taken, disabled
	// users included: names are never reused, so the audit log stays
	// unambiguous.
	ErrUserExists = errors.New("users: user already exists")

	// ErrNoSuchUser is returned by Get, Disable, SetPassword and the TOTP
	// methods for a name that does not exist.
	ErrNoSuchUser = errors.New("users: no such user")

	// ErrLastAdmin is returned by Disable when it would leave no enabled
	// administrator, which would make users impossible to manage.
	ErrLastAdmin = errors.New("users: cannot disable the last enabled administrator")
)

// TooManyAttemptsError is the error Login returns while it is refusing
// attempts. errors.Is(err, ErrTooManyAttempts) is true for it.
type TooManyAttemptsError struct {
	// Scope is "user" when the name is locked, "address" when the client
	// address is.
	Scope string
	// RetryAfter is how long until one more attempt will be considered.
	RetryAfter time.Duration
}

func (e *TooManyAttemptsError) Error() string {
	return fmt.Sprintf("%v (per %s): retry in %s", ErrTooManyAttempts, e.Scope, e.RetryAfter)
}

func (e *TooManyAttemptsError) Unwrap() error { return ErrTooManyAttempts }
