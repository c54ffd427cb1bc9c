package drills

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/billing"
	"github.com/fastimage/api/internal/billing/stripefake"
	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/db/dbtest"
)

// Users buy credit packs while they generate; Stripe delivers each
// checkout.session.completed five times — twice at once, then three more
// times over the next second, as its retries and replays do. Each purchase
// grants its credits exactly once, and the generations running meanwhile
// are charged exactly once.
func TestDrillStripeWebhooksReplayed(t *testing.T) {
	t.Parallel()
	buyers := size(3, 12)
	const deliveries = 5
	stripe := stripefake.New(t)
	for _, it := range billing.DefaultCatalog().Items {
		stripe.AddPrice(it.LookupKey, it.Price, it.Currency, string(it.Interval))
	}
	dbURL := dbtest.NewURL(t)
	vdb, err := db.Open(context.Background(), dbtest.Config(dbURL), "drills")
	if err != nil {
		t.Fatal(err)
	}
	defer vdb.Close()
	env := []string{"DATABASE_URL=" + dbURL, "STRIPE_SECRET_KEY=sk_test_drill", "STRIPE_WEBHOOK_SECRET=" + stripe.WebhookSecret, "STRIPE_API_BASE=" + stripe.URL}
	api := startServe(t, "api", env, settings(t.TempDir(), "--workers", "2", "--local-step-delay", "20ms", "--billing-reconcile-interval", "0")...)
	users := make([]user, buyers)
	for i := range users {
		users[i] = signUp(t, newClient(api.url), vdb)
	}

	// Load: every buyer generates all along.
	ctx, stop := stopper(t)
	var (
		mu      sync.Mutex
		gens    = map[uuid.UUID][]string{}
		refused = map[string]int{}
		wg      sync.WaitGroup
	)
	for _, u := range users {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				id, err := u.submit(ctx, fmt.Sprintf("drill: stripe load %d", i), uuid.NewString())
				if err == nil {
					mu.Lock()
					gens[u.id] = append(gens[u.id], id)
					mu.Unlock()
				} else if ctx.Err() == nil {
					// A refused submission charges nothing and is not lost:
					// the client was told. Counted, not failed.
					mu.Lock()
					refused[errCode(err)]++
					mu.Unlock()
				}
				select {
				case <-ctx.Done():
				case <-time.After(150 * time.Millisecond):
				}
			}
		})
	}

	// Each buyer checks out a pack and pays.
	events := make([][]byte, buyers)
	for i, u := range users {
		var out struct{ CreateCheckoutSession struct{ SessionID string } }
		key := uuid.NewString()
		for try := 1; ; try++ {
			r, err := u.api.post(context.Background(), `mutation($key: String!) { createCheckoutSession(input: {planCode: "pack-100", idempotencyKey: $key, successPath: "/billing/done", cancelPath: "/billing"}) { sessionId } }`,
				map[string]any{"key": key})
			if err == nil && len(r.Errors) == 0 {
				if err := json.Unmarshal(r.Data, &out); err != nil {
					t.Fatal(err)
				}
				break
			}
			if try == 5 {
				t.Fatalf("createCheckoutSession, 5 tries: %v %+v", err, r.Errors)
			}
			time.Sleep(500 * time.Millisecond)
		}
		p := stripe.PayCheckout(out.CreateCheckoutSession.SessionID)
		events[i] = stripe.Event("checkout.session.completed", p.SessionID)
	}

	// Stripe delivers each event five times: two at once, then three more.
	statuses := map[int]int{}
	var smu sync.Mutex
	deliver := func(event []byte) {
		// Stripe retries what is not answered 2xx; so does the drill.
		for try := 0; ; try++ {
			code := postWebhook(t, api.url, event, stripe.Sign(event))
			smu.Lock()
			statuses[code]++
			smu.Unlock()
			if code == http.StatusOK || try == 5 {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	began := time.Now()
	var dwg sync.WaitGroup
	for _, ev := range events {
		dwg.Go(func() {
			var first sync.WaitGroup
			first.Go(func() { deliver(ev) })
			first.Go(func() { deliver(ev) })
			first.Wait()
			for range deliveries - 2 {
				time.Sleep(300 * time.Millisecond)
				deliver(ev)
			}
		})
	}
	dwg.Wait()
	var credited time.Duration
	waitFor(t, time.Minute, "every purchase to be paid", func() bool {
		var n int
		if err := vdb.NewRaw(`SELECT count(*) FROM purchases WHERE status = 'paid'`).Scan(context.Background(), &n); err != nil {
			t.Fatal(err)
		}
		credited = time.Since(began)
		return n == buyers
	})
	stop()
	wg.Wait()

	// Every generation submitted under load ends, charged once; every
	// purchase granted its credits once.
	var lost int
	var notes []string
	for _, u := range users {
		// Every generation of the user, also those whose submission the
		// drill gave up waiting for when it stopped the load.
		var keys []uuid.UUID
		if err := vdb.NewRaw(`SELECT id FROM generations WHERE user_id = ?`, u.id).Scan(context.Background(), &keys); err != nil {
			t.Fatal(err)
		}
		if len(keys) < len(gens[u.id]) {
			t.Errorf("%s: %d generations in the database, %d accepted", u.email, len(keys), len(gens[u.id]))
		}
		waitFor(t, 2*time.Minute, "the generations submitted under load to end", func() bool {
			var n int
			if err := vdb.NewRaw(`SELECT count(*) FROM generations WHERE user_id = ? AND status IN ('queued', 'running')`, u.id).Scan(context.Background(), &n); err != nil {
				t.Fatal(err)
			}
			return n == 0
		})
		a := auditGenerations(t, vdb, u.id, keys)
		lost += a.lost()
		if a.lost() > 0 {
			notes = append(notes, a.summary())
		}
		var grants struct{ N, Sum int64 }
		if err := vdb.NewRaw(`SELECT count(*) AS n, coalesce(sum(amount), 0) AS sum FROM credit_entries WHERE user_id = ? AND kind = 'PURCHASE'`, u.id).
			Scan(context.Background(), &grants); err != nil {
			t.Fatal(err)
		}
		if grants.N != 1 || grants.Sum != 100 {
			lost++
			notes = append(notes, fmt.Sprintf("%s: %d purchase grants of %d credits, want 1 of 100", u.email, grants.N, grants.Sum))
		}
	}
	var recorded int
	if err := vdb.NewRaw(`SELECT count(*) FROM stripe_events`).Scan(context.Background(), &recorded); err != nil {
		t.Fatal(err)
	}
	if recorded != buyers {
		lost++
		notes = append(notes, fmt.Sprintf("%d Stripe events recorded, want %d", recorded, buyers))
	}
	var answers []string
	for code, n := range statuses {
		answers = append(answers, fmt.Sprintf("%d×%d", n, code))
	}
	sort.Strings(answers)
	total := 0
	for _, g := range gens {
		total += len(g)
	}
	what := fmt.Sprintf("%d purchases, each delivered %d× (answers %s), granted once each; %d generations under load charged once each (submissions refused: %v)",
		buyers, deliveries, strings.Join(answers, " "), total, refused)
	if len(notes) > 0 {
		what += "\n  " + strings.Join(notes, "\n  ")
	}
	report(t, fmt.Sprintf("Stripe webhooks replayed %d× (%d buyers)", deliveries, buyers), lost, what, credited)
}

// postWebhook delivers one signed event to /webhooks/stripe and returns
// the status (0 when no answer came).
func postWebhook(t *testing.T, base string, event []byte, signature string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/webhooks/stripe", bytes.NewReader(event))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", signature)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var body json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode
}
