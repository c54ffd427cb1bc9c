package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/uptrace/bun"
)

// ReconcileReport says what a reconcile run found and applied.
type ReconcileReport struct {
	// Sessions and Invoices are the paid Checkout Sessions and paid
	// invoices Stripe listed in the window.
	Sessions, Invoices int
	// Subscriptions is how many subscriptions we hold as not ended were
	// read from Stripe again (whatever the window: an ending no webhook
	// delivered must not keep a plan's limits forever).
	Subscriptions int
	// Applied is how many of them changed anything here (no webhook had
	// delivered them); a second run applies 0.
	Applied int
}

// Reconcile lists the paid Checkout Sessions and paid invoices Stripe
// created in the last window and applies any that no webhook delivered,
// exactly as their webhooks would have, and reads again every subscription
// we hold as not ended. Running it again changes nothing.
// An object that fails to apply is logged and the run goes on; the errors
// are returned with the report of the rest.
// Returns PAYMENTS_DISABLED when payments are off.
func (s *Service) Reconcile(ctx context.Context, window time.Duration) (ReconcileReport, error) {
	var rep ReconcileReport
	if err := s.requireEnabled(); err != nil {
		return rep, err
	}
	since := s.clock.Now().Add(-window).Unix()
	var failed []error
	apply := func(kind, id string, merge func(context.Context, bun.Tx) (bool, error)) {
		var changed bool
		err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			var err error
			changed, err = merge(ctx, tx)
			return err
		})
		if err != nil {
			s.log.ErrorContext(ctx, "reconcile could not apply a Stripe object", "kind", kind, "id", id, "err", err)
			failed = append(failed, fmt.Errorf("%s %s: %w", kind, id, err))
			return
		}
		if changed {
			s.log.InfoContext(ctx, "reconcile applied what no webhook had delivered", "kind", kind, "id", id)
			rep.Applied++
		}
	}

	// A session paid later (a bank debit) is listed complete at once, and
	// paid once its money arrived; until then its webhook will tell.
	sessions := &stripe.CheckoutSessionListParams{
		CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: since},
		Status:       stripe.String(string(stripe.CheckoutSessionStatusComplete)),
	}
	sessions.Limit = stripe.Int64(100)
	sessions.Context = ctx
	it := s.api.CheckoutSessions.List(sessions)
	for it.Next() {
		cs := it.CheckoutSession()
		if cs.PaymentStatus == stripe.CheckoutSessionPaymentStatusUnpaid {
			continue
		}
		rep.Sessions++
		apply("checkout session", cs.ID, func(ctx context.Context, tx bun.Tx) (bool, error) {
			return s.mergeCheckout(ctx, tx, cs, "checkout.session.completed")
		})
	}
	if err := it.Err(); err != nil {
		return rep, errors.Join(append(failed, fmt.Errorf("list checkout sessions: %w", err))...)
	}

	invoices := &stripe.InvoiceListParams{
		CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: since},
		Status:       stripe.String(string(stripe.InvoiceStatusPaid)),
	}
	invoices.Limit = stripe.Int64(100)
	invoices.Context = ctx
	invs := s.api.Invoices.List(invoices)
	for invs.Next() {
		inv := invs.Invoice()
		rep.Invoices++
		apply("invoice", inv.ID, func(ctx context.Context, tx bun.Tx) (bool, error) {
			return s.mergeInvoice(ctx, tx, inv, StatusPaid)
		})
	}
	if err := invs.Err(); err != nil {
		failed = append(failed, fmt.Errorf("list invoices: %w", err))
	}

	checked, changed, subFailed := s.refreshSubscriptions(ctx)
	rep.Subscriptions, rep.Applied = checked, rep.Applied+changed
	failed = append(failed, subFailed...)
	return rep, errors.Join(failed...)
}
