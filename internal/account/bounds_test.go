package account_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/mail"
	"github.com/fastimage/api/internal/password"
	"github.com/fastimage/api/internal/ratelimit"
)

func TestEventsOneIPMayWriteAreBudgeted(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	public, err := url.Parse("http://localhost:8080")
	if err != nil {
		t.Fatal(err)
	}
	limits := account.DefaultLimits()
	limits.EventsPerIP = ratelimit.Window{Max: 3, Period: time.Hour}
	svc := account.New(db, account.Config{
		PublicURL: public, SessionIdleTimeout: time.Hour, SessionLifetime: 24 * time.Hour,
		VerifyTokenTTL: time.Hour, EmailChangeTokenTTL: time.Hour,
		Passwords: password.NewHasher(password.HasherConfig{Params: password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}}),
		Limits:    limits,
	}, mail.NewOutbox(db), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))

	// Sign-ins for addresses without accounts: each is a failure to record.
	signIn := func(ip string, i int) {
		t.Helper()
		ctx := account.WithClient(context.Background(), account.Client{IP: ip, UserAgent: "budget-test"})
		_, err := svc.SignIn(ctx, account.SignInInput{Email: fmt.Sprintf("nobody%d@example.com", i), Password: "not a password"})
		if got := apperr.CodeOf(err); got != apperr.InvalidCredentials {
			t.Fatalf("sign-in %d from %s: got %v, want INVALID_CREDENTIALS", i, ip, err)
		}
	}
	for i := range 6 {
		signIn("192.0.2.1", i)
	}
	signIn("192.0.2.2", 0)
	rows, err := db.QueryContext(context.Background(), "SELECT ip, count(*) FROM security_events WHERE kind = 'SIGN_IN_FAILED' GROUP BY ip")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]int{}
	for rows.Next() {
		var ip string
		var n int
		if err := rows.Scan(&ip, &n); err != nil {
			t.Fatal(err)
		}
		got[ip] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if got["192.0.2.1"] != 3 || got["192.0.2.2"] != 1 {
		t.Errorf("SIGN_IN_FAILED events by IP = %v, want 3 for the busy IP (its budget) and 1 for the other", got)
	}
}

func TestTruncateKeepsValidText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"}, // é is 2 bytes: never cut in half
		{"a\xffb", 10, "a\uFFFDb"},
		{"a\x00b", 10, "a\uFFFDb"},
		{strings.Repeat("x", 100), 0, ""},
	} {
		got := account.Truncate(tc.in, tc.n)
		if got != tc.want || len(got) > tc.n || !utf8.ValidString(got) {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
