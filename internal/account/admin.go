package account

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
)

// Suspend stops a user: their sessions end at once, their open reset and
// email-change links stop working, and every request they make gets
// ACCOUNT_SUSPENDED until an admin unsuspends them.
// Returns FORBIDDEN (not an admin, or suspending oneself), NOT_FOUND or
// VALIDATION (no reason).
func (s *Service) Suspend(ctx context.Context, admin actor.Actor, userID uuid.UUID, reason string) (*User, error) {
	if err := admin.RequireSession(); err != nil {
		return nil, err
	}
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > 500 {
		return nil, apperr.Errorf(apperr.Validation, "Give a reason of 1 to 500 characters.").With("field", "reason")
	}
	if admin.Owns(userID) {
		return nil, apperr.Errorf(apperr.Forbidden, "You cannot suspend yourself.")
	}
	return s.setStatus(ctx, admin, userID, StatusSuspended, &reason, EventSuspended)
}

// Unsuspend lets a suspended user back in (they sign in again).
// Returns FORBIDDEN or NOT_FOUND.
func (s *Service) Unsuspend(ctx context.Context, admin actor.Actor, userID uuid.UUID) (*User, error) {
	if err := admin.RequireSession(); err != nil {
		return nil, err
	}
	return s.setStatus(ctx, admin, userID, StatusActive, nil, EventUnsuspended)
}

func (s *Service) setStatus(ctx context.Context, admin actor.Actor, userID uuid.UUID, status string, reason *string, event EventKind) (*User, error) {
	if err := admin.RequireAdmin(); err != nil {
		return nil, err
	}
	var u User
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		err := tx.NewUpdate().Model(&u).Set("status = ?", status).Set("suspended_reason = ?", reason).Set("updated_at = now()").
			Where("id = ? AND status <> ?", userID, StatusDeleted).Returning("*").Scan(ctx)
		if errors.Is(err, sql.ErrNoRows) {
			return apperr.Errorf(apperr.NotFound, "No such user.")
		}
		if err != nil {
			return fmt.Errorf("set status: %w", err)
		}
		if status == StatusSuspended {
			if _, err := revokeOthers(ctx, tx, userID, nil, "suspended"); err != nil {
				return err
			}
			if err := voidOpenTokens(ctx, tx, userID, kindPasswordReset, kindEmailChange); err != nil {
				return err
			}
		}
		return record(ctx, tx, &userID, nil, event, map[string]any{"by": admin.UserID.String()})
	})
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// UsersByIDs returns the users with the given ids that the actor may see
// (themselves; admins see everyone), in no particular order.
func (s *Service) UsersByIDs(ctx context.Context, a actor.Actor, ids []uuid.UUID) ([]User, error) {
	var out []User
	q := s.db.NewSelect().Model(&out).Where("id IN (?)", bun.In(ids))
	if !a.Admin() {
		q = q.Where("id = ?", a.UserID)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("find users: %w", err)
	}
	return out, nil
}
