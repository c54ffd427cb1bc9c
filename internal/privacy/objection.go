package privacy

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
)

func validPurpose(p Purpose) error {
	for _, q := range Purposes {
		if p == q {
			return nil
		}
	}
	return apperr.Errorf(apperr.Validation, "Unknown purpose %q: object to analytics, product_improvement or marketing_email.", p).With("field", "purpose")
}

// Object records the actor's objection to purpose, at once: a request that
// completes as it is made, with its audit trail. Objecting twice changes
// nothing more. Returns VALIDATION.
func (s *Service) Object(ctx context.Context, a actor.Actor, purpose Purpose) (*Request, error) {
	if err := a.RequireSession(); err != nil {
		return nil, err
	}
	return s.setObjection(ctx, a, purpose, true)
}

// Withdraw takes back the actor's objection to purpose. Returns VALIDATION.
func (s *Service) Withdraw(ctx context.Context, a actor.Actor, purpose Purpose) (*Request, error) {
	if err := a.RequireSession(); err != nil {
		return nil, err
	}
	return s.setObjection(ctx, a, purpose, false)
}

func (s *Service) setObjection(ctx context.Context, a actor.Actor, purpose Purpose, object bool) (*Request, error) {
	if err := validPurpose(purpose); err != nil {
		return nil, err
	}
	kind := KindObjection
	if !object {
		kind = KindWithdrawal
	}
	r := &Request{UserID: a.UserID, Kind: kind, Status: StatusReceived, Purpose: &purpose, DueAt: DueDate(s.clock.Now())}
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(r).Returning("*").Exec(ctx); err != nil {
			return fmt.Errorf("record request: %w", err)
		}
		if err := audit(ctx, tx, r.ID, "received", "user", describe(r)); err != nil {
			return err
		}
		q := "INSERT INTO processing_objections (user_id, purpose) VALUES (?, ?) ON CONFLICT DO NOTHING"
		if !object {
			q = "DELETE FROM processing_objections WHERE user_id = ? AND purpose = ?"
		}
		if _, err := tx.NewRaw(q, a.UserID, purpose).Exec(ctx); err != nil {
			return fmt.Errorf("record objection: %w", err)
		}
		if err := s.moveTx(ctx, tx, r, StatusVerified, "user", "signed in"); err != nil {
			return err
		}
		return s.moveTx(ctx, tx, r, StatusCompleted, System, "applied at once")
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Objections returns the purposes userID objects to. Returns FORBIDDEN
// unless the actor is that user or an admin.
func (s *Service) Objections(ctx context.Context, a actor.Actor, userID uuid.UUID) ([]Purpose, error) {
	if err := a.RequireSession(); err != nil {
		return nil, err
	}
	if err := a.ReadAccount(userID); err != nil {
		return nil, err
	}
	return ObjectionsOf(ctx, s.db, userID)
}

// ObjectionsOf returns the purposes userID objects to (internal: for the
// flows that must respect them, such as usage events).
func ObjectionsOf(ctx context.Context, idb bun.IDB, userID uuid.UUID) ([]Purpose, error) {
	var ps []Purpose
	if err := idb.NewRaw("SELECT purpose FROM processing_objections WHERE user_id = ? ORDER BY purpose", userID).Scan(ctx, &ps); err != nil {
		return nil, fmt.Errorf("read objections: %w", err)
	}
	return ps, nil
}
