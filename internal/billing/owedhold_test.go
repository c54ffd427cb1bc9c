package billing_test

import (
	"context"
	"testing"
	"time"

	"github.com/fastimage/api/internal/credit"
)

// TestRefundedCreditsHeldThenReleased: a user holds all their credits in a
// generation, has the payment refunded, and the generation then fails
// (releasing the hold). The refunded purchase's credits, never spent, must
// not become spendable.
func TestRefundedCreditsHeldThenReleased(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.newUser(t)
	p := e.buy(t, a, "pack-100")
	h, err := e.ledger.Hold(ctx, credit.HoldRequest{UserID: a.UserID, Amount: 100, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.fake.Refund(p.ChargeID, 500)
	e.mustDeliver(t, e.fake.Event("charge.refunded", p.ChargeID))
	if err := e.ledger.Release(ctx, h.ID); err != nil {
		t.Fatal(err)
	}
	if b := e.balance(t, a.UserID); b.Available != 0 {
		t.Errorf("after a full refund and the hold released: %d credits available (owed %d), want 0", b.Available, e.owed(t, a.UserID))
	}
}
