package billing_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/billing"
	"github.com/fastimage/api/internal/billing/stripefake"
)

// subscribe has a buy pro-monthly and delivers the webhooks of the first
// payment.
func (e *env) subscribe(t *testing.T, a actor.Actor) stripefake.Payment {
	t.Helper()
	p := e.fake.PayCheckout(e.checkout(t, a, "pro-monthly"))
	e.mustDeliver(t, e.fake.Event("checkout.session.completed", p.SessionID))
	e.mustDeliver(t, e.fake.Event("customer.subscription.created", p.SubscriptionID))
	e.mustDeliver(t, e.fake.Event("invoice.paid", p.InvoiceID))
	return p
}

func (e *env) subscription(t *testing.T, a actor.Actor) *billing.Subscription {
	t.Helper()
	sub, err := e.svc.SubscriptionOf(context.Background(), a, a.UserID)
	if err != nil {
		t.Fatal(err)
	}
	if sub == nil {
		t.Fatal("no subscription")
	}
	return sub
}

// limits returns the plan of the user's limits row, "" without one.
func (e *env) limits(t *testing.T, user uuid.UUID) string {
	t.Helper()
	var plan []string
	if err := e.db.NewRaw("SELECT plan_code FROM user_limits WHERE user_id = ?", user).Scan(context.Background(), &plan); err != nil {
		t.Fatal(err)
	}
	if len(plan) == 0 {
		return ""
	}
	return plan[0]
}

// TestRenewalGrantsOncePerPeriod: each period of a plan brings its credits
// once, however many times or invoices tell of it.
func TestRenewalGrantsOncePerPeriod(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newUser(t)
	first := e.subscribe(t, a)
	e.mustDeliver(t, e.fake.Event("invoice.paid", first.InvoiceID)) // the same invoice, another event
	if got := e.balance(t, a.UserID).Balance; got != 1000 {
		t.Fatalf("after the first period: balance %d, want 1000", got)
	}

	dup := e.fake.BillAgain(first.SubscriptionID) // a second invoice for the same period
	e.mustDeliver(t, e.fake.Event("invoice.paid", dup.InvoiceID))
	if got := e.balance(t, a.UserID).Balance; got != 1000 {
		t.Errorf("after a second invoice for the first period: balance %d, want 1000", got)
	}
	if n := e.count(t, "SELECT count(*) FROM purchases WHERE invoice_id = ? AND status = 'paid' AND credits = 0", dup.InvoiceID); n != 1 {
		t.Errorf("the second invoice: got %d paid purchases without credits, want 1", n)
	}

	renewal := e.fake.RenewSubscription(first.SubscriptionID, true)
	for range 2 {
		e.mustDeliver(t, e.fake.Event("invoice.paid", renewal.InvoiceID))
	}
	if got := e.balance(t, a.UserID).Balance; got != 2000 {
		t.Errorf("after the renewal: balance %d, want 2000", got)
	}
	if n := e.count(t, "SELECT count(*) FROM credit_entries WHERE user_id = ? AND kind = 'SUBSCRIPTION_GRANT'", a.UserID); n != 2 {
		t.Errorf("subscription grants: got %d, want 2", n)
	}
}

// TestDeclinedRenewal: a declined renewal grants nothing and keeps the plan
// while Stripe retries; the retry that pays grants the period.
func TestDeclinedRenewal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newUser(t)
	first := e.subscribe(t, a)
	declined := e.fake.RenewSubscription(first.SubscriptionID, false)
	e.mustDeliver(t, e.fake.Event("invoice.payment_failed", declined.InvoiceID))
	e.mustDeliver(t, e.fake.Event("customer.subscription.updated", first.SubscriptionID))
	if got := e.balance(t, a.UserID).Balance; got != 1000 {
		t.Errorf("after the declined renewal: balance %d, want 1000", got)
	}
	if sub := e.subscription(t, a); sub.Status != billing.SubPastDue || e.limits(t, a.UserID) != "pro-monthly" {
		t.Errorf("while past due: status %s, limits %q; want past_due and the plan's limits", sub.Status, e.limits(t, a.UserID))
	}
	if n := e.count(t, "SELECT count(*) FROM purchases WHERE invoice_id = ? AND status = 'failed'", declined.InvoiceID); n != 1 {
		t.Errorf("the declined invoice: got %d failed purchases, want 1", n)
	}

	e.fake.PayInvoice(declined.InvoiceID)
	e.mustDeliver(t, e.fake.Event("invoice.paid", declined.InvoiceID))
	e.mustDeliver(t, e.fake.Event("invoice.payment_failed", declined.InvoiceID)) // late: paid stays paid
	if got := e.balance(t, a.UserID).Balance; got != 2000 {
		t.Errorf("after the retry paid: balance %d, want 2000", got)
	}
	if n := e.count(t, "SELECT count(*) FROM purchases WHERE invoice_id = ? AND status = 'paid'", declined.InvoiceID); n != 1 {
		t.Errorf("the retried invoice: got %d paid purchases, want 1", n)
	}
}

// TestCancelKeepsPlanUntilPeriodEnd: cancelling at period end keeps the
// plan and its limits until Stripe ends the subscription; resuming undoes
// it.
func TestCancelKeepsPlanUntilPeriodEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.newUser(t)
	p := e.subscribe(t, a)
	sub := e.subscription(t, a)
	if e.limits(t, a.UserID) != "pro-monthly" || sub.Status != billing.SubActive || sub.CurrentPeriodEnd == nil {
		t.Fatalf("subscribed: got %+v, limits %q", sub, e.limits(t, a.UserID))
	}

	stranger := e.newUser(t)
	if _, err := e.svc.SetCancelAtPeriodEnd(ctx, stranger, sub.ID, true); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("a stranger cancels: got %v, want NOT_FOUND", err)
	}

	got, err := e.svc.SetCancelAtPeriodEnd(ctx, a, sub.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if !got.CancelAtPeriodEnd || got.Status != billing.SubActive || e.fake.Object(p.SubscriptionID)["cancel_at_period_end"] != true {
		t.Errorf("cancelled: got %+v, Stripe's cancel_at_period_end %v", got, e.fake.Object(p.SubscriptionID)["cancel_at_period_end"])
	}
	e.mustDeliver(t, e.fake.Event("customer.subscription.updated", p.SubscriptionID))
	if e.limits(t, a.UserID) != "pro-monthly" || !e.subscription(t, a).CancelAtPeriodEnd {
		t.Errorf("until the period ends: limits %q, subscription %+v; want the plan's", e.limits(t, a.UserID), e.subscription(t, a))
	}

	got, err = e.svc.SetCancelAtPeriodEnd(ctx, a, sub.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if got.CancelAtPeriodEnd || e.fake.Object(p.SubscriptionID)["cancel_at_period_end"] != false {
		t.Errorf("resumed: got %+v", got)
	}
	if _, err := e.svc.SetCancelAtPeriodEnd(ctx, a, sub.ID, true); err != nil {
		t.Fatal(err)
	}

	// The period ends: Stripe ends the subscription.
	e.fake.SetSubscription(p.SubscriptionID, map[string]any{"status": "canceled", "ended_at": time.Now().Unix()})
	stale := e.fake.Event("customer.subscription.updated", p.SubscriptionID)
	e.mustDeliver(t, e.fake.Event("customer.subscription.deleted", p.SubscriptionID))
	if sub := e.subscription(t, a); sub.Status != billing.SubCanceled || e.limits(t, a.UserID) != "" {
		t.Errorf("ended: status %s, limits %q; want canceled and no plan limits", sub.Status, e.limits(t, a.UserID))
	}
	e.mustDeliver(t, stale)
	if sub := e.subscription(t, a); sub.Status != billing.SubCanceled {
		t.Errorf("after a late update: status %s, want canceled", sub.Status)
	}
	if got := e.balance(t, a.UserID).Balance; got != 1000 {
		t.Errorf("credits of the paid period: got %d, want 1000 (kept)", got)
	}
	if _, err := e.svc.SetCancelAtPeriodEnd(ctx, a, sub.ID, false); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("resume an ended subscription: got %v, want NOT_FOUND", err)
	}
	// A new plan may be bought once the old one ended.
	if _, err := e.svc.CreateCheckout(ctx, a, billing.CheckoutRequest{PlanCode: "pro-yearly", IdempotencyKey: "again", SuccessPath: "/", CancelPath: "/"}); err != nil {
		t.Errorf("subscribe again after the end: %v", err)
	}
}
