package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/fastimage/api/internal/billing/stripemock"
	"github.com/fastimage/api/internal/config"
)

const plansQuery = `{ plans { code name kind interval credits price { amount currency } storageQuotaBytes runningJobsLimit } }`

// The catalog is public: anyone may see what is on sale.
func TestPlansArePublic(t *testing.T) {
	t.Parallel()
	s := start(t, noWorkers())
	var out struct {
		Plans []struct {
			Code, Name, Kind string
			Interval         *string
			Credits          int
			Price            struct {
				Amount   int
				Currency string
			}
			StorageQuotaBytes *int64
			RunningJobsLimit  *int
		}
	}
	s.client(t).must(plansQuery, nil, &out)
	if len(out.Plans) != 4 {
		t.Fatalf("plans: got %d, want the built-in catalog's 4", len(out.Plans))
	}
	pack, plan := out.Plans[0], out.Plans[2]
	if pack.Code != "pack-100" || pack.Kind != "CREDIT_PACK" || pack.Interval != nil || pack.Credits != 100 ||
		pack.Price.Amount != 500 || pack.Price.Currency != "usd" || pack.StorageQuotaBytes != nil {
		t.Errorf("first pack: %+v", pack)
	}
	if plan.Code != "pro-monthly" || plan.Kind != "SUBSCRIPTION" || plan.Interval == nil || *plan.Interval != "MONTH" ||
		plan.StorageQuotaBytes == nil || *plan.StorageQuotaBytes != 50<<30 || plan.RunningJobsLimit == nil || *plan.RunningJobsLimit != 6 {
		t.Errorf("monthly plan: %+v", plan)
	}
}

// Without Stripe settings, everything that would reach Stripe says which
// settings turn payments on, the webhook endpoint is not there, and the
// user's records are simply empty.
func TestPaymentsDisabled(t *testing.T) {
	t.Parallel()
	s := start(t, noWorkers())
	me, _ := mustSignUp(t, s, "nopay@example.com")
	var info struct {
		ServerInfo struct {
			Integrations struct {
				Payments struct {
					Enabled bool
					Message *string
				}
			}
		}
	}
	me.must(`{ serverInfo { integrations { payments { enabled message } } } }`, nil, &info)
	if info.ServerInfo.Integrations.Payments.Enabled {
		t.Error("serverInfo says payments are enabled")
	}
	e := me.fails("PAYMENTS_DISABLED", `mutation { createCheckoutSession(input: {planCode: "pack-100", idempotencyKey: "k1", successPath: "/done", cancelPath: "/"}) { url } }`, nil)
	if !strings.Contains(e.Message, "STRIPE_SECRET_KEY") || !strings.Contains(e.Message, "STRIPE_WEBHOOK_SECRET") {
		t.Errorf("the sentence does not name the settings: %q", e.Message)
	}
	// Clients show the same sentence before anyone tries.
	if m := info.ServerInfo.Integrations.Payments.Message; m == nil || *m != e.Message {
		t.Errorf("serverInfo payments message %v, want PAYMENTS_DISABLED's sentence %q", m, e.Message)
	}
	me.fails("PAYMENTS_DISABLED", `mutation { createBillingPortalSession(input: {returnPath: "/"}) { url } }`, nil)
	var v struct {
		Viewer struct {
			Subscription *struct{ ID string }
			Purchases    struct{ TotalCount int }
		}
	}
	me.must(`{ viewer { subscription { id } purchases { totalCount } } }`, nil, &v)
	if v.Viewer.Subscription != nil || v.Viewer.Purchases.TotalCount != 0 {
		t.Errorf("records of a user who bought nothing: %+v", v.Viewer)
	}
	resp, err := http.Post(s.URL+"/webhooks/stripe", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("webhook without payments: %d, want 404", resp.StatusCode)
	}
}

const webhookSecret = "whsec_test_secret"

// paymentsConfig is testConfig with Stripe at stripe-mock.
func paymentsConfig(t *testing.T) *config.Serve {
	cfg := noWorkers()
	cfg.Payments.SecretKey = "sk_test_123"
	cfg.Payments.WebhookSecret = webhookSecret
	cfg.Payments.APIBase = stripemock.URL(t)
	cfg.Payments.WebhookMaxBytes = 256 << 10
	return cfg
}

// signedEvent is a webhook delivery as Stripe sends it: the event and its
// Stripe-Signature header.
func signedEvent(t *testing.T, id, typ string, object map[string]any) ([]byte, string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": stripe.APIVersion, "created": time.Now().Unix(), "type": typ,
		"data": map[string]any{"object": object},
	})
	if err != nil {
		t.Fatal(err)
	}
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: webhookSecret, Timestamp: time.Now()})
	return body, sp.Header
}

func postWebhook(t *testing.T, s *testServer, body []byte, signature string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/webhooks/stripe", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", signature)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A credit pack bought end to end through the API: checkout (against
// stripe-mock), Stripe's signed webhook, and the credits, the purchase and
// the live feed that the editor sees. The browser's return grants nothing.
func TestBuyCreditPack(t *testing.T) {
	t.Parallel()
	s := start(t, paymentsConfig(t))
	me, userID := mustSignUp(t, s, "buyer@example.com")
	var info struct {
		ServerInfo struct {
			Integrations struct {
				Payments struct {
					Enabled bool
					Message *string
				}
			}
		}
	}
	me.must(`{ serverInfo { integrations { payments { enabled message } } } }`, nil, &info)
	if p := info.ServerInfo.Integrations.Payments; !p.Enabled || p.Message != nil {
		t.Errorf("serverInfo payments: enabled %v, message %v; want enabled, no message", p.Enabled, p.Message)
	}
	const checkout = `mutation($key: String!, $ok: String!) { createCheckoutSession(input: {planCode: "pack-100", idempotencyKey: $key, successPath: $ok, cancelPath: "/billing"}) {
		url sessionId purchase { id status credits amount { amount currency } } } }`
	var c struct {
		CreateCheckoutSession struct {
			URL, SessionID string
			Purchase       struct {
				ID, Status string
				Credits    int
			}
		}
	}
	me.must(checkout, map[string]any{"key": "buy-1", "ok": "/billing/done"}, &c)
	cs := c.CreateCheckoutSession
	if cs.URL == "" || cs.SessionID == "" || cs.Purchase.Status != "OPEN" || cs.Purchase.Credits != 100 {
		t.Fatalf("checkout: %+v", cs)
	}
	var again struct {
		CreateCheckoutSession struct {
			SessionID string
			Purchase  struct{ ID string }
		}
	}
	me.must(checkout, map[string]any{"key": "buy-1", "ok": "/billing/done"}, &again)
	if again.CreateCheckoutSession.Purchase.ID != cs.Purchase.ID || again.CreateCheckoutSession.SessionID != cs.SessionID {
		t.Errorf("the same idempotency key made another checkout: %+v", again)
	}
	for _, bad := range []string{"//evil.example/x", "https://evil.example/done", "javascript:alert(1)", "done"} {
		me.fails("VALIDATION", checkout, map[string]any{"key": "bad-" + bad, "ok": bad})
	}
	balance := func() int {
		var v struct {
			Viewer struct{ Credits struct{ Balance int } }
		}
		me.must(`{ viewer { credits { balance } } }`, nil, &v)
		return v.Viewer.Credits.Balance
	}
	before := balance()

	ws, _, err := wsDial(t, s.URL, "graphql-transport-ws", "")
	if err != nil {
		t.Fatal(err)
	}
	wsInit(t, ws, me.token)
	subscribe(t, ws, "feed", `subscription { viewerEvents { seq kind purchaseId purchaseStatus cause credits { balance } } }`)

	purchaseKey := uuidOfGlobal(t, cs.Purchase.ID).String()
	body, sig := signedEvent(t, "evt_paid_1", "checkout.session.completed", map[string]any{
		"id": cs.SessionID, "object": "checkout.session", "mode": "payment", "status": "complete", "payment_status": "paid",
		"amount_total": 500, "currency": "usd", "payment_intent": "pi_buyer_1", "client_reference_id": uuidOfGlobal(t, userID).String(),
		"metadata": map[string]string{"fastimage_purchase_id": purchaseKey, "fastimage_user_id": uuidOfGlobal(t, userID).String(), "fastimage_catalog_code": "pack-100"},
	})
	for range 2 { // Stripe delivers at least once
		if code := postWebhook(t, s, body, sig); code != http.StatusOK {
			t.Fatalf("webhook: %d", code)
		}
	}
	if got := balance(); got != before+100 {
		t.Errorf("balance after the paid checkout (delivered twice): %d, want %d", got, before+100)
	}
	var kinds []string
	for len(kinds) < 2 {
		var p struct {
			Payload struct {
				Data struct {
					ViewerEvents struct {
						Kind, Cause    string
						PurchaseID     *string
						PurchaseStatus *string
					}
				}
			}
		}
		m := wsNext(t, ws, 10*time.Second)
		if err := json.Unmarshal(mustJSON(m), &p); err != nil {
			t.Fatal(err)
		}
		ev := p.Payload.Data.ViewerEvents
		if ev.PurchaseID == nil { // the sign-up bonus
			continue
		}
		if *ev.PurchaseID != cs.Purchase.ID {
			t.Fatalf("feed entry %s names purchase %v, want %s", ev.Kind, *ev.PurchaseID, cs.Purchase.ID)
		}
		kinds = append(kinds, fmt.Sprintf("%s/%s%s", ev.Kind, ev.Cause, deref(ev.PurchaseStatus)))
	}
	if strings.Join(kinds, " ") != "CREDITS/PURCHASE PURCHASE//PAID" {
		t.Errorf("feed: %v, want the credits then the purchase", kinds)
	}
	var v struct {
		Viewer struct {
			Purchases struct {
				TotalCount int
				Edges      []struct {
					Node struct {
						ID, Status string
						PaidAt     *string
						Plan       struct{ Code string }
					}
				}
			}
		}
	}
	me.must(`{ viewer { purchases { totalCount edges { node { id status paidAt plan { code } } } } } }`, nil, &v)
	if v.Viewer.Purchases.TotalCount != 1 || v.Viewer.Purchases.Edges[0].Node.Status != "PAID" || v.Viewer.Purchases.Edges[0].Node.Plan.Code != "pack-100" {
		t.Errorf("purchases: %+v", v.Viewer.Purchases)
	}
	me.fails("FORBIDDEN", `{ viewer { stripeCustomerId } }`, nil)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return "/" + *s
}

// Each checkout is a Stripe session and a row: a user gets ten an hour, and
// a retry of one already made is no new one.
func TestCheckoutsAreLimited(t *testing.T) {
	t.Parallel()
	s := start(t, paymentsConfig(t))
	me, _ := mustSignUp(t, s, "eager@example.com")
	const checkout = `mutation($key: String!) { createCheckoutSession(input: {planCode: "pack-100", idempotencyKey: $key, successPath: "/ok", cancelPath: "/"}) { sessionId } }`
	for i := range 10 {
		me.must(checkout, map[string]any{"key": fmt.Sprintf("k%d", i)}, nil)
	}
	e := me.fails("RATE_LIMITED", checkout, map[string]any{"key": "k10"})
	if e.Extensions["retryAfter"] == nil {
		t.Errorf("RATE_LIMITED without retryAfter: %+v", e)
	}
	me.must(checkout, map[string]any{"key": "k3"}, nil)
	var n int
	if err := s.db.NewRaw("SELECT count(*) FROM purchases").Scan(context.Background(), &n); err != nil || n != 10 {
		t.Errorf("purchases recorded: %d (%v), want 10", n, err)
	}
}
