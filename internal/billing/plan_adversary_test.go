package billing_test

// Invoices of plan changes, and subscription events in any order.

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/billing"
)

// planInvoice is an invoice of the subscription sub of customer, paid, with
// lines of (lookup key, proration, period start, period end).
func planInvoice(t *testing.T, sub, customer, reason string, amount int64, lines ...[4]any) map[string]any {
	t.Helper()
	id := "in_adv_" + uuid.NewString()[:8]
	var data []any
	for i, l := range lines {
		data = append(data, map[string]any{
			"id": id + "_l" + string(rune('0'+i)), "object": "line_item", "type": "subscription", "subscription": sub,
			"proration": l[1], "currency": "usd", "amount": amount,
			"price":  map[string]any{"id": "price_" + l[0].(string), "object": "price", "lookup_key": l[0], "metadata": map[string]any{}},
			"period": map[string]any{"start": l[2], "end": l[3]},
		})
	}
	return map[string]any{
		"id": id, "object": "invoice", "customer": customer, "subscription": sub, "billing_reason": reason, "status": "paid", "paid": true,
		"amount_due": amount, "amount_paid": amount, "currency": "usd", "payment_intent": "pi_" + id,
		"lines":                map[string]any{"object": "list", "data": data},
		"subscription_details": map[string]any{"metadata": map[string]any{}},
		"status_transitions":   map[string]any{"paid_at": time.Now().Unix()},
	}
}

// TestPlanChangeInvoices: switching from the monthly to the yearly plan
// bills a new year at once (billing_reason subscription_update): it brings
// the yearly plan's credits, once. A renewal whose invoice also carries the
// prorations of a change brings the credits of the plan of its period, not
// of a proration line that happens to come first.
func TestPlanChangeInvoices(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newUser(t)
	p := e.subscribe(t, a)
	customer := e.customerOf(t, a.UserID)
	now := time.Now()
	mid, year := now.Add(24*time.Hour).Unix(), now.Add(24*time.Hour).AddDate(1, 0, 0).Unix()
	monthEnd := now.AddDate(0, 1, 0).Unix()

	upgrade := planInvoice(t, p.SubscriptionID, customer, "subscription_update", 18700,
		[4]any{"fastimage_pro_monthly", true, mid, monthEnd}, [4]any{"fastimage_pro_yearly", false, mid, year})
	for range 2 {
		e.mustDeliver(t, rawEvent(t, "invoice.paid", upgrade))
	}
	if got := e.balance(t, a.UserID).Balance; got != 1000+12000 {
		t.Errorf("after paying for a year of the yearly plan: balance %d, want %d", got, 1000+12000)
	}

	// A renewal of the monthly plan, after a change back: the yearly
	// plan's unused time comes first on the invoice, as a proration.
	b := e.newUser(t)
	q := e.subscribe(t, b)
	next, after := now.AddDate(0, 1, 0).Unix(), now.AddDate(0, 2, 0).Unix()
	renewal := planInvoice(t, q.SubscriptionID, e.customerOf(t, b.UserID), "subscription_cycle", 500,
		[4]any{"fastimage_pro_yearly", true, mid, next}, [4]any{"fastimage_pro_monthly", false, next, after})
	e.mustDeliver(t, rawEvent(t, "invoice.paid", renewal))
	if got := e.balance(t, b.UserID).Balance; got != 1000+1000 {
		t.Errorf("after a monthly renewal with a proration line first: balance %d, want %d", got, 1000+1000)
	}
	var start time.Time
	if err := e.db.NewRaw("SELECT period_start FROM purchases WHERE invoice_id = ?", renewal["id"]).Scan(context.Background(), &start); err != nil {
		t.Fatal(err)
	}
	if start.Unix() != next {
		t.Errorf("the renewal's period starts %v, want %v (its period line's)", start.Unix(), next)
	}
}

// TestSubscriptionEventsInAnyOrder: the first period, a renewal and the
// end of a subscription, told in any order (and a stale update last), end
// with both periods' credits, the subscription over and no plan limits.
func TestSubscriptionEventsInAnyOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, order := range permutations(4) {
		a := e.newUser(t)
		p := e.fake.PayCheckout(e.checkout(t, a, "pro-monthly"))
		stale := e.fake.Event("customer.subscription.updated", p.SubscriptionID)
		r := e.fake.RenewSubscription(p.SubscriptionID, true)
		e.fake.SetSubscription(p.SubscriptionID, map[string]any{"status": "canceled", "ended_at": time.Now().Unix(), "canceled_at": time.Now().Unix()})
		events := [][]byte{
			e.fake.Event("checkout.session.completed", p.SessionID), e.fake.Event("invoice.paid", p.InvoiceID),
			e.fake.Event("invoice.paid", r.InvoiceID), e.fake.Event("customer.subscription.deleted", p.SubscriptionID),
		}
		for _, i := range order {
			e.mustDeliver(t, events[i])
		}
		e.mustDeliver(t, stale)
		if got := e.balance(t, a.UserID).Balance; got != 2000 {
			t.Errorf("order %v: balance %d, want 2000", order, got)
		}
		if sub := e.subscription(t, a); sub.Status != billing.SubCanceled || e.limits(t, a.UserID) != "" {
			t.Errorf("order %v: status %s, limits %q; want canceled, none", order, sub.Status, e.limits(t, a.UserID))
		}
	}
}
