package billing_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/billing"
	"github.com/fastimage/api/internal/billing/stripemock"
	"github.com/fastimage/api/internal/db/dbtest"
)

// TestAgainstStripeMock makes every Stripe call of the service, with the
// parameters it sends, against the real stripe-mock, which refuses what
// Stripe's spec does not know; the fake the other tests use could not tell.
func TestAgainstStripeMock(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	const secret = "whsec_stripemock"
	svc := billing.New(bdb, billing.DefaultCatalog(), billing.Config{
		SecretKey: stripemock.TestKey, WebhookSecret: secret, APIBase: stripemock.URL(t), Tax: true,
		PublicURL: mustURL(t, "https://app.example.test"),
	}, slog.New(slog.DiscardHandler))
	e := &env{db: bdb, svc: svc}
	ctx := context.Background()
	a := e.newUser(t)

	for _, code := range []string{"pack-100", "pro-monthly"} {
		c, err := svc.CreateCheckout(ctx, a, request(code, "mock-"+code))
		if err != nil {
			t.Fatalf("CreateCheckout(%s): %v", code, err)
		}
		if c.SessionID == "" || !strings.HasPrefix(c.URL, "https://") {
			t.Errorf("CreateCheckout(%s): got %+v, want a session and its URL", code, c)
		}
	}
	portal, err := svc.CreatePortal(ctx, a, "/account")
	if err != nil || !strings.HasPrefix(portal, "https://") {
		t.Errorf("CreatePortal: got %q, %v", portal, err)
	}

	// stripe-mock answers any subscription id with its fixture, whose
	// metadata names no user of ours: the row we hold says whose it is.
	if _, err := bdb.NewRaw(`INSERT INTO subscriptions (user_id, stripe_subscription_id, plan_code, status, current_period_end, observed_at)
		VALUES (?, 'sub_mock', 'pro-monthly', 'active', now() + interval '20 days', now() - interval '1 minute')`, a.UserID).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for _, cancel := range []bool{true, false} {
		sub, err := svc.SetCancelAtPeriodEnd(ctx, a, e.subscription(t, a).ID, cancel)
		if err != nil {
			t.Fatalf("SetCancelAtPeriodEnd(%v): %v", cancel, err)
		}
		if sub.CancelAtPeriodEnd != cancel || sub.PlanCode != "pro-monthly" || sub.CurrentPeriodEnd == nil {
			t.Errorf("SetCancelAtPeriodEnd(%v): got %+v", cancel, sub)
		}
	}

	// An admin's refund of a paid purchase.
	var paid uuid.UUID
	if err := bdb.NewRaw(`INSERT INTO purchases (user_id, kind, catalog_code, credits, amount, currency, status, payment_intent_id)
		VALUES (?, 'pack', 'pack-100', 100, 500, 'usd', 'paid', 'pi_mock') RETURNING id`, a.UserID).Scan(ctx, &paid); err != nil {
		t.Fatal(err)
	}
	admin := e.newUser(t)
	admin.Role = actor.RoleAdmin
	if _, err := svc.Refund(ctx, admin, paid, nil); err != nil {
		t.Errorf("Refund: %v", err)
	}

	// A subscription event makes the service fetch the subscription.
	hook := httptest.NewServer(svc.WebhookHandler())
	defer hook.Close()
	event, _ := json.Marshal(map[string]any{
		"id": "evt_mock", "object": "event", "api_version": stripe.APIVersion, "created": time.Now().Unix(), "type": "customer.subscription.updated",
		"data": map[string]any{"object": map[string]any{"id": "sub_mock", "object": "subscription"}},
	})
	req, _ := http.NewRequest(http.MethodPost, hook.URL, strings.NewReader(string(event)))
	req.Header.Set("Stripe-Signature", webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: event, Secret: secret}).Header)
	resp, err := hook.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || e.count(t, "SELECT count(*) FROM stripe_events WHERE id = 'evt_mock'") != 1 {
		t.Errorf("subscription event: status %d, want 200 and the event recorded", resp.StatusCode)
	}

	// Reconcile lists sessions and invoices; stripe-mock's fixtures are not
	// ours and change nothing.
	rep, err := svc.Reconcile(ctx, 72*time.Hour)
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if rep.Applied != 0 {
		t.Errorf("Reconcile over stripe-mock's fixtures: got %+v, want nothing applied", rep)
	}

	// An account's erasure deletes its customer (made by the checkouts).
	if err := svc.DeleteCustomer(ctx, a.UserID); err != nil {
		t.Fatalf("DeleteCustomer: %v", err)
	}
	if n := e.count(t, "SELECT count(*) FROM users WHERE id = ? AND stripe_customer_id IS NULL", a.UserID); n != 1 {
		t.Error("DeleteCustomer left the customer recorded")
	}
}
