package billing_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fastimage/api/internal/actor"
)

// BenchmarkWebhook posts signed checkout.session.completed events, each for
// its own purchase, through the webhook handler over HTTP from 8 concurrent
// senders (Stripe delivers concurrently), and reports events applied per
// second: verify, record the event, merge, grant, tell the feed.
func BenchmarkWebhook(b *testing.B) {
	const senders, buyers = 8, 32
	e := newEnv(b)
	users := make([]actor.Actor, buyers)
	for i := range users {
		users[i] = e.newUser(b)
	}
	events := make([][]byte, b.N)
	signatures := make([]string, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range senders { // the purchases, made concurrently to keep setup short
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < b.N; i = int(next.Add(1) - 1) {
				p := e.fake.PayCheckout(e.checkout(b, users[i%buyers], "pack-100"))
				events[i] = e.fake.Event("checkout.session.completed", p.SessionID)
				signatures[i] = e.fake.Sign(events[i])
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		return
	}

	next.Store(0)
	b.ResetTimer()
	for range senders {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < b.N; i = int(next.Add(1) - 1) {
				if code := e.post(b, events[i], signatures[i]); code != http.StatusOK {
					b.Errorf("event %d: status %d, want 200", i, code)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")

	var granted int64
	if err := e.db.NewRaw("SELECT coalesce(sum(balance), 0) FROM credit_accounts").Scan(context.Background(), &granted); err != nil {
		b.Fatal(err)
	}
	if granted != int64(b.N)*100 {
		b.Errorf("credits granted: got %d, want %d (100 per event)", granted, b.N*100)
	}
}
