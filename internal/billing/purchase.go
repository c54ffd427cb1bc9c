package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/stripe/stripe-go/v76"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/db"
)

// Status is where a purchase's payment stands. It only moves forward:
// open → pending → paid | failed | expired (see rank).
type Status string

// The payment statuses.
const (
	StatusOpen    Status = "open"    // checkout started, not finished
	StatusPending Status = "pending" // finished, the payment is on its way (bank debits)
	StatusPaid    Status = "paid"
	StatusFailed  Status = "failed"
	StatusExpired Status = "expired" // the checkout ran out unpaid
)

// rank orders statuses: a fact about a later stage wins over an earlier one,
// and of the final ones paid wins (money that arrived is never forgotten).
func rank(s Status) int {
	switch s {
	case StatusOpen:
		return 0
	case StatusPending:
		return 1
	case StatusFailed, StatusExpired:
		return 2
	case StatusPaid:
		return 3
	}
	return -1
}

// Purchase is one payment: a credit pack's checkout, or one period of a
// subscription.
type Purchase struct {
	bun.BaseModel `bun:"table:purchases,alias:purchase"`

	ID                uuid.UUID  `bun:"id,pk,type:uuid,default:uuidv7()"`
	UserID            uuid.UUID  `bun:"user_id,type:uuid"`
	Kind              ItemKind   `bun:"kind"`
	CatalogCode       string     `bun:"catalog_code"`
	Credits           int64      `bun:"credits"`
	Amount            int64      `bun:"amount"`
	Currency          string     `bun:"currency"`
	Status            Status     `bun:"status"`
	IdempotencyKey    *string    `bun:"idempotency_key"`
	CustomerID        *string    `bun:"customer_id"`
	CheckoutSessionID *string    `bun:"checkout_session_id"`
	CheckoutURL       *string    `bun:"checkout_url"`
	InvoiceID         *string    `bun:"invoice_id"`
	PaymentIntentID   *string    `bun:"payment_intent_id"`
	SubscriptionID    *string    `bun:"subscription_id"`
	PeriodStart       *time.Time `bun:"period_start"`
	PeriodEnd         *time.Time `bun:"period_end"`
	ReceiptURL        *string    `bun:"receipt_url"`
	LotID             *uuid.UUID `bun:"lot_id,type:uuid"`
	CreditsGranted    int64      `bun:"credits_granted"`
	CreditsClawedBack int64      `bun:"credits_clawed_back"`
	CreditsOwed       int64      `bun:"credits_owed"`
	FrozenHoldID      *uuid.UUID `bun:"frozen_hold_id,type:uuid"`
	PaidAt            *time.Time `bun:"paid_at"`
	CreatedAt         time.Time  `bun:"created_at,nullzero,default:now()"`
	UpdatedAt         time.Time  `bun:"updated_at,nullzero,default:now()"`

	// Read from the purchase's charges (never written).
	AmountRefunded int64   `bun:"amount_refunded,scanonly"`
	DisputeStatus  Dispute `bun:"dispute_status,scanonly"`
}

// Dispute is where a dispute of a purchase's payment stands ("" when none).
type Dispute string

// The dispute states.
const (
	DisputeOpen Dispute = "open"
	DisputeWon  Dispute = "won"
	DisputeLost Dispute = "lost"
)

// withCharges adds to a select of purchases what their charges say.
func withCharges(q *bun.SelectQuery) *bun.SelectQuery {
	return q.ColumnExpr("purchase.*").
		ColumnExpr(`coalesce((SELECT max(c.amount_refunded) FROM stripe_charges c
			WHERE c.payment_intent_id = purchase.payment_intent_id OR c.invoice_id = purchase.invoice_id), 0) AS amount_refunded`).
		ColumnExpr(`coalesce((SELECT c.dispute_status FROM stripe_charges c
			WHERE (c.payment_intent_id = purchase.payment_intent_id OR c.invoice_id = purchase.invoice_id) AND c.dispute_status IS NOT NULL
			ORDER BY c.updated_at DESC LIMIT 1), '') AS dispute_status`)
}

// listed are the statuses of purchases users see: a checkout left open or
// expired unpaid is no purchase.
var listed = []Status{StatusPending, StatusPaid, StatusFailed}

// Purchases returns up to first of userID's purchases older than after
// (nil: the newest), newest first; checkouts never finished are left out.
// Returns FORBIDDEN unless the actor is that user or an admin.
func (s *Service) Purchases(ctx context.Context, a actor.Actor, userID uuid.UUID, first int, after *uuid.UUID) (*db.Page[Purchase], error) {
	if err := a.RequireScope(actor.ScopeCreditsRead); err != nil {
		return nil, err
	}
	if err := a.ReadAccount(userID); err != nil {
		return nil, err
	}
	return db.ListPage[Purchase](ctx, s.db, "purchase.id", func(q *bun.SelectQuery) *bun.SelectQuery {
		return withCharges(q).Where("purchase.user_id = ? AND purchase.status IN (?)", userID, bun.In(listed))
	}, first, after)
}

// PurchasesByIDs returns the actor's purchases among ids (an admin's: any
// user's), in no order; others are left out.
func (s *Service) PurchasesByIDs(ctx context.Context, a actor.Actor, ids []uuid.UUID) ([]Purchase, error) {
	if err := a.RequireScope(actor.ScopeCreditsRead); err != nil {
		return nil, err
	}
	var ps []Purchase
	q := withCharges(s.db.NewSelect().Model(&ps)).Where("purchase.id IN (?)", bun.In(ids))
	if !a.Admin() {
		q = q.Where("purchase.user_id = ?", a.UserID)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("find purchases: %w", err)
	}
	return ps, nil
}

// CustomerID returns userID's Stripe customer id, for admins only (users
// never need it). Returns FORBIDDEN for anyone else.
func (s *Service) CustomerID(ctx context.Context, a actor.Actor, userID uuid.UUID) (*string, error) {
	if err := a.RequireScope(actor.ScopeCreditsRead); err != nil {
		return nil, err
	}
	if err := a.RequireAdmin(); err != nil {
		return nil, err
	}
	var id *string
	if err := s.db.NewRaw("SELECT stripe_customer_id FROM users WHERE id = ?", userID).Scan(ctx, &id); err != nil {
		return nil, fmt.Errorf("read customer id: %w", err)
	}
	return id, nil
}

// Refund refunds a paid purchase through Stripe, in full (amount nil: all
// not refunded yet) or amount (minor units). The credits are taken back when
// Stripe's charge.refunded arrives, like any refund made in the Dashboard.
// Returns FORBIDDEN (not an admin), NOT_FOUND, VALIDATION (not paid, or
// amount out of range), PAYMENTS_DISABLED or UNAVAILABLE.
func (s *Service) Refund(ctx context.Context, admin actor.Actor, id uuid.UUID, amount *int64) (*Purchase, error) {
	if err := admin.RequireSession(); err != nil {
		return nil, err
	}
	if err := admin.RequireAdmin(); err != nil {
		return nil, err
	}
	if err := s.requireEnabled(); err != nil {
		return nil, err
	}
	ps, err := s.PurchasesByIDs(ctx, admin, []uuid.UUID{id})
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, apperr.Errorf(apperr.NotFound, "No such purchase.")
	}
	p := &ps[0]
	if p.Status != StatusPaid || p.PaymentIntentID == nil {
		return nil, apperr.Errorf(apperr.Validation, "Only a paid purchase can be refunded; this one is %s.", p.Status)
	}
	left := p.Amount - p.AmountRefunded
	n := left
	if amount != nil {
		n = *amount
	}
	if n < 1 || n > left {
		return nil, apperr.Errorf(apperr.Validation, "The refund must be between 1 and %d (what is not refunded yet, in minor units).", left).With("field", "amount")
	}
	params := &stripe.RefundParams{PaymentIntent: p.PaymentIntentID, Amount: stripe.Int64(n)}
	params.AddMetadata(metaPurchase, p.ID.String())
	params.AddMetadata("fastimage_refunded_by", admin.UserID.String())
	// One refund per state of the purchase: a retry after a lost answer
	// does not refund twice.
	params.SetIdempotencyKey(fmt.Sprintf("refund:%s:%d:%d", p.ID, p.AmountRefunded, n))
	params.Context = ctx
	if _, err := s.api.Refunds.New(params); err != nil {
		return nil, s.stripeError(ctx, "refund the payment", err)
	}
	s.log.InfoContext(ctx, "refund requested", "purchase", p.ID, "amount", n, "admin", admin.UserID)
	return p, nil
}
