package stripefake_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/fastimage/api/internal/billing/stripefake"
)

func newClient(f *stripefake.Fake) *client.API {
	cfg := func() *stripe.BackendConfig {
		return &stripe.BackendConfig{URL: stripe.String(f.URL), MaxNetworkRetries: stripe.Int64(0), LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull}}
	}
	return client.New("sk_test_fake", &stripe.Backends{
		API: stripe.GetBackendWithConfig(stripe.APIBackend, cfg()), Connect: stripe.GetBackendWithConfig(stripe.ConnectBackend, cfg()),
		Uploads: stripe.GetBackendWithConfig(stripe.UploadsBackend, cfg()),
	})
}

func checkout(t *testing.T, sc *client.API, customer, price, mode, key string) *stripe.CheckoutSession {
	t.Helper()
	params := &stripe.CheckoutSessionParams{
		Mode: stripe.String(mode), Customer: stripe.String(customer), SuccessURL: stripe.String("https://app.example.test/done"),
		LineItems: []*stripe.CheckoutSessionLineItemParams{{Price: stripe.String(price), Quantity: stripe.Int64(1)}},
	}
	params.AddMetadata("k", "v")
	if mode == "subscription" {
		params.SubscriptionData = &stripe.CheckoutSessionSubscriptionDataParams{Metadata: map[string]string{"user": "u1"}}
	}
	if key != "" {
		params.SetIdempotencyKey(key)
	}
	cs, err := sc.CheckoutSessions.New(params)
	if err != nil {
		t.Fatalf("create checkout session: %v", err)
	}
	return cs
}

// TestPackFlow: what stripe-go reads from the fake is what billing needs, in
// v76's types.
func TestPackFlow(t *testing.T) {
	f := stripefake.New(t)
	sc := newClient(f)
	priceID := f.AddPrice("pack_100", 500, "usd", "")
	f.AddPrice("plan_monthly", 2000, "usd", "month")

	cus, err := sc.Customers.New(&stripe.CustomerParams{Email: stripe.String("ada@example.com")})
	if err != nil {
		t.Fatal(err)
	}
	prices := sc.Prices.List(&stripe.PriceListParams{LookupKeys: stripe.StringSlice([]string{"pack_100"})})
	var found []string
	for prices.Next() {
		found = append(found, prices.Price().ID)
	}
	if err := prices.Err(); err != nil || len(found) != 1 || found[0] != priceID {
		t.Fatalf("prices by lookup key: got %v, %v; want [%s]", found, err, priceID)
	}

	cs := checkout(t, sc, cus.ID, priceID, "payment", "k1")
	if cs.Status != stripe.CheckoutSessionStatusOpen || cs.AmountTotal != 500 || cs.URL == "" || cs.Metadata["k"] != "v" || cs.Customer.ID != cus.ID {
		t.Errorf("new session: got %+v", cs)
	}
	again := checkout(t, sc, cus.ID, priceID, "payment", "k1")
	if again.ID != cs.ID || again.LastResponse.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("same idempotency key: got session %s, want %s replayed", again.ID, cs.ID)
	}
	if f.Count("checkout.session") != 1 {
		t.Errorf("sessions after a replay: got %d, want 1", f.Count("checkout.session"))
	}

	p := f.PayCheckout(cs.ID)
	ref, err := sc.Refunds.New(&stripe.RefundParams{PaymentIntent: stripe.String(p.PaymentIntentID), Amount: stripe.Int64(200)})
	if err != nil || ref.Amount != 200 || ref.Charge.ID != p.ChargeID {
		t.Fatalf("refund: got %+v, %v", ref, err)
	}
	_, err = sc.Refunds.New(&stripe.RefundParams{Charge: stripe.String(p.ChargeID), Amount: stripe.Int64(301)})
	var se *stripe.Error
	if !errors.As(err, &se) || se.HTTPStatusCode != http.StatusBadRequest || se.Type != stripe.ErrorTypeInvalidRequest {
		t.Errorf("refund beyond the charge: got %v, want a 400 invalid_request_error", err)
	}

	ev := f.Event("charge.refunded", p.ChargeID)
	e, err := webhook.ConstructEvent(ev, f.Sign(ev), f.WebhookSecret)
	if err != nil {
		t.Fatalf("event: %v", err)
	}
	var ch stripe.Charge
	if err := ch.UnmarshalJSON(e.Data.Raw); err != nil || ch.AmountRefunded != 200 || ch.PaymentIntent.ID != p.PaymentIntentID {
		t.Errorf("charge.refunded: got %+v, %v", ch, err)
	}

	_, err = sc.CheckoutSessions.New(&stripe.CheckoutSessionParams{
		Mode: stripe.String("payment"), Customer: stripe.String("cus_nobody"), SuccessURL: stripe.String("https://x.test/"),
		LineItems: []*stripe.CheckoutSessionLineItemParams{{Price: stripe.String(priceID)}},
	})
	if !errors.As(err, &se) || se.Code != stripe.ErrorCodeResourceMissing || se.HTTPStatusCode != http.StatusNotFound {
		t.Errorf("unknown customer: got %v, want resource_missing", err)
	}
	if _, err := sc.BillingPortalSessions.New(&stripe.BillingPortalSessionParams{Customer: stripe.String(cus.ID), ReturnURL: stripe.String("https://x.test/")}); err != nil {
		t.Errorf("portal: %v", err)
	}
}

// TestSubscriptionFlow: subscriptions, their invoices, and lists paged by
// stripe-go's iterators.
func TestSubscriptionFlow(t *testing.T) {
	f := stripefake.New(t)
	sc := newClient(f)
	priceID := f.AddPrice("plan_monthly", 2000, "usd", "month")
	cus, err := sc.Customers.New(&stripe.CustomerParams{})
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Hour).Unix()
	var first stripefake.Payment
	for i := range 25 {
		p := f.PayCheckout(checkout(t, sc, cus.ID, priceID, "subscription", "").ID)
		if i == 0 {
			first = p
		}
	}
	checkout(t, sc, cus.ID, priceID, "subscription", "") // open: not listed as complete

	params := &stripe.CheckoutSessionListParams{CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: since}, Status: stripe.String("complete")}
	params.Limit = stripe.Int64(10)
	seen := map[string]bool{}
	for it := sc.CheckoutSessions.List(params); it.Next(); {
		cs := it.CheckoutSession()
		if seen[cs.ID] || cs.Subscription == nil || cs.Invoice == nil {
			t.Errorf("listed session %s: repeated or unlinked (%+v)", cs.ID, cs)
		}
		seen[cs.ID] = true
	}
	if len(seen) != 25 || f.Calls("GET /v1/checkout/sessions") != 3 {
		t.Errorf("complete sessions listed: got %d in %d pages, want 25 in 3", len(seen), f.Calls("GET /v1/checkout/sessions"))
	}

	renewal := f.RenewSubscription(first.SubscriptionID, true)
	invParams := &stripe.InvoiceListParams{Status: stripe.String("paid"), CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: since}}
	invParams.Limit = stripe.Int64(7)
	n := 0
	for it := sc.Invoices.List(invParams); it.Next(); n++ {
		inv := it.Invoice()
		if inv.ID != renewal.InvoiceID {
			continue
		}
		line := inv.Lines.Data[0]
		if inv.BillingReason != stripe.InvoiceBillingReasonSubscriptionCycle || inv.Subscription.ID != first.SubscriptionID ||
			line.Price.LookupKey != "plan_monthly" || line.Period.Start == 0 || inv.SubscriptionDetails.Metadata["user"] != "u1" {
			t.Errorf("renewal invoice: got %+v", inv)
		}
	}
	if n != 26 {
		t.Errorf("paid invoices listed: got %d, want 26", n)
	}

	sub, err := sc.Subscriptions.Update(first.SubscriptionID, &stripe.SubscriptionParams{CancelAtPeriodEnd: stripe.Bool(true)})
	if err != nil || !sub.CancelAtPeriodEnd || sub.CurrentPeriodEnd == 0 || sub.Items.Data[0].Price.LookupKey != "plan_monthly" {
		t.Fatalf("cancel at period end: got %+v, %v", sub, err)
	}
	f.SetSubscription(first.SubscriptionID, map[string]any{"status": "canceled"})
	got, err := sc.Subscriptions.Get(first.SubscriptionID, nil)
	if err != nil || got.Status != stripe.SubscriptionStatusCanceled {
		t.Errorf("after SetSubscription: got %+v, %v", got, err)
	}
	if _, err := sc.Subscriptions.Update(first.SubscriptionID, &stripe.SubscriptionParams{CancelAtPeriodEnd: stripe.Bool(false)}); err == nil {
		t.Errorf("resume a canceled subscription: got no error")
	}
}
