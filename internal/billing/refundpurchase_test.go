package billing_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
)

// TestAdminRefund: an admin refunds part of a paid pack through Stripe;
// Stripe's charge.refunded then takes back that share of the credits. Only
// admins may, only within what is left to refund.
func TestAdminRefund(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.newUser(t)
	admin := e.newUser(t)
	admin.Role = actor.RoleAdmin
	c, err := e.svc.CreateCheckout(ctx, a, request("pack-100", "refund-me"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Refund(ctx, admin, c.Purchase.ID, nil); apperr.CodeOf(err) != apperr.Validation {
		t.Errorf("refund of an unpaid purchase: %v, want VALIDATION", err)
	}
	pay := e.fake.PayCheckout(c.SessionID)
	e.mustDeliver(t, e.fake.Event("checkout.session.completed", c.SessionID))
	if _, err := e.svc.Refund(ctx, a, c.Purchase.ID, nil); apperr.CodeOf(err) != apperr.Forbidden {
		t.Errorf("a user refunding: %v, want FORBIDDEN", err)
	}
	tooMuch := int64(501)
	if _, err := e.svc.Refund(ctx, admin, c.Purchase.ID, &tooMuch); apperr.CodeOf(err) != apperr.Validation {
		t.Errorf("refund above the amount paid: %v, want VALIDATION", err)
	}
	half := int64(250)
	if _, err := e.svc.Refund(ctx, admin, c.Purchase.ID, &half); err != nil {
		t.Fatal(err)
	}
	if got := e.fake.Object(pay.ChargeID)["amount_refunded"]; got != float64(250) {
		t.Fatalf("Stripe's charge after the refund: amount_refunded %v, want 250", got)
	}
	before := e.balance(t, a.UserID)
	e.mustDeliver(t, e.fake.Event("charge.refunded", pay.ChargeID))
	if after := e.balance(t, a.UserID); after.Balance != before.Balance-50 {
		t.Errorf("balance after half of a 100-credit pack was refunded: %d, want %d", after.Balance, before.Balance-50)
	}
	p, err := e.svc.PurchasesByIDs(ctx, admin, []uuid.UUID{c.Purchase.ID})
	if err != nil || len(p) != 1 || p[0].AmountRefunded != 250 || p[0].CreditsClawedBack != 50 {
		t.Errorf("purchase after the refund: %+v, %v", p, err)
	}
}
