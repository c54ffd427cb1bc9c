package stripemock

import (
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
)

// TestEveryCallWeMake makes, through stripe-go v76, each Stripe API call the
// billing code makes, with the parameters it sends, against the pinned
// stripe-mock: stripe-mock rejects a parameter its spec does not know, and an
// answer stripe-go cannot parse fails here. This is what pins the version in
// .ci/ensure-stripe-mock.
func TestEveryCallWeMake(t *testing.T) {
	sc := Client(t)
	since := time.Now().Add(-72 * time.Hour).Unix()

	wantObject := func(t *testing.T, what, id, object, wantObject string) {
		t.Helper()
		if id == "" {
			t.Errorf("%s: empty id", what)
		}
		if object != wantObject {
			t.Errorf("%s: object %q, want %q", what, object, wantObject)
		}
	}

	t.Run("customers", func(t *testing.T) {
		params := &stripe.CustomerParams{
			Email: stripe.String("ada@example.com"),
			Name:  stripe.String("Ada"),
		}
		params.AddMetadata("user_id", "7f0c")
		params.SetIdempotencyKey("customer-7f0c")
		created, err := sc.Customers.New(params)
		if err != nil {
			t.Fatalf("create customer: %v", err)
		}
		wantObject(t, "create customer", created.ID, created.Object, "customer")

		got, err := sc.Customers.Get(created.ID, nil)
		if err != nil {
			t.Fatalf("retrieve customer: %v", err)
		}
		wantObject(t, "retrieve customer", got.ID, got.Object, "customer")

		deleted, err := sc.Customers.Del(created.ID, nil)
		if err != nil {
			t.Fatalf("delete customer: %v", err)
		}
		if !deleted.Deleted || deleted.ID == "" {
			t.Errorf("delete customer: got id %q deleted %v, want an id and deleted", deleted.ID, deleted.Deleted)
		}
	})

	t.Run("checkout sessions", func(t *testing.T) {
		for _, tc := range []struct {
			mode   stripe.CheckoutSessionMode
			params func(*stripe.CheckoutSessionParams)
		}{
			{stripe.CheckoutSessionModePayment, func(p *stripe.CheckoutSessionParams) {
				p.PaymentIntentData = &stripe.CheckoutSessionPaymentIntentDataParams{
					Metadata: map[string]string{"user_id": "7f0c", "plan_code": "pack-1000"},
				}
			}},
			{stripe.CheckoutSessionModeSubscription, func(p *stripe.CheckoutSessionParams) {
				p.SubscriptionData = &stripe.CheckoutSessionSubscriptionDataParams{
					Metadata: map[string]string{"user_id": "7f0c", "plan_code": "pro-monthly"},
				}
			}},
		} {
			t.Run(string(tc.mode), func(t *testing.T) {
				params := &stripe.CheckoutSessionParams{
					Mode: stripe.String(string(tc.mode)),
					LineItems: []*stripe.CheckoutSessionLineItemParams{
						{Price: stripe.String("price_123"), Quantity: stripe.Int64(1)},
					},
					Customer:          stripe.String("cus_123"),
					ClientReferenceID: stripe.String("7f0c"),
					SuccessURL:        stripe.String("https://app.example.com/billing/success?session_id={CHECKOUT_SESSION_ID}"),
					CancelURL:         stripe.String("https://app.example.com/billing/cancel"),
					AutomaticTax:      &stripe.CheckoutSessionAutomaticTaxParams{Enabled: stripe.Bool(true)},
				}
				params.AddMetadata("user_id", "7f0c")
				params.SetIdempotencyKey("checkout-" + string(tc.mode) + "-7f0c")
				tc.params(params)
				session, err := sc.CheckoutSessions.New(params)
				if err != nil {
					t.Fatalf("create checkout session: %v", err)
				}
				wantObject(t, "create checkout session", session.ID, session.Object, "checkout.session")
				if !strings.HasPrefix(session.URL, "https://") {
					t.Errorf("checkout session url %q, want an https URL", session.URL)
				}
			})
		}

		params := &stripe.CheckoutSessionListParams{
			CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: since},
			Status:       stripe.String(string(stripe.CheckoutSessionStatusComplete)),
		}
		params.AddExpand("data.line_items")
		params.Limit = stripe.Int64(100)
		sessions := sc.CheckoutSessions.List(params)
		n := 0
		for sessions.Next() {
			s := sessions.CheckoutSession()
			wantObject(t, "listed checkout session", s.ID, s.Object, "checkout.session")
			if s.LineItems == nil {
				t.Errorf("listed checkout session %s: line_items not expanded", s.ID)
			}
			n++
		}
		if err := sessions.Err(); err != nil {
			t.Fatalf("list checkout sessions: %v", err)
		}
		if n == 0 {
			t.Errorf("list checkout sessions: got none, want stripe-mock's fixture")
		}
	})

	t.Run("billing portal session", func(t *testing.T) {
		session, err := sc.BillingPortalSessions.New(&stripe.BillingPortalSessionParams{
			Customer:  stripe.String("cus_123"),
			ReturnURL: stripe.String("https://app.example.com/account"),
		})
		if err != nil {
			t.Fatalf("create billing portal session: %v", err)
		}
		wantObject(t, "create billing portal session", session.ID, session.Object, "billing_portal.session")
		if session.URL == "" {
			t.Errorf("billing portal session: empty url")
		}
	})

	t.Run("subscriptions", func(t *testing.T) {
		sub, err := sc.Subscriptions.Get("sub_123", nil)
		if err != nil {
			t.Fatalf("retrieve subscription: %v", err)
		}
		wantObject(t, "retrieve subscription", sub.ID, sub.Object, "subscription")
		if sub.Items == nil || len(sub.Items.Data) == 0 || sub.Items.Data[0].Price == nil || sub.Items.Data[0].Price.ID == "" {
			t.Errorf("retrieve subscription: no item with a price, want the fixture's")
		}

		for _, cancel := range []bool{true, false} { // cancelSubscription, resumeSubscription
			updated, err := sc.Subscriptions.Update(sub.ID, &stripe.SubscriptionParams{
				CancelAtPeriodEnd: stripe.Bool(cancel),
			})
			if err != nil {
				t.Fatalf("update subscription (cancel_at_period_end=%v): %v", cancel, err)
			}
			wantObject(t, "update subscription", updated.ID, updated.Object, "subscription")
		}
	})

	t.Run("paid invoices", func(t *testing.T) {
		params := &stripe.InvoiceListParams{
			Status:       stripe.String(string(stripe.InvoiceStatusPaid)),
			CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: since},
		}
		params.Limit = stripe.Int64(100)
		invoices := sc.Invoices.List(params)
		n := 0
		for invoices.Next() {
			inv := invoices.Invoice()
			wantObject(t, "listed invoice", inv.ID, inv.Object, "invoice")
			n++
		}
		if err := invoices.Err(); err != nil {
			t.Fatalf("list invoices: %v", err)
		}
		if n == 0 {
			t.Errorf("list invoices: got none, want stripe-mock's fixture")
		}
	})

	t.Run("refund", func(t *testing.T) {
		params := &stripe.RefundParams{
			PaymentIntent: stripe.String("pi_123"),
			Amount:        stripe.Int64(500),
		}
		params.SetIdempotencyKey("refund-7f0c-1")
		refund, err := sc.Refunds.New(params)
		if err != nil {
			t.Fatalf("create refund: %v", err)
		}
		wantObject(t, "create refund", refund.ID, refund.Object, "refund")
	})

	t.Run("products", func(t *testing.T) {
		list := &stripe.ProductListParams{Active: stripe.Bool(true)}
		list.Limit = stripe.Int64(100)
		products := sc.Products.List(list)
		n := 0
		for products.Next() {
			p := products.Product()
			wantObject(t, "listed product", p.ID, p.Object, "product")
			n++
		}
		if err := products.Err(); err != nil {
			t.Fatalf("list products: %v", err)
		}
		if n == 0 {
			t.Errorf("list products: got none, want stripe-mock's fixture")
		}

		params := &stripe.ProductParams{
			Name:        stripe.String("1,000 credits"),
			Description: stripe.String("A pack of 1,000 credits"),
		}
		params.AddMetadata("fastimage_code", "pack-1000")
		created, err := sc.Products.New(params)
		if err != nil {
			t.Fatalf("create product: %v", err)
		}
		wantObject(t, "create product", created.ID, created.Object, "product")

		update := &stripe.ProductParams{
			Name:   stripe.String("1,000 credits (new name)"),
			Active: stripe.Bool(true),
		}
		update.AddMetadata("fastimage_code", "pack-1000")
		updated, err := sc.Products.Update(created.ID, update)
		if err != nil {
			t.Fatalf("update product: %v", err)
		}
		wantObject(t, "update product", updated.ID, updated.Object, "product")
	})

	t.Run("prices", func(t *testing.T) {
		list := &stripe.PriceListParams{
			LookupKeys: stripe.StringSlice([]string{"fastimage_pack-1000", "fastimage_pro-monthly"}),
		}
		list.AddExpand("data.product")
		list.Limit = stripe.Int64(100)
		prices := sc.Prices.List(list)
		n := 0
		for prices.Next() {
			p := prices.Price()
			wantObject(t, "listed price", p.ID, p.Object, "price")
			if p.Product == nil || p.Product.Object != "product" {
				t.Errorf("listed price %s: product not expanded (got %+v)", p.ID, p.Product)
			}
			n++
		}
		if err := prices.Err(); err != nil {
			t.Fatalf("list prices: %v", err)
		}
		if n == 0 {
			t.Errorf("list prices: got none, want stripe-mock's fixture")
		}

		for _, tc := range []struct {
			name      string
			lookupKey string
			recurring *stripe.PriceRecurringParams
		}{
			{"one-time", "fastimage_pack-1000", nil},
			{"monthly", "fastimage_pro-monthly", &stripe.PriceRecurringParams{Interval: stripe.String(string(stripe.PriceRecurringIntervalMonth))}},
			{"yearly", "fastimage_pro-yearly", &stripe.PriceRecurringParams{Interval: stripe.String(string(stripe.PriceRecurringIntervalYear))}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				price, err := sc.Prices.New(&stripe.PriceParams{
					Product:           stripe.String("prod_123"),
					UnitAmount:        stripe.Int64(900),
					Currency:          stripe.String(string(stripe.CurrencyEUR)),
					LookupKey:         stripe.String(tc.lookupKey),
					TransferLookupKey: stripe.Bool(true),
					Recurring:         tc.recurring,
				})
				if err != nil {
					t.Fatalf("create price: %v", err)
				}
				wantObject(t, "create price", price.ID, price.Object, "price")
			})
		}
	})
}

// TestSharedProcess: every caller in a test binary gets the same stripe-mock.
func TestSharedProcess(t *testing.T) {
	first, second := URL(t), URL(t)
	if first != second {
		t.Errorf("URL: got %q then %q, want one process", first, second)
	}
	if !strings.HasPrefix(first, "http://127.0.0.1:") {
		t.Errorf("URL: got %q, want a loopback address", first)
	}
	if !answers(first) {
		t.Errorf("stripe-mock at %s does not answer", first)
	}
}

// TestUnusableBinary: a wrong STRIPE_MOCK_BIN is reported with what to do,
// not run.
func TestUnusableBinary(t *testing.T) {
	for _, tc := range []struct {
		name string
		bin  string
		want string
	}{
		{"missing", "/nonexistent/stripe-mock", "no such file"},
		{"a folder", t.TempDir(), "not an executable file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STRIPE_MOCK_BIN", tc.bin)
			_, err := binary()
			if err == nil {
				t.Fatalf("binary() with STRIPE_MOCK_BIN=%s: got no error", tc.bin)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Unset it") {
				t.Errorf("binary() error %q, want it to say %q and what to do", err, tc.want)
			}
		})
	}
}
