package billing_test

import (
	"context"
	"testing"
	"time"

	"github.com/fastimage/api/internal/billing"
)

// TestReconcileEndsSubscriptionsWhoseEndWasDropped: the webhook that ends a
// subscription is lost (the endpoint was down for Stripe's three days of
// retries). The plan's limits must not stay forever: reconcile asks Stripe
// about the subscriptions we hold as live.
func TestReconcileEndsSubscriptionsWhoseEndWasDropped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.newUser(t)
	p := e.subscribe(t, a)
	if e.limits(t, a.UserID) != "pro-monthly" {
		t.Fatalf("subscribed: limits %q", e.limits(t, a.UserID))
	}
	e.fake.SetSubscription(p.SubscriptionID, map[string]any{"status": "canceled", "ended_at": time.Now().Unix(), "canceled_at": time.Now().Unix()})
	if _, err := e.svc.Reconcile(ctx, 72*time.Hour); err != nil {
		t.Fatal(err)
	}
	if sub := e.subscription(t, a); sub.Status != billing.SubCanceled || e.limits(t, a.UserID) != "" {
		t.Errorf("after reconcile: status %s, limits %q; want canceled and no plan limits", sub.Status, e.limits(t, a.UserID))
	}
	rep, err := e.svc.Reconcile(ctx, 72*time.Hour)
	if err != nil || rep.Applied != 0 {
		t.Errorf("second reconcile: %+v, %v; want nothing applied", rep, err)
	}
}
