package account_test

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/mail"
	"github.com/fastimage/api/internal/password"
)

// A sign-in the hasher refuses (UNAVAILABLE: too many hashes wait) checked
// no password, so it must not use up one of the attempts the sign-in limit
// allows: a user whose client retries as told ("try again in a second")
// while the server is busy still signs in once it is not, instead of being
// locked out with RATE_LIMITED without a single check.
func TestSignInRefusedByBusyHasherIsNotAnAttempt(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	public, err := url.Parse("http://localhost:8080")
	if err != nil {
		t.Fatal(err)
	}
	fast := password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	// slow hashes hold the busy hasher's one slot while the test signs in.
	slow := password.Params{Memory: 32 << 10, Time: 16, Threads: 1, SaltLen: 16, KeyLen: 32}
	newService := func(h *password.Hasher) *account.Service {
		return account.New(db, account.Config{
			PublicURL: public, SessionIdleTimeout: time.Hour, SessionLifetime: 24 * time.Hour,
			VerifyTokenTTL: time.Hour, EmailChangeTokenTTL: time.Hour, Passwords: h,
		}, mail.NewOutbox(db), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	ctx := account.WithClient(context.Background(), account.Client{IP: "192.0.2.7", UserAgent: "busy-test"})
	const email, pw = "busy@example.com", "correct horse battery"
	if err := newService(password.NewHasher(password.HasherConfig{Params: fast})).SignUp(ctx, account.SignUpInput{Email: email, Name: "Busy", Password: pw}); err != nil {
		t.Fatal(err)
	}

	busy := password.NewHasher(password.HasherConfig{Params: slow, Concurrency: 1, Queue: 1})
	svc := newService(busy)
	held := make(chan error, 2)
	go func() { _, err := busy.Hash(context.Background(), "holder"); held <- err }()
	waitUntil(t, func() bool { return busy.InFlight() == 1 })
	go func() { _, err := busy.Hash(context.Background(), "waiter"); held <- err }()
	waitUntil(t, func() bool { return busy.Waiting() == 1 })

	limit := account.DefaultLimits().SignInFailures.Max
	for i := range limit + 1 {
		_, err := svc.SignIn(ctx, account.SignInInput{Email: email, Password: pw})
		if got := apperr.CodeOf(err); got != apperr.Unavailable {
			t.Fatalf("sign-in %d while the hasher is full: got %v (%v), want UNAVAILABLE", i+1, got, err)
		}
	}
	for range 2 {
		if err := <-held; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.SignIn(ctx, account.SignInInput{Email: email, Password: pw}); err != nil {
		t.Errorf("sign-in once the hasher is free: got %v (%v), want a session", apperr.CodeOf(err), err)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
	}
}
