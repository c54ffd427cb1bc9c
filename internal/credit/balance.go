package credit

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/db"
)

// Balance is a user's credits: Balance is posted, Held is set aside for work
// in progress, Available = Balance − Held may be spent.
type Balance struct {
	Balance   int64
	Held      int64
	Available int64
}

// BalanceOf returns userID's balance (zeros before their first credit).
// Returns FORBIDDEN unless the actor is that user or an admin.
func (l *Ledger) BalanceOf(ctx context.Context, a actor.Actor, userID uuid.UUID) (Balance, error) {
	if err := a.RequireScope(actor.ScopeCreditsRead); err != nil {
		return Balance{}, err
	}
	var b Balance
	if err := a.ReadAccount(userID); err != nil {
		return b, err
	}
	err := l.db.NewRaw(`SELECT coalesce(max(balance), 0), coalesce(max(held), 0) FROM credit_accounts WHERE user_id = ?`, userID).
		Scan(ctx, &b.Balance, &b.Held)
	if err != nil {
		return b, fmt.Errorf("read balance: %w", err)
	}
	b.Available = b.Balance - b.Held
	return b, nil
}

// Entries returns up to first entries of userID older than after (nil for
// the newest), newest first, with the expiry of the lot each grant formed.
// Returns FORBIDDEN unless the actor is that user or an admin.
func (l *Ledger) Entries(ctx context.Context, a actor.Actor, userID uuid.UUID, first int, after *uuid.UUID) (*db.Page[Entry], error) {
	if err := a.RequireScope(actor.ScopeCreditsRead); err != nil {
		return nil, err
	}
	if err := a.ReadAccount(userID); err != nil {
		return nil, err
	}
	return db.ListPage[Entry](ctx, l.db, "entry.id", func(q *bun.SelectQuery) *bun.SelectQuery {
		return withLots(q).Where("entry.user_id = ?", userID)
	}, first, after)
}

// EntriesByIDs returns the actor's entries among ids, in no order; anyone
// else's are left out.
func (l *Ledger) EntriesByIDs(ctx context.Context, a actor.Actor, ids []uuid.UUID) ([]Entry, error) {
	if err := a.RequireScope(actor.ScopeCreditsRead); err != nil {
		return nil, err
	}
	var entries []Entry
	if err := withLots(l.db.NewSelect().Model(&entries)).Where("entry.user_id = ? AND entry.id IN (?)", a.UserID, bun.In(ids)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find entries: %w", err)
	}
	return entries, nil
}

// withLots adds to a select of entries the expiry of their lots.
func withLots(q *bun.SelectQuery) *bun.SelectQuery {
	return q.ColumnExpr("entry.*, lot.expires_at AS lot_expires_at").
		Join("LEFT JOIN credit_lots AS lot ON lot.id = entry.lot_id")
}

// Holds returns up to first holds of userID older than after (nil for the
// newest), newest first, optionally of one status.
// Returns FORBIDDEN unless the actor is that user or an admin.
func (l *Ledger) Holds(ctx context.Context, a actor.Actor, userID uuid.UUID, status HoldStatus, first int, after *uuid.UUID) (*db.Page[Hold], error) {
	if err := a.RequireScope(actor.ScopeCreditsRead); err != nil {
		return nil, err
	}
	if err := a.ReadAccount(userID); err != nil {
		return nil, err
	}
	return db.ListPage[Hold](ctx, l.db, "hold.id", func(q *bun.SelectQuery) *bun.SelectQuery {
		q = q.Where("hold.user_id = ?", userID)
		if status != "" {
			q = q.Where("hold.status = ?", status)
		}
		return q
	}, first, after)
}

// HoldsByIDs returns the actor's holds among ids, in no order; anyone
// else's are left out.
func (l *Ledger) HoldsByIDs(ctx context.Context, a actor.Actor, ids []uuid.UUID) ([]Hold, error) {
	if err := a.RequireScope(actor.ScopeCreditsRead); err != nil {
		return nil, err
	}
	var holds []Hold
	if err := l.db.NewSelect().Model(&holds).Where("user_id = ? AND id IN (?)", a.UserID, bun.In(ids)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find holds: %w", err)
	}
	return holds, nil
}
