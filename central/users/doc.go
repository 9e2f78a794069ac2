// Package users keeps the people of central: their names, roles, district
// scope and designation act, their argon2id password hashes, the sessions
// opened by Login, and the login limits that slow down password guessing.
//
// Everything lives in buckets of central's single bbolt file, each named
// with a "users." prefix so that other packages sharing the file cannot
// collide with them. Session tokens and passwords are never stored in
// clear: a session is keyed by the SHA-256 of its token, a password by its
// argon2id hash.
//
// A user may add a second factor: a TOTP secret (RFC 6238, as authenticator
// apps use) that takes effect only once a code of it has been confirmed.
// Its secret is stored in clear, since codes are computed from it, with the
// last step used so that a code is accepted once.
//
// Every failed login is recorded durably (FailedLogins) so that the audit
// log can later report them; the rate limiter is rebuilt from those records
// at start, so a restart does not hand an attacker a fresh set of guesses.
package users
