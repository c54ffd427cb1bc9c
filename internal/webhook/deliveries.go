package webhook

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/events"
)

// Deliveries returns owner's deliveries, newest first, optionally of one
// endpoint; credits.low ones only to an actor that reads credits.
// Returns FORBIDDEN (a key without the webhooks scope, or not the owner),
// NOT_FOUND (an endpoint that is not the actor's).
func (s *Service) Deliveries(ctx context.Context, a actor.Actor, owner uuid.UUID, endpointID *uuid.UUID, first int, after *uuid.UUID) (*db.Page[Delivery], error) {
	if err := ownScoped(a, owner); err != nil {
		return nil, err
	}
	if endpointID != nil {
		ok, err := s.db.NewSelect().Model((*Endpoint)(nil)).Where("id = ? AND user_id = ?", *endpointID, a.UserID).Exists(ctx)
		if err != nil {
			return nil, fmt.Errorf("find webhook endpoint: %w", err)
		}
		if !ok {
			return nil, endpointNotFound()
		}
	}
	return db.ListPage[Delivery](ctx, s.db, "d.id", func(q *bun.SelectQuery) *bun.SelectQuery {
		q = q.Where("d.user_id = ?", a.UserID)
		if !readsCredits(a) {
			q = q.Where("d.event_type <> ?", CreditsLow)
		}
		if endpointID != nil {
			q = q.Where("d.endpoint_id = ?", *endpointID)
		}
		return q
	}, first, after)
}

// DeliveriesByIDs returns the actor's deliveries among ids.
func (s *Service) DeliveriesByIDs(ctx context.Context, a actor.Actor, ids []uuid.UUID) ([]Delivery, error) {
	if a.RequireScope(actor.ScopeWebhooks) != nil {
		return nil, nil
	}
	var ds []Delivery
	q := s.db.NewSelect().Model(&ds).Where("id IN (?) AND user_id = ?", bun.In(ids), a.UserID)
	if !readsCredits(a) {
		q = q.Where("event_type <> ?", CreditsLow)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("find webhook deliveries: %w", err)
	}
	return ds, nil
}

// readsCredits reports whether a may see credits.low deliveries, whose
// payload is the user's available credits: a session, or a key with
// credits:read. For other keys they do not exist.
func readsCredits(a actor.Actor) bool { return a.RequireScope(actor.ScopeCreditsRead) == nil }

// Redeliver sends a delivery again, now, with the same webhook-id (so a
// receiver that processed it can tell), and retries it for another day.
// Returns FORBIDDEN (a key without the webhooks scope), NOT_FOUND (also
// for anyone else's), VALIDATION (its endpoint was deleted).
func (s *Service) Redeliver(ctx context.Context, a actor.Actor, id uuid.UUID) (*Delivery, error) {
	if err := a.RequireScope(actor.ScopeWebhooks); err != nil {
		return nil, err
	}
	var d Delivery
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		err := tx.NewSelect().Model(&d).Where("id = ? AND user_id = ? AND (? OR event_type <> ?)", id, a.UserID, readsCredits(a), CreditsLow).
			For("UPDATE").Scan(ctx)
		if errors.Is(err, sql.ErrNoRows) {
			return deliveryNotFound()
		}
		if err != nil {
			return err
		}
		if !d.PerRequest && d.EndpointID == nil {
			return apperr.Errorf(apperr.Validation, "This delivery's endpoint was deleted; register the endpoint again to receive new events.")
		}
		if err := tx.NewRaw(`UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(), window_start = now(),
			delivered_at = NULL WHERE id = ? RETURNING *`, id).Scan(ctx, &d); err != nil {
			return err
		}
		return events.Ring(ctx, tx, Topic)
	})
	if err != nil {
		return nil, fmt.Errorf("redeliver webhook: %w", err)
	}
	return &d, nil
}

// deliveryRetentionDays is how long finished deliveries stay listed.
const deliveryRetentionDays = 30

// ForgetOld deletes the deliveries that finished more than 30 days ago,
// and returns how many.
func (s *Service) ForgetOld(ctx context.Context) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM webhook_deliveries
		WHERE status <> 'pending' AND created_at < now() - make_interval(days => ?)`, deliveryRetentionDays)
	if err != nil {
		return 0, fmt.Errorf("forget webhook deliveries: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
