package events

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/db/dbtest"
)

// deadline bounds every wait for something the bus should do.
const deadline = 10 * time.Second

func newBus(bdb *bun.DB) *Bus {
	return New(bdb, slog.New(slog.DiscardHandler))
}

// start runs b until the test ends, and checks then that Run returns.
func start(t *testing.T, b *Bus) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(deadline):
			t.Error("Run did not return after its context ended")
		}
	})
}

// listenerPID waits until a backend of the test's database, other than the
// one numbered not, has finished a LISTEN and sits idle after it, and returns
// its pid: from then on, what commits is delivered to the bus.
func listenerPID(t *testing.T, bdb bun.IDB, not int) int {
	t.Helper()
	var pid int
	poll(t, "a listening backend", func() bool {
		err := bdb.NewRaw(`SELECT coalesce(max(pid), 0) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> ?
			AND state = 'idle' AND query LIKE 'LISTEN%'`, not).Scan(context.Background(), &pid)
		if err != nil {
			t.Fatalf("find the listener: %v", err)
		}
		return pid != 0
	})
	return pid
}

// poll waits until cond holds, failing the test after the deadline.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func woken(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func waitWake(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(deadline):
		t.Fatalf("%s was not woken", what)
	}
}

func TestRingWakesTopicOnlyAfterCommit(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	ctx := context.Background()
	b := newBus(bdb)
	a, stopA := b.Subscribe(GenerationTopic("a"))
	defer stopA()
	other, stopOther := b.Subscribe(GenerationTopic("b"))
	defer stopOther()
	// Rung outside any transaction after each step: notifications arrive
	// in commit order, so once the barrier's wake is here, the wake of
	// anything committed before it is here too.
	bar, stopBar := b.Subscribe(QueueTopic)
	defer stopBar()
	start(t, b)
	// Connecting wakes every waiter once.
	waitWake(t, bar, "a waiter when the listener connected")
	waitWake(t, a, "a waiter when the listener connected")
	waitWake(t, other, "a waiter when the listener connected")
	listenerPID(t, bdb, 0)
	barrier := func() {
		t.Helper()
		if err := Ring(ctx, bdb, QueueTopic); err != nil {
			t.Fatal(err)
		}
		waitWake(t, bar, "the barrier")
	}

	tx, err := bdb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Ring(ctx, tx, GenerationTopic("a")); err != nil {
		t.Fatal(err)
	}
	barrier()
	if woken(a) {
		t.Error("a ring woke its topic before its transaction committed")
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	barrier()
	if !woken(a) {
		t.Error("a committed ring did not wake its topic")
	}
	if woken(other) {
		t.Error("a ring woke another topic")
	}

	tx, err = bdb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Ring(ctx, tx, GenerationTopic("a")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	barrier()
	if woken(a) || woken(other) {
		t.Error("a rolled-back ring woke a waiter")
	}

	// An event's ring carries its seq; it wakes the generation's topic.
	if err := Ring(ctx, bdb, GenerationTopic("a")+":7"); err != nil {
		t.Fatal(err)
	}
	barrier()
	if !woken(a) {
		t.Error(`"gen:a:7" did not wake "gen:a"`)
	}
}

func TestTopicOf(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ payload, want string }{
		{"gen:0191:7", "gen:0191"},
		{"gen:0191", "gen:0191"},
		{"user:42:12", "user:42"},
		{"sessions:42", "sessions:42"},
		{"queue", "queue"},
	} {
		if got := topicOf(tt.payload); got != tt.want {
			t.Errorf("topicOf(%q) = %q, want %q", tt.payload, got, tt.want)
		}
	}
}

// follower is a subscriber that does what every stream does: on each
// wake-up it re-reads the table, which is the truth.
type follower struct {
	seen atomic.Int64
}

func follow(t *testing.T, b *Bus, bdb *bun.DB, topic string) *follower {
	t.Helper()
	f := &follower{}
	ch, stop := b.Subscribe(topic)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
			}
			var n int64
			if err := bdb.NewRaw("SELECT count(*) FROM bus_rows").Scan(ctx, &n); err != nil {
				if ctx.Err() == nil {
					t.Errorf("follower re-read: %v", err)
				}
				return
			}
			f.seen.Store(n)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

// appendRows inserts rows from..to, one transaction each, ringing topic in
// each as every writer does.
func appendRows(t *testing.T, idb bun.IDB, topic string, from, to int) {
	t.Helper()
	ctx := context.Background()
	for n := from; n <= to; n++ {
		err := idb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO bus_rows (n) VALUES (?)", n); err != nil {
				return err
			}
			return Ring(ctx, tx, topic)
		})
		if err != nil {
			t.Fatalf("append row %d: %v", n, err)
		}
	}
}

// TestReconnectLosesNothing cuts the listener's connection and keeps it
// down while rows are appended and rung for; the notifications are lost, and
// the waiters still catch up when the listener is back.
func TestReconnectLosesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bdb := dbtest.New(t)
	var name string
	if err := bdb.NewRaw("SELECT current_database()").Scan(ctx, &name); err != nil {
		t.Fatal(err)
	}
	if _, err := bdb.ExecContext(ctx, "CREATE TABLE bus_rows (n int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	// A database cannot refuse connections to itself; the maintenance
	// database can refuse them for it.
	admin, err := db.Open(ctx, dbtest.Config(dbtest.AdminURL()), "fastimage-test-events")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	allowConnections := func(allow bool) {
		t.Helper()
		q := fmt.Sprintf(`ALTER DATABASE "%s" WITH ALLOW_CONNECTIONS %t`, name, allow)
		if _, err := admin.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { allowConnections(true) })
	// The writer keeps its connection through the outage.
	conn, err := bdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := conn.ExecContext(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}

	b := newBus(bdb)
	pauses := make(chan time.Duration, 64)
	b.pause = func(ctx context.Context, d time.Duration) {
		select {
		case pauses <- d:
		default:
		}
		sleep(ctx, 5*time.Millisecond)
	}
	topic := GenerationTopic("followed")
	f := follow(t, b, bdb, topic)
	idle, stopIdle := b.Subscribe(UserTopic("idle"))
	defer stopIdle()
	queue, stopQueue := b.Subscribe(QueueTopic)
	defer stopQueue()
	start(t, b)
	waitWake(t, idle, "a waiter when the listener connected")
	waitWake(t, queue, "a waiter when the listener connected")
	pid := listenerPID(t, bdb, 0)

	appendRows(t, conn, topic, 1, 3)
	poll(t, "the follower to see rows 1-3", func() bool { return f.seen.Load() == 3 })

	allowConnections(false)
	var killed bool
	if err := conn.NewRaw("SELECT pg_terminate_backend(?)", pid).Scan(ctx, &killed); err != nil {
		t.Fatal(err)
	}
	if !killed {
		t.Fatalf("listener backend %d was not terminated", pid)
	}
	// Down: the bus has failed to listen again, and nothing listens.
	poll(t, "the bus to fail to listen again", func() bool {
		for {
			select {
			case d := <-pauses:
				if d == listenRetryPause {
					return true
				}
			default:
				return false
			}
		}
	})
	var listening int
	poll(t, "the old listener to go", func() bool {
		err := conn.NewRaw(`SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND query LIKE 'LISTEN%'`).Scan(ctx, &listening)
		if err != nil {
			t.Fatal(err)
		}
		return listening == 0
	})
	// These rings reach no one.
	appendRows(t, conn, topic, 4, 8)
	if woken(idle) || woken(queue) {
		t.Fatal("waiters were woken while nothing listened")
	}

	allowConnections(true)
	waitWake(t, idle, "a waiter of a topic never rung, on reconnect,")
	waitWake(t, queue, "a waiter of another topic, on reconnect,")
	poll(t, "the follower to see rows 4-8 appended during the outage", func() bool { return f.seen.Load() == 8 })

	listenerPID(t, bdb, pid)
	appendRows(t, conn, topic, 9, 10)
	poll(t, "the follower to see rows 9-10 rung after the reconnect", func() bool { return f.seen.Load() == 10 })
}

func TestSubscribeStopLeavesNoWaiters(t *testing.T) {
	t.Parallel()
	b := newBus(nil)
	var stops []func()
	for _, topic := range []string{GenerationTopic("a"), GenerationTopic("a"), UserTopic("u"), QueueTopic} {
		_, stop := b.Subscribe(topic)
		stops = append(stops, stop)
	}
	if got := b.Waiters(); got != 4 {
		t.Fatalf("Waiters() = %d, want 4", got)
	}
	stops[0]()
	if got := b.Waiters(); got != 3 {
		t.Fatalf("Waiters() = %d after one stop, want 3", got)
	}
	for _, stop := range stops[1:] {
		stop()
	}
	stops[0]() // a second stop is harmless
	if got := b.Waiters(); got != 0 {
		t.Fatalf("Waiters() = %d after every stop, want 0", got)
	}
	b.mu.Lock()
	topics := len(b.waiters)
	b.mu.Unlock()
	if topics != 0 {
		t.Errorf("%d topics kept after their last waiter stopped, want 0", topics)
	}
}

// TestRunStopsWithItsContext is not parallel: it counts goroutines.
func TestRunStopsWithItsContext(t *testing.T) {
	bdb := dbtest.New(t)
	if err := bdb.PingContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	b := newBus(bdb)
	ready, stopReady := b.Subscribe(QueueTopic)
	defer stopReady()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Run(ctx)
	}()
	waitWake(t, ready, "a waiter when the listener connected")
	pid := listenerPID(t, bdb, 0)

	cancel()
	select {
	case <-done:
	case <-time.After(deadline):
		t.Fatal("Run did not return after its context ended")
	}
	end := time.Now().Add(deadline)
	for runtime.NumGoroutine() > before {
		if time.Now().After(end) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Run returned, %d before it started:\n%s",
				runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Its connection is closed too.
	poll(t, "the listener's backend to end", func() bool {
		var n int
		if err := bdb.NewRaw("SELECT count(*) FROM pg_stat_activity WHERE pid = ?", pid).Scan(context.Background(), &n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
}

// A function waiter is called for its topic's rings only, and no more once
// stopped.
func TestSubscribeFuncIsCalledForItsTopic(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	b := newBus(bdb)
	var calls atomic.Int64
	stop := b.SubscribeFunc(SessionsTopic("u"), func() { calls.Add(1) })
	other := b.SubscribeFunc(SessionsTopic("v"), func() {})
	defer other()
	start(t, b)
	listenerPID(t, bdb, 0)
	before := calls.Load() // the first LISTEN wakes every waiter
	if err := Ring(context.Background(), bdb, SessionsTopic("u")); err != nil {
		t.Fatal(err)
	}
	poll(t, "the function to be called", func() bool { return calls.Load() > before })
	if got := b.Waiters(); got != 2 {
		t.Errorf("Waiters() = %d, want 2", got)
	}
	stop()
	if got := b.Waiters(); got != 1 {
		t.Errorf("after stop, Waiters() = %d, want 1", got)
	}
}

// What a ringer says reaches the topic's SubscribeNews waiters as it was
// said, colons and all; a plain ring and the bus's own wake-up after it
// connects say nothing, and news too long for Postgres is left unsaid
// rather than failing the ringer's transaction.
func TestRingNewsReachesNewsWaiters(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	ctx := context.Background()
	b := newBus(bdb)
	heard := make(chan string, 8)
	stop := b.SubscribeNews(GenerationTopic("a"), func(news string) { heard <- news })
	defer stop()
	start(t, b)
	next := func() string {
		t.Helper()
		select {
		case n := <-heard:
			return n
		case <-time.After(deadline):
			t.Fatal("the news waiter was not called")
			return ""
		}
	}
	if n := next(); n != "" {
		t.Fatalf("the wake-up on connecting said %q, want nothing", n)
	}
	listenerPID(t, bdb, 0)
	for _, tt := range []struct{ say, want string }{
		{`7:{"k":"PROGRESS","t":"2026-11-30T14:00:00Z"}`, `7:{"k":"PROGRESS","t":"2026-11-30T14:00:00Z"}`},
		{"", ""},
		{strings.Repeat("x", MaxNews+1), ""},
	} {
		if err := RingNews(ctx, bdb, GenerationTopic("a"), tt.say); err != nil {
			t.Fatalf("RingNews(%.20q…): %v", tt.say, err)
		}
		if n := next(); n != tt.want {
			t.Fatalf("RingNews(%.20q…) was heard as %.40q…, want %q", tt.say, n, tt.want)
		}
	}
}
