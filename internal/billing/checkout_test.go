package billing_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/billing"
)

func request(code, key string) billing.CheckoutRequest {
	return billing.CheckoutRequest{PlanCode: code, IdempotencyKey: key, SuccessPath: "/billing/done", CancelPath: "/billing"}
}

// TestCheckoutSession: what the Checkout Session carries back to us.
func TestCheckoutSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.newUser(t)
	for _, tc := range []struct {
		code, mode, metadataOf string
	}{
		{"pack-500", "payment", "payment intent"},
		{"pro-yearly", "subscription", "subscription"},
	} {
		req := request(tc.code, "k-"+tc.code)
		req.SuccessPath = "https://editor.example.test/paid?from=stripe"
		c, err := e.svc.CreateCheckout(ctx, a, req)
		if err != nil {
			t.Fatal(err)
		}
		s := e.fake.Object(c.SessionID)
		meta := s["metadata"].(map[string]any)
		if s["mode"] != tc.mode || s["client_reference_id"] != a.UserID.String() || c.URL != s["url"] ||
			meta["fastimage_user_id"] != a.UserID.String() || meta["fastimage_catalog_code"] != tc.code || meta["fastimage_purchase_id"] != c.Purchase.ID.String() {
			t.Errorf("%s: session %v", tc.code, s)
		}
		if s["success_url"] != "https://editor.example.test/paid?from=stripe&session_id={CHECKOUT_SESSION_ID}" || s["cancel_url"] != "https://app.example.test/billing" {
			t.Errorf("%s: return URLs %v, %v", tc.code, s["success_url"], s["cancel_url"])
		}
		// The payment intent or subscription carries the same links.
		p := e.fake.PayCheckout(c.SessionID)
		id := p.PaymentIntentID
		if tc.mode == "subscription" {
			id = p.SubscriptionID
		}
		if m := e.fake.Object(id)["metadata"].(map[string]any); m["fastimage_purchase_id"] != c.Purchase.ID.String() {
			t.Errorf("%s: %s metadata %v", tc.code, tc.metadataOf, m)
		}
	}
}

// TestCheckoutRefusals: who may not buy, and what may not be asked.
func TestCheckoutRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.newUser(t)

	unverified := e.newUser(t)
	unverified.Verified = false
	if _, err := e.svc.CreateCheckout(ctx, unverified, request("pack-100", "k")); apperr.CodeOf(err) != apperr.EmailNotVerified {
		t.Errorf("unverified: got %v, want EMAIL_NOT_VERIFIED", err)
	}

	off := billing.New(e.db, billing.DefaultCatalog(), billing.Config{PublicURL: mustURL(t, "https://app.example.test")}, slog.New(slog.DiscardHandler))
	_, err := off.CreateCheckout(ctx, a, request("pack-100", "k"))
	if apperr.CodeOf(err) != billing.PaymentsDisabled || !strings.Contains(err.Error(), "STRIPE_SECRET_KEY") || !strings.Contains(err.Error(), "STRIPE_WEBHOOK_SECRET") {
		t.Errorf("payments off: got %v, want PAYMENTS_DISABLED naming the settings", err)
	}
	if _, err := off.CreatePortal(ctx, a, "/"); apperr.CodeOf(err) != billing.PaymentsDisabled {
		t.Errorf("portal with payments off: got %v, want PAYMENTS_DISABLED", err)
	}

	for _, path := range []string{
		"//evil.example", "//evil.example/billing", "https://evil.example/x", "javascript:alert(1)", "JAVASCRIPT:alert(1)",
		"/\\evil.example", "billing/done", "", "https://editor.example.test.evil.example/x", "https://user@editor.example.test/x",
		"/done#frag", "data:text/html,hi", "http://editor.example.test/x", "/done\r\nLocation: https://evil.example",
	} {
		for _, field := range []string{"successPath", "cancelPath"} {
			req := request("pack-100", "k-"+field+path)
			if field == "successPath" {
				req.SuccessPath = path
			} else {
				req.CancelPath = path
			}
			_, err := e.svc.CreateCheckout(ctx, a, req)
			if apperr.CodeOf(err) != apperr.Validation {
				t.Errorf("%s %q: got %v, want VALIDATION", field, path, err)
			}
		}
	}
	if _, err := e.svc.CreatePortal(ctx, a, "https://evil.example/"); apperr.CodeOf(err) != apperr.Validation {
		t.Errorf("portal to evil.example: got %v, want VALIDATION", err)
	}

	for _, tc := range []struct {
		name string
		req  billing.CheckoutRequest
	}{
		{"unknown plan", request("pack-1", "k")},
		{"no idempotency key", request("pack-100", " ")},
		{"long idempotency key", request("pack-100", strings.Repeat("k", 101))},
	} {
		if _, err := e.svc.CreateCheckout(ctx, a, tc.req); apperr.CodeOf(err) != apperr.Validation {
			t.Errorf("%s: got %v, want VALIDATION", tc.name, err)
		}
	}
	if n := e.fake.Count("checkout.session"); n != 0 {
		t.Errorf("sessions made by refused checkouts: got %d, want 0", n)
	}

	if _, err := e.svc.CreateCheckout(ctx, a, request("pack-100", "same")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateCheckout(ctx, a, request("pack-500", "same")); apperr.CodeOf(err) != apperr.Conflict {
		t.Errorf("the key of a pack-100 checkout for pack-500: got %v, want CONFLICT", err)
	}

	sub := e.newUser(t)
	e.subscribe(t, sub)
	if _, err := e.svc.CreateCheckout(ctx, sub, request("pro-yearly", "another")); apperr.CodeOf(err) != apperr.Conflict {
		t.Errorf("a second plan: got %v, want CONFLICT", err)
	}
	if _, err := e.svc.CreateCheckout(ctx, sub, request("pack-100", "a pack")); err != nil {
		t.Errorf("a pack beside the plan: %v", err)
	}
}

// TestCheckoutIdempotent: the same key returns the same session, also when
// retried concurrently, and makes one purchase.
func TestCheckoutIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.newUser(t)
	first, err := e.svc.CreateCheckout(ctx, a, request("pack-100", "retry-me"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.svc.CreateCheckout(ctx, a, request("pack-100", "retry-me"))
	if err != nil || again.SessionID != first.SessionID || again.URL != first.URL || again.Purchase.ID != first.Purchase.ID {
		t.Errorf("same key again: got %+v, %v; want session %s", again, err, first.SessionID)
	}

	b := e.newUser(t)
	ids := make([]string, 10)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			c, err := e.svc.CreateCheckout(ctx, b, request("pack-100", "concurrent"))
			if err != nil {
				t.Errorf("concurrent retry: %v", err)
				return
			}
			ids[i] = c.SessionID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Errorf("concurrent retries: sessions %v, want one", ids)
			break
		}
	}
	if n := e.count(t, "SELECT count(*) FROM purchases WHERE user_id = ?", b.UserID); n != 1 {
		t.Errorf("purchases of concurrent retries: got %d, want 1", n)
	}
	if n := e.fake.Count("checkout.session"); n != 2 {
		t.Errorf("sessions in Stripe: got %d, want 2", n)
	}
	// Another user's same key is theirs.
	c := e.newUser(t)
	other, err := e.svc.CreateCheckout(ctx, c, request("pack-100", "retry-me"))
	if err != nil || other.SessionID == first.SessionID {
		t.Errorf("another user's same key: got %+v, %v; want a session of their own", other, err)
	}
}

// TestOneCustomerPerUser: concurrent first checkouts make one Stripe
// customer, stored once and used by every session.
func TestOneCustomerPerUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.newUser(t)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			if _, err := e.svc.CreateCheckout(ctx, a, request("pack-100", fmt.Sprint("key-", i))); err != nil {
				t.Errorf("checkout %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if n := e.fake.Calls("POST /v1/customers"); n != 1 {
		t.Errorf("customer creations asked of Stripe: got %d, want 1", n)
	}
	var customer string
	if err := e.db.NewRaw("SELECT stripe_customer_id FROM users WHERE id = ?", a.UserID).Scan(ctx, &customer); err != nil {
		t.Fatal(err)
	}
	if e.fake.Object(customer)["email"] != a.Email {
		t.Errorf("customer %s: got %v, want one with the user's email", customer, e.fake.Object(customer))
	}
	if n := e.count(t, "SELECT count(DISTINCT customer_id) FROM purchases WHERE user_id = ? AND customer_id = ?", a.UserID, customer); n != 1 {
		t.Errorf("purchases' customers: got %d distinct equal to the user's, want 1", n)
	}
	if n := e.count(t, "SELECT count(*) FROM purchases WHERE user_id = ? AND customer_id IS DISTINCT FROM ?", a.UserID, customer); n != 0 {
		t.Errorf("purchases with another customer: got %d, want 0", n)
	}

	url, err := e.svc.CreatePortal(ctx, a, "/account")
	if err != nil || !strings.HasPrefix(url, e.fake.URL+"/portal/") {
		t.Errorf("portal: got %q, %v", url, err)
	}
	if _, err := e.svc.CreatePortal(ctx, e.newUser(t), "/account"); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("portal of a user who never bought: got %v, want NOT_FOUND", err)
	}
}

// TestAsyncPaymentAndExpiry: a payment on its way grants nothing until it
// succeeds; a failed or expired one never grants.
func TestAsyncPaymentAndExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	status := func(session string) string {
		var s string
		if err := e.db.NewRaw("SELECT status FROM purchases WHERE checkout_session_id = ?", session).Scan(ctx, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}

	a := e.newUser(t)
	p := e.fake.PayCheckoutLater(e.checkout(t, a, "pack-100"))
	completed := e.fake.Event("checkout.session.completed", p.SessionID)
	e.mustDeliver(t, completed)
	if got := status(p.SessionID); got != "pending" || e.balance(t, a.UserID).Balance != 0 {
		t.Errorf("payment on its way: status %s, balance %d; want pending, 0", got, e.balance(t, a.UserID).Balance)
	}
	e.fake.FinishPayment(p.SessionID, true)
	e.mustDeliver(t, e.fake.Event("checkout.session.async_payment_succeeded", p.SessionID))
	e.mustDeliver(t, completed) // late, and older
	if got := status(p.SessionID); got != "paid" || e.balance(t, a.UserID).Balance != 100 {
		t.Errorf("payment arrived: status %s, balance %d; want paid, 100", got, e.balance(t, a.UserID).Balance)
	}

	b := e.newUser(t)
	q := e.fake.PayCheckoutLater(e.checkout(t, b, "pack-100"))
	e.mustDeliver(t, e.fake.Event("checkout.session.completed", q.SessionID))
	e.fake.FinishPayment(q.SessionID, false)
	e.mustDeliver(t, e.fake.Event("checkout.session.async_payment_failed", q.SessionID))
	if got := status(q.SessionID); got != "failed" || e.balance(t, b.UserID).Balance != 0 {
		t.Errorf("payment failed: status %s, balance %d; want failed, 0", got, e.balance(t, b.UserID).Balance)
	}

	session := e.checkout(t, b, "pack-500")
	e.fake.ExpireCheckout(session)
	e.mustDeliver(t, e.fake.Event("checkout.session.expired", session))
	if got := status(session); got != "expired" {
		t.Errorf("expired checkout: status %s, want expired", got)
	}
	page, err := e.svc.Purchases(ctx, b, b.UserID, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].Status != billing.StatusFailed {
		t.Errorf("listed purchases: got %+v, want the failed one only", page.Items)
	}
}

// TestCheckoutOver: a retry of a checkout that is over (paid, expired) does
// not hand back its dead page; a plan is checked out one at a time, even
// under concurrent requests, or two subscriptions would both be charged.
func TestCheckoutOverAndPlansOneAtATime(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.newUser(t)
	paid, err := e.svc.CreateCheckout(ctx, a, request("pack-100", "once"))
	if err != nil {
		t.Fatal(err)
	}
	e.fake.PayCheckout(paid.SessionID)
	e.mustDeliver(t, e.fake.Event("checkout.session.completed", paid.SessionID))
	_, err = e.svc.CreateCheckout(ctx, a, request("pack-100", "once"))
	if apperr.CodeOf(err) != apperr.Conflict || !strings.Contains(err.Error(), "paid") {
		t.Errorf("the key of a paid checkout again: %v, want CONFLICT saying it is paid", err)
	}

	plan, err := e.svc.CreateCheckout(ctx, a, request("pro-monthly", "plan-1"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.CreateCheckout(ctx, a, request("pro-yearly", "plan-2"))
	var ae *apperr.Error
	if !errors.As(err, &ae) || ae.Code != apperr.Conflict || ae.Fields["checkoutUrl"] != plan.URL {
		t.Errorf("a second plan checkout while one is open: %v, want CONFLICT with the open one's URL", err)
	}
	if again, err := e.svc.CreateCheckout(ctx, a, request("pro-monthly", "plan-1")); err != nil || again.SessionID != plan.SessionID {
		t.Errorf("a retry of the open plan checkout: %+v, %v", again, err)
	}

	b := e.newUser(t)
	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			if _, err := e.svc.CreateCheckout(ctx, b, request("pro-monthly", fmt.Sprintf("race-%d", i))); err == nil {
				ok.Add(1)
			} else if apperr.CodeOf(err) != apperr.Conflict {
				t.Errorf("concurrent plan checkout: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Errorf("concurrent plan checkouts with different keys: %d made, want 1", ok.Load())
	}
}
