package credit_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/db/dbtest"
)

// TestRandomizedLedger runs thousands of mixed operations from several
// goroutines, then checks every invariant against the database.
func TestRandomizedLedger(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	l := credit.New(db)
	ctx := context.Background()
	users := make([]uuid.UUID, 5)
	for i := range users {
		users[i] = newUser(t, db)
	}

	var (
		mu       sync.Mutex
		open     []uuid.UUID
		resolved = map[uuid.UUID]int{} // successful resolutions per hold
		ops      atomic.Int64
	)
	takeOpen := func(r *rand.Rand) (uuid.UUID, bool) {
		mu.Lock()
		defer mu.Unlock()
		if len(open) == 0 {
			return uuid.Nil, false
		}
		return open[r.IntN(len(open))], true
	}
	markResolved := func(id uuid.UUID) {
		mu.Lock()
		defer mu.Unlock()
		resolved[id]++
		for i, h := range open {
			if h == id {
				open = append(open[:i], open[i+1:]...)
				break
			}
		}
	}
	check := func(err error, allowed ...apperr.Code) {
		if err == nil {
			return
		}
		for _, c := range allowed {
			if apperr.CodeOf(err) == c {
				return
			}
		}
		t.Errorf("unexpected error: %v", err)
	}

	const workers, perWorker = 4, 750
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for range perWorker {
				ops.Add(1)
				user := users[r.IntN(len(users))]
				switch op := r.IntN(100); {
				case op < 25:
					var exp *time.Time
					switch r.IntN(3) {
					case 0:
						x := time.Now().Add(-time.Second)
						exp = &x
					case 1:
						x := time.Now().Add(time.Hour)
						exp = &x
					}
					kinds := []credit.Kind{credit.Purchase, credit.SubscriptionGrant, credit.SignupBonus, credit.Refund}
					_, err := l.Post(ctx, credit.Posting{UserID: user, Amount: int64(1 + r.IntN(20)), Kind: kinds[r.IntN(len(kinds))],
						IdempotencyKey: uuid.NewString(), LotExpiresAt: exp})
					check(err)
				case op < 50:
					h, err := l.Hold(ctx, credit.HoldRequest{UserID: user, Amount: int64(1 + r.IntN(10)), TTL: time.Duration(1+r.IntN(3000)) * time.Millisecond})
					check(err, credit.InsufficientCredits)
					if err == nil {
						mu.Lock()
						open = append(open, h.ID)
						mu.Unlock()
					}
				case op < 65:
					if id, ok := takeOpen(r); ok {
						var amount int64
						if err := db.NewRaw("SELECT amount FROM credit_holds WHERE id = ?", id).Scan(ctx, &amount); err != nil {
							t.Errorf("read hold %s: %v", id, err) // not Fatal: this is a worker goroutine
							return
						}
						_, err := l.Capture(ctx, id, r.Int64N(amount+1))
						check(err, apperr.Conflict)
						if err == nil {
							markResolved(id)
						}
					}
				case op < 78:
					if id, ok := takeOpen(r); ok {
						err := l.Release(ctx, id)
						check(err, apperr.Conflict)
						if err == nil {
							markResolved(id)
						}
					}
				case op < 88:
					kind, reason := credit.Clawback, ""
					if r.IntN(2) == 0 {
						kind, reason = credit.Adjustment, "random test"
					}
					_, err := l.Post(ctx, credit.Posting{UserID: user, Amount: -int64(1 + r.IntN(5)), Kind: kind, Reason: reason, IdempotencyKey: uuid.NewString()})
					check(err, credit.InsufficientCredits)
				case op < 94:
					_, err := l.ExpireLots(ctx)
					check(err)
				default:
					_, err := l.ReleaseExpiredHolds(ctx, time.Now())
					check(err)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d operations", ops.Load())

	for _, u := range users {
		var st struct {
			balance, held, entrySum, openHolds, lotSum int64
		}
		if err := db.NewRaw(`SELECT a.balance, a.held,
				(SELECT coalesce(sum(amount), 0) FROM credit_entries WHERE user_id = a.user_id),
				(SELECT coalesce(sum(amount), 0) FROM credit_holds WHERE user_id = a.user_id AND status = 'held'),
				(SELECT coalesce(sum(remaining), 0) FROM credit_lots WHERE user_id = a.user_id)
			FROM credit_accounts a WHERE a.user_id = ?`, u).Scan(ctx, &st.balance, &st.held, &st.entrySum, &st.openHolds, &st.lotSum); err != nil {
			t.Fatal(err)
		}
		if st.balance != st.entrySum {
			t.Errorf("user %s: balance %d, sum of entries %d", u, st.balance, st.entrySum)
		}
		if st.held != st.openHolds {
			t.Errorf("user %s: held %d, open holds %d", u, st.held, st.openHolds)
		}
		if st.lotSum != st.balance {
			t.Errorf("user %s: lots hold %d, balance %d", u, st.lotSum, st.balance)
		}
	}
	var negative int
	if err := db.NewRaw("SELECT count(*) FROM credit_entries WHERE balance_after < 0").Scan(ctx, &negative); err != nil {
		t.Fatal(err)
	}
	if negative > 0 {
		t.Errorf("%d entries show a negative balance", negative)
	}
	// Every hold resolved at most once, and its capture (if any) is one entry.
	var bad int
	if err := db.NewRaw(`SELECT count(*) FROM credit_holds h WHERE
		(h.status = 'captured' AND h.captured_amount > 0 AND (SELECT count(*) FROM credit_entries e WHERE e.idempotency_key = 'capture:' || h.id) <> 1)
		OR (h.status <> 'captured' AND EXISTS (SELECT 1 FROM credit_entries e WHERE e.idempotency_key = 'capture:' || h.id))
		OR (h.status = 'captured' AND (SELECT -amount FROM credit_entries e WHERE e.idempotency_key = 'capture:' || h.id) <> h.captured_amount)`).Scan(ctx, &bad); err != nil {
		t.Fatal(err)
	}
	if bad > 0 {
		t.Errorf("%d holds whose capture entries do not match their resolution", bad)
	}
	for id, n := range resolved {
		if n != 1 {
			t.Errorf("hold %s resolved %d times", id, n)
		}
	}
	var kinds int
	if err := db.NewRaw("SELECT count(DISTINCT kind) FROM credit_entries").Scan(ctx, &kinds); err != nil {
		t.Fatal(err)
	}
	if kinds < 8 {
		t.Errorf("only %d kinds of entries were exercised, want all 8", kinds)
	}
}
