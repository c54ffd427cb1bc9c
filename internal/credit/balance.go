package credit

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
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

// EntryPage is one page of a user's entries, newest first.
type EntryPage struct {
	Entries    []Entry
	HasNext    bool
	TotalCount int
}

// Entries returns up to first entries of userID older than after (nil for
// the newest), newest first, with the expiry of the lot each grant formed.
// Returns FORBIDDEN unless the actor is that user or an admin.
func (l *Ledger) Entries(ctx context.Context, a actor.Actor, userID uuid.UUID, first int, after *uuid.UUID) (*EntryPage, error) {
	if err := a.ReadAccount(userID); err != nil {
		return nil, err
	}
	var entries []Entry
	q := l.selectEntries(&entries).Where("entry.user_id = ?", userID).OrderExpr("entry.id DESC").Limit(int64(first + 1))
	if after != nil {
		q = q.Where("entry.id < ?", *after)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("list entries: %w", err)
	}
	total, err := l.db.NewSelect().Model((*Entry)(nil)).Where("user_id = ?", userID).Count(ctx)
	if err != nil {
		return nil, fmt.Errorf("count entries: %w", err)
	}
	page := &EntryPage{Entries: entries, TotalCount: int(total)}
	if len(entries) > first {
		page.Entries, page.HasNext = entries[:first], true
	}
	return page, nil
}

// EntriesByIDs returns the actor's entries among ids, in no order; anyone
// else's are left out.
func (l *Ledger) EntriesByIDs(ctx context.Context, a actor.Actor, ids []uuid.UUID) ([]Entry, error) {
	var entries []Entry
	if err := l.selectEntries(&entries).Where("entry.user_id = ? AND entry.id IN (?)", a.UserID, bun.In(ids)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find entries: %w", err)
	}
	return entries, nil
}

// selectEntries selects entries into out with the expiry of their lots.
func (l *Ledger) selectEntries(out *[]Entry) *bun.SelectQuery {
	return l.db.NewSelect().Model(out).
		ColumnExpr("entry.*, lot.expires_at AS lot_expires_at").
		Join("LEFT JOIN credit_lots AS lot ON lot.id = entry.lot_id")
}
