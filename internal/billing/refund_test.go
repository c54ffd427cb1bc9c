package billing_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/billing/stripefake"
	"github.com/fastimage/api/internal/credit"
)

// buy has a buy code (a pack) and delivers its webhook.
func (e *env) buy(t *testing.T, a actor.Actor, code string) stripefake.Payment {
	t.Helper()
	p := e.fake.PayCheckout(e.checkout(t, a, code))
	e.mustDeliver(t, e.fake.Event("checkout.session.completed", p.SessionID))
	return p
}

func (e *env) spend(t *testing.T, user uuid.UUID, amount int64) error {
	t.Helper()
	_, err := e.ledger.Post(context.Background(), credit.Posting{UserID: user, Amount: -amount, Kind: credit.Spend, IdempotencyKey: uuid.NewString()})
	return err
}

// purchaseOf returns the credits granted, clawed back and owed, and whether
// a freeze is on, of the purchase paid by payment intent pi.
func (e *env) purchaseOf(t *testing.T, pi string) (granted, clawed, owed int64, frozen bool) {
	t.Helper()
	if err := e.db.NewRaw("SELECT credits_granted, credits_clawed_back, credits_owed, frozen_hold_id IS NOT NULL FROM purchases WHERE payment_intent_id = ?", pi).
		Scan(context.Background(), &granted, &clawed, &owed, &frozen); err != nil {
		t.Fatal(err)
	}
	return
}

func wantBalance(t *testing.T, e *env, user uuid.UUID, balance, held, owed int64) {
	t.Helper()
	b := e.balance(t, user)
	if b.Balance != balance || b.Held != held || e.owed(t, user) != owed {
		t.Errorf("balance %d, held %d, owed %d; want %d, %d, %d", b.Balance, b.Held, e.owed(t, user), balance, held, owed)
	}
}

// TestRefundAfterSpendingOwes: a refund takes back what is left of the
// purchase's credits and records the spent rest as owed; the next paid
// grant settles it. The balance never goes negative.
func TestRefundAfterSpendingOwes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newUser(t)
	p := e.buy(t, a, "pack-100")
	if err := e.spend(t, a.UserID, 70); err != nil {
		t.Fatal(err)
	}

	e.fake.Refund(p.ChargeID, 500)
	refunded := e.fake.Event("charge.refunded", p.ChargeID)
	e.mustDeliver(t, refunded)
	e.mustDeliver(t, e.fake.Event("charge.refunded", p.ChargeID)) // told again
	wantBalance(t, e, a.UserID, 0, 0, 70)
	if granted, clawed, owed, _ := e.purchaseOf(t, p.PaymentIntentID); granted != 100 || clawed != 30 || owed != 70 {
		t.Errorf("refunded purchase: granted %d, clawed back %d, owed %d; want 100, 30, 70", granted, clawed, owed)
	}
	if err := e.spend(t, a.UserID, 1); apperr.CodeOf(err) != credit.InsufficientCredits {
		t.Errorf("spend after the refund: got %v, want INSUFFICIENT_CREDITS", err)
	}

	e.buy(t, a, "pack-500")
	wantBalance(t, e, a.UserID, 430, 0, 0)
	if n := e.count(t, "SELECT count(*) FROM credit_entries WHERE user_id = ? AND kind = 'CLAWBACK' AND amount = -70", a.UserID); n != 1 {
		t.Errorf("settling entries of 70: got %d, want 1", n)
	}
	e.mustDeliver(t, refunded) // an old event again, after the debt was settled
	wantBalance(t, e, a.UserID, 430, 0, 0)
}

// TestRefundWithCreditsHeld: credits held for running work are not taken;
// the refund owes the difference and the work can still be paid.
func TestRefundWithCreditsHeld(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.newUser(t)
	p := e.buy(t, a, "pack-100")
	h, err := e.ledger.Hold(ctx, credit.HoldRequest{UserID: a.UserID, Amount: 60, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.fake.Refund(p.ChargeID, 250) // half: 50 credits
	e.mustDeliver(t, e.fake.Event("charge.refunded", p.ChargeID))
	wantBalance(t, e, a.UserID, 60, 60, 10)
	if _, err := e.ledger.Capture(ctx, h.ID, 60); err != nil {
		t.Fatalf("capture the held credits after the refund: %v", err)
	}
	wantBalance(t, e, a.UserID, 0, 0, 10)

	e.fake.Refund(p.ChargeID, 250) // the rest
	e.mustDeliver(t, e.fake.Event("charge.refunded", p.ChargeID))
	wantBalance(t, e, a.UserID, 0, 0, 60)
	if granted, clawed, owed, _ := e.purchaseOf(t, p.PaymentIntentID); clawed+owed != granted {
		t.Errorf("fully refunded: clawed back %d + owed %d, want the %d granted", clawed, owed, granted)
	}
}

// TestDisputeFreezesThenClawsBackOrReleases: an open dispute freezes what is
// left of the purchase's credits; lost, they are taken back (the spent part
// owed); won, they are free again.
func TestDisputeFreezesThenClawsBackOrReleases(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, won := range []bool{false, true} {
		a := e.newUser(t)
		p := e.buy(t, a, "pack-100")
		if err := e.spend(t, a.UserID, 20); err != nil {
			t.Fatal(err)
		}
		dp := e.fake.Dispute(p.ChargeID, 500)
		e.mustDeliver(t, e.fake.Event("charge.dispute.created", dp))
		wantBalance(t, e, a.UserID, 80, 80, 0)
		if _, _, _, frozen := e.purchaseOf(t, p.PaymentIntentID); !frozen {
			t.Errorf("disputed purchase: not frozen")
		}
		if err := e.spend(t, a.UserID, 1); apperr.CodeOf(err) != credit.InsufficientCredits {
			t.Errorf("spend frozen credits: got %v, want INSUFFICIENT_CREDITS", err)
		}
		// Credits bought later are spent before the frozen ones.
		e.buy(t, a, "pack-500")
		if err := e.spend(t, a.UserID, 10); err != nil {
			t.Fatalf("spend credits of another purchase during the dispute: %v", err)
		}

		e.fake.CloseDispute(dp, won)
		e.mustDeliver(t, e.fake.Event("charge.dispute.closed", dp))
		e.mustDeliver(t, e.fake.Event("charge.dispute.created", dp)) // late
		if won {
			wantBalance(t, e, a.UserID, 570, 0, 0)
		} else {
			// The 20 already spent are owed, settled from the next grant
			// (not from credits bought before).
			wantBalance(t, e, a.UserID, 490, 0, 20)
		}
		granted, clawed, owed, frozen := e.purchaseOf(t, p.PaymentIntentID)
		if frozen || granted != 100 {
			t.Errorf("closed dispute (won %v): granted %d, frozen %v; want 100 and no freeze", won, granted, frozen)
		}
		if wantClawed, wantOwed := map[bool]int64{false: 80, true: 0}[won], map[bool]int64{false: 20, true: 0}[won]; clawed != wantClawed || owed != wantOwed {
			t.Errorf("closed dispute (won %v): clawed back %d, owed %d; want %d, %d", won, clawed, owed, wantClawed, wantOwed)
		}
		if n := e.count(t, "SELECT count(*) FROM credit_lots WHERE user_id = ? AND frozen", a.UserID); n != 0 {
			t.Errorf("closed dispute (won %v): %d frozen lots, want 0", won, n)
		}
	}
}

// TestDisputeOfSpentCreditsWon: a dispute of credits all spent freezes
// nothing, and once won leaves no lot marked frozen.
func TestDisputeOfSpentCreditsWon(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newUser(t)
	p := e.buy(t, a, "pack-100")
	if err := e.spend(t, a.UserID, 100); err != nil {
		t.Fatal(err)
	}
	dp := e.fake.Dispute(p.ChargeID, 500)
	e.mustDeliver(t, e.fake.Event("charge.dispute.created", dp))
	e.fake.CloseDispute(dp, true)
	e.mustDeliver(t, e.fake.Event("charge.dispute.closed", dp))
	wantBalance(t, e, a.UserID, 0, 0, 0)
	if n := e.count(t, "SELECT count(*) FROM credit_lots WHERE user_id = ? AND frozen", a.UserID); n != 0 {
		t.Errorf("frozen lots after the dispute was won: got %d, want 0", n)
	}
}
