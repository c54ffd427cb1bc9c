// Package usage keeps the usage data the privacy policy describes: which
// feature a signed-in user used, the operation's name, when, and the family
// of their browser and operating system. Nothing else: never prompts,
// images, ids of works or IP addresses. Events are recorded only while
// analytics is enabled by setting, and only for users who object neither to
// analytics nor to product improvement; a Forwarder sends them on to an
// analytics endpoint when one is configured.
//
// Recording costs a request nothing but a channel send: a Recorder buffers
// events in memory (a bounded queue; when it is full, events are dropped and
// counted) and writes them in batches, one INSERT each, which is also where
// objections are checked. Analytics may lose the events of a crash; it never
// slows or fails a request.
package usage

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/fastimage/api/internal/clock"
	"github.com/fastimage/api/internal/privacy"
)

// Bounds of what one event may hold; longer values are cut.
const (
	MaxFeatureBytes   = 200
	MaxOperationBytes = 100
)

// ObjectedPurposes are the purposes usage events serve: an objection to any
// of them stops the user's events.
var ObjectedPurposes = []privacy.Purpose{privacy.PurposeAnalytics, privacy.PurposeProductImprovement}

// Event is one use of a feature.
type Event struct {
	UserID uuid.UUID
	// Feature is what was used: the root fields of a GraphQL operation,
	// such as "generateImage".
	Feature string
	// Operation is the client's name for the operation, such as
	// "GenerateFromPrompt"; "" when it gave none.
	Operation string
	// Client is the browser and OS family, such as "Chrome/Windows" (see
	// ClientFamily).
	Client string
	At     time.Time
}

// Config configures a Recorder.
type Config struct {
	// Enabled turns recording on; a disabled Recorder drops every event.
	Enabled bool
	// Queue bounds the events waiting to be written (default 4096).
	Queue int
	// Batch is the most events one INSERT writes (default 500).
	Batch int
	// FlushEvery is how often Run writes what is queued (default 1s).
	FlushEvery time.Duration
	Clock      clock.Clock
}

// Recorder records usage events.
type Recorder struct {
	db      *bun.DB
	log     *slog.Logger
	cfg     Config
	clock   clock.Clock
	queue   chan Event
	dropped atomic.Int64
	written atomic.Int64
}

// New returns a Recorder writing to db. Nothing is written until Run runs.
func New(db *bun.DB, log *slog.Logger, cfg Config) *Recorder {
	if cfg.Queue <= 0 {
		cfg.Queue = 4096
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = time.Second
	}
	r := &Recorder{db: db, log: log, cfg: cfg, clock: clock.Or(cfg.Clock)}
	if cfg.Enabled {
		r.queue = make(chan Event, cfg.Queue)
	}
	return r
}

// Enabled reports whether analytics is on.
func (r *Recorder) Enabled() bool { return r != nil && r.cfg.Enabled }

// Record queues ev without waiting; with analytics off it does nothing. The
// user's objections are checked when the event is written, so an event
// queued just before an objection is not written either. A full queue
// drops the event (counted in Dropped).
func (r *Recorder) Record(ev Event) {
	if !r.Enabled() {
		return
	}
	if ev.At.IsZero() {
		ev.At = r.clock.Now()
	}
	ev.Feature = cut(ev.Feature, MaxFeatureBytes)
	ev.Operation = cut(ev.Operation, MaxOperationBytes)
	ev.Client = cut(ev.Client, maxClientBytes)
	select {
	case r.queue <- ev:
	default:
		r.dropped.Add(1)
	}
}

// Dropped counts the events lost to a full queue; Written counts those
// stored. Both are for /metrics.
func (r *Recorder) Dropped() int64 { return r.dropped.Load() }

// Written counts the events stored since the process started.
func (r *Recorder) Written() int64 { return r.written.Load() }

// Run writes queued events every FlushEvery, and as soon as a batch is full,
// until ctx ends; then it writes what is left, within a few seconds.
func (r *Recorder) Run(ctx context.Context) {
	if !r.Enabled() {
		return
	}
	t := time.NewTicker(r.cfg.FlushEvery)
	defer t.Stop()
	batch := make([]Event, 0, r.cfg.Batch)
	write := func(ctx context.Context) {
		if len(batch) == 0 {
			return
		}
		if _, err := r.write(ctx, batch); err != nil {
			r.log.ErrorContext(ctx, "usage events not written", "count", len(batch), "err", err)
		}
		batch = batch[:0]
	}
	for {
		select {
		case <-ctx.Done():
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if _, err := r.Flush(stopCtx); err != nil {
				r.log.ErrorContext(stopCtx, "usage events not written at stop", "err", err)
			}
			write(stopCtx)
			return
		case ev := <-r.queue:
			batch = append(batch, ev)
			if len(batch) == r.cfg.Batch {
				write(ctx)
			}
		case <-t.C:
			write(ctx)
		}
	}
}

// Flush writes every event queued now, for callers that do not run Run
// (tests, one-off commands) and for Run when it stops. It returns how many
// were stored.
func (r *Recorder) Flush(ctx context.Context) (int, error) {
	if !r.Enabled() {
		return 0, nil
	}
	stored := 0
	for {
		batch := r.queued(r.cfg.Batch)
		if len(batch) == 0 {
			return stored, nil
		}
		n, err := r.write(ctx, batch)
		stored += n
		if err != nil {
			return stored, err
		}
	}
}

// queued takes up to n queued events without waiting.
func (r *Recorder) queued(n int) []Event {
	var out []Event
	for len(out) < n {
		select {
		case ev := <-r.queue:
			out = append(out, ev)
		default:
			return out
		}
	}
	return out
}

// write stores events in one statement, leaving out those of users who
// object to a purpose usage events serve, or whose account is gone.
func (r *Recorder) write(ctx context.Context, events []Event) (int, error) {
	users := make([]uuid.UUID, len(events))
	features := make([]string, len(events))
	operations := make([]string, len(events))
	clients := make([]string, len(events))
	ats := make([]time.Time, len(events))
	for i, ev := range events {
		users[i], features[i], operations[i], clients[i], ats[i] = ev.UserID, ev.Feature, ev.Operation, ev.Client, ev.At
	}
	res, err := r.db.NewRaw(`
		INSERT INTO usage_events (user_id, feature, operation, client, created_at)
		SELECT e.user_id, e.feature, e.operation, e.client, e.at
		FROM unnest(?::uuid[], ?::text[], ?::text[], ?::text[], ?::timestamptz[]) AS e (user_id, feature, operation, client, at)
		JOIN users AS u ON u.id = e.user_id AND u.status <> 'deleted'
		WHERE NOT EXISTS (
			SELECT 1 FROM processing_objections AS o WHERE o.user_id = e.user_id AND o.purpose IN (?)
		)`,
		pgdialect.Array(users), pgdialect.Array(features), pgdialect.Array(operations), pgdialect.Array(clients), pgdialect.Array(ats),
		bun.In(ObjectedPurposes)).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("write %d usage events: %w", len(events), err)
	}
	n, _ := res.RowsAffected()
	r.written.Add(n)
	return int(n), nil
}

// Purge deletes usage events recorded before cutoff, a batch at a time
// (internal: the retention job). It returns how many it deleted.
func Purge(ctx context.Context, idb bun.IDB, cutoff time.Time) (int, error) {
	total := 0
	for {
		res, err := idb.NewRaw(`DELETE FROM usage_events WHERE id IN (
			SELECT id FROM usage_events WHERE created_at < ? LIMIT ?)`, cutoff, purgeBatch).Exec(ctx)
		if err != nil {
			return total, fmt.Errorf("purge usage events: %w", err)
		}
		n, _ := res.RowsAffected()
		total += int(n)
		if n < purgeBatch {
			return total, nil
		}
	}
}

// purgeBatch bounds the rows one DELETE touches, so that no statement holds
// its locks for long.
const purgeBatch = 5000

// cut returns s cut to at most n bytes at a character boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
