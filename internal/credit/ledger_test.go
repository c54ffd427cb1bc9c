package credit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/db/dbtest"
)

func newUser(t testing.TB, db *bun.DB) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	email := fmt.Sprintf("u%s@example.com", uuid.NewString()[:8])
	if err := db.NewRaw("INSERT INTO users (email, password_hash) VALUES (?, 'x') RETURNING id", email).Scan(context.Background(), &id); err != nil {
		t.Fatal(err)
	}
	return id
}

func grant(t testing.TB, l *credit.Ledger, user uuid.UUID, amount int64, expires *time.Time) *credit.Entry {
	t.Helper()
	e, err := l.Post(context.Background(), credit.Posting{
		UserID: user, Amount: amount, Kind: credit.Purchase, IdempotencyKey: uuid.NewString(), LotExpiresAt: expires,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func hold(t testing.TB, l *credit.Ledger, r credit.HoldRequest) *credit.Hold {
	t.Helper()
	h, err := l.Hold(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func balance(t testing.TB, l *credit.Ledger, user uuid.UUID) credit.Balance {
	t.Helper()
	b, err := l.BalanceOf(context.Background(), actor.Actor{UserID: user}, user)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParallelHoldsNeverOverdraw(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	l := credit.New(db)
	user := newUser(t, db)
	grant(t, l, user, 10, nil)

	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			_, err := l.Hold(context.Background(), credit.HoldRequest{UserID: user, Amount: 1, TTL: time.Hour})
			switch apperr.CodeOf(err) {
			case "":
				ok.Add(1)
			case credit.InsufficientCredits:
				refused.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 10 || refused.Load() != 90 {
		t.Fatalf("%d holds succeeded, %d refused; want 10 and 90", ok.Load(), refused.Load())
	}
	if b := balance(t, l, user); b != (credit.Balance{Balance: 10, Held: 10, Available: 0}) {
		t.Fatalf("balance %+v, want 10 held 10", b)
	}
	_, err := l.Hold(context.Background(), credit.HoldRequest{UserID: user, Amount: 1, TTL: time.Hour})
	var ae *apperr.Error
	if !errors.As(err, &ae) || ae.Fields["available"] != int64(0) {
		t.Errorf("refusal does not say what is available: %v", err)
	}
}

func TestEntriesCannotChange(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	l := credit.New(db)
	user := newUser(t, db)
	e := grant(t, l, user, 5, nil)
	ctx := context.Background()
	// refuse_change() raises restrict_violation. A negative balance breaks
	// two CHECKs; Postgres tries them in name order, so available_check
	// reports it.
	const appendOnly = "credit_entries is append-only"
	for _, tt := range []struct {
		name, query      string
		arg              any
		code, constraint string
		message          string
	}{
		{"update an entry", "UPDATE credit_entries SET amount = 500 WHERE id = ?", e.ID, "23001", "", appendOnly},
		{"delete an entry", "DELETE FROM credit_entries WHERE id = ?", e.ID, "23001", "", appendOnly},
		{"truncate the ledger", "TRUNCATE credit_entries CASCADE", nil, "23001", "", appendOnly},
		{"negative balance", "UPDATE credit_accounts SET balance = -1 WHERE user_id = ?", user, "23514", "credit_accounts_available_check", ""},
		{"held above the balance", "UPDATE credit_accounts SET held = 6 WHERE user_id = ?", user, "23514", "credit_accounts_available_check", ""},
		{"negative held", "UPDATE credit_accounts SET held = -1 WHERE user_id = ?", user, "23514", "credit_accounts_held_check", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var args []any
			if tt.arg != nil {
				args = append(args, tt.arg)
			}
			_, err := db.ExecContext(ctx, tt.query, args...)
			var pgErr pgdriver.Error
			if !errors.As(err, &pgErr) {
				t.Fatalf("got %v, want a refusal from Postgres", err)
			}
			if got := pgErr.Field('C'); got != tt.code {
				t.Errorf("got SQLSTATE %s (%v), want %s", got, err, tt.code)
			}
			if got := pgErr.Field('n'); got != tt.constraint {
				t.Errorf("got constraint %q, want %q", got, tt.constraint)
			}
			if got := pgErr.Field('M'); tt.message != "" && got != tt.message {
				t.Errorf("got message %q, want %q", got, tt.message)
			}
		})
	}
	var amount int64
	if err := db.NewRaw("SELECT amount FROM credit_entries WHERE id = ?", e.ID).Scan(ctx, &amount); err != nil {
		t.Fatal(err)
	}
	if amount != 5 {
		t.Errorf("got amount %d after the refusals, want 5", amount)
	}
	if b := balance(t, l, user); b != (credit.Balance{Balance: 5, Held: 0, Available: 5}) {
		t.Errorf("got balance %+v after the refusals, want 5 held 0", b)
	}
}

func TestSameKeyIsOneEntry(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	l := credit.New(db)
	user := newUser(t, db)
	p := credit.Posting{UserID: user, Amount: 7, Kind: credit.Purchase, IdempotencyKey: "purchase:cs_123", Ref: credit.Ref{Type: "Purchase", ID: "cs_123"}}
	var wg sync.WaitGroup
	ids := make([]uuid.UUID, 20)
	for i := range ids {
		wg.Go(func() {
			e, err := l.Post(context.Background(), p)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = e.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("the same key gave different entries: %v and %v", ids[0], id)
		}
	}
	if b := balance(t, l, user); b.Balance != 7 {
		t.Fatalf("balance %d after 20 postings of one key, want 7", b.Balance)
	}
	var n int
	if err := db.NewRaw("SELECT count(*) FROM credit_entries WHERE user_id = ?", user).Scan(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d entries, want 1", n)
	}
}

func TestHoldResolvesExactlyOnce(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	l := credit.New(db)
	ctx := context.Background()
	user := newUser(t, db)
	grant(t, l, user, 20, nil)

	h, err := l.Hold(ctx, credit.HoldRequest{UserID: user, Amount: 8, TTL: time.Hour, Ref: credit.Ref{Type: "Generation", ID: "g1"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Capture(ctx, h.ID, 9); apperr.CodeOf(err) != apperr.Validation {
		t.Errorf("capture above the hold: %v, want VALIDATION", err)
	}
	e, err := l.Capture(ctx, h.ID, 5)
	if err != nil {
		t.Fatal(err)
	}
	if e.Amount != -5 || e.Kind != credit.Spend || e.BalanceAfter != 15 || *e.ReferenceType != "Generation" {
		t.Errorf("capture entry %+v", e)
	}
	if b := balance(t, l, user); b != (credit.Balance{Balance: 15, Held: 0, Available: 15}) {
		t.Errorf("after capturing 5 of 8: %+v", b)
	}
	if _, err := l.Capture(ctx, h.ID, 5); apperr.CodeOf(err) != apperr.Conflict {
		t.Errorf("second capture: %v, want CONFLICT", err)
	}
	if err := l.Release(ctx, h.ID); apperr.CodeOf(err) != apperr.Conflict {
		t.Errorf("release after capture: %v, want CONFLICT", err)
	}

	h2 := hold(t, l, credit.HoldRequest{UserID: user, Amount: 4, TTL: time.Hour})
	if err := l.Release(ctx, h2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Capture(ctx, h2.ID, 1); apperr.CodeOf(err) != apperr.Conflict {
		t.Errorf("capture after release: %v, want CONFLICT", err)
	}

	// Racing resolutions: one wins.
	h3 := hold(t, l, credit.HoldRequest{UserID: user, Amount: 3, TTL: time.Hour})
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			var err error
			if i%2 == 0 {
				_, err = l.Capture(ctx, h3.ID, 3)
			} else {
				err = l.Release(ctx, h3.ID)
			}
			if err == nil {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("%d resolutions of one hold succeeded, want 1", wins.Load())
	}
	if b := balance(t, l, user); b.Held != 0 {
		t.Errorf("held %d after every hold resolved", b.Held)
	}

	// The sweeper releases holds whose work never finished, once their
	// time is up and not before.
	h4 := hold(t, l, credit.HoldRequest{UserID: user, Amount: 2, TTL: time.Hour})
	if n, err := l.ReleaseExpiredHolds(ctx, time.Now().Add(59*time.Minute)); err != nil || n != 0 {
		t.Fatalf("sweeper released %d (%v) before the hold expired, want 0", n, err)
	}
	n, err := l.ReleaseExpiredHolds(ctx, time.Now().Add(61*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("sweeper released %d (%v), want 1", n, err)
	}
	if err := l.Release(ctx, h4.ID); apperr.CodeOf(err) != apperr.Conflict {
		t.Errorf("the swept hold is still open: %v", err)
	}
}

func TestLotsSpendFirstExpiringAndExpireOnce(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	l := credit.New(db)
	ctx := context.Background()
	user := newUser(t, db)
	in := func(d time.Duration) *time.Time { x := time.Now().Add(d); return &x }
	a := grant(t, l, user, 10, in(time.Hour))
	never := grant(t, l, user, 10, nil)
	c := grant(t, l, user, 5, in(10*time.Minute))
	if a.LotExpiresAt == nil || never.LotExpiresAt != nil {
		t.Fatalf("grant entries do not carry their lot's expiry")
	}

	h := hold(t, l, credit.HoldRequest{UserID: user, Amount: 12, TTL: time.Hour})
	if _, err := l.Capture(ctx, h.ID, 12); err != nil {
		t.Fatal(err)
	}
	remaining := func(lot uuid.UUID) int64 {
		var r int64
		if err := db.NewRaw("SELECT remaining FROM credit_lots WHERE id = ?", lot).Scan(ctx, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if rc, ra, rn := remaining(*c.LotID), remaining(*a.LotID), remaining(*never.LotID); rc != 0 || ra != 3 || rn != 10 {
		t.Fatalf("after spending 12: soonest lot %d, next %d, never-expiring %d; want 0, 3, 10", rc, ra, rn)
	}

	// Lot a (3 left) expires while 2 credits are held for running work.
	h2 := hold(t, l, credit.HoldRequest{UserID: user, Amount: 12, TTL: time.Hour})
	if _, err := db.ExecContext(ctx, "UPDATE credit_lots SET expires_at = now() - interval '1 second' WHERE id IN (?, ?)", *a.LotID, *c.LotID); err != nil {
		t.Fatal(err)
	}
	n, err := l.ExpireLots(ctx)
	if err != nil || n != 1 {
		t.Fatalf("expiry posted %d (%v), want 1 (only the free part of lot a)", n, err)
	}
	if b := balance(t, l, user); b.Balance != 12 || b.Held != 12 {
		t.Fatalf("after a partial expiry: %+v, want balance 12 held 12", b)
	}
	if n, err := l.ExpireLots(ctx); err != nil || n != 0 {
		t.Fatalf("a second expiry run posted %d (%v), want 0", n, err)
	}
	// Once the work is done the rest of lot a expires too, once.
	if err := l.Release(ctx, h2.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := l.ExpireLots(ctx); err != nil || n != 1 {
		t.Fatalf("after the release, expiry posted %d (%v), want 1 (lot a's last 2)", n, err)
	}
	if n, err := l.ExpireLots(ctx); err != nil || n != 0 {
		t.Fatalf("a rerun posted %d (%v), want 0", n, err)
	}
	if b := balance(t, l, user); b.Balance != 10 || b.Held != 0 {
		t.Fatalf("balance %+v, want 10: only the never-expiring lot is left", b)
	}
	var expired int64
	if err := db.NewRaw("SELECT coalesce(sum(amount), 0) FROM credit_entries WHERE user_id = ? AND kind = 'EXPIRY'", user).Scan(ctx, &expired); err != nil {
		t.Fatal(err)
	}
	if expired != -3 {
		t.Fatalf("expired %d credits in all, want exactly lot a's unused 3", -expired)
	}
}

// TestChargeAfterRelease: charging for work whose hold was released
// meanwhile spends from the available credits, once however often it is
// asked; charging a captured hold changes nothing; and charging more than
// is available is refused with INSUFFICIENT_CREDITS.
func TestChargeAfterRelease(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	l := credit.New(db)
	ctx := context.Background()
	user := newUser(t, db)
	grant(t, l, user, 10, nil)
	charge := func(id uuid.UUID, amount int64) (*credit.Entry, error) {
		var e *credit.Entry
		err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			var err error
			e, err = credit.ChargeTx(ctx, tx, id, amount)
			return err
		})
		return e, err
	}

	released := hold(t, l, credit.HoldRequest{UserID: user, Amount: 4, TTL: time.Hour, Ref: credit.Ref{Type: "Generation", ID: "g1"}})
	if err := l.Release(ctx, released.ID); err != nil {
		t.Fatal(err)
	}
	first, err := charge(released.ID, 3)
	if err != nil {
		t.Fatal(err)
	}
	again, err := charge(released.ID, 3)
	if err != nil {
		t.Fatal(err)
	}
	if first == nil || again == nil || first.ID != again.ID || first.Amount != -3 || *first.ReferenceID != "g1" {
		t.Errorf("charges of a released hold: got %+v and %+v, want one entry of -3 for g1", first, again)
	}
	if b := balance(t, l, user); b.Balance != 7 || b.Held != 0 {
		t.Errorf("after charging a released hold: got balance %d, held %d; want 7, 0", b.Balance, b.Held)
	}

	captured := hold(t, l, credit.HoldRequest{UserID: user, Amount: 2, TTL: time.Hour})
	e, err := charge(captured.ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := charge(captured.ID, 2); err != nil || again == nil || again.ID != e.ID {
		t.Errorf("charge of a captured hold: got %+v (%v), want its capture %v", again, err, e.ID)
	}
	if b := balance(t, l, user); b.Balance != 5 || b.Held != 0 {
		t.Errorf("after charging a captured hold again: got balance %d, held %d; want 5, 0", b.Balance, b.Held)
	}

	short := hold(t, l, credit.HoldRequest{UserID: user, Amount: 5, TTL: time.Hour})
	if err := l.Release(ctx, short.ID); err != nil {
		t.Fatal(err)
	}
	hold(t, l, credit.HoldRequest{UserID: user, Amount: 2, TTL: time.Hour}) // 3 of 5 available
	if _, err := charge(short.ID, 5); apperr.CodeOf(err) != credit.InsufficientCredits {
		t.Errorf("charge beyond the available credits: got %v, want %s", err, credit.InsufficientCredits)
	}
}
