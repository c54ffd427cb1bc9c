package billing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/uuid"
	"github.com/stripe/stripe-go/v76"
	"github.com/uptrace/bun"
)

// DeleteCustomer deletes userID's Stripe customer, for the erasure of their
// account: Stripe then cancels the customer's subscriptions at once and
// forgets its payment methods. It is safe to repeat: the user's record of
// the customer is cleared in the transaction that saw Stripe delete it, and
// a customer Stripe no longer knows (404) counts as deleted. It does nothing
// when the user has no customer or payments are off (a customer made while
// they were on is then left at Stripe, and the log says so).
//
// Internal: called by the privacy erasure job for a user whose deletion was
// authorized there.
func (s *Service) DeleteCustomer(ctx context.Context, userID uuid.UUID) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		// The lock ensureCustomer takes: no customer is made meanwhile.
		if _, err := tx.NewRaw("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", "stripe-customer:"+userID.String()).Exec(ctx); err != nil {
			return fmt.Errorf("lock customer: %w", err)
		}
		var customer sql.NullString
		err := tx.NewRaw("SELECT stripe_customer_id FROM users WHERE id = ?", userID).Scan(ctx, &customer)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && !customer.Valid) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read customer: %w", err)
		}
		if s.api == nil {
			s.log.WarnContext(ctx, "payments are off: a deleted account's Stripe customer is left at Stripe", "customer", customer.String)
			return nil
		}
		if _, err := s.api.Customers.Del(customer.String, &stripe.CustomerParams{Params: stripe.Params{Context: ctx}}); err != nil {
			var se *stripe.Error
			if !errors.As(err, &se) || se.HTTPStatusCode != http.StatusNotFound {
				return fmt.Errorf("delete stripe customer: %w", err)
			}
		}
		if _, err := tx.NewRaw("UPDATE users SET stripe_customer_id = NULL WHERE id = ?", userID).Exec(ctx); err != nil {
			return fmt.Errorf("forget customer: %w", err)
		}
		return nil
	})
}
