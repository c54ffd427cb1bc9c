package credit

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// Taking credits back after a payment is refunded or disputed. These are
// internal tools of the billing flow, which decides how much and keeps its
// own record of what it did; they take a plain user id.
//
// Balances never go negative: what a payment brought in and is still unspent
// is taken back from its lot; what was spent already (or held for running
// work) is recorded as owed on the account and settled from the next paid
// grant (see settleOwed), or from held credits as their hold gives them back
// (settleOwedOnRelease).

// FreezeTTL is how long a freeze's hold lives. Disputes close within about
// 75 days; the sweeper never releases a freeze (the dispute's close does).
const FreezeTTL = 400 * 24 * time.Hour

// RefFreeze is the reference type of a freeze's hold.
const RefFreeze = "Freeze"

// ClawbackTx takes up to amount credits back from lot (a grant's lot): as
// much as the lot still has and the account has available, the rest becomes
// owed. It returns what it took and what it recorded as owed; key names the
// posting (the caller makes it unique per step).
func ClawbackTx(ctx context.Context, tx bun.Tx, userID, lotID uuid.UUID, amount int64, ref Ref, key string) (taken, owed int64, err error) {
	if amount <= 0 {
		return 0, 0, nil
	}
	var remaining, available int64
	if err := tx.NewRaw(`
		SELECT l.remaining, a.balance - a.held
		FROM credit_accounts a JOIN credit_lots l ON l.user_id = a.user_id
		WHERE a.user_id = ? AND l.id = ?
		FOR UPDATE OF a, l`, userID, lotID).Scan(ctx, &remaining, &available); err != nil {
		return 0, 0, fmt.Errorf("lock account and lot: %w", err)
	}
	taken = min(amount, remaining, available)
	if taken > 0 {
		if _, err := PostTx(ctx, tx, Posting{
			UserID: userID, Amount: -taken, Kind: Clawback, Ref: ref, IdempotencyKey: key, fromLot: &lotID,
		}); err != nil {
			return 0, 0, err
		}
	}
	owed = amount - taken
	if owed > 0 {
		if _, err := tx.NewRaw("UPDATE credit_accounts SET owed = owed + ?, updated_at = now() WHERE user_id = ?", owed, userID).Exec(ctx); err != nil {
			return 0, 0, fmt.Errorf("record owed credits: %w", err)
		}
	}
	return taken, owed, nil
}

// settleOwed takes what the account owes from a new paid grant's lot, in the
// grant's transaction. The account row is locked by the grant's UPDATE.
func settleOwed(ctx context.Context, tx bun.Tx, userID, lotID uuid.UUID, grantKey string) error {
	var owed, available int64
	if err := tx.NewRaw("SELECT owed, balance - held FROM credit_accounts WHERE user_id = ?", userID).Scan(ctx, &owed, &available); err != nil {
		return fmt.Errorf("read owed credits: %w", err)
	}
	if owed == 0 {
		return nil
	}
	var remaining int64
	if err := tx.NewRaw("SELECT remaining FROM credit_lots WHERE id = ?", lotID).Scan(ctx, &remaining); err != nil {
		return fmt.Errorf("read new lot: %w", err)
	}
	take := min(owed, remaining, available)
	if take <= 0 {
		return nil
	}
	if _, err := PostTx(ctx, tx, Posting{
		UserID: userID, Amount: -take, Kind: Clawback, IdempotencyKey: "settle:" + grantKey, fromLot: &lotID,
		Reason: "settles credits owed after a refund or a lost dispute",
	}); err != nil {
		return err
	}
	if _, err := tx.NewRaw("UPDATE credit_accounts SET owed = owed - ? WHERE user_id = ?", take, userID).Exec(ctx); err != nil {
		return fmt.Errorf("settle owed credits: %w", err)
	}
	return nil
}

// settleOwedOnRelease takes what the account owes from credits a hold gave
// back: credits held when their payment was refunded could not be taken
// back then (they were set aside), and were recorded as owed; once they
// are free again they settle the debt before they can be spent.
func settleOwedOnRelease(ctx context.Context, tx bun.Tx, h *Hold) error {
	var owed, available int64
	if err := tx.NewRaw("SELECT owed, balance - held FROM credit_accounts WHERE user_id = ? FOR UPDATE", h.UserID).Scan(ctx, &owed, &available); err != nil {
		return fmt.Errorf("read owed credits: %w", err)
	}
	take := min(owed, available)
	if take <= 0 {
		return nil
	}
	if _, err := PostTx(ctx, tx, Posting{
		UserID: h.UserID, Amount: -take, Kind: Clawback, IdempotencyKey: "settle:release:" + h.ID.String(),
		Reason: "settles credits owed after a refund or a lost dispute",
	}); err != nil {
		return err
	}
	if _, err := tx.NewRaw("UPDATE credit_accounts SET owed = owed - ? WHERE user_id = ?", take, h.UserID).Exec(ctx); err != nil {
		return fmt.Errorf("settle owed credits: %w", err)
	}
	return nil
}

// Owed returns what userID owes (internal: billing and admin tools).
func Owed(ctx context.Context, idb bun.IDB, userID uuid.UUID) (int64, error) {
	var owed int64
	err := idb.NewRaw("SELECT coalesce((SELECT owed FROM credit_accounts WHERE user_id = ?), 0)", userID).Scan(ctx, &owed)
	return owed, err
}

// FreezeTx freezes a lot while its payment is disputed: what it still has
// (up to what is available) is held, so it cannot be spent, and the lot is
// spent last. It returns the hold, or nil when nothing was left to hold.
// key makes a repeat return the same hold.
func FreezeTx(ctx context.Context, tx bun.Tx, userID, lotID uuid.UUID, ref Ref, key string) (*Hold, error) {
	var remaining, available int64
	if err := tx.NewRaw(`
		SELECT l.remaining, a.balance - a.held
		FROM credit_accounts a JOIN credit_lots l ON l.user_id = a.user_id
		WHERE a.user_id = ? AND l.id = ?
		FOR UPDATE OF a, l`, userID, lotID).Scan(ctx, &remaining, &available); err != nil {
		return nil, fmt.Errorf("lock account and lot: %w", err)
	}
	if _, err := tx.NewRaw("UPDATE credit_lots SET frozen = true WHERE id = ?", lotID).Exec(ctx); err != nil {
		return nil, fmt.Errorf("freeze lot: %w", err)
	}
	amount := min(remaining, available)
	if amount <= 0 {
		return nil, nil
	}
	return HoldTx(ctx, tx, HoldRequest{UserID: userID, Amount: amount, Ref: ref, TTL: FreezeTTL, IdempotencyKey: key})
}

// UnfreezeTx ends a freeze: the lot is spent in its turn again and the hold
// (if any, and still held) is released.
func UnfreezeTx(ctx context.Context, tx bun.Tx, lotID uuid.UUID, holdID *uuid.UUID) error {
	// The account first, then the lot, as every posting locks them: a
	// generation capturing meanwhile holds the account and spends from the
	// lots, and taking the lot first would deadlock with it.
	if _, err := tx.NewRaw(`
		SELECT 1 FROM credit_accounts a JOIN credit_lots l ON l.user_id = a.user_id
		WHERE l.id = ? FOR UPDATE OF a, l`, lotID).Exec(ctx); err != nil {
		return fmt.Errorf("lock account and lot: %w", err)
	}
	if _, err := tx.NewRaw("UPDATE credit_lots SET frozen = false WHERE id = ?", lotID).Exec(ctx); err != nil {
		return fmt.Errorf("unfreeze lot: %w", err)
	}
	if holdID == nil {
		return nil
	}
	var status HoldStatus
	if err := tx.NewRaw("SELECT status FROM credit_holds WHERE id = ? FOR UPDATE", *holdID).Scan(ctx, &status); err != nil {
		return fmt.Errorf("lock freeze hold: %w", err)
	}
	if status != HoldHeld {
		return nil
	}
	return ReleaseTx(ctx, tx, *holdID)
}
