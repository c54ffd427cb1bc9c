package feed_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/events"
	"github.com/fastimage/api/internal/feed"
)

// deadline bounds every wait for an entry.
const deadline = 10 * time.Second

func newUser(t *testing.T, db *bun.DB) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	email := fmt.Sprintf("u%s@example.com", uuid.NewString()[:8])
	if err := db.NewRaw("INSERT INTO users (email, password_hash) VALUES (?, 'x') RETURNING id", email).Scan(context.Background(), &id); err != nil {
		t.Fatal(err)
	}
	return id
}

// credits is an entry told apart from others by n.
func credits(n int64) feed.CreditsChanged {
	return feed.CreditsChanged{Balance: n, Held: 1, Available: n - 1, Cause: "PURCHASE"}
}

// appendOne appends p to the user's feed in a transaction of its own.
func appendOne(t *testing.T, db *bun.DB, user uuid.UUID, p feed.Payload) {
	t.Helper()
	if err := db.RunInTx(context.Background(), nil, func(ctx context.Context, tx bun.Tx) error {
		return feed.AppendTx(ctx, tx, user, p)
	}); err != nil {
		t.Error(err)
	}
}

// stored returns the user's entries, in order of seq.
func stored(t *testing.T, db *bun.DB, user uuid.UUID) []feed.Entry {
	t.Helper()
	var es []feed.Entry
	if err := db.NewSelect().Model(&es).Where("user_id = ?", user).Order("seq").Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	return es
}

func seqs(es []feed.Entry) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

// upTo returns from, from+1, …, to.
func upTo(from, to int64) []int64 {
	var out []int64
	for n := from; n <= to; n++ {
		out = append(out, n)
	}
	return out
}

// balances decodes CreditsChanged entries and returns their balances.
func balances(t *testing.T, es []feed.Entry) []int64 {
	t.Helper()
	out := make([]int64, len(es))
	for i, e := range es {
		p, err := e.Decode()
		if err != nil {
			t.Fatal(err)
		}
		c, ok := p.(feed.CreditsChanged)
		if !ok {
			t.Fatalf("entry %d: got %T, want feed.CreditsChanged", e.Seq, p)
		}
		out[i] = c.Balance
	}
	return out
}

// TestAppendNumbersEntriesPerUser: each user's entries are numbered 1, 2,
// 3 …, with no gap when an appender rolls back, in commit order (a second
// appender waits for the first to commit), and uniquely and without gaps
// when many transactions append at once.
func TestAppendNumbersEntriesPerUser(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	ctx := context.Background()
	alice, bob := newUser(t, db), newUser(t, db)

	for i := range 3 {
		appendOne(t, db, alice, credits(int64(i+1)))
	}
	for i := range 2 {
		appendOne(t, db, bob, credits(int64(i+1)))
	}
	if got, want := seqs(stored(t, db, alice)), upTo(1, 3); !slices.Equal(got, want) {
		t.Fatalf("alice's seqs: got %v, want %v", got, want)
	}
	if got, want := seqs(stored(t, db, bob)), upTo(1, 2); !slices.Equal(got, want) {
		t.Fatalf("bob's seqs: got %v, want %v", got, want)
	}

	t.Run("a rolled back append leaves no gap", func(t *testing.T) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := feed.AppendTx(ctx, tx, alice, credits(-1)); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		appendOne(t, db, alice, credits(4))
		es := stored(t, db, alice)
		if got, want := seqs(es), upTo(1, 4); !slices.Equal(got, want) {
			t.Errorf("seqs: got %v, want %v", got, want)
		}
		if got, want := balances(t, es), []int64{1, 2, 3, 4}; !slices.Equal(got, want) {
			t.Errorf("entries: got %v, want %v", got, want)
		}
	})

	t.Run("numbers follow commit order", func(t *testing.T) {
		first, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = first.Rollback() }()
		if err := feed.AppendTx(ctx, first, alice, credits(5)); err != nil {
			t.Fatal(err)
		}
		var firstPID int
		if err := first.NewRaw("SELECT pg_backend_pid()").Scan(ctx, &firstPID); err != nil {
			t.Fatal(err)
		}
		second := make(chan error, 1)
		go func() {
			second <- db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				return feed.AppendTx(ctx, tx, alice, credits(6))
			})
		}()
		// The second appender must wait for the first to commit.
		end := time.Now().Add(deadline)
		for {
			var waiting bool
			if err := db.NewRaw(`SELECT EXISTS (SELECT 1 FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock' AND ? = ANY (pg_blocking_pids(pid)))`, firstPID).
				Scan(ctx, &waiting); err != nil {
				t.Fatal(err)
			}
			if waiting {
				break
			}
			select {
			case err := <-second:
				t.Fatalf("the second appender finished (%v) while the first had not committed; want it to wait", err)
			default:
			}
			if time.Now().After(end) {
				t.Fatal("the second appender never waited for the first")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := first.Commit(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-second:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(deadline):
			t.Fatal("the second appender did not finish after the first committed")
		}
		es := stored(t, db, alice)
		if got, want := seqs(es), upTo(1, 6); !slices.Equal(got, want) {
			t.Errorf("seqs: got %v, want %v", got, want)
		}
		if got, want := balances(t, es)[4:], []int64{5, 6}; !slices.Equal(got, want) {
			t.Errorf("last entries: got %v, want %v (commit order)", got, want)
		}
	})

	t.Run("concurrent appenders", func(t *testing.T) {
		const appenders, each = 8, 10
		var wg sync.WaitGroup
		for a := range appenders {
			wg.Go(func() {
				for i := range each {
					appendOne(t, db, alice, credits(int64(1000+a*each+i)))
				}
			})
		}
		wg.Wait()
		es := stored(t, db, alice)
		if got, want := seqs(es), upTo(1, 6+appenders*each); !slices.Equal(got, want) {
			t.Errorf("seqs: got %v, want %v", got, want)
		}
		got := balances(t, es)[6:]
		slices.Sort(got)
		if want := upTo(1000, 1000+appenders*each-1); !slices.Equal(got, want) {
			t.Errorf("entries: got %v, want %v", got, want)
		}
		if got, want := seqs(stored(t, db, bob)), upTo(1, 2); !slices.Equal(got, want) {
			t.Errorf("bob's seqs: got %v, want %v", got, want)
		}
	})
}

// TestDecode: an entry decodes to the typed payload it was appended with;
// an unknown kind or a malformed payload is an error.
func TestDecode(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	user := newUser(t, db)
	genID, workID := uuid.New(), uuid.New()
	appended := []feed.Payload{
		feed.GenerationChanged{GenerationID: genID, WorkID: workID, Status: "running"},
		feed.CreditsChanged{Balance: 100, Held: 30, Available: 70, Cause: "HOLD", RefType: "Generation", RefID: genID.String()},
		feed.CreditsChanged{Balance: 100, Held: 0, Available: 100, Cause: "PURCHASE"},
		feed.PurchaseChanged{PurchaseID: genID, Status: "paid"},
		feed.SubscriptionChanged{SubscriptionID: workID, PlanCode: "pro-monthly", Status: "active", CancelAtPeriodEnd: true},
	}
	for _, p := range appended {
		appendOne(t, db, user, p)
	}
	es := stored(t, db, user)
	if len(es) != len(appended) {
		t.Fatalf("got %d entries, want %d", len(es), len(appended))
	}
	for i, e := range es {
		t.Run(fmt.Sprintf("stored %d", e.Seq), func(t *testing.T) {
			if e.Kind != appended[i].Kind() {
				t.Errorf("kind: got %q, want %q", e.Kind, appended[i].Kind())
			}
			got, err := e.Decode()
			if err != nil {
				t.Fatal(err)
			}
			if got != appended[i] {
				t.Errorf("got %#v, want %#v", got, appended[i])
			}
		})
	}

	bad := []struct {
		name    string
		kind    feed.Kind
		payload string
	}{
		{"unknown kind", "REFUND_REQUEST", `{"balance": 1}`},
		{"empty kind", "", `{}`},
		{"not JSON", feed.KindCredits, `balance=1`},
		{"balance of the wrong type", feed.KindCredits, `{"balance": "many"}`},
		{"generation id not a uuid", feed.KindGeneration, `{"generationId": "g-1", "status": "running"}`},
		{"array instead of object", feed.KindGeneration, `[]`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			e := feed.Entry{UserID: user, Seq: 1, Kind: tc.kind, Payload: json.RawMessage(tc.payload)}
			if p, err := e.Decode(); err == nil {
				t.Errorf("got %#v, want an error", p)
			}
		})
	}
}

// follower reads a stream, checking that every entry is its user's.
type follower struct {
	t    *testing.T
	user uuid.UUID
	ch   <-chan feed.Entry
}

func follow(t *testing.T, svc *feed.Service, user uuid.UUID, afterSeq int64) *follower {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &follower{t: t, user: user, ch: mustStream(t, svc, ctx, user, afterSeq)}
}

// next returns the next n entries.
func (f *follower) next(n int) []feed.Entry {
	f.t.Helper()
	var out []feed.Entry
	timeout := time.After(deadline)
	for len(out) < n {
		select {
		case e, ok := <-f.ch:
			if !ok {
				f.t.Fatalf("stream closed after %d of %d entries", len(out), n)
			}
			if e.UserID != f.user {
				f.t.Fatalf("entry %d: got user %v's, want only %v's", e.Seq, e.UserID, f.user)
			}
			out = append(out, e)
		case <-timeout:
			f.t.Fatalf("got %d of %d entries after %v", len(out), n, deadline)
		}
	}
	return out
}

// TestStream: a stream replays a user's entries after a seq, then follows
// entries appended while it runs, by many transactions at once, in order
// with nothing lost or repeated; it resumes after a given seq; and it never
// yields another user's entries.
func TestStream(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	log := slog.New(slog.DiscardHandler)
	bus := events.New(db, log)
	ctx, stopBus := context.WithCancel(context.Background())
	busDone := make(chan struct{})
	go func() {
		defer close(busDone)
		bus.Run(ctx)
	}()
	t.Cleanup(func() {
		stopBus()
		<-busDone
	})
	// A poll far beyond the deadline: entries must arrive by the doorbell
	// that AppendTx rings.
	svc := feed.New(db, bus, log, time.Hour)
	alice, bob := newUser(t, db), newUser(t, db)
	for i := range 3 {
		appendOne(t, db, alice, credits(int64(i+1)))
		appendOne(t, db, bob, credits(int64(-i-1)))
	}

	fromStart := follow(t, svc, alice, 0)
	if got, want := seqs(fromStart.next(3)), upTo(1, 3); !slices.Equal(got, want) {
		t.Fatalf("replayed seqs: got %v, want %v", got, want)
	}
	resumed := follow(t, svc, alice, 2)
	if got, want := seqs(resumed.next(1)), upTo(3, 3); !slices.Equal(got, want) {
		t.Fatalf("resumed seqs: got %v, want %v", got, want)
	}
	bobs := follow(t, svc, bob, 0)
	if got, want := balances(t, bobs.next(3)), []int64{-1, -2, -3}; !slices.Equal(got, want) {
		t.Fatalf("bob's entries: got %v, want %v", got, want)
	}

	// Many appenders at once, for both users, while the streams run.
	const appenders, each = 4, 10
	var wg sync.WaitGroup
	for a := range appenders {
		wg.Go(func() {
			for i := range each {
				appendOne(t, db, alice, credits(int64(100+a*each+i)))
				appendOne(t, db, bob, credits(int64(-100-a*each-i)))
			}
		})
	}
	live := appenders * each
	gotLive := fromStart.next(live)
	wg.Wait()
	if got, want := seqs(gotLive), upTo(4, 3+int64(live)); !slices.Equal(got, want) {
		t.Errorf("live seqs: got %v, want %v", got, want)
	}
	gotBalances := balances(t, gotLive)
	slices.Sort(gotBalances)
	if want := upTo(100, 100+int64(live)-1); !slices.Equal(gotBalances, want) {
		t.Errorf("live entries: got %v, want %v", gotBalances, want)
	}
	if got, want := seqs(resumed.next(live)), upTo(4, 3+int64(live)); !slices.Equal(got, want) {
		t.Errorf("resumed live seqs: got %v, want %v", got, want)
	}
	if got, want := seqs(bobs.next(live)), upTo(4, 3+int64(live)); !slices.Equal(got, want) {
		t.Errorf("bob's live seqs: got %v, want %v", got, want)
	}

	// Nothing repeats after the last entry: the next one is the next appended.
	appendOne(t, db, alice, credits(999))
	for _, f := range []*follower{fromStart, resumed} {
		if got := f.next(1); got[0].Seq != 4+int64(live) {
			t.Errorf("after the live entries: got seq %d, want %d", got[0].Seq, 4+live)
		}
	}

	t.Run("resume after a seq of the past", func(t *testing.T) {
		f := follow(t, svc, alice, 20)
		if got, want := seqs(f.next(4+live-20)), upTo(21, 4+int64(live)); !slices.Equal(got, want) {
			t.Errorf("seqs: got %v, want %v", got, want)
		}
	})
}

// TestFollowersShareOneDoorbell: the followers of one user in a process wait
// on one doorbell subscription, all get every entry, and the subscription
// goes when the last of them ends.
func TestFollowersShareOneDoorbell(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	log := slog.New(slog.DiscardHandler)
	bus := events.New(db, log)
	busCtx, stopBus := context.WithCancel(context.Background())
	busDone := make(chan struct{})
	go func() {
		defer close(busDone)
		bus.Run(busCtx)
	}()
	t.Cleanup(func() {
		stopBus()
		<-busDone
	})
	svc := feed.New(db, bus, log, time.Hour) // entries come by the doorbell
	user := newUser(t, db)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 20
	streams := make([]*follower, n)
	for i := range streams {
		streams[i] = &follower{t: t, user: user, ch: mustStream(t, svc, ctx, user, 0)}
	}
	if got := bus.Waiters(); got != 1 {
		t.Errorf("%d followers of one user: %d doorbell waiters, want 1", n, got)
	}
	for i := range 3 {
		appendOne(t, db, user, credits(int64(i+1)))
		for _, f := range streams {
			if got := f.next(1)[0].Seq; got != int64(i+1) {
				t.Fatalf("got seq %d, want %d", got, i+1)
			}
		}
	}

	cancel()
	for _, f := range streams {
		for range f.ch { // closes once the stream has ended
		}
	}
	end := time.Now().Add(deadline)
	for bus.Waiters() != 0 {
		if time.Now().After(end) {
			t.Fatalf("%d doorbell waiters left after every follower ended", bus.Waiters())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mustStream follows user's feed as the user's own session.
func mustStream(t *testing.T, svc *feed.Service, ctx context.Context, user uuid.UUID, afterSeq int64) <-chan feed.Entry {
	t.Helper()
	ch, err := svc.Stream(ctx, actor.Actor{UserID: user}, afterSeq)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// TestStreamShowsAKeyOnlyWhatItsScopesAllow: viewerEvents needs events:read,
// but the entries carry more: balances, purchases and the subscription
// (credits:read) and privacy requests (never a key's). A key's stream skips
// the entries it could not read by their own fields; a session sees them
// all.
func TestStreamShowsAKeyOnlyWhatItsScopesAllow(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	log := slog.New(slog.DiscardHandler)
	bus := events.New(db, log)
	svc := feed.New(db, bus, log, 50*time.Millisecond)
	user := newUser(t, db)
	appendOne(t, db, user, feed.GenerationChanged{GenerationID: uuid.New(), WorkID: uuid.New(), Status: "succeeded"})
	appendOne(t, db, user, credits(7))
	appendOne(t, db, user, feed.PurchaseChanged{PurchaseID: uuid.New(), Status: "paid"})
	appendOne(t, db, user, feed.SubscriptionChanged{SubscriptionID: uuid.New(), PlanCode: "pro", Status: "active"})
	appendOne(t, db, user, feed.PrivacyRequestChanged{RequestID: uuid.New(), RequestKind: "export", Status: "processing", Progress: 40})
	// The last entry every stream may see, so that each knows when it is done.
	appendOne(t, db, user, feed.GenerationChanged{GenerationID: uuid.New(), WorkID: uuid.New(), Status: "failed"})

	kindsSeen := func(a actor.Actor) []feed.Kind {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		ch, err := svc.Stream(ctx, a, 0)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []feed.Kind
		for e := range ch {
			kinds = append(kinds, e.Kind)
			if e.Seq == 6 {
				return kinds
			}
		}
		t.Fatalf("stream ended after %v", kinds)
		return nil
	}
	session := actor.Actor{UserID: user}
	eventsKey := actor.Actor{UserID: user, Scopes: []actor.Scope{actor.ScopeEventsRead}, APIKeyID: uuid.New()}
	creditsKey := actor.Actor{UserID: user, Scopes: []actor.Scope{actor.ScopeEventsRead, actor.ScopeCreditsRead}, APIKeyID: uuid.New()}
	all := []feed.Kind{feed.KindGeneration, feed.KindCredits, feed.KindPurchase, feed.KindSubscription, feed.KindPrivacy, feed.KindGeneration}
	if got := kindsSeen(session); !slices.Equal(got, all) {
		t.Errorf("a session saw %v, want %v", got, all)
	}
	if got, want := kindsSeen(eventsKey), []feed.Kind{feed.KindGeneration, feed.KindGeneration}; !slices.Equal(got, want) {
		t.Errorf("an events:read key saw %v, want %v", got, want)
	}
	if got, want := kindsSeen(creditsKey), []feed.Kind{feed.KindGeneration, feed.KindCredits, feed.KindPurchase, feed.KindSubscription, feed.KindGeneration}; !slices.Equal(got, want) {
		t.Errorf("an events:read + credits:read key saw %v, want %v", got, want)
	}
}

// TestPollWakesFollowersOfEveryUserWithoutAGoroutineEach: with no doorbell
// at all (the bus never runs), the process's one poll still brings every
// follower of many users its new entry; and following those users costs
// no goroutine per user. Not parallel: it counts the process's goroutines.
func TestPollWakesFollowersOfEveryUserWithoutAGoroutineEach(t *testing.T) {
	db := dbtest.New(t)
	log := slog.New(slog.DiscardHandler)
	svc := feed.New(db, events.New(db, log), log, 50*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	const users = 40
	before := runtime.NumGoroutine()
	streams := make([]*follower, users)
	for i := range streams {
		user := newUser(t, db)
		streams[i] = &follower{t: t, user: user, ch: mustStream(t, svc, ctx, user, 0)}
	}
	time.Sleep(200 * time.Millisecond) // a few polls, every follower idle
	if grown := runtime.NumGoroutine() - before; grown > 5 {
		t.Errorf("following %d users' feeds added %d goroutines; want a handful for the process, none per user", users, grown)
	}
	for _, f := range streams {
		appendOne(t, db, f.user, credits(1))
	}
	for _, f := range streams {
		if got := f.next(1)[0].Seq; got != 1 {
			t.Fatalf("got seq %d, want 1", got)
		}
	}
}
