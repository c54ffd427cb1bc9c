package billing_test

// Events of one purchase racing each other, reconcile and the grant.

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestConcurrentEventsOfOnePurchase: every event of one purchase delivered
// at once, several times each (a refund and a dispute racing the grant),
// ends like one delivery in order, with no 500 left unretried.
func TestConcurrentEventsOfOnePurchase(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for round := range 5 {
		a := e.newUser(t)
		p := e.fake.PayCheckout(e.checkout(t, a, "pack-100"))
		e.fake.Refund(p.ChargeID, 200)
		dp := e.fake.Dispute(p.ChargeID, 300)
		created := e.fake.Event("charge.dispute.created", dp)
		e.fake.CloseDispute(dp, false)
		events := [][]byte{
			e.fake.Event("checkout.session.completed", p.SessionID),
			e.fake.Event("charge.refunded", p.ChargeID),
			created,
			e.fake.Event("charge.dispute.closed", dp),
		}
		var wg sync.WaitGroup
		for range 4 {
			for _, ev := range events {
				wg.Go(func() {
					// A 500 is Stripe's cue to send it again: do so.
					for try := 0; try < 5; try++ {
						if code := e.deliver(t, ev); code == http.StatusOK {
							return
						}
					}
					t.Errorf("round %d: %s never applied", round, eventType(ev))
				})
			}
		}
		wg.Wait()
		// 40% refunded + 60% lost: everything taken back.
		wantBalance(t, e, a.UserID, 0, 0, 0)
		if n := e.count(t, "SELECT count(*) FROM credit_entries WHERE user_id = ? AND kind = 'PURCHASE'", a.UserID); n != 1 {
			t.Errorf("round %d: %d grants, want 1", round, n)
		}
		if n := e.count(t, "SELECT count(*) FROM credit_lots WHERE user_id = ? AND frozen", a.UserID); n != 0 {
			t.Errorf("round %d: %d lots frozen after the dispute closed", round, n)
		}
		if n := e.count(t, "SELECT count(*) FROM credit_holds WHERE user_id = ? AND status = 'held'", a.UserID); n != 0 {
			t.Errorf("round %d: %d holds left", round, n)
		}
	}
}

// TestReconcileRacingWebhooks: reconcile runs twice at once while the
// webhooks arrive too; every payment is still credited once.
func TestReconcileRacingWebhooks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.newUser(t)
	var events [][]byte
	for range 5 {
		events = append(events, e.fake.Event("checkout.session.completed", e.fake.PayCheckout(e.checkout(t, a, "pack-100")).SessionID))
	}
	b := e.newUser(t)
	p := e.fake.PayCheckout(e.checkout(t, b, "pro-monthly"))
	r := e.fake.RenewSubscription(p.SubscriptionID, true)
	events = append(events, e.fake.Event("checkout.session.completed", p.SessionID), e.fake.Event("invoice.paid", p.InvoiceID),
		e.fake.Event("invoice.paid", r.InvoiceID))

	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { _, _ = e.svc.Reconcile(ctx, time.Hour) }) // a lost race is logged; the next run applies it
	}
	for _, ev := range events {
		wg.Go(func() {
			for try := 0; try < 5 && e.deliver(t, ev) != http.StatusOK; try++ {
			}
		})
	}
	wg.Wait()
	if _, err := e.svc.Reconcile(ctx, time.Hour); err != nil {
		t.Fatalf("reconcile after the race: %v", err)
	}
	if got := e.balance(t, a.UserID).Balance; got != 500 {
		t.Errorf("five packs: balance %d, want 500", got)
	}
	if got := e.balance(t, b.UserID).Balance; got != 2000 {
		t.Errorf("two periods: balance %d, want 2000", got)
	}
	if n := e.count(t, "SELECT count(*) FROM credit_entries WHERE user_id IN (?, ?)", a.UserID, b.UserID); n != 7 {
		t.Errorf("entries: %d, want 7 grants", n)
	}
}

// TestDisputeWonAndRefundInAnyOrder: a dispute won and a partial refund of
// the same payment, told in any order, end with the refunded share taken
// back and nothing frozen.
func TestDisputeWonAndRefundInAnyOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := ""
	for _, order := range permutations(4) {
		a := e.newUser(t)
		p := e.fake.PayCheckout(e.checkout(t, a, "pack-100"))
		dp := e.fake.Dispute(p.ChargeID, 500)
		opened := e.fake.Event("charge.dispute.created", dp)
		e.fake.CloseDispute(dp, true)
		closed := e.fake.Event("charge.dispute.closed", dp)
		e.fake.Refund(p.ChargeID, 150) // 30 credits
		events := [][]byte{e.fake.Event("checkout.session.completed", p.SessionID), opened, closed, e.fake.Event("charge.refunded", p.ChargeID)}
		for _, i := range order {
			e.mustDeliver(t, events[i])
		}
		wantBalance(t, e, a.UserID, 70, 0, 0)
		got := e.state(t, a.UserID)
		if first == "" {
			first = got
		} else if got != first {
			t.Errorf("order %v: state\n%s\nwant\n%s", order, got, first)
		}
	}
}
