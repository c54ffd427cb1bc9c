package billing_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/fastimage/api/internal/credit"
)

// TestClawbackWhileGenerationCaptures: a refund lifts a dispute's freeze and
// claws back while a generation of the same user captures its hold. The
// generation locks the account, then the lots it spends; the webhook must
// take the same locks in the same order, or one of the two dies in a
// deadlock.
func TestClawbackWhileGenerationCaptures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.newUser(t)
	p := e.buy(t, a, "pack-100")
	gen, err := e.ledger.Hold(ctx, credit.HoldRequest{UserID: a.UserID, Amount: 30, TTL: time.Hour, Ref: credit.Ref{Type: "Test", ID: "gen"}})
	if err != nil {
		t.Fatal(err)
	}
	e.mustDeliver(t, e.fake.Event("charge.dispute.created", e.fake.Dispute(p.ChargeID, 500)))
	if _, _, _, frozen := e.purchaseOf(t, p.PaymentIntentID); !frozen {
		t.Fatal("disputed purchase not frozen")
	}
	e.fake.Refund(p.ChargeID, 100)
	refunded := e.fake.Event("charge.refunded", p.ChargeID)

	// The generation's transaction has taken the account's lock...
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.NewRaw("UPDATE credit_accounts SET updated_at = now() WHERE user_id = ?", a.UserID).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	// ...when the refund arrives and waits for it...
	status := make(chan int, 1)
	go func() { status <- e.deliver(t, refunded) }()
	deadline := time.Now().Add(10 * time.Second)
	for e.count(t, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the refund never waited for the account")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// ...and then spends from the lots, as its capture does.
	if _, err := credit.CaptureTx(ctx, tx, gen.ID, 30); err != nil {
		t.Errorf("the generation's capture: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Errorf("the generation's commit: %v", err)
	}
	if code := <-status; code != http.StatusOK {
		t.Errorf("the refund during the capture: status %d, want 200", code)
	}
}
