package billing_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestChargebackAfterClosedInquiry: an inquiry (no money moved) is closed
// in our favour (warning_closed); later the issuer files a chargeback, a
// new dispute of the same charge, and wins it. The credits must be taken
// back, whatever order the events come in.
func TestChargebackAfterClosedInquiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dispute := func(id, charge, pi, status string) map[string]any {
		return map[string]any{"id": id, "object": "dispute", "amount": 500, "currency": "usd", "charge": charge,
			"payment_intent": pi, "status": status, "reason": "fraudulent", "created": time.Now().Unix()}
	}
	for name, order := range map[string][]int{"in order": {0, 1, 2, 3}, "chargeback first": {2, 3, 0, 1}} {
		a := e.newUser(t)
		p := e.buy(t, a, "pack-100")
		inquiry, chargeback := "dp_inq_"+uuid.NewString()[:8], "dp_cb_"+uuid.NewString()[:8]
		events := [][]byte{
			rawEvent(t, "charge.dispute.created", dispute(inquiry, p.ChargeID, p.PaymentIntentID, "warning_needs_response")),
			rawEvent(t, "charge.dispute.closed", dispute(inquiry, p.ChargeID, p.PaymentIntentID, "warning_closed")),
			rawEvent(t, "charge.dispute.created", dispute(chargeback, p.ChargeID, p.PaymentIntentID, "needs_response")),
			rawEvent(t, "charge.dispute.closed", dispute(chargeback, p.ChargeID, p.PaymentIntentID, "lost")),
		}
		for _, i := range order {
			e.mustDeliver(t, events[i])
		}
		if b := e.balance(t, a.UserID); b.Balance != 0 {
			t.Errorf("%s: chargeback lost after a closed inquiry: balance %d, want 0", name, b.Balance)
		}
	}
}
