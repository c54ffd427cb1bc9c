package credit_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/feed"
)

// feedAfter returns the user's credit feed entries after seq, decoded, and
// the last seq.
func feedAfter(t *testing.T, db *bun.DB, user uuid.UUID, after int64) ([]feed.CreditsChanged, int64) {
	t.Helper()
	var es []feed.Entry
	if err := db.NewSelect().Model(&es).Where("user_id = ? AND seq > ?", user, after).Order("seq").Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	var out []feed.CreditsChanged
	for _, e := range es {
		p, err := e.Decode()
		if err != nil {
			t.Fatal(err)
		}
		c, ok := p.(feed.CreditsChanged)
		if !ok {
			t.Fatalf("feed entry %d: got %T, want feed.CreditsChanged", e.Seq, p)
		}
		out = append(out, c)
		after = e.Seq
	}
	return out, after
}

// TestEveryBalanceChangeTellsTheFeed: each change of a user's credits
// appends exactly one CreditsChanged to their feed, with the balance, held
// and available amounts after it and its cause (HOLD, the entry kind, or
// RELEASE) and reference; a refused or replayed change appends nothing.
func TestEveryBalanceChangeTellsTheFeed(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	ctx := context.Background()
	l := credit.New(db)
	user := newUser(t, db)
	gen1, gen2, gen3 := uuid.NewString(), uuid.NewString(), uuid.NewString()
	admin := uuid.New()
	grantKey := "purchase:" + uuid.NewString()
	past := time.Now().Add(-time.Hour)
	var h1, h2, h3, bare *credit.Hold
	var expiring *credit.Entry

	held := func(h **credit.Hold, amount int64, ref credit.Ref) func() error {
		return func() error {
			var err error
			*h, err = l.Hold(ctx, credit.HoldRequest{UserID: user, Amount: amount, Ref: ref, TTL: time.Hour})
			return err
		}
	}
	is := func(cs ...feed.CreditsChanged) func() []feed.CreditsChanged {
		return func() []feed.CreditsChanged { return cs }
	}
	changed := func(balance, held int64, cause, refType, refID string) feed.CreditsChanged {
		return feed.CreditsChanged{Balance: balance, Held: held, Available: balance - held, Cause: cause, RefType: refType, RefID: refID}
	}
	steps := []struct {
		name string
		do   func() error
		code apperr.Code
		// want is read after do: it may name what do made.
		want func() []feed.CreditsChanged
	}{
		{"a purchase", func() error {
			_, err := l.Post(ctx, credit.Posting{UserID: user, Amount: 100, Kind: credit.Purchase, IdempotencyKey: grantKey,
				Ref: credit.Ref{Type: "Purchase", ID: "cs_1"}})
			return err
		}, "", is(changed(100, 0, string(credit.Purchase), "Purchase", "cs_1"))},
		{"a replayed purchase", func() error {
			_, err := l.Post(ctx, credit.Posting{UserID: user, Amount: 100, Kind: credit.Purchase, IdempotencyKey: grantKey,
				Ref: credit.Ref{Type: "Purchase", ID: "cs_1"}})
			return err
		}, "", is()},
		{"a hold", held(&h1, 30, credit.Ref{Type: "Generation", ID: gen1}), "",
			is(changed(100, 30, credit.CauseHold, "Generation", gen1))},
		{"a capture", func() error { _, err := l.Capture(ctx, h1.ID, 20); return err }, "",
			is(changed(80, 0, string(credit.Spend), "Generation", gen1))},
		{"another hold", held(&h2, 10, credit.Ref{Type: "Generation", ID: gen2}), "",
			is(changed(80, 10, credit.CauseHold, "Generation", gen2))},
		{"a release", func() error { return l.Release(ctx, h2.ID) }, "",
			is(changed(80, 0, credit.CauseRelease, "Generation", gen2))},
		{"a capture of a released hold", func() error { _, err := l.Capture(ctx, h2.ID, 1); return err }, apperr.Conflict, is()},
		{"a release of a captured hold", func() error { return l.Release(ctx, h1.ID) }, apperr.Conflict, is()},
		{"a third hold", held(&h3, 5, credit.Ref{Type: "Generation", ID: gen3}), "",
			is(changed(80, 5, credit.CauseHold, "Generation", gen3))},
		{"a capture of nothing", func() error { _, err := l.Capture(ctx, h3.ID, 0); return err }, "",
			is(changed(80, 0, credit.CauseRelease, "Generation", gen3))},
		{"a hold without reference", held(&bare, 4, credit.Ref{}), "",
			is(changed(80, 4, credit.CauseHold, "", ""))},
		{"its capture names the hold", func() error { _, err := l.Capture(ctx, bare.ID, 3); return err }, "",
			func() []feed.CreditsChanged {
				return []feed.CreditsChanged{changed(77, 0, string(credit.Spend), "CreditHold", bare.ID.String())}
			}},
		{"a hold beyond the available credits", held(new(*credit.Hold), 78, credit.Ref{Type: "Generation", ID: gen3}), credit.InsufficientCredits, is()},
		{"a spend beyond the available credits", func() error {
			_, err := l.Post(ctx, credit.Posting{UserID: user, Amount: -78, Kind: credit.Spend, IdempotencyKey: uuid.NewString()})
			return err
		}, credit.InsufficientCredits, is()},
		{"a malformed posting", func() error {
			_, err := l.Post(ctx, credit.Posting{UserID: user, Amount: -1, Kind: credit.Purchase, IdempotencyKey: uuid.NewString()})
			return err
		}, apperr.Validation, is()},
		{"an adjustment", func() error {
			_, err := l.Adjust(ctx, actor.Actor{UserID: admin, Role: actor.RoleAdmin}, user, -7, "duplicate grant")
			return err
		}, "", is(changed(70, 0, string(credit.Adjustment), "User", admin.String()))},
		{"a grant that expires", func() error {
			var err error
			expiring, err = l.Post(ctx, credit.Posting{UserID: user, Amount: 5, Kind: credit.SubscriptionGrant, IdempotencyKey: uuid.NewString(), LotExpiresAt: &past})
			return err
		}, "", is(changed(75, 0, string(credit.SubscriptionGrant), "", ""))},
		{"its expiry", func() error {
			n, err := l.ExpireLots(ctx)
			if err == nil && n != 1 {
				t.Errorf("expired %d lots, want 1", n)
			}
			return err
		}, "", func() []feed.CreditsChanged {
			return []feed.CreditsChanged{changed(70, 0, string(credit.Expiry), "CreditLot", expiring.LotID.String())}
		}},
	}

	var last int64
	for _, s := range steps {
		// Each step builds on the ones before: stop at the first that fails.
		if !t.Run(s.name, func(t *testing.T) {
			if got := apperr.CodeOf(s.do()); got != s.code {
				t.Fatalf("code: got %q, want %q", got, s.code)
			}
			var got []feed.CreditsChanged
			got, last = feedAfter(t, db, user, last)
			if want := s.want(); !slices.Equal(got, want) {
				t.Errorf("feed: got %+v, want %+v", got, want)
			}
			b := balance(t, l, user)
			if len(got) > 0 {
				if c := got[len(got)-1]; c.Balance != b.Balance || c.Held != b.Held || c.Available != b.Available {
					t.Errorf("feed says %+v, ledger says %+v", c, b)
				}
			}
		}) {
			return
		}
	}
}
