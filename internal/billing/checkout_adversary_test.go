package billing_test

// Attacks on starting a checkout: keys, return paths, other users' billing,
// and the limit under a burst.

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/billing"
	"github.com/fastimage/api/internal/billing/stripefake"
	"github.com/fastimage/api/internal/ratelimit"
)

// TestIdempotencyKeyWithControlCharacters: our key becomes Stripe's
// Idempotency-Key header; a key that cannot be a header is the caller's
// mistake (VALIDATION), not Stripe being down (UNAVAILABLE), and starts
// nothing.
func TestIdempotencyKeyWithControlCharacters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newUser(t)
	for _, key := range []string{"k\x01ey", "line\r\nX-Injected: 1", "nul\x00", "tab\there", "del\x7f"} {
		_, err := e.svc.CreateCheckout(context.Background(), a, billing.CheckoutRequest{
			PlanCode: "pack-100", IdempotencyKey: key, SuccessPath: "/billing/done", CancelPath: "/billing",
		})
		if apperr.CodeOf(err) != apperr.Validation {
			t.Errorf("key %q: got %v, want VALIDATION", key, err)
		}
	}
	if n := e.count(t, "SELECT count(*) FROM purchases WHERE user_id = ?", a.UserID); n != 0 {
		t.Errorf("refused keys left %d purchases, want 0", n)
	}
	// Keys of printable characters, up to 100 of them, still work.
	for _, key := range []string{strings.Repeat("k", 100), "order #42 / retry: 1", "ключ-é"} {
		if _, err := e.svc.CreateCheckout(context.Background(), a, billing.CheckoutRequest{
			PlanCode: "pack-100", IdempotencyKey: key, SuccessPath: "/billing/done", CancelPath: "/billing",
		}); err != nil {
			t.Errorf("key %q: %v", key, err)
		}
	}
}

// TestReturnPathsNeverLeaveOurOrigins: encodings and shapes that browsers
// read as another host are refused; paths stay on the public URL.
func TestReturnPathsNeverLeaveOurOrigins(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newUser(t)
	try := func(path string) (string, error) {
		c, err := e.svc.CreateCheckout(context.Background(), a, billing.CheckoutRequest{
			PlanCode: "pack-100", IdempotencyKey: uuid.NewString(), SuccessPath: path, CancelPath: "/billing",
		})
		if err != nil {
			return "", err
		}
		return e.fake.Object(c.SessionID)["success_url"].(string), nil
	}
	for _, bad := range []string{
		"//evil.example", "///evil.example", "/\\evil.example", "\\\\evil.example", "https://evil.example/", "http://app.example.test/",
		"https://app.example.test@evil.example/", "https://editor.example.test.evil.example/", "https://editor.example.test:8443/",
		"javascript:alert(1)", "data:text/html,hi", "https:evil.example", "evil.example", " /billing", "/bill\ting", "/x\r\nLocation: //evil",
		"https://editor.example.test/#frag", "HTTPS://EVIL.EXAMPLE/", "//editor.example.test", "",
	} {
		if got, err := try(bad); apperr.CodeOf(err) != apperr.Validation {
			t.Errorf("successPath %q: got %q, %v; want VALIDATION", bad, got, err)
		}
	}
	for path, prefix := range map[string]string{
		"/billing/done":                    "https://app.example.test/billing/done",
		"/%2F%2Fevil.example":              "https://app.example.test/%2F%2Fevil.example",
		"/%5Cevil.example":                 "https://app.example.test/%5Cevil.example",
		"/\u2215\u2215evil.example":        "https://app.example.test/%E2%88%95%E2%88%95evil.example",
		"/..//evil.example":                "https://app.example.test/..//evil.example",
		"/a?next=x":                        "https://app.example.test/a?next=x",
		"HTTPS://EDITOR.EXAMPLE.TEST/done": "https://EDITOR.EXAMPLE.TEST/done",
	} {
		got, err := try(path)
		if err != nil || !strings.HasPrefix(got, prefix) {
			t.Errorf("successPath %q: got %q, %v; want a URL starting %q", path, got, err, prefix)
		}
	}
}

// TestAnotherUsersBilling: nothing of one user's billing is reachable by
// another: purchases, subscription, cancel, refund, portal.
func TestAnotherUsersBilling(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.newUser(t), e.newUser(t)
	p := e.subscribe(t, a)
	e.buy(t, a, "pack-100")
	sub := e.subscription(t, a)
	var ids []uuid.UUID
	if err := e.db.NewRaw("SELECT id FROM purchases WHERE user_id = ?", a.UserID).Scan(ctx, &ids); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Purchases(ctx, b, a.UserID, 10, nil); apperr.CodeOf(err) != apperr.Forbidden {
		t.Errorf("b lists a's purchases: %v, want FORBIDDEN", err)
	}
	if got, err := e.svc.PurchasesByIDs(ctx, b, ids); err != nil || len(got) != 0 {
		t.Errorf("b reads a's purchases by id: %d, %v; want none", len(got), err)
	}
	if got, err := e.svc.SubscriptionsByIDs(ctx, b, []uuid.UUID{sub.ID}); err != nil || len(got) != 0 {
		t.Errorf("b reads a's subscription by id: %d, %v; want none", len(got), err)
	}
	if _, err := e.svc.SubscriptionOf(ctx, b, a.UserID); apperr.CodeOf(err) != apperr.Forbidden {
		t.Errorf("b reads a's subscription: %v, want FORBIDDEN", err)
	}
	if _, err := e.svc.SetCancelAtPeriodEnd(ctx, b, sub.ID, true); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("b cancels a's subscription: %v, want NOT_FOUND", err)
	}
	if _, err := e.svc.Refund(ctx, b, ids[0], nil); apperr.CodeOf(err) != apperr.Forbidden {
		t.Errorf("b refunds a's purchase: %v, want FORBIDDEN", err)
	}
	if _, err := e.svc.CustomerID(ctx, b, a.UserID); apperr.CodeOf(err) != apperr.Forbidden {
		t.Errorf("b reads a's customer id: %v, want FORBIDDEN", err)
	}
	if _, err := e.svc.CreatePortal(ctx, b, "/billing"); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("b (never bought) opens a portal: %v, want NOT_FOUND", err)
	}
	if e.fake.Object(p.SubscriptionID)["cancel_at_period_end"] != false {
		t.Errorf("a's subscription was changed in Stripe")
	}
}

// TestCheckoutLimitUnderRace: a user firing many checkouts at once gets
// the limit's worth, not more.
func TestCheckoutLimitUnderRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := billing.New(e.db, billing.DefaultCatalog(), billing.Config{
		SecretKey: "sk_test_fake", WebhookSecret: e.fake.WebhookSecret, APIBase: e.fake.URL,
		PublicURL: mustURL(t, "https://app.example.test"),
	}, slog.New(slog.DiscardHandler), billing.WithLimiter(ratelimit.New(e.db, nil)))
	a := e.newUser(t)
	var mu sync.Mutex
	codes := map[apperr.Code]int{}
	var wg sync.WaitGroup
	for range 25 {
		wg.Go(func() {
			_, err := svc.CreateCheckout(context.Background(), a, billing.CheckoutRequest{
				PlanCode: "pack-100", IdempotencyKey: uuid.NewString(), SuccessPath: "/billing/done", CancelPath: "/billing",
			})
			mu.Lock()
			defer mu.Unlock()
			codes[apperr.CodeOf(err)]++
		})
	}
	wg.Wait()
	if codes[""] != 10 || codes[apperr.RateLimited] != 15 {
		t.Errorf("25 checkouts at once: %v, want 10 made and 15 RATE_LIMITED", codes)
	}
	if n := e.fake.Count("checkout.session"); n != 10 {
		t.Errorf("Stripe sessions: %d, want 10", n)
	}
}

// TestFailedPlanCheckoutDoesNotBlockTheNext: a plan checkout that Stripe
// could not start (here: its price not synced yet) leaves no open checkout
// behind, so the next try, with a new key as a new click sends, is not
// refused for a day as "a plan checkout open already".
func TestFailedPlanCheckoutDoesNotBlockTheNext(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	f := stripefake.New(t) // a Stripe account whose catalog is not synced yet
	svc := billing.New(e.db, billing.DefaultCatalog(), billing.Config{
		SecretKey: "sk_test_fake", WebhookSecret: f.WebhookSecret, APIBase: f.URL,
		PublicURL: mustURL(t, "https://app.example.test"),
	}, slog.New(slog.DiscardHandler))
	a := e.newUser(t)
	if _, err := svc.CreateCheckout(ctx, a, request("pro-monthly", "click-1")); apperr.CodeOf(err) != apperr.Unavailable {
		t.Fatalf("a plan without its Stripe price: %v, want UNAVAILABLE", err)
	}
	item, _ := billing.DefaultCatalog().Find("pro-monthly")
	f.AddPrice(item.LookupKey, item.Price, item.Currency, string(item.Interval))
	if _, err := svc.CreateCheckout(ctx, a, request("pro-monthly", "click-2")); err != nil {
		t.Errorf("the next click, once the price exists: %v", err)
	}
}
