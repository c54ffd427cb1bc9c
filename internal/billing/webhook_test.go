package billing_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/fastimage/api/internal/billing"
)

// TestEventDeliveredAgainGrantsOnce: Stripe delivers an event at least
// once; twice in a row, or twenty times at once, it grants once.
func TestEventDeliveredAgainGrantsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		name       string
		deliveries int
		concurrent bool
	}{
		{"twice in a row", 2, false},
		{"20 at once", 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := e.newUser(t)
			p := e.fake.PayCheckout(e.checkout(t, a, "pack-100"))
			event := e.fake.Event("checkout.session.completed", p.SessionID)
			var wg sync.WaitGroup
			for range tc.deliveries {
				if !tc.concurrent {
					e.mustDeliver(t, event)
					continue
				}
				wg.Go(func() {
					if code := e.deliver(t, event); code != http.StatusOK {
						t.Errorf("concurrent delivery: status %d, want 200", code)
					}
				})
			}
			wg.Wait()
			if got := e.balance(t, a.UserID); got.Balance != 100 || got.Available != 100 {
				t.Errorf("balance: got %+v, want 100", got)
			}
			if n := e.count(t, "SELECT count(*) FROM credit_entries WHERE user_id = ?", a.UserID); n != 1 {
				t.Errorf("ledger entries: got %d, want 1", n)
			}
			if n := e.count(t, "SELECT count(*) FROM credit_lots WHERE user_id = ?", a.UserID); n != 1 {
				t.Errorf("lots: got %d, want 1", n)
			}
			var id string
			_ = json.Unmarshal(event, &struct{ ID *string }{&id})
			if n := e.count(t, "SELECT count(*) FROM stripe_events WHERE id = ?", id); n != 1 {
				t.Errorf("stripe_events rows of %s: got %d, want 1", id, n)
			}
			applied := map[string]string{"event": id, "applied": "true"}
			if n := e.logs.count("stripe webhook", applied); n != 1 {
				t.Errorf("deliveries applied: got %d, want 1", n)
			}
			if n := e.logs.count("stripe webhook", map[string]string{"event": id}); n != tc.deliveries {
				t.Errorf("deliveries answered: got %d, want %d", n, tc.deliveries)
			}
			if n := e.count(t, "SELECT count(*) FROM viewer_events WHERE user_id = ? AND kind = 'PURCHASE'", a.UserID); n != 1 {
				t.Errorf("purchase feed entries: got %d, want 1", n)
			}
		})
	}
}

// TestRefusedWebhooksWriteNothing: whatever is wrong with a delivery, it is
// answered 4xx before anything is written.
func TestRefusedWebhooksWriteNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newUser(t)
	p := e.fake.PayCheckout(e.checkout(t, a, "pack-100"))
	event := e.fake.Event("checkout.session.completed", p.SessionID)
	before := e.rowCounts(t)

	var decoded map[string]any
	if err := json.Unmarshal(event, &decoded); err != nil {
		t.Fatal(err)
	}
	decoded["api_version"] = "2022-11-15"
	oldVersion, _ := json.Marshal(decoded)
	tampered := bytes.Replace(event, []byte(`"amount_total":500`), []byte(`"amount_total":5`), 1)
	if bytes.Equal(tampered, event) {
		t.Fatal("the event has no amount_total to tamper with")
	}
	otherSecret := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: event, Secret: "whsec_someone_else"}).Header

	for _, tc := range []struct {
		name      string
		body      []byte
		signature string
		want      int
	}{
		{"missing header", event, "", http.StatusBadRequest},
		{"malformed header", event, "t=abc,v1", http.StatusBadRequest},
		{"bad signature", event, otherSecret, http.StatusBadRequest},
		{"body changed after signing", tampered, e.fake.Sign(event), http.StatusBadRequest},
		{"stale timestamp", event, e.fake.SignAt(event, time.Now().Add(-301*time.Second)), http.StatusBadRequest},
		{"wrong API version", oldVersion, e.fake.Sign(oldVersion), http.StatusBadRequest},
		{"oversized body", bytes.Repeat([]byte(" "), 256<<10+1), "t=1,v1=00", http.StatusRequestEntityTooLarge},
		{"not JSON", []byte("hello"), e.fake.Sign([]byte("hello")), http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := e.post(t, tc.body, tc.signature); got != tc.want {
				t.Errorf("status: got %d, want %d", got, tc.want)
			}
		})
	}
	after := e.rowCounts(t)
	for table, n := range before {
		if after[table] != n {
			t.Errorf("%s: %d rows before, %d after refused deliveries", table, n, after[table])
		}
	}
	// The same event, signed right, is taken: what was refused was the
	// delivery, not the event.
	e.mustDeliver(t, event)
	if got := e.balance(t, a.UserID).Balance; got != 100 {
		t.Errorf("balance after the good delivery: got %d, want 100", got)
	}
}

// TestOversizedBodyOfValidEvent: the cap holds for a properly signed event.
func TestOversizedBodyOfValidEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newUser(t)
	p := e.fake.PayCheckout(e.checkout(t, a, "pack-100"))
	event := e.fake.Event("checkout.session.completed", p.SessionID)
	padded := append(bytes.TrimSuffix(event, []byte("}")), []byte(`,"padding":"`+string(bytes.Repeat([]byte("x"), 256<<10))+`"}`)...)
	before := e.rowCounts(t)
	if got := e.deliver(t, padded); got != http.StatusRequestEntityTooLarge {
		t.Errorf("status: got %d, want 413", got)
	}
	if after := e.rowCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("rows: got %v, want %v", after, before)
	}
}

// TestUnknownEventIgnored: an event type we do not handle is answered 200
// (so Stripe stops sending it) and changes nothing.
func TestUnknownEventIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newUser(t)
	p := e.fake.PayCheckout(e.checkout(t, a, "pack-100"))
	before := e.rowCounts(t)
	for _, typ := range []string{"customer.created", "payment_intent.succeeded", "charge.succeeded"} {
		id := p.ChargeID
		if typ == "payment_intent.succeeded" {
			id = p.PaymentIntentID
		}
		e.mustDeliver(t, e.fake.Event(typ, id))
	}
	if after := e.rowCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("rows: got %v, want %v", after, before)
	}
}

// TestWebhookWithPaymentsOff: without Stripe settings the endpoint is not
// there, and says so.
func TestWebhookWithPaymentsOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	off := billing.New(e.db, billing.DefaultCatalog(), billing.Config{PublicURL: mustURL(t, "https://app.example.test")}, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(off.WebhookHandler())
	defer srv.Close()
	a := e.newUser(t)
	p := e.fake.PayCheckout(e.checkout(t, a, "pack-100"))
	event := e.fake.Event("checkout.session.completed", p.SessionID)
	req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(event))
	req.Header.Set("Stripe-Signature", e.fake.Sign(event))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("status: got %d, want 404", resp.StatusCode)
	}
	if n := e.count(t, "SELECT count(*) FROM stripe_events"); n != 0 {
		t.Errorf("stripe_events: got %d rows, want 0", n)
	}
}
