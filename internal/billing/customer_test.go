package billing_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/fastimage/api/internal/billing"
)

const deleteRoute = "DELETE /v1/customers/{id}"

// An erasure deletes the user's Stripe customer, which ends their plan at
// Stripe; repeating it asks Stripe nothing more.
func TestDeleteCustomer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	a := e.newUser(t)
	p := e.subscribe(t, a)
	bystander := e.newUser(t)
	e.checkout(t, bystander, "pack-100")
	if n := e.fake.Count("customer"); n != 2 {
		t.Fatalf("%d customers at Stripe, want 2", n)
	}

	if err := e.svc.DeleteCustomer(ctx, a.UserID); err != nil {
		t.Fatalf("DeleteCustomer: %v", err)
	}
	if n := e.fake.Count("customer"); n != 1 {
		t.Errorf("%d customers at Stripe after the deletion, want the bystander's", n)
	}
	if st := e.fake.Object(p.SubscriptionID)["status"]; st != "canceled" {
		t.Errorf("the plan at Stripe is %v, want canceled", st)
	}
	if n := e.count(t, "SELECT count(*) FROM users WHERE id = ? AND stripe_customer_id IS NULL", a.UserID); n != 1 {
		t.Error("the user's customer is still recorded")
	}
	// Stripe tells of the plan's end as for any other.
	e.mustDeliver(t, e.fake.Event("customer.subscription.deleted", p.SubscriptionID))
	if sub := e.subscription(t, a); sub.Status != "canceled" || e.limits(t, a.UserID) != "" {
		t.Errorf("after Stripe's word: %s, limits %q", sub.Status, e.limits(t, a.UserID))
	}

	// Again: nothing to do.
	if err := e.svc.DeleteCustomer(ctx, a.UserID); err != nil {
		t.Fatalf("DeleteCustomer again: %v", err)
	}
	if n := e.fake.Calls(deleteRoute); n != 1 {
		t.Errorf("Stripe was asked %d times, want once", n)
	}

	// A user who never paid has no customer to delete.
	if err := e.svc.DeleteCustomer(ctx, e.newUser(t).UserID); err != nil || e.fake.Calls(deleteRoute) != 1 {
		t.Errorf("a user without a customer: %v, %d calls", err, e.fake.Calls(deleteRoute))
	}

	// A customer Stripe no longer knows (deleted by an attempt that died
	// before recording it) counts as deleted.
	gone := e.newUser(t)
	if _, err := e.db.ExecContext(ctx, "UPDATE users SET stripe_customer_id = 'cus_gone' WHERE id = ?", gone.UserID); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.DeleteCustomer(ctx, gone.UserID); err != nil {
		t.Errorf("a customer Stripe does not know: %v", err)
	}
	if n := e.count(t, "SELECT count(*) FROM users WHERE id = ? AND stripe_customer_id IS NULL", gone.UserID); n != 1 {
		t.Error("the unknown customer is still recorded")
	}
}

// When Stripe fails, the customer stays recorded, so that the erasure's
// next attempt deletes it; with payments off there is nothing to call.
func TestDeleteCustomerFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	a := e.newUser(t)
	if _, err := e.db.ExecContext(ctx, "UPDATE users SET stripe_customer_id = 'cus_kept' WHERE id = ?", a.UserID); err != nil {
		t.Fatal(err)
	}
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte(`{"error":{"type":"api_error","message":"down"}}`))
	}))
	defer down.Close()
	for name, svc := range map[string]*billing.Service{
		"stripe down":  billing.New(e.db, billing.DefaultCatalog(), billing.Config{SecretKey: "sk_test_down", APIBase: down.URL, PublicURL: mustURL(t, "https://app.example.test")}, slog.New(slog.DiscardHandler)),
		"payments off": billing.New(e.db, billing.DefaultCatalog(), billing.Config{PublicURL: mustURL(t, "https://app.example.test")}, slog.New(slog.DiscardHandler)),
	} {
		err := svc.DeleteCustomer(ctx, a.UserID)
		if (err != nil) != (name == "stripe down") {
			t.Errorf("%s: got %v", name, err)
		}
		if n := e.count(t, "SELECT count(*) FROM users WHERE id = ? AND stripe_customer_id = 'cus_kept'", a.UserID); n != 1 {
			t.Errorf("%s: the customer is no longer recorded", name)
		}
	}
}
