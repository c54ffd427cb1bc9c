package billing_test

import (
	"strings"
	"testing"
)

// permutations returns every order of n items, as index lists.
func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

// TestAnyOrderSameState: Stripe sends a purchase's events in any order;
// every order ends in the same balances, lots, purchase and subscription.
func TestAnyOrderSameState(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// events makes a purchase for a new user of e and returns the
		// events telling of it, in Stripe's order.
		events func(t *testing.T, e *env, user string) []([]byte)
		want   []string // lines the state must hold
	}{
		{
			name: "subscription: checkout, invoice, subscription updated, half refunded",
			events: func(t *testing.T, e *env, session string) [][]byte {
				p := e.fake.PayCheckout(session)
				e.fake.Refund(p.ChargeID, 1000)
				return [][]byte{
					e.fake.Event("checkout.session.completed", p.SessionID),
					e.fake.Event("invoice.paid", p.InvoiceID),
					e.fake.Event("customer.subscription.updated", p.SubscriptionID),
					e.fake.Event("charge.refunded", p.ChargeID),
				}
			},
			want: []string{
				"account: 500/0/0", "lots: 1000/500/f",
				"purchases: plan/pro-monthly/1000/2000/usd/paid/1000/500/0/f/t/t/t/t/t/t/t",
				"subscriptions: pro-monthly/active/t/f", "limits: pro-monthly/53687091200/6",
			},
		},
		{
			name: "pack: checkout, 40% refunded, rest disputed and lost",
			events: func(t *testing.T, e *env, session string) [][]byte {
				return packDisputed(t, e, session, false)
			},
			want: []string{
				"account: 0/0/0", "lots: 100/0/f",
				"purchases: pack/pack-100/100/500/usd/paid/100/100/0/f/t/f/t/f/f/t/t",
				"subscriptions: ", "limits: ",
			},
		},
		{
			name: "pack: checkout, 40% refunded, rest disputed and won",
			events: func(t *testing.T, e *env, session string) [][]byte {
				return packDisputed(t, e, session, true)
			},
			want: []string{
				"account: 60/0/0", "lots: 100/60/f",
				"purchases: pack/pack-100/100/500/usd/paid/100/40/0/f/t/f/t/f/f/t/t",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			code := "pack-100"
			if strings.HasPrefix(tc.name, "subscription") {
				code = "pro-monthly"
			}
			first := ""
			for _, order := range permutations(4) {
				a := e.newUser(t)
				events := tc.events(t, e, e.checkout(t, a, code))
				var names []string
				for _, i := range order {
					e.mustDeliver(t, events[i])
					names = append(names, eventType(events[i]))
				}
				got := e.state(t, a.UserID)
				if first == "" {
					first = got
					for _, line := range tc.want {
						if !strings.Contains(got, line) {
							t.Errorf("order %v: state lacks %q:\n%s", names, line, got)
						}
					}
				} else if got != first {
					t.Errorf("order %v: state\n%s\nwant, as in the first order,\n%s", names, got, first)
				}
			}
			if n := e.count(t, "SELECT count(*) FROM purchases"); n != 24 {
				t.Errorf("purchases: got %d, want one per order (24)", n)
			}
		})
	}
}

// packDisputed pays session (a pack of 100 credits for 500), refunds 200
// of it, and has the other 300 disputed and the dispute closed.
func packDisputed(t *testing.T, e *env, session string, won bool) [][]byte {
	p := e.fake.PayCheckout(session)
	e.fake.Refund(p.ChargeID, 200)
	refunded := e.fake.Event("charge.refunded", p.ChargeID)
	dp := e.fake.Dispute(p.ChargeID, 300)
	opened := e.fake.Event("charge.dispute.created", dp)
	e.fake.CloseDispute(dp, won)
	return [][]byte{e.fake.Event("checkout.session.completed", p.SessionID), refunded, opened, e.fake.Event("charge.dispute.closed", dp)}
}
