// Package apperr is the one error type the service shows its users: a machine
// code and a sentence that helps. Anything that is not an *Error reaches a
// client as INTERNAL, with the real cause kept for the log.
package apperr

import (
	"errors"
	"fmt"
)

// Code is a machine-readable error code; it travels to GraphQL clients as
// extensions.code.
type Code string

// The codes every part of the service may return. Later domains add their own
// beside these (e.g. INSUFFICIENT_CREDITS) in this file, so that the list of
// codes a client can meet stays in one place.
const (
	Unauthenticated Code = "UNAUTHENTICATED"
	Forbidden       Code = "FORBIDDEN"
	NotFound        Code = "NOT_FOUND"
	Validation      Code = "VALIDATION"
	RateLimited     Code = "RATE_LIMITED"
	// LimitExceeded refuses what would hold more open at once than allowed
	// (streams, subscriptions); ending one of them makes room, waiting
	// does not.
	LimitExceeded   Code = "LIMIT_EXCEEDED"
	BadRequest      Code = "BAD_REQUEST"
	PayloadTooLarge Code = "PAYLOAD_TOO_LARGE"
	RequestTimeout  Code = "REQUEST_TIMEOUT"
	QueryTooComplex Code = "QUERY_TOO_COMPLEX"
	QueryTooDeep    Code = "QUERY_TOO_DEEP"
	Conflict        Code = "CONFLICT"
	Unavailable     Code = "UNAVAILABLE"
	Internal        Code = "INTERNAL"
	// Throttled refuses an operation whose cost does not fit in its
	// caller's cost bucket now; retryAfter says when it will.
	Throttled Code = "THROTTLED"

	// Accounts.
	InvalidCredentials Code = "INVALID_CREDENTIALS"
	EmailNotVerified   Code = "EMAIL_NOT_VERIFIED"
	// ReauthenticationRequired: the password must be proved again on this
	// session (confirmPassword) before an action that cannot be undone.
	ReauthenticationRequired Code = "REAUTHENTICATION_REQUIRED"
	AccountSuspended         Code = "ACCOUNT_SUSPENDED"
	PasswordWeak             Code = "PASSWORD_WEAK"
	TokenInvalid             Code = "TOKEN_INVALID"
	TokenExpired             Code = "TOKEN_EXPIRED"
	TokenUsed                Code = "TOKEN_USED"
	CaptchaRequired          Code = "CAPTCHA_REQUIRED"
	CaptchaFailed            Code = "CAPTCHA_FAILED"

	// Persisted queries. PersistedQueryNotFound is the code Apollo clients
	// answer by sending the full query with its hash.
	PersistedQueryNotFound Code = "PERSISTED_QUERY_NOT_FOUND"
	PersistedQueryRequired Code = "PERSISTED_QUERY_REQUIRED"
)

// Error is a failure a user may see. Message is written for people; Fields
// carries extra machine-readable details (for example retryAfter).
type Error struct {
	Code    Code
	Message string
	Fields  map[string]any
	cause   error
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error that shows message to the user and keeps cause for
// the log and for errors.Is / errors.As.
func Wrap(cause error, code Code, message string) *Error {
	return &Error{Code: code, Message: message, cause: cause}
}

// With returns a copy of e that carries one more extension field.
func (e *Error) With(key string, value any) *Error {
	c := *e
	c.Fields = make(map[string]any, len(e.Fields)+1)
	for k, v := range e.Fields {
		c.Fields[k] = v
	}
	c.Fields[key] = value
	return &c
}

func (e *Error) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.cause)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the cause given to Wrap, if any.
func (e *Error) Unwrap() error { return e.cause }

// CodeOf returns the code of the first *Error in err's chain, or Internal when
// there is none (and "" for a nil error).
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}
