package credit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/apperr"
)

// HoldStatus is where a hold stands; a hold resolves exactly once.
type HoldStatus string

// Hold statuses.
const (
	HoldHeld     HoldStatus = "held"
	HoldCaptured HoldStatus = "captured"
	HoldReleased HoldStatus = "released"
)

// Hold sets credits aside for work in progress: they stay in the balance
// but are not available until the hold is captured or released.
type Hold struct {
	bun.BaseModel `bun:"table:credit_holds"`

	ID             uuid.UUID  `bun:"id,pk,type:uuid,default:uuidv7()"`
	UserID         uuid.UUID  `bun:"user_id,type:uuid"`
	Amount         int64      `bun:"amount"`
	Status         HoldStatus `bun:"status"`
	CapturedAmount *int64     `bun:"captured_amount"`
	ReferenceType  *string    `bun:"reference_type"`
	ReferenceID    *string    `bun:"reference_id"`
	IdempotencyKey *string    `bun:"idempotency_key"`
	ExpiresAt      time.Time  `bun:"expires_at"`
	ResolvedAt     *time.Time `bun:"resolved_at"`
	CreatedAt      time.Time  `bun:"created_at,nullzero,default:now()"`
}

// HoldRequest asks to set credits aside.
type HoldRequest struct {
	UserID uuid.UUID
	Amount int64
	Ref    Ref
	// TTL bounds the hold: the sweeper releases it after that.
	TTL time.Duration
	// IdempotencyKey, when set, makes the same request return the same hold.
	IdempotencyKey string
}

// Hold sets req.Amount credits aside.
// Returns INSUFFICIENT_CREDITS (with "available") when they do not fit.
func (l *Ledger) Hold(ctx context.Context, req HoldRequest) (*Hold, error) {
	var h *Hold
	err := l.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		h, err = HoldTx(ctx, tx, req)
		return err
	})
	return h, err
}

// HoldTx is Hold inside the caller's transaction (for example with the job
// that the credits pay for).
func HoldTx(ctx context.Context, tx bun.Tx, req HoldRequest) (*Hold, error) {
	if req.Amount <= 0 || req.TTL <= 0 {
		return nil, apperr.Errorf(apperr.Validation, "A hold needs a positive amount and lifetime.")
	}
	if req.IdempotencyKey != "" {
		var existing Hold
		err := tx.NewSelect().Model(&existing).Where("idempotency_key = ?", req.IdempotencyKey).Scan(ctx)
		if err == nil {
			return &existing, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("find hold by key: %w", err)
		}
	}
	if err := ensureAccount(ctx, tx, req.UserID); err != nil {
		return nil, err
	}
	var balance, held int64
	err := tx.NewRaw(`UPDATE credit_accounts SET held = held + ?0, updated_at = now()
		WHERE user_id = ?1 AND balance - held >= ?0 RETURNING balance, held`, req.Amount, req.UserID).Scan(ctx, &balance, &held)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, insufficient(ctx, tx, req.UserID, req.Amount)
	}
	if err != nil {
		return nil, fmt.Errorf("hold credits: %w", err)
	}
	if err := tellFeed(ctx, tx, req.UserID, balance, held, CauseHold, req.Ref); err != nil {
		return nil, err
	}
	h := &Hold{UserID: req.UserID, Amount: req.Amount, Status: HoldHeld, ExpiresAt: time.Now().Add(req.TTL)}
	if req.Ref.Type != "" {
		h.ReferenceType, h.ReferenceID = &req.Ref.Type, &req.Ref.ID
	}
	if req.IdempotencyKey != "" {
		h.IdempotencyKey = &req.IdempotencyKey
	}
	if _, err := tx.NewInsert().Model(h).Returning("id, created_at").Exec(ctx); err != nil {
		return nil, fmt.Errorf("record hold: %w", err)
	}
	return h, nil
}

// Capture spends amount (at most what the hold holds) and frees the rest.
// Returns NOT_FOUND, VALIDATION (amount out of range) or CONFLICT when the
// hold was already captured or released.
func (l *Ledger) Capture(ctx context.Context, holdID uuid.UUID, amount int64) (*Entry, error) {
	var e *Entry
	err := l.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		e, err = CaptureTx(ctx, tx, holdID, amount)
		return err
	})
	return e, err
}

// CaptureTx is Capture inside the caller's transaction. It returns a nil
// entry when amount is 0 (nothing was spent; the hold is freed).
func CaptureTx(ctx context.Context, tx bun.Tx, holdID uuid.UUID, amount int64) (*Entry, error) {
	if amount < 0 {
		return nil, apperr.Errorf(apperr.Validation, "A capture cannot be negative.")
	}
	h, err := resolve(ctx, tx, holdID, HoldCaptured, &amount)
	if err != nil {
		return nil, err
	}
	if amount == 0 {
		return nil, freeHeld(ctx, tx, h)
	}
	ref := h.ref()
	if ref.Type == "" {
		ref = Ref{Type: "CreditHold", ID: h.ID.String()}
	}
	e, err := PostTx(ctx, tx, Posting{
		UserID: h.UserID, Amount: -amount, Kind: Spend, Ref: ref,
		IdempotencyKey: "capture:" + h.ID.String(),
		releaseHeld:    h.Amount,
	})
	if err != nil || amount == h.Amount {
		return e, err
	}
	return e, settleOwedOnRelease(ctx, tx, h) // the rest of the hold came back
}

// ChargeTx spends amount for the work a hold was set aside for, inside the
// caller's transaction: it captures the hold; when the hold was released
// before its work ended, it spends amount from the available credits
// instead, once (under the capture's idempotency key); when the hold was
// captured already, it changes nothing and returns that capture's entry.
// A nil entry means nothing was spent (amount 0).
// Returns NOT_FOUND, VALIDATION (amount out of range) or
// INSUFFICIENT_CREDITS (the hold was released and the available credits no
// longer cover amount).
func ChargeTx(ctx context.Context, tx bun.Tx, holdID uuid.UUID, amount int64) (*Entry, error) {
	e, err := CaptureTx(ctx, tx, holdID, amount)
	if apperr.CodeOf(err) != apperr.Conflict {
		return e, err
	}
	var h Hold
	if err := tx.NewSelect().Model(&h).Where("id = ?", holdID).Scan(ctx); err != nil {
		return nil, fmt.Errorf("inspect hold: %w", err)
	}
	key := "capture:" + h.ID.String()
	if h.Status == HoldCaptured {
		if *h.CapturedAmount == 0 {
			return nil, nil
		}
		return findByKey(ctx, tx, key)
	}
	if amount == 0 {
		return nil, nil
	}
	if amount > h.Amount {
		return nil, apperr.Errorf(apperr.Validation, "Cannot capture %d credits from a hold of %d.", amount, h.Amount)
	}
	ref := h.ref()
	if ref.Type == "" {
		ref = Ref{Type: "CreditHold", ID: h.ID.String()}
	}
	return PostTx(ctx, tx, Posting{UserID: h.UserID, Amount: -amount, Kind: Spend, Ref: ref, IdempotencyKey: key})
}

// Release frees a hold's credits without spending any.
// Returns NOT_FOUND or CONFLICT when the hold was already resolved.
func (l *Ledger) Release(ctx context.Context, holdID uuid.UUID) error {
	return l.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		return ReleaseTx(ctx, tx, holdID)
	})
}

// ReleaseTx is Release inside the caller's transaction.
func ReleaseTx(ctx context.Context, tx bun.Tx, holdID uuid.UUID) error {
	h, err := resolve(ctx, tx, holdID, HoldReleased, nil)
	if err != nil {
		return err
	}
	return freeHeld(ctx, tx, h)
}

// resolve moves a held hold to status, exactly once: of several callers
// racing, the conditional UPDATE lets one through.
func resolve(ctx context.Context, tx bun.Tx, holdID uuid.UUID, status HoldStatus, captured *int64) (*Hold, error) {
	var h Hold
	q := tx.NewUpdate().Model(&h).Set("status = ?", status).Set("resolved_at = now()").
		Where("id = ? AND status = ?", holdID, HoldHeld)
	if captured != nil {
		q = q.Set("captured_amount = ?", *captured).Where("amount >= ?", *captured)
	}
	err := q.Returning("*").Scan(ctx)
	if err == nil {
		return &h, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("resolve hold: %w", err)
	}
	err = tx.NewSelect().Model(&h).Where("id = ?", holdID).Scan(ctx)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, apperr.Errorf(apperr.NotFound, "No such hold.")
	case err != nil:
		return nil, fmt.Errorf("inspect hold: %w", err)
	case h.Status != HoldHeld:
		return nil, apperr.Errorf(apperr.Conflict, "This hold was already %s.", h.Status)
	default:
		return nil, apperr.Errorf(apperr.Validation, "Cannot capture %d credits from a hold of %d.", *captured, h.Amount)
	}
}

func freeHeld(ctx context.Context, tx bun.Tx, h *Hold) error {
	var balance, held int64
	if err := tx.NewRaw("UPDATE credit_accounts SET held = held - ?, updated_at = now() WHERE user_id = ? RETURNING balance, held",
		h.Amount, h.UserID).Scan(ctx, &balance, &held); err != nil {
		return fmt.Errorf("free held credits: %w", err)
	}
	if err := tellFeed(ctx, tx, h.UserID, balance, held, CauseRelease, h.ref()); err != nil {
		return err
	}
	return settleOwedOnRelease(ctx, tx, h)
}

// ref names what the hold pays for.
func (h *Hold) ref() Ref {
	if h.ReferenceType == nil {
		return Ref{}
	}
	return Ref{Type: *h.ReferenceType, ID: *h.ReferenceID}
}

// ReleaseExpiredHolds releases every hold that has expired by now and whose
// work is gone or over without resolving it, and returns how many it
// released. It is the safety net for holds whose owner is gone: a hold for
// a generation that is still queued or running lives as long as the
// generation does (a queue may hold a job longer than any fixed time), and
// the generation resolves it when it ends. A freeze of a disputed payment is
// never released here: the dispute's close ends it. now comes from the caller's
// clock, the kind of clock that set the holds' expiry.
func (l *Ledger) ReleaseExpiredHolds(ctx context.Context, now time.Time) (int, error) {
	var ids []uuid.UUID
	if err := l.db.NewRaw(`
		SELECT h.id FROM credit_holds h
		WHERE h.status = 'held' AND h.expires_at <= ?
		  AND h.reference_type IS DISTINCT FROM ?
		  AND NOT EXISTS (
		    SELECT 1 FROM generations g
		    WHERE h.reference_type = 'Generation'
		      AND g.id = CASE WHEN h.reference_type = 'Generation' THEN h.reference_id::uuid END
		      AND g.status IN ('queued', 'running'))
		ORDER BY h.expires_at LIMIT 1000`, now, RefFreeze).
		Scan(ctx, &ids); err != nil {
		return 0, fmt.Errorf("find expired holds: %w", err)
	}
	released := 0
	for _, id := range ids {
		err := l.Release(ctx, id)
		switch apperr.CodeOf(err) {
		case "":
			released++
		case apperr.Conflict: // resolved meanwhile by its owner
		default:
			return released, err
		}
	}
	return released, nil
}
