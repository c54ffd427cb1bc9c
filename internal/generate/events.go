package generate

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/events"
)

// Kinds of generation events.
const (
	EventQueued    = "QUEUED"
	EventStarted   = "STARTED"
	EventProgress  = "PROGRESS"
	EventOutput    = "OUTPUT"
	EventSucceeded = "SUCCEEDED"
	EventFailed    = "FAILED"
	EventCanceled  = "CANCELED"
)

// Event is one step in a generation's life, numbered 1, 2, 3 … per
// generation.
type Event struct {
	bun.BaseModel `bun:"table:generation_events"`

	GenerationID uuid.UUID       `bun:"generation_id,pk,type:uuid"`
	Seq          int             `bun:"seq,pk"`
	Kind         string          `bun:"kind"`
	Payload      json.RawMessage `bun:"payload,type:jsonb"`
	CreatedAt    time.Time       `bun:"created_at,nullzero,default:clock_timestamp()"`
}

// Final reports whether no event follows this one.
func (e *Event) Final() bool {
	return e.Kind == EventSucceeded || e.Kind == EventFailed || e.Kind == EventCanceled
}

// appendEvent writes the next event of a generation in tx and rings its
// doorbell (delivered at commit). The sequence number comes from an UPDATE
// of the generation row, whose lock makes sequence order commit order: a
// reader resuming after seq n can never miss a later-committed smaller one.
func appendEvent(ctx context.Context, tx bun.Tx, genID uuid.UUID, kind string, payload any) (*Event, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return nil, err
	}
	ev := &Event{GenerationID: genID, Kind: kind, Payload: raw}
	if err := tx.NewRaw("UPDATE generations SET last_seq = last_seq + 1, updated_at = now() WHERE id = ? RETURNING last_seq", genID).
		Scan(ctx, &ev.Seq); err != nil {
		return nil, fmt.Errorf("next event seq: %w", err)
	}
	if _, err := tx.NewInsert().Model(ev).Returning("created_at").Exec(ctx); err != nil {
		return nil, fmt.Errorf("write %s event: %w", kind, err)
	}
	if err := events.Ring(ctx, tx, fmt.Sprintf("%s:%d", events.GenerationTopic(genID.String()), ev.Seq)); err != nil {
		return nil, fmt.Errorf("ring: %w", err)
	}
	return ev, nil
}

// feedStatus tells the owner's live feed that a generation changed status.
func feedStatus(ctx context.Context, tx bun.Tx, g *Generation, status string) error {
	payload, _ := json.Marshal(map[string]any{"generationId": g.ID.String(), "workId": g.WorkID.String(), "status": status})
	if _, err := tx.ExecContext(ctx, "SELECT feed_append(?, 'GENERATION', ?::jsonb)", g.UserID, string(payload)); err != nil {
		return fmt.Errorf("feed: %w", err)
	}
	return nil
}

// EventsAfter returns a generation's events after seq, in order.
func (s *Service) EventsAfter(ctx context.Context, genID uuid.UUID, afterSeq int) ([]Event, error) {
	var evs []Event
	if err := s.db.NewSelect().Model(&evs).Where("generation_id = ? AND seq > ?", genID, afterSeq).
		Order("seq").Limit(readPage).Scan(ctx); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return evs, nil
}

// FeedEvent is one entry of a user's live feed.
type FeedEvent struct {
	bun.BaseModel `bun:"table:viewer_events"`

	UserID    uuid.UUID       `bun:"user_id,pk,type:uuid"`
	Seq       int64           `bun:"seq,pk"`
	Kind      string          `bun:"kind"`
	Payload   json.RawMessage `bun:"payload,type:jsonb"`
	CreatedAt time.Time       `bun:"created_at"`
}

// FeedAfter returns a user's feed entries after seq, in order.
func (s *Service) FeedAfter(ctx context.Context, userID uuid.UUID, afterSeq int64) ([]FeedEvent, error) {
	var evs []FeedEvent
	if err := s.db.NewSelect().Model(&evs).Where("user_id = ? AND seq > ?", userID, afterSeq).
		Order("seq").Limit(readPage).Scan(ctx); err != nil {
		return nil, fmt.Errorf("read feed: %w", err)
	}
	return evs, nil
}
