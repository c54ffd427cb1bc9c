package billing_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/billing"
)

// TestReconcileCreditsDroppedWebhooks: with every webhook lost, reconcile
// credits each paid session and invoice of the window once; a second run
// changes nothing, and the webhooks arriving late change nothing either.
func TestReconcileCreditsDroppedWebhooks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()

	// Bought three days ago, outside the window: left alone.
	old := e.newUser(t)
	e.fake.SetClock(func() time.Time { return time.Now().Add(-73 * time.Hour) })
	e.fake.PayCheckout(e.checkout(t, old, "pack-100"))
	e.fake.SetClock(time.Now)

	// More paid sessions than one page of Stripe's list (100).
	const buyers, packsEach = 7, 15
	type buyer struct {
		user    string
		credits int64
	}
	var paid []buyer
	var lateEvents [][]byte
	for range buyers {
		a := e.newUser(t)
		for range packsEach {
			p := e.fake.PayCheckout(e.checkout(t, a, "pack-100"))
			if len(lateEvents) < 3 {
				lateEvents = append(lateEvents, e.fake.Event("checkout.session.completed", p.SessionID))
			}
		}
		paid = append(paid, buyer{a.UserID.String(), packsEach * 100})
	}
	sub := e.newUser(t)
	sp := e.fake.PayCheckout(e.checkout(t, sub, "pro-monthly"))
	lateEvents = append(lateEvents, e.fake.Event("invoice.paid", sp.InvoiceID))
	paid = append(paid, buyer{sub.UserID.String(), 1000})

	delivered := e.newUser(t) // its webhook did arrive
	e.mustDeliver(t, e.fake.Event("checkout.session.completed", e.fake.PayCheckout(e.checkout(t, delivered, "pack-500")).SessionID))
	paid = append(paid, buyer{delivered.UserID.String(), 500})

	pending := e.newUser(t) // a bank debit on its way: not paid yet
	e.fake.PayCheckoutLater(e.checkout(t, pending, "pack-100"))
	e.checkout(t, pending, "pack-500") // left open

	rep, err := e.svc.Reconcile(ctx, 72*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Each pack session, the subscription's session and its first invoice
	// changed something; the session whose webhook arrived did not.
	want := billing.ReconcileReport{Sessions: buyers*packsEach + 2, Invoices: 1, Applied: buyers*packsEach + 2}
	if rep != want {
		t.Errorf("first run: got %+v, want %+v", rep, want)
	}
	balances := func() string {
		s := ""
		for _, b := range paid {
			var got int64
			if err := e.db.NewRaw("SELECT coalesce((SELECT balance FROM credit_accounts WHERE user_id = ?), -1)", b.user).Scan(ctx, &got); err != nil {
				t.Fatal(err)
			}
			if got != b.credits {
				t.Errorf("user %s: balance %d, want %d", b.user, got, b.credits)
			}
			s += fmt.Sprintf("%s=%d ", b.user, got)
		}
		return s
	}
	first := balances()
	for _, u := range []string{old.UserID.String(), pending.UserID.String()} {
		if n := e.count(t, "SELECT count(*) FROM credit_entries WHERE user_id = ?", u); n != 0 {
			t.Errorf("user %s (outside the window, or unpaid): %d ledger entries, want 0", u, n)
		}
	}
	entries := e.count(t, "SELECT count(*) FROM credit_entries")

	rep, err = e.svc.Reconcile(ctx, 72*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want.Applied = 0; rep != want {
		t.Errorf("second run: got %+v, want %+v", rep, want)
	}
	for _, ev := range lateEvents {
		e.mustDeliver(t, ev)
	}
	if got := balances(); got != first {
		t.Errorf("balances changed after the second run and late webhooks:\n%s\nwant\n%s", got, first)
	}
	if n := e.count(t, "SELECT count(*) FROM credit_entries"); n != entries {
		t.Errorf("ledger entries: %d after the second run, want %d", n, entries)
	}

	// A renewal whose webhook is lost is the next run's.
	e.fake.RenewSubscription(sp.SubscriptionID, true)
	rep, err = e.svc.Reconcile(ctx, 72*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want.Invoices, want.Applied = 2, 1; rep != want {
		t.Errorf("after a renewal: got %+v, want %+v", rep, want)
	}
	if got := e.balance(t, sub.UserID).Balance; got != 2000 {
		t.Errorf("subscriber after the renewal: balance %d, want 2000", got)
	}
}

// TestReconcileWithPaymentsOff says why it cannot run.
func TestReconcileWithPaymentsOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	off := billing.New(e.db, billing.DefaultCatalog(), billing.Config{PublicURL: mustURL(t, "https://app.example.test")}, slog.New(slog.DiscardHandler))
	if _, err := off.Reconcile(context.Background(), time.Hour); apperr.CodeOf(err) != billing.PaymentsDisabled {
		t.Errorf("got %v, want PAYMENTS_DISABLED", err)
	}
}
