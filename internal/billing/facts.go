package billing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/stripe/stripe-go/v76"
	"github.com/uptrace/bun"
)

// What Stripe tells is merged here into facts that only grow; settle then
// derives the credits from them. Each merge runs in the transaction that
// records the event, and finishes by settling the purchases it touched.

// lockLinks serializes the merges that link a purchase to its charges
// through the same payment intent or invoice, before either reads or
// writes anything. A purchase's event writes its payment intent or invoice
// on the purchase and then reads the charges; a charge's event writes them
// on the charge and then reads the purchases. Run at once under READ
// COMMITTED, neither would see the other's uncommitted link, and a refund
// or dispute arriving with the payment would never be settled. Under the
// lock, the second waits for the first to commit, and sees it. The ids are
// locked in order, so merges sharing several never deadlock.
func lockLinks(ctx context.Context, tx bun.Tx, ids ...string) error {
	ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == "" })
	slices.Sort(ids)
	for _, id := range slices.Compact(ids) {
		if _, err := tx.NewRaw("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", "stripe-link:"+id).Exec(ctx); err != nil {
			return fmt.Errorf("lock payment %s: %w", id, err)
		}
	}
	return nil
}

// mergeCheckout records what a Checkout Session says: the ids it links, and
// for a pack, its payment status. A plan's payment is its invoice's
// (mergeInvoice), which also names the period it pays for. It reports
// whether that changed anything.
func (s *Service) mergeCheckout(ctx context.Context, tx bun.Tx, cs *stripe.CheckoutSession, eventType string) (bool, error) {
	var pi, inv string
	if cs.PaymentIntent != nil {
		pi = cs.PaymentIntent.ID
	}
	if cs.Invoice != nil {
		inv = cs.Invoice.ID
	}
	if err := lockLinks(ctx, tx, pi, inv); err != nil {
		return false, err
	}
	p, created, err := s.purchaseForCheckout(ctx, tx, cs)
	if err != nil || p == nil {
		return false, err
	}
	q := tx.NewUpdate().Model((*Purchase)(nil)).Where("id = ?", p.ID).Set("updated_at = now()").
		Set("checkout_session_id = coalesce(checkout_session_id, ?)", cs.ID)
	if c := customerID(cs.Customer); c != "" {
		q = q.Set("customer_id = coalesce(customer_id, ?)", c)
	}
	switch cs.Mode {
	case stripe.CheckoutSessionModePayment:
		if cs.PaymentIntent != nil && cs.PaymentIntent.ID != "" {
			q = q.Set("payment_intent_id = coalesce(payment_intent_id, ?)", cs.PaymentIntent.ID)
		}
		if cs.AmountTotal > 0 {
			q = q.Set("amount = ?, currency = ?", cs.AmountTotal, string(cs.Currency))
		}
		if st := checkoutStatus(cs, eventType); st != "" {
			q = q.Set("status = CASE WHEN ? > ? THEN ? ELSE status END", rank(st), rankSQL, st).
				Set("paid_at = CASE WHEN ? = 'paid' THEN coalesce(paid_at, now()) ELSE paid_at END", st)
		}
	case stripe.CheckoutSessionModeSubscription:
		if cs.Subscription != nil && cs.Subscription.ID != "" {
			q = q.Set("subscription_id = coalesce(subscription_id, ?)", cs.Subscription.ID)
		}
		if cs.Invoice != nil && cs.Invoice.ID != "" {
			// The first invoice may have made its own row already (it
			// arrived first): then that row is the purchase, and this one
			// only the checkout that led to it.
			q = q.Set("invoice_id = coalesce(invoice_id, (SELECT ? WHERE NOT EXISTS (SELECT 1 FROM purchases WHERE invoice_id = ?)))", cs.Invoice.ID, cs.Invoice.ID)
		}
		if eventType == "checkout.session.expired" {
			q = q.Set("status = CASE WHEN status = 'open' THEN 'expired' ELSE status END")
		}
	}
	var now Purchase
	if err := q.Returning("*").Scan(ctx, &now); err != nil {
		return false, fmt.Errorf("record checkout %s: %w", cs.ID, err)
	}
	settled, err := s.settle(ctx, tx, p.ID, now.Status != p.Status)
	return created || now.facts() != p.facts() || settled, err
}

// rankSQL is the rank of a purchase's current status, in SQL (see rank).
var rankSQL = bun.Safe("CASE status WHEN 'open' THEN 0 WHEN 'pending' THEN 1 WHEN 'failed' THEN 2 WHEN 'expired' THEN 2 WHEN 'paid' THEN 3 END")

// checkoutStatus is the payment status a pack's Checkout event tells.
func checkoutStatus(cs *stripe.CheckoutSession, eventType string) Status {
	switch eventType {
	case "checkout.session.async_payment_succeeded":
		return StatusPaid
	case "checkout.session.async_payment_failed":
		return StatusFailed
	case "checkout.session.expired":
		return StatusExpired
	}
	if cs.Status != stripe.CheckoutSessionStatusComplete {
		return ""
	}
	switch cs.PaymentStatus {
	case stripe.CheckoutSessionPaymentStatusPaid, stripe.CheckoutSessionPaymentStatusNoPaymentRequired:
		return StatusPaid
	case stripe.CheckoutSessionPaymentStatusUnpaid:
		return StatusPending // a bank debit on its way
	}
	return ""
}

// purchaseForCheckout finds the purchase a session was made for, or records
// one (created) when the session came from elsewhere (the Dashboard) but
// names a user and a catalog item. nil: not ours, ignored.
func (s *Service) purchaseForCheckout(ctx context.Context, tx bun.Tx, cs *stripe.CheckoutSession) (p *Purchase, created bool, err error) {
	p = &Purchase{}
	q := tx.NewSelect().Model(p).Where("checkout_session_id = ?", cs.ID)
	if id, err := uuid.Parse(cs.Metadata[metaPurchase]); err == nil {
		q = q.WhereOr("id = ?", id)
	}
	err = q.Limit(1).Scan(ctx)
	if err == nil {
		return p, false, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, false, fmt.Errorf("find purchase of checkout %s: %w", cs.ID, err)
	}
	meta := cs.Metadata
	if cs.ClientReferenceID != "" && meta[metaUser] == "" {
		meta = map[string]string{metaUser: cs.ClientReferenceID, metaCode: cs.Metadata[metaCode]}
	}
	userID, err := s.userOf(ctx, tx, meta, customerID(cs.Customer))
	item, ok := s.catalog.Find(cs.Metadata[metaCode])
	if err != nil || !ok {
		s.log.WarnContext(ctx, "a Checkout Session names no user or catalog item of ours; ignored", "session", cs.ID)
		return nil, false, nil
	}
	*p = Purchase{UserID: userID, Kind: item.Kind, CatalogCode: item.Code, Credits: item.Credits,
		Amount: item.Price, Currency: item.Currency, Status: StatusOpen, CheckoutSessionID: &cs.ID}
	res, err := tx.NewInsert().Model(p).On("CONFLICT DO NOTHING").Returning("id").Exec(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("record purchase of checkout %s: %w", cs.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		// Another event of the session recorded it first.
		if err := tx.NewSelect().Model(p).Where("checkout_session_id = ?", cs.ID).Scan(ctx); err != nil {
			return nil, false, fmt.Errorf("find purchase of checkout %s: %w", cs.ID, err)
		}
		return p, false, nil
	}
	return p, true, nil
}

// grantsCredits says whether an invoice may pay for a period of the plan:
// its first, a renewal, or a change that starts a new period at once (from
// the monthly to the yearly plan), rather than a one-off. Which period, if
// any, is its period line's (see periodLine).
func grantsCredits(inv *stripe.Invoice) bool {
	return inv.BillingReason == stripe.InvoiceBillingReasonSubscriptionCreate ||
		inv.BillingReason == stripe.InvoiceBillingReasonSubscriptionCycle ||
		inv.BillingReason == stripe.InvoiceBillingReasonSubscriptionUpdate
}

// periodLine finds what a subscription invoice pays for: the plan of
// meta's code, or of the first line that sells one of our plans, and the
// line of the period it pays (nil: none, such as an invoice of prorations
// only). Proration lines adjust for a change (unused time of the old plan,
// the rest of the period on the new) and are never the period, nor name
// its plan while a period line does: they may come first on the invoice.
func (s *Service) periodLine(inv *stripe.Invoice, meta map[string]string) (item Item, ok bool, line *stripe.InvoiceLineItem) {
	item, ok = s.catalog.Find(meta[metaCode])
	if inv.Lines == nil {
		return item, ok, nil
	}
	var proration *Item
	for _, l := range inv.Lines.Data {
		it, ours := s.itemOfPrice(l.Price)
		ours = ours && it.Kind == Plan
		switch {
		case l.Proration:
			if ours && proration == nil {
				proration = &it
			}
		case ours:
			return it, true, l
		case line == nil:
			line = l // a price of the plan no longer in the catalog's lookup keys
		}
	}
	if !ok && proration != nil {
		item, ok = *proration, true
	}
	return item, ok, line
}

// mergeInvoice records a subscription invoice's payment (invoice.paid) or
// failure (invoice.payment_failed): one purchase per invoice, which for the
// plan's periods brings the plan's credits, once per subscription and
// period. It reports whether that changed anything.
func (s *Service) mergeInvoice(ctx context.Context, tx bun.Tx, inv *stripe.Invoice, st Status) (bool, error) {
	if inv.Subscription == nil || inv.Subscription.ID == "" {
		return false, nil // not a subscription's: we sell packs through Checkout only
	}
	var meta map[string]string
	if inv.SubscriptionDetails != nil {
		meta = inv.SubscriptionDetails.Metadata
	}
	item, ok, line := s.periodLine(inv, meta)
	if !ok {
		s.log.WarnContext(ctx, "an invoice names no plan of ours; ignored", "invoice", inv.ID)
		return false, nil
	}
	pi := ""
	if inv.PaymentIntent != nil {
		pi = inv.PaymentIntent.ID
	}
	if err := lockLinks(ctx, tx, inv.ID, pi); err != nil {
		return false, err
	}
	p, created, err := s.purchaseForInvoice(ctx, tx, inv, meta, item)
	if err != nil || p == nil {
		return false, err
	}
	q := tx.NewUpdate().Model((*Purchase)(nil)).Where("id = ?", p.ID).Set("updated_at = now()").
		Set("invoice_id = ?, subscription_id = ?", inv.ID, inv.Subscription.ID).
		Set("status = CASE WHEN ? > ? THEN ? ELSE status END", rank(st), rankSQL, st)
	if st == StatusPaid {
		q = q.Set("paid_at = coalesce(paid_at, ?)", unixTime(paidAt(inv))).Set("amount = ?, currency = ?", inv.AmountPaid, string(inv.Currency))
	}
	if pi != "" {
		q = q.Set("payment_intent_id = coalesce(payment_intent_id, ?)", pi)
	}
	if inv.HostedInvoiceURL != "" {
		q = q.Set("receipt_url = ?", inv.HostedInvoiceURL)
	}
	if c := customerID(inv.Customer); c != "" {
		q = q.Set("customer_id = coalesce(customer_id, ?)", c)
	}
	period := grantsCredits(inv) && line != nil && line.Period != nil
	if period {
		// Stripe bills a period once; a second paid invoice for it (a
		// duplicate charge) is recorded but brings no credits: the period's
		// grant is keyed on it, and the unique index would refuse it forever.
		var paidAlready bool
		if err := tx.NewRaw("SELECT EXISTS (SELECT 1 FROM purchases WHERE subscription_id = ? AND period_start = ? AND id <> ?)",
			inv.Subscription.ID, unixTime(line.Period.Start), p.ID).Scan(ctx, &paidAlready); err != nil {
			return false, fmt.Errorf("find the period of invoice %s: %w", inv.ID, err)
		}
		if paidAlready {
			s.log.WarnContext(ctx, "a second invoice for a subscription period already invoiced; it brings no credits", "invoice", inv.ID)
			period = false
		}
	}
	if period {
		q = q.Set("period_start = ?, period_end = ?, credits = ?", unixTime(line.Period.Start), unixTime(line.Period.End), item.Credits)
	} else {
		q = q.Set("credits = CASE WHEN credits_granted = 0 THEN 0 ELSE credits END")
	}
	var now Purchase
	if err := q.Returning("*").Scan(ctx, &now); err != nil {
		return false, fmt.Errorf("record invoice %s: %w", inv.ID, err)
	}
	settled, err := s.settle(ctx, tx, p.ID, now.Status != p.Status)
	return created || now.facts() != p.facts() || settled, err
}

func paidAt(inv *stripe.Invoice) int64 {
	if inv.StatusTransitions != nil && inv.StatusTransitions.PaidAt != 0 {
		return inv.StatusTransitions.PaidAt
	}
	return inv.Created
}

// purchaseForInvoice finds the purchase of an invoice: its own row, the
// checkout that started the subscription (for its first invoice), or a new
// row (created) for a renewal.
func (s *Service) purchaseForInvoice(ctx context.Context, tx bun.Tx, inv *stripe.Invoice, meta map[string]string, item Item) (p *Purchase, created bool, err error) {
	p = &Purchase{}
	err = tx.NewSelect().Model(p).Where("invoice_id = ?", inv.ID).Scan(ctx)
	if err == nil {
		return p, false, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, false, fmt.Errorf("find purchase of invoice %s: %w", inv.ID, err)
	}
	if inv.BillingReason == stripe.InvoiceBillingReasonSubscriptionCreate {
		if id, perr := uuid.Parse(meta[metaPurchase]); perr == nil {
			err := tx.NewSelect().Model(p).Where("id = ? AND invoice_id IS NULL", id).Scan(ctx)
			if err == nil {
				return p, false, nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return nil, false, fmt.Errorf("find checkout of invoice %s: %w", inv.ID, err)
			}
		}
	}
	userID, err := s.userOf(ctx, tx, meta, customerID(inv.Customer))
	if err != nil {
		s.log.WarnContext(ctx, "an invoice names no user of ours; ignored", "invoice", inv.ID)
		return nil, false, nil
	}
	*p = Purchase{UserID: userID, Kind: Plan, CatalogCode: item.Code, Credits: 0,
		Amount: inv.AmountDue, Currency: string(inv.Currency), Status: StatusOpen, InvoiceID: &inv.ID}
	if _, err := tx.NewInsert().Model(p).Returning("id").Exec(ctx); err != nil {
		return nil, false, fmt.Errorf("record purchase of invoice %s: %w", inv.ID, err)
	}
	return p, true, nil
}

// mergeCharge records a charge's refunded amount (it only rises) and
// settles the purchase it paid for. It reports whether that changed
// anything.
func (s *Service) mergeCharge(ctx context.Context, tx bun.Tx, ch *stripe.Charge) (bool, error) {
	pi, inv := "", ""
	if ch.PaymentIntent != nil {
		pi = ch.PaymentIntent.ID
	}
	if ch.Invoice != nil {
		inv = ch.Invoice.ID
	}
	if err := lockLinks(ctx, tx, pi, inv); err != nil {
		return false, err
	}
	before, err := chargeFacts(ctx, tx, ch.ID)
	if err != nil {
		return false, err
	}
	if _, err := tx.NewRaw(`
		INSERT INTO stripe_charges (id, payment_intent_id, invoice_id, amount, amount_refunded) VALUES (?, nullif(?, ''), nullif(?, ''), ?, ?)
		ON CONFLICT (id) DO UPDATE SET
		  payment_intent_id = coalesce(stripe_charges.payment_intent_id, EXCLUDED.payment_intent_id),
		  invoice_id = coalesce(stripe_charges.invoice_id, EXCLUDED.invoice_id),
		  amount = GREATEST(stripe_charges.amount, EXCLUDED.amount),
		  amount_refunded = GREATEST(stripe_charges.amount_refunded, EXCLUDED.amount_refunded),
		  updated_at = now()`, ch.ID, pi, inv, ch.Amount, ch.AmountRefunded).Exec(ctx); err != nil {
		return false, fmt.Errorf("record charge %s: %w", ch.ID, err)
	}
	return s.settleCharge(ctx, tx, ch.ID, before)
}

// mergeDispute records a dispute: open until it closes, then won or lost
// for good; a charge may have several (an inquiry, then a chargeback). It
// reports whether that changed anything.
func (s *Service) mergeDispute(ctx context.Context, tx bun.Tx, d *stripe.Dispute) (bool, error) {
	if d.Charge == nil || d.Charge.ID == "" {
		return false, nil
	}
	pi := ""
	if d.PaymentIntent != nil {
		pi = d.PaymentIntent.ID
	}
	if err := lockLinks(ctx, tx, pi); err != nil {
		return false, err
	}
	status := DisputeOpen
	switch d.Status {
	case stripe.DisputeStatusWon, stripe.DisputeStatusWarningClosed:
		status = DisputeWon
	case stripe.DisputeStatusLost:
		status = DisputeLost
	}
	before, err := chargeFacts(ctx, tx, d.Charge.ID)
	if err != nil {
		return false, err
	}
	if _, err := tx.NewRaw(`
		INSERT INTO stripe_disputes (id, charge_id, status, amount) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET
		  status = CASE WHEN stripe_disputes.status IN ('won', 'lost') THEN stripe_disputes.status ELSE EXCLUDED.status END,
		  amount = GREATEST(stripe_disputes.amount, EXCLUDED.amount),
		  updated_at = now()`, d.ID, d.Charge.ID, status, d.Amount).Exec(ctx); err != nil {
		return false, fmt.Errorf("record dispute %s: %w", d.ID, err)
	}
	// The charge's sum of its disputes: lost (the lost amounts) if any is
	// lost, else open if any is open, else won.
	if _, err := tx.NewRaw(`
		WITH d AS (
		  SELECT CASE WHEN bool_or(status = 'lost') THEN 'lost' WHEN bool_or(status = 'open') THEN 'open' ELSE 'won' END AS status,
		         CASE WHEN bool_or(status = 'lost') THEN sum(amount) FILTER (WHERE status = 'lost') ELSE max(amount) END AS amount,
		         max(id) AS last
		  FROM stripe_disputes WHERE charge_id = ?0)
		INSERT INTO stripe_charges (id, payment_intent_id, amount, dispute_id, dispute_status, dispute_amount)
		SELECT ?0, nullif(?1, ''), 0, d.last, d.status, d.amount FROM d
		ON CONFLICT (id) DO UPDATE SET
		  payment_intent_id = coalesce(stripe_charges.payment_intent_id, EXCLUDED.payment_intent_id),
		  dispute_id = EXCLUDED.dispute_id, dispute_status = EXCLUDED.dispute_status, dispute_amount = EXCLUDED.dispute_amount,
		  updated_at = now()`, d.Charge.ID, pi).Exec(ctx); err != nil {
		return false, fmt.Errorf("sum up the disputes of charge %s: %w", d.Charge.ID, err)
	}
	return s.settleCharge(ctx, tx, d.Charge.ID, before)
}

// chargeFacts is what a charge's row says, to tell whether an event is news.
func chargeFacts(ctx context.Context, tx bun.Tx, id string) (string, error) {
	var facts string
	err := tx.NewRaw(`SELECT coalesce((SELECT concat_ws('/', amount_refunded, dispute_status, dispute_amount)
		FROM stripe_charges WHERE id = ? FOR UPDATE), '')`, id).Scan(ctx, &facts)
	if err != nil {
		return "", fmt.Errorf("read charge %s: %w", id, err)
	}
	return facts, nil
}

// settleCharge settles the purchase a charge paid for, when it is known
// already (else the purchase's own event settles it later); before is the
// charge's facts before the event, so that the feed hears only of news. It
// reports whether the charge or its purchase changed.
func (s *Service) settleCharge(ctx context.Context, tx bun.Tx, chargeID, before string) (bool, error) {
	after, err := chargeFacts(ctx, tx, chargeID)
	if err != nil {
		return false, err
	}
	var ids []uuid.UUID
	if err := tx.NewRaw(`
		SELECT p.id FROM purchases p JOIN stripe_charges c ON c.payment_intent_id = p.payment_intent_id OR c.invoice_id = p.invoice_id
		WHERE c.id = ? ORDER BY p.id`, chargeID).Scan(ctx, &ids); err != nil {
		return false, fmt.Errorf("find purchase of charge %s: %w", chargeID, err)
	}
	changed := after != before
	for _, id := range ids {
		settled, err := s.settle(ctx, tx, id, after != before)
		if err != nil {
			return false, err
		}
		changed = changed || settled
	}
	return changed, nil
}
