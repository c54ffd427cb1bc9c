package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/events"
)

// WorkerConfig tunes a Worker; zero fields take the defaults below.
type WorkerConfig struct {
	// MaxAttempts is how many times a message is tried before it is given
	// up.
	MaxAttempts int
	// Backoff is the pause after the first failed try; it doubles after each
	// further one, up to MaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// SendTimeout bounds one try. A message being tried is due again after
	// SendTimeout and a minute more, so that one whose worker died is not
	// lost, and one still being tried is not sent twice.
	SendTimeout time.Duration
	// MaxAge is how long a message may wait for its first try; an older one
	// is given up: a link that old has expired, and mail kept while no
	// transport was configured is not sent when one is.
	MaxAge time.Duration
	// Poll is the safety net behind the doorbell.
	Poll time.Duration
}

// The WorkerConfig defaults: eight tries over about an hour.
const (
	DefaultMaxAttempts     = 8
	DefaultBackoff         = 30 * time.Second
	DefaultMaxBackoff      = 30 * time.Minute
	DefaultSendTimeout     = 2 * time.Minute
	DefaultMaxAge          = 24 * time.Hour
	DefaultWorkerPoll      = 30 * time.Second
	claimMargin            = time.Minute
	maxLastErrorBytes      = 1000
	deliveredRetentionDays = 7
)

func (c WorkerConfig) withDefaults() WorkerConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	def(&c.Backoff, DefaultBackoff)
	def(&c.MaxBackoff, DefaultMaxBackoff)
	def(&c.SendTimeout, DefaultSendTimeout)
	def(&c.MaxAge, DefaultMaxAge)
	def(&c.Poll, DefaultWorkerPoll)
	return c
}

// Worker delivers the outbox through a transport. Several workers, in one
// process or many, share the table: each claims one due row at a time
// without waiting for rows another holds.
type Worker struct {
	db        *bun.DB
	transport Mailer
	bus       *events.Bus
	log       *slog.Logger
	cfg       WorkerConfig
}

// NewWorker returns a worker that sends the outbox in db through transport,
// woken by bus (which must be running) when mail is enqueued. The transport
// must not be an *Outbox: that would store each message again instead of
// sending it.
func NewWorker(db *bun.DB, transport Mailer, bus *events.Bus, log *slog.Logger, cfg WorkerConfig) *Worker {
	return &Worker{db: db, transport: transport, bus: bus, log: log, cfg: cfg.withDefaults()}
}

// Run delivers due messages until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	wake, stop := w.bus.Subscribe(events.MailTopic)
	defer stop()
	for ctx.Err() == nil {
		row, err := db.ClaimDue[outboxRow](ctx, w.db, "mail_outbox", w.cfg.SendTimeout+claimMargin)
		if err != nil {
			if ctx.Err() == nil {
				w.log.ErrorContext(ctx, "mail: claim a message", "err", err)
			}
			events.WaitFor(ctx, wake, time.Second)
			continue
		}
		if row != nil {
			w.deliver(ctx, row)
			continue
		}
		events.WaitFor(ctx, wake, db.UntilNextDue(ctx, w.db, "mail_outbox", w.cfg.Poll))
	}
}

// deliver tries to send one claimed message and records how it went.
func (w *Worker) deliver(ctx context.Context, row *outboxRow) {
	log := w.log.With("mail_id", row.ID, "kind", row.Kind, "attempt", row.Attempts)
	if row.Attempts > w.cfg.MaxAttempts {
		// Its last try was cut short (the worker stopped or died).
		w.record(ctx, log, row, errors.New("tried too many times"), true)
		return
	}
	if row.Attempts == 1 && time.Since(row.CreatedAt) > w.cfg.MaxAge {
		w.record(ctx, log, row, fmt.Errorf("waited longer than %s to be sent", w.cfg.MaxAge), true)
		return
	}
	sendCtx, cancel := context.WithTimeout(ctx, w.cfg.SendTimeout)
	err := w.transport.Send(sendCtx, row.stored().Message)
	cancel()
	if err != nil && ctx.Err() != nil {
		// Stopping: the row is due again once its claim runs out, and this
		// try does not count.
		if _, uerr := w.db.NewRaw(`UPDATE mail_outbox SET attempts = attempts - 1, next_attempt_at = now()
			WHERE id = ? AND sent_at IS NULL`, row.ID).Exec(context.WithoutCancel(ctx)); uerr != nil {
			log.WarnContext(ctx, "mail: give back a message", "err", uerr)
		}
		return
	}
	w.record(ctx, log, row, err, err != nil && (row.Attempts >= w.cfg.MaxAttempts || Permanent(err)))
}

// record marks the message sent (err nil), due again after a backoff, or
// given up. A message sent or given up keeps no body: its links are secrets
// that nobody needs at rest any more (nor the address of a user it
// answered, in reply_to).
func (w *Worker) record(ctx context.Context, log *slog.Logger, row *outboxRow, err error, giveUp bool) {
	ctx = context.WithoutCancel(ctx)
	var q string
	var args []any
	switch {
	case err == nil:
		q = `UPDATE mail_outbox SET sent_at = now(), next_attempt_at = NULL, text_body = '', html_body = '', reply_to = '' WHERE id = ?`
		args = []any{row.ID}
		log.InfoContext(ctx, "mail sent")
	case giveUp:
		q = `UPDATE mail_outbox SET next_attempt_at = NULL, last_error = ?, text_body = '', html_body = '', reply_to = '' WHERE id = ?`
		args = []any{lastError(err), row.ID}
		log.ErrorContext(ctx, "mail given up", "err", err)
	default:
		backoff := w.backoff(row.Attempts)
		q = `UPDATE mail_outbox SET next_attempt_at = now() + ?::interval, last_error = ? WHERE id = ?`
		args = []any{db.Interval(backoff), lastError(err), row.ID}
		log.WarnContext(ctx, "mail not sent; will retry", "err", err, "retry_in", backoff)
	}
	if _, uerr := w.db.NewRaw(q, args...).Exec(ctx); uerr != nil {
		log.ErrorContext(ctx, "mail: record a try", "err", uerr)
	}
}

// backoff is the pause after the given failed try: Backoff, doubled for
// each earlier failure, at most MaxBackoff.
func (w *Worker) backoff(attempt int) time.Duration {
	d := w.cfg.Backoff
	for i := 1; i < attempt && d < w.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, w.cfg.MaxBackoff)
}

// lastError is err's text, cut to a bounded length on a rune boundary.
func lastError(err error) string {
	s := err.Error()
	if len(s) <= maxLastErrorBytes {
		return s
	}
	s = s[:maxLastErrorBytes]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// ForgetDelivered deletes the messages sent or given up more than a week
// ago, and returns how many. Messages never tried (kept while no transport
// is configured) stay.
func ForgetDelivered(ctx context.Context, db bun.IDB) (int, error) {
	res, err := db.NewRaw(`DELETE FROM mail_outbox
		WHERE next_attempt_at IS NULL AND attempts > 0
		  AND coalesce(sent_at, created_at) < now() - make_interval(days => ?)`, deliveredRetentionDays).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("forget delivered mail: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
