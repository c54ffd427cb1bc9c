// Package mail sends the service's email: account verification, password
// resets and the like. Every flow enqueues its messages in the Outbox table
// inside its own transaction; a Worker delivers them through a Mailer (SMTP
// in production) with retries, so that no answer waits for a mail server.
// With no SMTP server (development and tests) the mail stays in the outbox,
// where it can be read back.
package mail

import (
	"context"
	"errors"
)

// Mailer sends one message: the transport a Worker delivers through.
// Implementations are safe for concurrent use.
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
