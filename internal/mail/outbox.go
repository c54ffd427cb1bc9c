package mail

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/apperr"
)

// Outbox is a Mailer that keeps messages in the mail_outbox table instead of
// sending them: the default when no SMTP server is configured, so that
// development and tests can read the mail back.
type Outbox struct {
	db *bun.DB
}

// NewOutbox returns an Outbox storing messages in db.
func NewOutbox(db *bun.DB) *Outbox {
	return &Outbox{db: db}
}

// Stored is a message kept in the outbox.
type Stored struct {
	ID string
	Message
	CreatedAt time.Time
}

// outboxRow maps a mail_outbox row; Stored stays free of database tags.
type outboxRow struct {
	bun.BaseModel `bun:"table:mail_outbox"`

	ID        string    `bun:"id,pk,type:uuid,nullzero"`
	Kind      string    `bun:"kind,notnull"`
	To        string    `bun:"to_address,notnull"`
	Subject   string    `bun:"subject,notnull"`
	Text      string    `bun:"text_body,notnull"`
	HTML      string    `bun:"html_body,notnull"`
	CreatedAt time.Time `bun:"created_at,nullzero,notnull"`
}

func (r outboxRow) stored() Stored {
	return Stored{
		ID:        r.ID,
		Message:   Message{Kind: r.Kind, To: r.To, Subject: r.Subject, Text: r.Text, HTML: r.HTML},
		CreatedAt: r.CreatedAt,
	}
}

// Send stores m. It refuses the same messages SMTP.Send refuses (wrapping
// ErrInvalidMessage), so that tests run against the outbox catch them.
func (o *Outbox) Send(ctx context.Context, m Message) error {
	if err := m.validate(); err != nil {
		return err
	}
	row := outboxRow{Kind: m.Kind, To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML}
	if _, err := o.db.NewInsert().Model(&row).Exec(ctx); err != nil {
		return fmt.Errorf("store %s mail in outbox: %w", m.Kind, err)
	}
	return nil
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
