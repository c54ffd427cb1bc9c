// Package credit is the credits ledger: balances that can never go wrong.
//
// Reads for users (BalanceOf, Entries, Holds, …ByIDs) and Adjust take the
// actor and authorize it (see internal/actor). Postings and holds (Post,
// Hold, Capture, Release and their Tx forms) take a user id: they are the
// internal tools of flows that authorized their user already — verification
// granting the bonus, a generation holding and capturing its cost — and are
// never called from graph/.
//
// Every change goes through post, in one transaction that moves the balance
// with a conditional UPDATE (never a value computed in Go), writes one
// append-only entry, and keeps the lots (what each grant brought in, spent
// first-expiring-first) adding up to the balance. The database holds the
// rules it can: balance ≥ 0, held ≥ 0, balance − held ≥ 0, unique
// idempotency keys, and entries that refuse UPDATE and DELETE.
package credit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/feed"
)

// Kind says why credits moved.
type Kind string

// The kinds of entries.
const (
	SignupBonus       Kind = "SIGNUP_BONUS"
	Purchase          Kind = "PURCHASE"
	SubscriptionGrant Kind = "SUBSCRIPTION_GRANT"
	Spend             Kind = "SPEND"
	Refund            Kind = "REFUND"
	Adjustment        Kind = "ADJUSTMENT"
	Expiry            Kind = "EXPIRY"
	Clawback          Kind = "CLAWBACK"
)

// InsufficientCredits is the code of a change that does not fit in the
// available balance.
const InsufficientCredits apperr.Code = "INSUFFICIENT_CREDITS"

// Ref names what caused an entry or a hold, e.g. {"Generation", id}.
type Ref struct {
	Type string
	ID   string
}

// Entry is one line of a user's ledger.
type Entry struct {
	bun.BaseModel `bun:"table:credit_entries"`

	ID             uuid.UUID  `bun:"id,pk,type:uuid,default:uuidv7()"`
	UserID         uuid.UUID  `bun:"user_id,type:uuid"`
	Amount         int64      `bun:"amount"`
	Kind           Kind       `bun:"kind"`
	ReferenceType  *string    `bun:"reference_type"`
	ReferenceID    *string    `bun:"reference_id"`
	BalanceAfter   int64      `bun:"balance_after"`
	IdempotencyKey string     `bun:"idempotency_key"`
	LotID          *uuid.UUID `bun:"lot_id,type:uuid"`
	Reason         *string    `bun:"reason"`
	CreatedAt      time.Time  `bun:"created_at,nullzero,default:now()"`

	// LotExpiresAt is the expiry of the lot a grant formed (read from the
	// lot, never written).
	LotExpiresAt *time.Time `bun:"lot_expires_at,scanonly"`
}

// Ledger posts and reads credits.
type Ledger struct {
	db *bun.DB
}

// New returns a Ledger on db.
func New(db *bun.DB) *Ledger { return &Ledger{db: db} }

// Posting is one change to one user's balance.
type Posting struct {
	UserID uuid.UUID
	// Amount is signed: grants are positive, spends negative.
	Amount int64
	Kind   Kind
	Ref    Ref
	// IdempotencyKey makes the posting happen once: the same key again
	// returns the first entry and changes nothing.
	IdempotencyKey string
	// LotExpiresAt is when a grant's credits expire (nil: never).
	LotExpiresAt *time.Time
	// Reason explains an adjustment.
	Reason string

	// releaseHeld is how much of the held amount goes away with this
	// posting (a capture).
	releaseHeld int64
	// fromLot takes the credits from this lot only (an expiry).
	fromLot *uuid.UUID
}

var errKeyRace = errors.New("credit: idempotency key taken by a concurrent posting")

// Post applies one posting in its own transaction and returns its entry.
// Returns INSUFFICIENT_CREDITS (with "available") when a negative amount
// does not fit, and VALIDATION for a malformed posting.
func (l *Ledger) Post(ctx context.Context, p Posting) (*Entry, error) {
	var e *Entry
	err := l.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		e, err = PostTx(ctx, tx, p)
		return err
	})
	if errors.Is(err, errKeyRace) {
		// Another transaction posted the same key first; its entry stands.
		return findByKey(ctx, l.db, p.IdempotencyKey)
	}
	return e, err
}

// PostTx applies one posting inside the caller's transaction (for example
// the sign-up bonus inside email verification). See Post.
func PostTx(ctx context.Context, tx bun.Tx, p Posting) (*Entry, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	if existing, err := findByKey(ctx, tx, p.IdempotencyKey); err == nil {
		return existing, nil
	} else if apperr.CodeOf(err) != apperr.NotFound {
		return nil, err
	}
	if err := ensureAccount(ctx, tx, p.UserID); err != nil {
		return nil, err
	}
	var balance, held int64
	err := tx.NewRaw(`
		UPDATE credit_accounts
		SET balance = balance + ?0, held = held - ?1, updated_at = now()
		WHERE user_id = ?2 AND balance + ?0 - (held - ?1) >= 0 AND held - ?1 >= 0
		RETURNING balance, held`, p.Amount, p.releaseHeld, p.UserID).Scan(ctx, &balance, &held)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, insufficient(ctx, tx, p.UserID, -p.Amount)
	}
	if err != nil {
		return nil, fmt.Errorf("move balance: %w", err)
	}
	if err := tellFeed(ctx, tx, p.UserID, balance, held, string(p.Kind), p.Ref); err != nil {
		return nil, err
	}

	e := &Entry{UserID: p.UserID, Amount: p.Amount, Kind: p.Kind, BalanceAfter: balance, IdempotencyKey: p.IdempotencyKey}
	if p.Ref.Type != "" {
		e.ReferenceType, e.ReferenceID = &p.Ref.Type, &p.Ref.ID
	}
	if p.Reason != "" {
		e.Reason = &p.Reason
	}
	switch {
	case p.Amount > 0:
		lot := &lot{UserID: p.UserID, Amount: p.Amount, Remaining: p.Amount, ExpiresAt: p.LotExpiresAt}
		if _, err := tx.NewInsert().Model(lot).Returning("id").Exec(ctx); err != nil {
			return nil, fmt.Errorf("create lot: %w", err)
		}
		e.LotID, e.LotExpiresAt = &lot.ID, p.LotExpiresAt
	case p.fromLot != nil:
		res, err := tx.NewRaw("UPDATE credit_lots SET remaining = remaining - ? WHERE id = ? AND remaining >= ?", -p.Amount, *p.fromLot, -p.Amount).Exec(ctx)
		if err != nil {
			return nil, fmt.Errorf("take from lot: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil, fmt.Errorf("take %d from lot %s: not enough remaining", -p.Amount, *p.fromLot)
		}
		e.LotID = p.fromLot
	default:
		if err := consumeLots(ctx, tx, p.UserID, -p.Amount); err != nil {
			return nil, err
		}
	}
	res, err := tx.NewInsert().Model(e).On("CONFLICT (idempotency_key) DO NOTHING").Returning("id, created_at").Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("write entry: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, errKeyRace
	}
	if p.Kind == Purchase || p.Kind == SubscriptionGrant {
		// A paid grant first settles what the account owes from earlier
		// refunds and lost disputes.
		if err := settleOwed(ctx, tx, p.UserID, *e.LotID, p.IdempotencyKey); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (p Posting) validate() error {
	switch {
	case p.IdempotencyKey == "" || len(p.IdempotencyKey) > 200:
		return apperr.Errorf(apperr.Validation, "Every credit change needs an idempotency key of 1 to 200 characters.")
	case p.Amount == 0:
		return apperr.Errorf(apperr.Validation, "A credit change must move at least one credit.")
	case p.Kind == Adjustment && p.Reason == "":
		return apperr.Errorf(apperr.Validation, "An adjustment needs a reason.").With("field", "reason")
	}
	switch p.Kind {
	case SignupBonus, Purchase, SubscriptionGrant, Refund:
		if p.Amount < 0 {
			return apperr.Errorf(apperr.Validation, "A %s brings credits in; its amount must be positive.", p.Kind)
		}
	case Spend, Expiry, Clawback:
		if p.Amount > 0 {
			return apperr.Errorf(apperr.Validation, "A %s takes credits out; its amount must be negative.", p.Kind)
		}
	case Adjustment:
	default:
		return apperr.Errorf(apperr.Validation, "Unknown credit entry kind %q.", p.Kind)
	}
	if p.LotExpiresAt != nil && p.Amount < 0 {
		return apperr.Errorf(apperr.Validation, "Only grants form lots that expire.")
	}
	return nil
}

// Causes of balance changes that are no entry of their own.
const (
	CauseHold    = "HOLD"
	CauseRelease = "RELEASE"
)

// tellFeed tells the user's live feed their credits after a change, and why.
func tellFeed(ctx context.Context, tx bun.Tx, userID uuid.UUID, balance, held int64, cause string, ref Ref) error {
	return feed.AppendTx(ctx, tx, userID, feed.CreditsChanged{
		Balance: balance, Held: held, Available: balance - held, Cause: cause, RefType: ref.Type, RefID: ref.ID,
	})
}

func ensureAccount(ctx context.Context, idb bun.IDB, userID uuid.UUID) error {
	if _, err := idb.NewRaw("INSERT INTO credit_accounts (user_id) VALUES (?) ON CONFLICT DO NOTHING", userID).Exec(ctx); err != nil {
		return fmt.Errorf("open credit account: %w", err)
	}
	return nil
}

func findByKey(ctx context.Context, idb bun.IDB, key string) (*Entry, error) {
	var e Entry
	err := idb.NewSelect().Model(&e).Where("idempotency_key = ?", key).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, apperr.Errorf(apperr.NotFound, "No such credit entry.")
	}
	if err != nil {
		return nil, fmt.Errorf("find entry by key: %w", err)
	}
	if e.LotID != nil {
		var exp *time.Time
		if err := idb.NewRaw("SELECT expires_at FROM credit_lots WHERE id = ?", *e.LotID).Scan(ctx, &exp); err == nil {
			e.LotExpiresAt = exp
		}
	}
	return &e, nil
}

// insufficient explains a refused change with the available amount.
func insufficient(ctx context.Context, idb bun.IDB, userID uuid.UUID, needed int64) error {
	var available int64
	_ = idb.NewRaw("SELECT coalesce((SELECT balance - held FROM credit_accounts WHERE user_id = ?), 0)", userID).Scan(ctx, &available)
	return apperr.Errorf(InsufficientCredits, "This needs %d credits; you have %d available.", needed, available).
		With("available", available).With("required", needed)
}

// Adjust changes a user's credits by hand (support's correction), with a
// reason for the record.
// Returns FORBIDDEN (not an admin), NOT_FOUND, VALIDATION or
// INSUFFICIENT_CREDITS (a removal beyond what is available).
func (l *Ledger) Adjust(ctx context.Context, admin actor.Actor, userID uuid.UUID, amount int64, reason string) (*Entry, error) {
	if err := admin.RequireSession(); err != nil {
		return nil, err
	}
	if err := admin.RequireAdmin(); err != nil {
		return nil, err
	}
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > 500 {
		return nil, apperr.Errorf(apperr.Validation, "Give a reason of 1 to 500 characters.").With("field", "reason")
	}
	var exists bool
	if err := l.db.NewRaw("SELECT EXISTS (SELECT 1 FROM users WHERE id = ?)", userID).Scan(ctx, &exists); err != nil {
		return nil, fmt.Errorf("find user: %w", err)
	}
	if !exists {
		return nil, apperr.Errorf(apperr.NotFound, "No such user.")
	}
	return l.Post(ctx, Posting{
		UserID: userID, Amount: amount, Kind: Adjustment, Reason: reason,
		Ref:            Ref{Type: "User", ID: admin.UserID.String()},
		IdempotencyKey: "adjust:" + uuid.NewString(),
	})
}

// GrantSignupBonus gives a new user their bonus inside the transaction that
// verifies their email; a second verification grants nothing more.
func GrantSignupBonus(ctx context.Context, tx bun.Tx, userID uuid.UUID, amount int64) error {
	if amount <= 0 {
		return nil
	}
	_, err := PostTx(ctx, tx, Posting{
		UserID: userID, Amount: amount, Kind: SignupBonus,
		IdempotencyKey: "signup-bonus:" + userID.String(),
	})
	return err
}
