package billing

import (
	"context"
	"time"
)

// ReconcileReport says what a reconcile run found and applied.
type ReconcileReport struct {
	// Sessions and Invoices are the paid Checkout Sessions and paid
	// invoices Stripe listed in the window.
	Sessions, Invoices int
	// Applied is how many of them changed anything here (no webhook had
	// delivered them); a second run applies 0.
	Applied int
}

// Reconcile lists the paid Checkout Sessions and paid invoices Stripe
// created in the last window and applies any that no webhook delivered,
// exactly as their webhooks would have. Running it again changes nothing.
// Returns PAYMENTS_DISABLED when payments are off.
func (s *Service) Reconcile(ctx context.Context, window time.Duration) (ReconcileReport, error) {
	if err := s.requireEnabled(); err != nil {
		return ReconcileReport{}, err
	}
	panic("billing: Reconcile is not written yet")
}
