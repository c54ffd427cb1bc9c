package account_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/mail"
	"github.com/fastimage/api/internal/password"
	"github.com/fastimage/api/internal/ratelimit"
)

// statements records the SQL statements the service runs, literals blanked
// out, so that two requests can be compared for the work they made the
// database do: wall time would be a flaky witness.
type statements struct {
	mu  sync.Mutex
	on  bool
	got []string
}

func (s *statements) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (s *statements) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.on {
		s.got = append(s.got, literal.ReplaceAllString(strings.Join(strings.Fields(e.Query), " "), "?"))
	}
}

// literal matches what differs between two runs of one statement: strings
// (ids, addresses, hashes, arrays, times), NULL and numbers.
var literal = regexp.MustCompile(`'(?:[^']|'')*'|\bNULL\b|-?\b\d+\b`)

// during returns the statements run by f.
func (s *statements) during(f func()) []string {
	s.mu.Lock()
	s.on, s.got = true, nil
	s.mu.Unlock()
	f()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.on = false
	return s.got
}

// newCountedAccounts is newAccounts with limits no test here reaches and
// every statement recorded.
func newCountedAccounts(t *testing.T) (*bun.DB, *mail.Outbox, *account.Service, *statements) {
	t.Helper()
	db := dbtest.New(t)
	rec := &statements{}
	db.AddQueryHook(rec)
	public, err := url.Parse("http://localhost:8080")
	if err != nil {
		t.Fatal(err)
	}
	many := ratelimit.Window{Max: 1000, Period: time.Hour}
	outbox := mail.NewOutbox(db)
	svc := account.New(db, account.Config{
		PublicURL: public, SessionIdleTimeout: time.Hour, SessionLifetime: 24 * time.Hour,
		VerifyTokenTTL: time.Hour, EmailChangeTokenTTL: time.Hour,
		Passwords: password.NewHasher(password.HasherConfig{Params: password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}}),
		Limits: account.Limits{
			EmailsPerAddress: []ratelimit.Window{many}, SignInFailures: many, SignUpsPerIP: many, ResetsPerIP: many,
		},
	}, outbox, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return db, outbox, svc, rec
}

// TestUnknownAddressesCostTheSame asks for a password reset, a new
// verification link and a sign-up for addresses with and without a
// (matching) account: each request answers the same and runs the same SQL
// statements (a sign-up as many: selecting the existing account stands for
// creating the token, and hashing the password dwarfs either), so that
// neither the answer nor the time it takes tells whether the account
// exists; only the first address gets mail of the flow's kind.
func TestUnknownAddressesCostTheSame(t *testing.T) {
	t.Parallel()
	db, outbox, svc, rec := newCountedAccounts(t)
	ctx := account.WithClient(context.Background(), account.Client{IP: "192.0.2.1", UserAgent: "existence-test"})
	mustSignUp(t, db, outbox, svc, "ada@example.com", false)
	mustSignUp(t, db, outbox, svc, "sus@example.com", false)
	if _, err := db.NewUpdate().Model((*account.User)(nil)).Set("status = ?", account.StatusSuspended).
		Where("email = ?", "sus@example.com").Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := svc.SignUp(ctx, account.SignUpInput{Email: "una@example.com", Password: goodPassword}); err != nil {
		t.Fatal(err)
	}

	for _, flow := range []struct {
		name string
		kind string // of the mail the first address gets
		do   func(email string) error
		// The first address gets mail; the others must look the same.
		emails []string
		// countOnly compares how many statements run, not which.
		countOnly bool
	}{
		{"requestPasswordReset", "password_reset", func(e string) error { return svc.RequestPasswordReset(ctx, e) },
			[]string{"ada@example.com", "nobody@example.com", "sus@example.com"}, false},
		{"resendVerification", "verify_email", func(e string) error { return svc.ResendVerification(ctx, e) },
			[]string{"una@example.com", "nobody@example.com", "ada@example.com"}, false},
		{"signUp", "verify_email", func(e string) error {
			return svc.SignUp(ctx, account.SignUpInput{Email: e, Password: goodPassword})
		}, []string{"new@example.com", "ada@example.com"}, true},
	} {
		t.Run(flow.name, func(t *testing.T) {
			var want []string
			for i, email := range flow.emails {
				before := mailCount(t, outbox, email, flow.kind)
				var err error
				got := rec.during(func() { err = flow.do(email) })
				if err != nil {
					t.Fatalf("%s: %v", email, err)
				}
				if i == 0 {
					want = got
					if after := mailCount(t, outbox, email, flow.kind); after != before+1 {
						t.Errorf("%s got %d %s mails, want 1", email, after-before, flow.kind)
					}
					continue
				}
				if after := mailCount(t, outbox, email, flow.kind); after != before {
					t.Errorf("%s got %d %s mails, want none", email, after-before, flow.kind)
				}
				if flow.countOnly && len(got) != len(want) || !flow.countOnly && strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("%s ran %d statements:\n%s\nwant the %d that %s ran:\n%s",
						email, len(got), strings.Join(got, "\n"), len(want), flow.emails[0], strings.Join(want, "\n"))
				}
			}
		})
	}
}

func mailCount(t *testing.T, outbox *mail.Outbox, to, kind string) int {
	t.Helper()
	msgs, err := outbox.List(context.Background(), mail.MaxListLimit)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range msgs {
		if m.To == to && m.Kind == kind {
			n++
		}
	}
	return n
}

// TestFlowThatFailsSendsNothing makes the last write of a password reset
// fail: the flow's transaction rolls back, and with it the mail it had
// enqueued and the token that mail carried.
func TestFlowThatFailsSendsNothing(t *testing.T) {
	t.Parallel()
	db, outbox, svc, _ := newCountedAccounts(t)
	ctx := account.WithClient(context.Background(), account.Client{IP: "192.0.2.1", UserAgent: "rollback-test"})
	mustSignUp(t, db, outbox, svc, "ada@example.com", false)
	if _, err := db.ExecContext(ctx, `
		CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$;
		CREATE TRIGGER refuse_reset BEFORE INSERT ON security_events
			FOR EACH ROW WHEN (NEW.kind = 'PASSWORD_RESET_REQUESTED') EXECUTE FUNCTION refuse();`); err != nil {
		t.Fatal(err)
	}
	err := svc.RequestPasswordReset(ctx, "ada@example.com")
	if err == nil || apperr.CodeOf(err) != apperr.Internal {
		t.Fatalf("got %v (code %v), want an internal error", err, apperr.CodeOf(err))
	}
	if _, err := outbox.Latest(ctx, "ada@example.com", "password_reset"); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("Latest reset mail: got %v, want none (NOT_FOUND)", err)
	}
	var tokens int
	if err := db.NewRaw("SELECT count(*) FROM email_tokens WHERE kind = 'password_reset'").Scan(ctx, &tokens); err != nil {
		t.Fatal(err)
	}
	if tokens != 0 {
		t.Errorf("got %d reset tokens, want 0", tokens)
	}
	var pgErr interface{ Field(byte) string }
	if !errors.As(err, &pgErr) || pgErr.Field('C') != "P0001" {
		t.Errorf("got %v, want the trigger's refusal (SQLSTATE P0001)", err)
	}
}
