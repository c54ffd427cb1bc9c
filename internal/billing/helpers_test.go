package billing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/billing"
	"github.com/fastimage/api/internal/billing/stripefake"
	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/db/dbtest"
)

// env is a billing service over a fresh database, with Stripe faked by
// stripefake and its webhook handler served over real HTTP.
type env struct {
	db     *bun.DB
	svc    *billing.Service
	fake   *stripefake.Fake
	hook   *httptest.Server
	ledger *credit.Ledger
	logs   *logRecorder
}

func newEnv(t testing.TB) *env {
	t.Helper()
	bdb := dbtest.New(t)
	f := stripefake.New(t)
	catalog := billing.DefaultCatalog()
	for _, it := range catalog.Items {
		f.AddPrice(it.LookupKey, it.Price, it.Currency, string(it.Interval))
	}
	logs := &logRecorder{}
	svc := billing.New(bdb, catalog, billing.Config{
		SecretKey: "sk_test_fake", WebhookSecret: f.WebhookSecret, APIBase: f.URL,
		PublicURL: mustURL(t, "https://app.example.test"), AllowedOrigins: []string{"https://editor.example.test"},
	}, slog.New(logs))
	hook := httptest.NewServer(svc.WebhookHandler())
	t.Cleanup(hook.Close)
	return &env{db: bdb, svc: svc, fake: f, hook: hook, ledger: credit.New(bdb), logs: logs}
}

// logRecorder keeps the service's log records, to count what it did.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}

// count returns how many records with msg have every attribute of attrs
// (compared as printed).
func (l *logRecorder) count(msg string, attrs map[string]string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.records {
		if r.Message != msg {
			continue
		}
		matched := 0
		r.Attrs(func(a slog.Attr) bool {
			if want, ok := attrs[a.Key]; ok && a.Value.String() == want {
				matched++
			}
			return true
		})
		if matched == len(attrs) {
			n++
		}
	}
	return n
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// newUser signs up a verified user and returns them as an actor.
func (e *env) newUser(t testing.TB) actor.Actor {
	t.Helper()
	email := fmt.Sprintf("u%s@example.com", uuid.NewString()[:8])
	var id uuid.UUID
	if err := e.db.NewRaw("INSERT INTO users (email, password_hash, email_verified_at) VALUES (?, 'x', now()) RETURNING id", email).
		Scan(context.Background(), &id); err != nil {
		t.Fatal(err)
	}
	return actor.Actor{UserID: id, Role: actor.RoleUser, Verified: true, Email: email}
}

// checkout starts buying code for a and returns the Stripe session id.
func (e *env) checkout(t testing.TB, a actor.Actor, code string) string {
	t.Helper()
	c, err := e.svc.CreateCheckout(context.Background(), a, billing.CheckoutRequest{
		PlanCode: code, IdempotencyKey: uuid.NewString(), SuccessPath: "/billing/done", CancelPath: "/billing",
	})
	if err != nil {
		t.Fatalf("CreateCheckout(%s): %v", code, err)
	}
	return c.SessionID
}

// deliver posts a signed event to the webhook handler and returns the
// status.
func (e *env) deliver(t testing.TB, event []byte) int {
	t.Helper()
	return e.post(t, event, e.fake.Sign(event))
}

// mustDeliver delivers event and fails the test unless it is answered 200.
func (e *env) mustDeliver(t testing.TB, event []byte) {
	t.Helper()
	if code := e.deliver(t, event); code != http.StatusOK {
		t.Fatalf("deliver %s: status %d, want 200", eventType(event), code)
	}
}

func (e *env) post(t testing.TB, body []byte, signature string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.hook.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if signature != "" {
		req.Header.Set("Stripe-Signature", signature)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.hook.Client().Do(req)
	if err != nil {
		t.Errorf("post webhook: %v", err)
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func eventType(event []byte) string {
	var ev struct{ Type string }
	if err := json.Unmarshal(event, &ev); err != nil {
		return "(not JSON)"
	}
	return ev.Type
}

func (e *env) balance(t testing.TB, user uuid.UUID) credit.Balance {
	t.Helper()
	b, err := e.ledger.BalanceOf(context.Background(), actor.Actor{UserID: user}, user)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *env) owed(t testing.TB, user uuid.UUID) int64 {
	t.Helper()
	n, err := credit.Owed(context.Background(), e.db, user)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// count returns the rows of a query's single count.
func (e *env) count(t testing.TB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := e.db.NewRaw(query, args...).Scan(context.Background(), &n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// rowCounts counts the rows of every table a webhook may write.
func (e *env) rowCounts(t testing.TB) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for _, table := range []string{"stripe_events", "purchases", "credit_entries", "credit_lots", "stripe_charges", "subscriptions", "user_limits", "viewer_events", "credit_accounts"} {
		counts[table] = e.count(t, "SELECT count(*) FROM "+table)
	}
	return counts
}

// state is what a user has from billing, without ids and times that
// differ between runs: balances, lots, purchases, subscription and limits.
func (e *env) state(t testing.TB, user uuid.UUID) string {
	t.Helper()
	var parts []string
	rows := func(what, query string) {
		t.Helper()
		var got []string
		if err := e.db.NewRaw(query, user).Scan(context.Background(), &got); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		sort.Strings(got)
		parts = append(parts, what+": "+strings.Join(got, " | "))
	}
	rows("account", `SELECT concat_ws('/', balance, held, owed) FROM credit_accounts WHERE user_id = ?`)
	rows("lots", `SELECT concat_ws('/', amount, remaining, frozen) FROM credit_lots WHERE user_id = ?`)
	rows("purchases", `SELECT concat_ws('/', kind, catalog_code, credits, amount, currency, status, credits_granted, credits_clawed_back,
		credits_owed, frozen_hold_id IS NOT NULL, lot_id IS NOT NULL, invoice_id IS NOT NULL, payment_intent_id IS NOT NULL,
		subscription_id IS NOT NULL, period_start IS NOT NULL, paid_at IS NOT NULL, customer_id IS NOT NULL) FROM purchases WHERE user_id = ?`)
	rows("subscriptions", `SELECT concat_ws('/', plan_code, status, current_period_end IS NOT NULL, cancel_at_period_end) FROM subscriptions WHERE user_id = ?`)
	rows("limits", `SELECT concat_ws('/', plan_code, storage_quota_bytes, running_jobs_limit) FROM user_limits WHERE user_id = ?`)
	return strings.Join(parts, "\n")
}
