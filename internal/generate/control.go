package generate

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

func notFound() error { return apperr.Errorf(apperr.NotFound, "No such generation.") }

// Get returns one of the user's generations.
// Returns NOT_FOUND for anyone else's.
//
// Reading a generation needs works:read, not generate: a generation is how
// a work was made (its prompt, status and outputs belong to the work), so
// an app that may read works may read their making, and one that may only
// submit learns the outcome from events:read or reads it with works:read.
func (s *Service) Get(ctx context.Context, a actor.Actor, id uuid.UUID) (*Generation, error) {
	if err := a.RequireScope(actor.ScopeWorksRead); err != nil {
		return nil, err
	}
	return s.get(ctx, a, id)
}

// get is Get without the scope check, for entry points that checked their
// own scope (cancel and retry need generate, the event stream events:read).
func (s *Service) get(ctx context.Context, a actor.Actor, id uuid.UUID) (*Generation, error) {
	var g Generation
	err := s.db.NewSelect().Model(&g).Where("id = ? AND user_id = ?", id, a.UserID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound()
	}
	if err != nil {
		return nil, fmt.Errorf("get generation: %w", err)
	}
	return &g, nil
}

// ByIDs returns the user's generations among ids, in no order.
func (s *Service) ByIDs(ctx context.Context, a actor.Actor, ids []uuid.UUID) ([]Generation, error) {
	if err := a.RequireScope(actor.ScopeWorksRead); err != nil {
		return nil, err
	}
	var gs []Generation
	if err := s.db.NewSelect().Model(&gs).Where("id IN (?) AND user_id = ?", bun.In(ids), a.UserID).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find generations: %w", err)
	}
	return gs, nil
}

// QueuePosition is how many queued jobs go before g, plus one (0 when g is
// not queued): exact at the moment it is read.
func (s *Service) QueuePosition(ctx context.Context, g *Generation) (int, error) {
	if g.Status != StatusQueued {
		return 0, nil
	}
	var ahead int
	err := s.db.NewRaw(`SELECT count(*) FROM generations WHERE status = 'queued' AND (queued_at, id) < (?, ?)`, g.QueuedAt, g.ID).Scan(ctx, &ahead)
	if err != nil {
		return 0, fmt.Errorf("queue position: %w", err)
	}
	return ahead + 1, nil
}

// List returns owner's generations, newest first, optionally of one status.
// Returns FORBIDDEN unless the actor is owner.
func (s *Service) List(ctx context.Context, a actor.Actor, owner uuid.UUID, status Status, first int, after *uuid.UUID) (*db.Page[Generation], error) {
	if err := a.RequireScope(actor.ScopeWorksRead); err != nil {
		return nil, err
	}
	if err := a.OwnAccount(owner); err != nil {
		return nil, err
	}
	return db.ListPage[Generation](ctx, s.db, "generation.id", func(q *bun.SelectQuery) *bun.SelectQuery {
		q = q.Where("generation.user_id = ?", owner)
		if status != "" {
			q = q.Where("generation.status = ?", status)
		}
		return q
	}, first, after)
}

// Cancel stops a generation: a queued one is canceled at once (its credits
// released); a running one is asked to stop, and its worker cancels the
// provider call and records the cancel. Canceling a finished generation
// changes nothing.
// Returns NOT_FOUND for anyone else's.
func (s *Service) Cancel(ctx context.Context, a actor.Actor, id uuid.UUID) (*Generation, error) {
	if err := a.RequireScope(actor.ScopeGenerate); err != nil {
		return nil, err
	}
	g, err := s.get(ctx, a, id)
	if err != nil {
		return nil, err
	}
	switch g.Status {
	case StatusQueued:
		err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
			var cur Generation
			if err := tx.NewSelect().Model(&cur).Where("id = ? AND status = 'queued'", id).For("UPDATE").Scan(ctx); err != nil {
				return errLeaseLost // a worker took it meanwhile; ask it to stop instead
			}
			return s.endTx(ctx, tx, &cur, StatusCanceled, nil)
		})
		if errors.Is(err, errLeaseLost) {
			return s.Cancel(ctx, a, id)
		}
		if err != nil {
			return nil, err
		}
	case StatusRunning:
		if _, err := s.db.NewUpdate().Model((*Generation)(nil)).Set("cancel_requested = true").
			Where("id = ? AND status = 'running'", id).Exec(ctx); err != nil {
			return nil, fmt.Errorf("request cancel: %w", err)
		}
		if err := events.Ring(ctx, s.db, events.CancelTopic(id.String())); err != nil {
			return nil, err
		}
	}
	return s.get(ctx, a, id)
}

// Retry submits a finished generation's request again as a new generation
// linked to the old one.
// Returns NOT_FOUND, VALIDATION (it has not finished), and Submit's codes.
func (s *Service) Retry(ctx context.Context, a actor.Actor, id uuid.UUID) (*Generation, error) {
	if err := a.RequireScope(actor.ScopeGenerate); err != nil {
		return nil, err
	}
	old, err := s.get(ctx, a, id)
	if err != nil {
		return nil, err
	}
	if !old.Final() {
		return nil, apperr.Errorf(apperr.Validation, "This generation has not finished yet; cancel it first or wait.")
	}
	seed, strength := old.Seed, old.Strength
	var hook string
	if old.WebhookURL != nil {
		hook = *old.WebhookURL
	}
	g, err := s.Submit(ctx, a, Request{
		Kind: old.Kind, Prompt: old.Prompt, NegativePrompt: old.NegativePrompt, Width: old.Width, Height: old.Height,
		Count: old.Count, Seed: &seed, Strength: &strength, SourceWorkID: old.SourceWorkID, MaskWorkID: old.MaskWorkID,
		WebhookURL: hook,
	})
	if err != nil {
		return nil, err
	}
	if _, err := s.db.NewUpdate().Model((*Generation)(nil)).Set("retry_of = ?", old.ID).Where("id = ?", g.ID).Exec(ctx); err != nil {
		return nil, fmt.Errorf("link retry: %w", err)
	}
	g.RetryOf = &old.ID
	return g, nil
}

// ForgetOldKeys frees idempotency keys older than 24 hours for reuse.
func (s *Service) ForgetOldKeys(ctx context.Context) (int, error) {
	res, err := s.db.ExecContext(ctx, "UPDATE generations SET idempotency_key = NULL WHERE idempotency_key IS NOT NULL AND created_at < now() - interval '24 hours'")
	if err != nil {
		return 0, fmt.Errorf("forget idempotency keys: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
