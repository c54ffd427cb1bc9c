package credit

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// lot is what one grant brought in and how much of it is left.
type lot struct {
	bun.BaseModel `bun:"table:credit_lots"`

	ID        uuid.UUID  `bun:"id,pk,type:uuid,default:uuidv7()"`
	UserID    uuid.UUID  `bun:"user_id,type:uuid"`
	Amount    int64      `bun:"amount"`
	Remaining int64      `bun:"remaining"`
	ExpiresAt *time.Time `bun:"expires_at"`
	ExpiredAt *time.Time `bun:"expired_at"`
	CreatedAt time.Time  `bun:"created_at,nullzero,default:now()"`
}

// consumeLots takes amount from the user's lots, the one that expires first
// first (lots that never expire last, frozen lots of disputed payments after
// all others). The caller's UPDATE of the account row
// holds its lock, so no other posting of this user runs meanwhile.
func consumeLots(ctx context.Context, tx bun.Tx, userID uuid.UUID, amount int64) error {
	res, err := tx.NewRaw(`
		UPDATE credit_lots AS l
		SET remaining = l.remaining - LEAST(l.remaining, ?0 - (o.running - o.remaining))
		FROM (
			SELECT id, remaining,
			       sum(remaining) OVER (ORDER BY frozen, expires_at NULLS LAST, created_at, id) AS running
			FROM credit_lots WHERE user_id = ?1 AND remaining > 0
		) AS o
		WHERE l.id = o.id AND o.running - o.remaining < ?0`, amount, userID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("spend from lots: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("spend %d from lots of %s: no lot has credits left", amount, userID)
	}
	return nil
}

// ExpireLots posts an EXPIRY entry for the unused remainder of every lot
// past its expiry and returns how many entries it posted. Credits still held
// for running work are not taken away: that part expires on a later run,
// once the holds resolve. Running it twice changes nothing.
func (l *Ledger) ExpireLots(ctx context.Context) (int, error) {
	var ids []uuid.UUID
	if err := l.db.NewRaw("SELECT id FROM credit_lots WHERE remaining > 0 AND expires_at <= now() ORDER BY expires_at LIMIT 1000").
		Scan(ctx, &ids); err != nil {
		return 0, fmt.Errorf("find expired lots: %w", err)
	}
	posted := 0
	for _, id := range ids {
		ok, err := l.expireLot(ctx, id)
		if err != nil {
			return posted, err
		}
		if ok {
			posted++
		}
	}
	return posted, nil
}

func (l *Ledger) expireLot(ctx context.Context, id uuid.UUID) (bool, error) {
	posted := false
	err := l.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var lt lot
		if err := tx.NewSelect().Model(&lt).Where("id = ?", id).Scan(ctx); err != nil {
			return fmt.Errorf("load lot %s: %w", id, err)
		}
		// Lock the account so the free amount cannot change under us.
		var free int64
		if err := tx.NewRaw("SELECT balance - held FROM credit_accounts WHERE user_id = ? FOR UPDATE", lt.UserID).Scan(ctx, &free); err != nil {
			return fmt.Errorf("lock account: %w", err)
		}
		if err := tx.NewSelect().Model(&lt).Where("id = ?", id).For("UPDATE").Scan(ctx); err != nil {
			return fmt.Errorf("lock lot %s: %w", id, err)
		}
		amount := min(lt.Remaining, free)
		if amount <= 0 {
			return nil
		}
		_, err := PostTx(ctx, tx, Posting{
			UserID: lt.UserID, Amount: -amount, Kind: Expiry,
			Ref: Ref{Type: "CreditLot", ID: id.String()},
			// The remainder before this expiry names it: a rerun finds the
			// same key and posts nothing.
			IdempotencyKey: fmt.Sprintf("expiry:%s:%d", id, lt.Remaining),
			fromLot:        &id,
		})
		if err != nil {
			return err
		}
		if _, err := tx.NewRaw("UPDATE credit_lots SET expired_at = now() WHERE id = ? AND remaining = 0", id).Exec(ctx); err != nil {
			return fmt.Errorf("mark lot expired: %w", err)
		}
		posted = true
		return nil
	})
	return posted, err
}
