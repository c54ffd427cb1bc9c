// Package mail sends the service's email: account verification, password
// resets and the like. A Mailer hides where the mail goes: an SMTP server in
// production, or the outbox table in development and tests, where the mail
// can be read back.
package mail

import (
	"context"
	"errors"
)

// Mailer sends one message. Implementations are safe for concurrent use.
type Mailer interface {
	// Send delivers m or returns why it could not. A message that fails
	// validation returns an error wrapping ErrInvalidMessage before anything
	// is sent.
	Send(ctx context.Context, m Message) error
}

// ErrInvalidMessage is wrapped by the error Send returns for a message that
// must not be sent as it is: a missing field, a recipient that is not one
// plain address, or a line break in a header field (header injection).
var ErrInvalidMessage = errors.New("invalid mail message")

// ErrStartTLSNotOffered is wrapped by the error SMTP.Send returns when the
// server does not offer STARTTLS and the configuration requires it.
var ErrStartTLSNotOffered = errors.New("SMTP server does not offer STARTTLS")
