package mail

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/events"
)

// Outbox is the mail_outbox table, the one way mail leaves: every flow
// enqueues its messages in its own transaction, so that they go only if the
// flow commits, and a Worker delivers them through the configured transport
// (SMTP) without the flow waiting for it. With no transport (development and
// tests) the messages stay in the table, where they can be read back.
type Outbox struct {
	db *bun.DB
}

// NewOutbox returns an Outbox storing messages in db.
func NewOutbox(db *bun.DB) *Outbox {
	return &Outbox{db: db}
}

// Stored is a message kept in the outbox, with its delivery so far.
type Stored struct {
	ID string
	Message
	CreatedAt time.Time
	// Attempts counts the deliveries tried. SentAt is set once the server
	// took the message; NextAttemptAt is when the next try is due, nil once
	// the message was sent or given up. LastError is why the latest failed
	// try failed.
	Attempts      int
	SentAt        *time.Time
	NextAttemptAt *time.Time
	LastError     string
}

// outboxRow maps a mail_outbox row; Stored stays free of database tags.
type outboxRow struct {
	bun.BaseModel `bun:"table:mail_outbox"`

	ID        string    `bun:"id,pk,type:uuid,nullzero"`
	Kind      string    `bun:"kind,notnull"`
	To        string    `bun:"to_address,notnull"`
	ReplyTo   string    `bun:"reply_to,notnull"`
	Subject   string    `bun:"subject,notnull"`
	Text      string    `bun:"text_body,notnull"`
	HTML      string    `bun:"html_body,notnull"`
	CreatedAt time.Time `bun:"created_at,nullzero,notnull"`

	Attempts      int        `bun:"attempts,notnull"`
	NextAttemptAt *time.Time `bun:"next_attempt_at"`
	SentAt        *time.Time `bun:"sent_at"`
	LastError     *string    `bun:"last_error"`
}

func (r outboxRow) stored() Stored {
	s := Stored{
		ID:        r.ID,
		Message:   Message{Kind: r.Kind, To: r.To, ReplyTo: r.ReplyTo, Subject: r.Subject, Text: r.Text, HTML: r.HTML},
		CreatedAt: r.CreatedAt,
		Attempts:  r.Attempts, SentAt: r.SentAt, NextAttemptAt: r.NextAttemptAt,
	}
	if r.LastError != nil {
		s.LastError = *r.LastError
	}
	return s
}

// Enqueue stores msgs through idb, to be delivered once the transaction idb
// belongs to commits (at once outside a transaction), and rings the mail
// worker's doorbell. Pass the transaction of the flow that decided to send
// them. It refuses every message if one must not be sent, wrapping
// ErrInvalidMessage. With no message it still runs its one statement,
// storing nothing: a caller that has nothing to send, such as a password
// reset for an address without an account, takes as long as one that has.
func (o *Outbox) Enqueue(ctx context.Context, idb bun.IDB, msgs ...Message) error {
	cols := make([][]string, 6)
	for _, m := range msgs {
		if err := m.validate(); err != nil {
			return err
		}
		for i, v := range []string{m.Kind, m.To, m.Subject, m.Text, m.HTML, m.ReplyTo} {
			cols[i] = append(cols[i], v)
		}
	}
	_, err := idb.NewRaw(`
		WITH stored AS (
			INSERT INTO mail_outbox (kind, to_address, subject, text_body, html_body, reply_to)
			SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[])
			RETURNING id
		)
		SELECT pg_notify(?, ?) FROM (SELECT 1 FROM stored LIMIT 1) AS any_stored`,
		pgdialect.Array(cols[0]), pgdialect.Array(cols[1]), pgdialect.Array(cols[2]),
		pgdialect.Array(cols[3]), pgdialect.Array(cols[4]), pgdialect.Array(cols[5]),
		events.Channel, events.MailTopic).Exec(ctx)
	if err != nil {
		return fmt.Errorf("enqueue %d mail(s): %w", len(msgs), err)
	}
	return nil
}

// Send enqueues m on its own, outside any transaction; flows use Enqueue.
// It lets an Outbox stand where a Mailer is expected: given as the
// transport, it means mail stays in the outbox, undelivered.
func (o *Outbox) Send(ctx context.Context, m Message) error {
	return o.Enqueue(ctx, o.db, m)
}

// DefaultListLimit is how many messages List returns when asked for zero or
// fewer; MaxListLimit is the most it returns.
const (
	DefaultListLimit = 50
	MaxListLimit     = 500
)

// List returns up to limit stored messages, newest first: DefaultListLimit
// of them when limit is zero or less, and never more than MaxListLimit.
func (o *Outbox) List(ctx context.Context, limit int) ([]Stored, error) {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	var rows []outboxRow
	// id breaks ties: it is a UUIDv7, ordered by insertion time too.
	if err := o.db.NewSelect().Model(&rows).
		OrderExpr("created_at DESC, id DESC").
		Limit(int64(limit)).
		Scan(ctx); err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	out := make([]Stored, len(rows))
	for i, r := range rows {
		out[i] = r.stored()
	}
	return out, nil
}

// ListTo returns up to limit stored messages to the address to (which must
// match exactly), newest first, bounded as List is.
func (o *Outbox) ListTo(ctx context.Context, to string, limit int) ([]Stored, error) {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	var rows []outboxRow
	if err := o.db.NewSelect().Model(&rows).
		Where("to_address = ?", to).
		OrderExpr("created_at DESC, id DESC").
		Limit(int64(limit)).
		Scan(ctx); err != nil {
		return nil, fmt.Errorf("list outbox to %s: %w", to, err)
	}
	out := make([]Stored, len(rows))
	for i, r := range rows {
		out[i] = r.stored()
	}
	return out, nil
}

// Latest returns the newest stored message of the given kind to the given
// address, which must match exactly. Returns NotFound if there is none.
func (o *Outbox) Latest(ctx context.Context, to, kind string) (*Stored, error) {
	var row outboxRow
	err := o.db.NewSelect().Model(&row).
		Where("to_address = ?", to).
		Where("kind = ?", kind).
		OrderExpr("created_at DESC, id DESC").
		Limit(1).
		Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, apperr.Errorf(apperr.NotFound, "No %s mail to %s.", kind, to)
	}
	if err != nil {
		return nil, fmt.Errorf("latest %s mail to %s: %w", kind, to, err)
	}
	s := row.stored()
	return &s, nil
}
