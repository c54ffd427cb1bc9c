package privacy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
)

// Queue returns up to first requests in status (empty: every open one),
// the soonest due first, then by id; after is the last id of the previous
// page. Admins only: FORBIDDEN otherwise.
func (s *Service) Queue(ctx context.Context, admin actor.Actor, status Status, first int, after *uuid.UUID) ([]Request, bool, error) {
	if err := admin.RequireSession(); err != nil {
		return nil, false, err
	}
	if err := admin.RequireAdmin(); err != nil {
		return nil, false, err
	}
	var rs []Request
	q := s.db.NewSelect().Model(&rs).OrderExpr("req.due_at, req.id").Limit(int64(first + 1))
	if status == "" {
		q = q.Where("req.status IN (?)", bun.In(open))
	} else {
		q = q.Where("req.status = ?", status)
	}
	if after != nil {
		q = q.Where("(req.due_at, req.id) > (SELECT due_at, id FROM privacy_requests WHERE id = ?)", *after)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, false, fmt.Errorf("list requests: %w", err)
	}
	more := len(rs) > first
	if more {
		rs = rs[:first]
	}
	return rs, more, nil
}

// adminStep runs step on request id under its row lock, for an admin
// signed in (keys are refused as keys), with text — the reason
// or resolution the user is told, named field in errors — checked first.
func (s *Service) adminStep(ctx context.Context, admin actor.Actor, id uuid.UUID, text, field string,
	step func(ctx context.Context, tx bun.Tx, r *Request, by, text string) error) (*Request, error) {
	if err := admin.RequireSession(); err != nil {
		return nil, err
	}
	if err := admin.RequireAdmin(); err != nil {
		return nil, err
	}
	text, err := reasonOf(text, field)
	if err != nil {
		return nil, err
	}
	var r Request
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewSelect().Model(&r).Where("id = ?", id).For("UPDATE").Scan(ctx); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return apperr.Errorf(apperr.NotFound, "No such privacy request.")
			}
			return fmt.Errorf("find request: %w", err)
		}
		return step(ctx, tx, &r, "admin:"+admin.UserID.String(), text)
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

func reasonOf(reason, field string) (string, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" || utf8.RuneCountInString(reason) > 1000 {
		return "", apperr.Errorf(apperr.Validation, "Give a reason of 1 to 1000 characters; the user is told it.").With("field", field)
	}
	return reason, nil
}

// Reject ends an open request with a reason the user is told.
// Admins only. Returns FORBIDDEN, NOT_FOUND, VALIDATION or CONFLICT.
func (s *Service) Reject(ctx context.Context, admin actor.Actor, id uuid.UUID, reason string) (*Request, error) {
	return s.adminStep(ctx, admin, id, reason, "reason", func(ctx context.Context, tx bun.Tx, r *Request, by, reason string) error {
		if r.Status == StatusInProgress && r.Kind != KindCorrection {
			return apperr.Errorf(apperr.Conflict, "This %s is being carried out; it can no longer be rejected.", r.Kind)
		}
		r.RejectionReason = &reason
		return s.moveTx(ctx, tx, r, StatusRejected, by, reason)
	})
}

// Extend moves an open request's due date two months further, once, with
// a reason the user is told. Admins only. Returns FORBIDDEN, NOT_FOUND,
// VALIDATION or CONFLICT (over, or extended already).
func (s *Service) Extend(ctx context.Context, admin actor.Actor, id uuid.UUID, reason string) (*Request, error) {
	return s.adminStep(ctx, admin, id, reason, "reason", func(ctx context.Context, tx bun.Tx, r *Request, by, reason string) error {
		if r.ExtendedAt != nil {
			return apperr.Errorf(apperr.Conflict, "This request's deadline was extended already; it can be extended once.")
		}
		if r.CompletedAt != nil {
			return apperr.Errorf(apperr.Conflict, "This request is over.")
		}
		due := Extended(r.DueAt)
		if err := tx.NewUpdate().Model(r).Set("due_at = ?, extended_at = now(), extension_reason = ?, updated_at = now()", due, reason).
			Where("id = ?", r.ID).Returning("*").Scan(ctx); err != nil {
			return fmt.Errorf("extend: %w", err)
		}
		if err := audit(ctx, tx, r.ID, "extended", by, "to "+due.Format("2006-01-02")+": "+reason); err != nil {
			return err
		}
		return s.tell(ctx, tx, r)
	})
}

// CompleteCorrection records that support applied a correction, with what
// was done. Admins only. Returns FORBIDDEN, NOT_FOUND, VALIDATION or
// CONFLICT (not a correction, or over).
func (s *Service) CompleteCorrection(ctx context.Context, admin actor.Actor, id uuid.UUID, done string) (*Request, error) {
	return s.adminStep(ctx, admin, id, done, "resolution", func(ctx context.Context, tx bun.Tx, r *Request, by, done string) error {
		if r.Kind != KindCorrection {
			return apperr.Errorf(apperr.Conflict, "Only corrections are completed by hand; this is a %s.", r.Kind)
		}
		if r.Status == StatusVerified {
			if err := s.moveTx(ctx, tx, r, StatusInProgress, by, "taken by support"); err != nil {
				return err
			}
		}
		return s.moveTx(ctx, tx, r, StatusCompleted, by, done)
	})
}
