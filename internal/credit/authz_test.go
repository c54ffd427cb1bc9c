package credit_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/db/dbtest"
)

// TestAnotherUsersCreditsAreRefused reads and changes user A's credits with
// user B's actor, A's own and an admin's: the domain refuses B (FORBIDDEN
// for A's account, nothing of A's among entries by id) and anyone but an
// admin adjusting, and lets A and the admin through.
func TestAnotherUsersCreditsAreRefused(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	l := credit.New(db)
	ctx := context.Background()
	userA, userB, userAdmin := newUser(t, db), newUser(t, db), newUser(t, db)
	a, b := actor.Actor{UserID: userA}, actor.Actor{UserID: userB}
	admin := actor.Actor{UserID: userAdmin, Role: actor.RoleAdmin}
	entryA := grant(t, l, userA, 40, nil)
	grant(t, l, userB, 7, nil) // B has entries too: a leak would not read as empty

	reads := []struct {
		name string
		who  actor.Actor
		want apperr.Code
	}{
		{"B", b, apperr.Forbidden},
		{"A", a, ""},
		{"admin", admin, ""},
	}
	for _, tc := range reads {
		t.Run("BalanceOf A by "+tc.name, func(t *testing.T) {
			bal, err := l.BalanceOf(ctx, tc.who, userA)
			if got := apperr.CodeOf(err); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if err == nil && bal.Balance != 40 {
				t.Errorf("got balance %d, want 40", bal.Balance)
			}
		})
		t.Run("Entries of A by "+tc.name, func(t *testing.T) {
			page, err := l.Entries(ctx, tc.who, userA, 10, nil)
			if got := apperr.CodeOf(err); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if err == nil && (len(page.Items) != 1 || page.Items[0].ID != entryA.ID) {
				t.Errorf("got %v, want only %v", page.Items, entryA.ID)
			}
		})
	}

	byIDs := []struct {
		name string
		who  actor.Actor
		want int
	}{
		{"B", b, 0},
		{"A", a, 1},
	}
	for _, tc := range byIDs {
		t.Run("EntriesByIDs of A's by "+tc.name, func(t *testing.T) {
			entries, err := l.EntriesByIDs(ctx, tc.who, []uuid.UUID{entryA.ID})
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != tc.want {
				t.Errorf("got %d entries, want %d", len(entries), tc.want)
			}
		})
	}

	adjusts := []struct {
		name string
		who  actor.Actor
		want apperr.Code
	}{
		{"B", b, apperr.Forbidden},
		{"A (own account)", a, apperr.Forbidden},
		{"admin", admin, ""},
	}
	for _, tc := range adjusts {
		t.Run("Adjust A by "+tc.name, func(t *testing.T) {
			before := balance(t, l, userA)
			e, err := l.Adjust(ctx, tc.who, userA, 5, "goodwill")
			if got := apperr.CodeOf(err); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			wantBalance := before.Balance
			if err == nil {
				wantBalance += 5
				if e.UserID != userA || e.Kind != credit.Adjustment || e.Amount != 5 || e.Reason == nil || *e.Reason != "goodwill" {
					t.Errorf("got entry %+v, want an adjustment of 5 to %v for goodwill", e, userA)
				}
			}
			if after := balance(t, l, userA); after.Balance != wantBalance {
				t.Errorf("got balance %d, want %d", after.Balance, wantBalance)
			}
		})
	}
}
