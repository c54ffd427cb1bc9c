package usage

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// Forwarded is one usage event as it leaves the service. It names no user:
// the analytics endpoint learns what was used, when and from which kind of
// client, never by whom. ID lets the endpoint drop an event it received
// twice (a batch is sent again when its acknowledgement is lost).
type Forwarded struct {
	ID        uuid.UUID `json:"id"`
	Feature   string    `json:"feature"`
	Operation string    `json:"operation,omitempty"`
	Client    string    `json:"client,omitempty"`
	At        time.Time `json:"at"`
}

// Batch is the body of one delivery to the analytics endpoint.
type Batch struct {
	Events []Forwarded `json:"events"`
}

// Sink receives batches of usage events. Send returns nil only once the
// receiver has taken the whole batch.
type Sink interface {
	Send(ctx context.Context, b Batch) error
}

// Forwarder sends stored usage events that were not sent yet to a Sink, and
// marks them sent.
type Forwarder struct {
	db   *bun.DB
	sink Sink
	// batch is the most events one delivery carries; maxBatches the most
	// deliveries one Forward makes.
	batch, maxBatches int
}

// NewForwarder returns a Forwarder from db to sink, batch events a delivery
// (default 500), at most maxBatches deliveries a call (default 20).
func NewForwarder(db *bun.DB, sink Sink, batch, maxBatches int) *Forwarder {
	if batch <= 0 {
		batch = 500
	}
	if maxBatches <= 0 {
		maxBatches = 20
	}
	return &Forwarder{db: db, sink: sink, batch: batch, maxBatches: maxBatches}
}

// Forward delivers the oldest events not yet sent, a batch at a time, and
// returns how many it delivered. Each batch is marked sent in the
// transaction that holds its rows, only after the sink took it: when a
// delivery fails, nothing of it is marked, and the next call sends it again
// (nothing is lost; a receiver may see a batch twice, and tells by the
// ids). Replicas forwarding at once send different rows (SKIP LOCKED).
// Events of users who have objected since they were recorded are not sent.
func (f *Forwarder) Forward(ctx context.Context) (int, error) {
	sent := 0
	for range f.maxBatches {
		n, err := f.forwardBatch(ctx)
		sent += n
		if err != nil {
			return sent, err
		}
		if n < f.batch {
			return sent, nil
		}
	}
	return sent, nil
}

func (f *Forwarder) forwardBatch(ctx context.Context) (int, error) {
	var n int
	err := f.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var rows []Forwarded
		if err := tx.NewRaw(`
			SELECT e.id, e.feature, e.operation, e.client, e.created_at AS at
			FROM usage_events AS e
			WHERE e.forwarded_at IS NULL AND NOT EXISTS (
				SELECT 1 FROM processing_objections AS o WHERE o.user_id = e.user_id AND o.purpose IN (?)
			)
			ORDER BY e.id LIMIT ? FOR UPDATE OF e SKIP LOCKED`, bun.In(ObjectedPurposes), f.batch).Scan(ctx, &rows); err != nil {
			return fmt.Errorf("claim usage events: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		if err := f.sink.Send(ctx, Batch{Events: rows}); err != nil {
			return fmt.Errorf("forward %d usage events: %w", len(rows), err)
		}
		ids := make([]uuid.UUID, len(rows))
		for i, r := range rows {
			ids[i] = r.ID
		}
		if _, err := tx.NewRaw("UPDATE usage_events SET forwarded_at = now() WHERE id IN (?)", bun.In(ids)).Exec(ctx); err != nil {
			return fmt.Errorf("mark usage events forwarded: %w", err)
		}
		n = len(rows)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
