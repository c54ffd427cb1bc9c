package billing_test

// Attacks through webhooks: events about objects of no user or plan of
// ours, missing or odd data objects.

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stripe/stripe-go/v76"
)

// rawEvent is a webhook event of type typ about object, as Stripe would
// send it, built by hand for objects the fake does not make.
func rawEvent(t *testing.T, typ string, object map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": "evt_adv_" + uuid.NewString(), "object": "event", "api_version": stripe.APIVersion, "created": time.Now().Unix(),
		"data": map[string]any{"object": object}, "livemode": false, "pending_webhooks": 1,
		"request": map[string]any{"id": nil, "idempotency_key": nil}, "type": typ,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// customerOf returns the user's Stripe customer id (made by their first
// checkout).
func (e *env) customerOf(t *testing.T, user uuid.UUID) string {
	t.Helper()
	var id string
	if err := e.db.NewRaw("SELECT stripe_customer_id FROM users WHERE id = ?", user).Scan(context.Background(), &id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestSubscriptionOfAnotherProductIgnored: the operator's Stripe account
// also sells something else, and one of our users buys it. Its
// subscription events name no plan of ours: answered 200 and ignored, not
// refused with 500 for Stripe to retry for days.
func TestSubscriptionOfAnotherProductIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newUser(t)
	e.buy(t, a, "pack-100")
	before := e.rowCounts(t)
	sub := map[string]any{
		"id": "sub_other_" + uuid.NewString()[:8], "object": "subscription", "customer": e.customerOf(t, a.UserID),
		"status": "active", "current_period_start": time.Now().Unix(), "current_period_end": time.Now().AddDate(0, 1, 0).Unix(),
		"metadata": map[string]any{},
		"items": map[string]any{"object": "list", "data": []any{map[string]any{
			"id": "si_other", "object": "subscription_item",
			"price": map[string]any{"id": "price_other", "object": "price", "lookup_key": "newsletter_monthly", "metadata": map[string]any{}},
		}}},
	}
	for _, typ := range []string{"customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted"} {
		if code := e.deliver(t, rawEvent(t, typ, sub)); code != http.StatusOK {
			t.Errorf("%s of another product: status %d, want 200", typ, code)
		}
	}
	after := e.rowCounts(t)
	if after["subscriptions"] != before["subscriptions"] || after["user_limits"] != before["user_limits"] {
		t.Errorf("another product's subscription changed ours: before %v, after %v", before, after)
	}
}

// TestEventsForOtherUsersObjects: events that name a user through one field
// and another through another (client_reference_id, metadata, customer)
// never move one user's credits because of another's payment, and events
// that name no user of ours write nothing.
func TestEventsForOtherUsersObjects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newUser(t)
	e.buy(t, a, "pack-100")
	before := e.rowCounts(t)
	nobody := uuid.NewString()
	for _, ev := range [][]byte{
		// A Dashboard session of a customer not ours, naming a user who does not exist.
		rawEvent(t, "checkout.session.completed", map[string]any{"id": "cs_x_" + nobody[:8], "object": "checkout.session", "mode": "payment",
			"status": "complete", "payment_status": "paid", "amount_total": 500, "currency": "usd", "customer": "cus_unknown",
			"client_reference_id": nobody, "metadata": map[string]any{"fastimage_catalog_code": "pack-500"}, "payment_intent": "pi_x_" + nobody[:8]}),
		// A session naming a user but no item of ours.
		rawEvent(t, "checkout.session.completed", map[string]any{"id": "cs_y_" + nobody[:8], "object": "checkout.session", "mode": "payment",
			"status": "complete", "payment_status": "paid", "amount_total": 500, "currency": "usd",
			"metadata": map[string]any{"fastimage_user_id": a.UserID.String(), "fastimage_catalog_code": "gold-bars"}}),
		// An invoice of a subscription of nobody.
		rawEvent(t, "invoice.paid", map[string]any{"id": "in_x_" + nobody[:8], "object": "invoice", "customer": "cus_unknown",
			"subscription": "sub_x", "billing_reason": "subscription_cycle", "amount_paid": 2000, "currency": "usd", "status": "paid",
			"subscription_details": map[string]any{"metadata": map[string]any{"fastimage_catalog_code": "pro-monthly"}}}),
		// A refund and a dispute of a charge of nobody.
		rawEvent(t, "charge.dispute.created", map[string]any{"id": "dp_x", "object": "dispute", "charge": "ch_nobody", "amount": 500, "status": "needs_response"}),
		// Objects missing or empty.
		rawEvent(t, "checkout.session.completed", nil),
		rawEvent(t, "invoice.paid", map[string]any{}),
		rawEvent(t, "customer.subscription.updated", map[string]any{"id": "sub_gone", "object": "subscription"}),
		rawEvent(t, "charge.dispute.closed", map[string]any{"id": "dp_y", "object": "dispute"}),
	} {
		if code := e.deliver(t, ev); code != http.StatusOK {
			t.Errorf("%s about nobody: status %d, want 200", eventType(ev), code)
		}
	}
	after := e.rowCounts(t)
	for _, table := range []string{"purchases", "credit_entries", "credit_lots", "subscriptions", "user_limits", "credit_accounts"} {
		if after[table] != before[table] {
			t.Errorf("%s: %d rows before, %d after events about nobody", table, before[table], after[table])
		}
	}
	if b := e.balance(t, a.UserID); b.Balance != 100 {
		t.Errorf("a's balance: %d, want 100", b.Balance)
	}
}
