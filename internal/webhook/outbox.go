package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/events"
	"github.com/fastimage/api/internal/relay"
)

// GenerationEnded is what a generation's end tells webhooks.
type GenerationEnded struct {
	GenerationID uuid.UUID
	UserID       uuid.UUID
	WorkID       uuid.UUID
	// Status is succeeded, failed or canceled.
	Status       string
	ImageIDs     []uuid.UUID
	Cost         int64
	ErrorCode    string
	ErrorMessage string
	// WebhookURL is the generation's per-request URL, if any.
	WebhookURL string
}

// Message is the body of every delivery: the Standard Webhooks envelope.
type Message struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// GenerationData is the data of the generation.* events. Ids are the API's
// global ids: fetch the images (and fresh signed URLs) with node(id:), as
// URLs put here would have expired by a late retry.
type GenerationData struct {
	GenerationID string   `json:"generationId"`
	WorkID       string   `json:"workId"`
	Status       string   `json:"status"`
	ImageIDs     []string `json:"imageIds"`
	Cost         *int64   `json:"cost,omitempty"`
	ErrorCode    string   `json:"errorCode,omitempty"`
	ErrorMessage string   `json:"errorMessage,omitempty"`
}

// GenerationEndedTx enqueues, in tx (the transaction that records the
// generation's end), one delivery to each of the user's endpoints that
// asked for the event, and one to the generation's per-request URL.
// Internal: generate calls it for a generation it ended.
func GenerationEndedTx(ctx context.Context, tx bun.IDB, e GenerationEnded) error {
	typ := "generation." + strings.ToLower(e.Status)
	data := GenerationData{
		GenerationID: relay.ID("Generation", e.GenerationID.String()),
		WorkID:       relay.ID("Work", e.WorkID.String()),
		Status:       strings.ToUpper(e.Status),
		ImageIDs:     make([]string, 0, len(e.ImageIDs)),
		ErrorCode:    e.ErrorCode, ErrorMessage: e.ErrorMessage,
	}
	for _, id := range e.ImageIDs {
		data.ImageIDs = append(data.ImageIDs, relay.ID("Image", id.String()))
	}
	if typ == GenerationSucceeded {
		data.Cost = &e.Cost
	}
	return enqueueTx(ctx, tx, e.UserID, typ, data, e.WebhookURL)
}

// CreditsData is the data of a credits.low event.
type CreditsData struct {
	// Available is what the user may spend now; Threshold is the level it
	// fell below.
	Available int64 `json:"available"`
	Threshold int64 `json:"threshold"`
}

// CreditsLowTx enqueues, inside tx, the credits.low deliveries of userID's
// endpoints: their available credits fell below threshold.
func CreditsLowTx(ctx context.Context, tx bun.IDB, userID uuid.UUID, available, threshold int64) error {
	return enqueueTx(ctx, tx, userID, CreditsLow, CreditsData{Available: available, Threshold: threshold}, "")
}

// enqueueTx writes the deliveries of one event of userID's.
func enqueueTx(ctx context.Context, tx bun.IDB, userID uuid.UUID, typ string, data any, requestURL string) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	var eps []Endpoint
	if err := tx.NewSelect().Model(&eps).Column("id", "url").
		Where("user_id = ? AND disabled_at IS NULL AND ? = ANY(events)", userID, typ).Scan(ctx); err != nil {
		return fmt.Errorf("find webhook endpoints: %w", err)
	}
	var ds []Delivery
	add := func(endpointID *uuid.UUID, url string) error {
		body, err := json.Marshal(Message{Type: typ, Timestamp: time.Now().UTC(), Data: raw})
		if err != nil {
			return err
		}
		ds = append(ds, Delivery{
			EndpointID: endpointID, UserID: userID, URL: url, PerRequest: endpointID == nil,
			EventType: typ, Payload: body, WebhookID: "msg_" + uuid.Must(uuid.NewV7()).String(),
			Status: StatusPending, AttemptLog: []Attempt{},
		})
		return nil
	}
	for i := range eps {
		if err := add(&eps[i].ID, eps[i].URL); err != nil {
			return err
		}
	}
	if requestURL != "" {
		if err := add(nil, requestURL); err != nil {
			return err
		}
	}
	if len(ds) == 0 {
		return nil
	}
	if _, err := tx.NewInsert().Model(&ds).ExcludeColumn("id", "next_attempt_at", "window_start", "created_at").Exec(ctx); err != nil {
		return fmt.Errorf("enqueue webhooks: %w", err)
	}
	return events.Ring(ctx, tx, Topic)
}
