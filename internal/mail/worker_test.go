package mail_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/events"
	"github.com/fastimage/api/internal/mail"
)

// waitFor bounds every wait for the worker.
const waitFor = 10 * time.Second

// runWorkers runs the event bus and n workers sending through transport
// until the test ends, and checks then that they stop.
func runWorkers(t *testing.T, bdb *bun.DB, transport mail.Mailer, n int, cfg mail.WorkerConfig) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	bus := events.New(bdb, log)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { bus.Run(ctx) })
	for range n {
		w := mail.NewWorker(bdb, transport, bus, log, cfg)
		wg.Go(func() { w.Run(ctx) })
	}
	t.Cleanup(func() {
		cancel()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(waitFor):
			t.Error("the workers did not stop after their context ended")
		}
	})
	// Until the bus listens, a doorbell rung would be lost.
	poll(t, "the bus to listen", func() bool {
		var n int
		err := bdb.NewRaw(`SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()
			AND state = 'idle' AND query LIKE 'LISTEN%'`).Scan(context.Background(), &n)
		if err != nil {
			t.Fatalf("find the listener: %v", err)
		}
		return n > 0
	})
}

// poll waits until cond holds, failing the test after waitFor.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// settled waits until no message in o is due any more (each was sent or
// given up) and returns them all, newest first.
func settled(t *testing.T, o *mail.Outbox, want int) []mail.Stored {
	t.Helper()
	var msgs []mail.Stored
	poll(t, fmt.Sprintf("%d messages sent or given up", want), func() bool {
		var err error
		if msgs, err = o.List(context.Background(), mail.MaxListLimit); err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(msgs) != want {
			return false
		}
		for _, m := range msgs {
			if m.NextAttemptAt != nil {
				return false
			}
		}
		return true
	})
	return msgs
}

func newSMTP(t *testing.T, srv *fakeSMTP) *mail.SMTP {
	t.Helper()
	trust := srv.start(t)
	m, err := mail.NewSMTP(mail.SMTPConfig{
		Host: "127.0.0.1", Port: srv.port, From: "no-reply@fastimage.example", FromName: "FastImage Café",
		TLSConfig: trust, Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fastRetries retries at once, so that the tests need not wait.
var fastRetries = mail.WorkerConfig{Backoff: time.Millisecond, MaxBackoff: time.Millisecond, Poll: time.Hour}

func TestWorkerDelivers(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	o := mail.NewOutbox(bdb)
	srv := &fakeSMTP{}
	// An hour's poll: only the doorbell wakes the worker.
	runWorkers(t, bdb, newSMTP(t, srv), 1, fastRetries)

	for i := 1; i <= 2; i++ {
		m := testMessage()
		m.To = fmt.Sprintf("user%d@example.com", i)
		if err := o.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		msgs := settled(t, o, i)
		got := msgs[0]
		if got.SentAt == nil || got.Attempts != 1 || got.LastError != "" {
			t.Errorf("message %d: got sent at %v after %d attempts (last error %q), want sent after 1", i, got.SentAt, got.Attempts, got.LastError)
		}
		if got.Text != "" || got.HTML != "" {
			t.Errorf("message %d: a sent message keeps its body (%d bytes); its links are secrets", i, len(got.Text)+len(got.HTML))
		}
		recv, _ := srv.received()
		if len(recv) != i || len(recv[i-1].rcpt) != 1 || recv[i-1].rcpt[0] != "<"+m.To+">" {
			t.Fatalf("server received %+v, want message %d to %s", recv, i, m.To)
		}
		checkMIME(t, recv[i-1].data, m)
	}
}

func TestWorkerRetriesThenGivesUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		srv          *fakeSMTP
		maxAttempts  int
		wantSent     bool
		wantAttempts int
	}{
		{name: "deferred once, then sent", srv: &fakeSMTP{deferRcpt: 1}, maxAttempts: 3, wantSent: true, wantAttempts: 2},
		{name: "deferred every time, given up", srv: &fakeSMTP{deferRcpt: 1000}, maxAttempts: 3, wantAttempts: 3},
		{name: "refused for good, given up at once", srv: &fakeSMTP{rejectRcpt: true}, maxAttempts: 3, wantAttempts: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bdb := dbtest.New(t)
			o := mail.NewOutbox(bdb)
			cfg := fastRetries
			cfg.MaxAttempts = tc.maxAttempts
			runWorkers(t, bdb, newSMTP(t, tc.srv), 1, cfg)
			if err := o.Send(context.Background(), testMessage()); err != nil {
				t.Fatal(err)
			}
			got := settled(t, o, 1)[0]
			if (got.SentAt != nil) != tc.wantSent || got.Attempts != tc.wantAttempts {
				t.Errorf("got sent %v after %d attempts, want sent %v after %d", got.SentAt != nil, got.Attempts, tc.wantSent, tc.wantAttempts)
			}
			if got.LastError == "" {
				t.Error("the failed attempt left no error on record")
			}
			recv, conns := tc.srv.received()
			if want := map[bool]int{true: 1}[tc.wantSent]; len(recv) != want || conns != tc.wantAttempts {
				t.Errorf("server received %d messages over %d connections, want %d over %d", len(recv), conns, want, tc.wantAttempts)
			}
		})
	}
}

// A message being sent is held by its worker: several workers send each
// message once.
func TestWorkersSendEachMessageOnce(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	o := mail.NewOutbox(bdb)
	srv := &fakeSMTP{}
	const n = 20
	msgs := make([]mail.Message, n)
	for i := range msgs {
		msgs[i] = testMessage()
		msgs[i].To = fmt.Sprintf("user%d@example.com", i)
	}
	if err := o.Enqueue(context.Background(), bdb, msgs...); err != nil {
		t.Fatal(err)
	}
	runWorkers(t, bdb, newSMTP(t, srv), 4, fastRetries)
	for _, m := range settled(t, o, n) {
		if m.SentAt == nil || m.Attempts != 1 {
			t.Errorf("%s: got sent at %v after %d attempts, want sent after 1", m.To, m.SentAt, m.Attempts)
		}
	}
	recv, _ := srv.received()
	seen := map[string]int{}
	for _, r := range recv {
		seen[strings.Join(r.rcpt, ",")]++
	}
	if len(recv) != n || len(seen) != n {
		t.Errorf("server received %d messages for %d recipients, want %d for %d: %v", len(recv), len(seen), n, n, seen)
	}
}

// A transport that never answers holds up no one but its worker, which
// gives the try up after SendTimeout and tries again.
func TestWorkerTimesOutAHangingServer(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	o := mail.NewOutbox(bdb)
	srv := &fakeSMTP{stallAt: "greeting"}
	cfg := fastRetries
	cfg.MaxAttempts, cfg.SendTimeout = 2, 200*time.Millisecond
	runWorkers(t, bdb, newSMTP(t, srv), 1, cfg)
	if err := o.Send(context.Background(), testMessage()); err != nil {
		t.Fatal(err)
	}
	got := settled(t, o, 1)[0]
	if got.SentAt != nil || got.Attempts != 2 || got.LastError == "" {
		t.Errorf("got sent at %v after %d attempts (last error %q), want given up after 2 with the error", got.SentAt, got.Attempts, got.LastError)
	}
}

func TestEnqueueIsPartOfTheTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bdb := dbtest.New(t)
	o := mail.NewOutbox(bdb)
	errBoom := errors.New("boom")

	err := bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := o.Enqueue(ctx, tx, testMessage()); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("RunInTx: got %v, want the flow's error", err)
	}
	if got, err := o.List(ctx, 10); err != nil || len(got) != 0 {
		t.Errorf("after a rollback: got %d messages (%v), want 0", len(got), err)
	}

	// Nothing to send stores nothing; one bad message stores none.
	bad := testMessage()
	bad.To = "a@example.com, b@example.com"
	if err := o.Enqueue(ctx, bdb); err != nil {
		t.Errorf("Enqueue of no message: %v", err)
	}
	if err := o.Enqueue(ctx, bdb, testMessage(), bad); !errors.Is(err, mail.ErrInvalidMessage) {
		t.Errorf("Enqueue with a bad message: got %v, want ErrInvalidMessage", err)
	}
	if got, err := o.List(ctx, 10); err != nil || len(got) != 0 {
		t.Errorf("got %d messages (%v), want 0", len(got), err)
	}

	if err := bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		return o.Enqueue(ctx, tx, testMessage())
	}); err != nil {
		t.Fatal(err)
	}
	got, err := o.List(ctx, 10)
	if err != nil || len(got) != 1 || got[0].NextAttemptAt == nil || got[0].Attempts != 0 {
		t.Errorf("after a commit: got %+v (%v), want one message due", got, err)
	}
}
