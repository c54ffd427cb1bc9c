package account_test

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/mail"
	"github.com/fastimage/api/internal/password"
)

const goodPassword = "correct horse battery staple"

var tokenInLink = regexp.MustCompile(`token=([A-Za-z0-9_-]{43})`)

// newAccounts returns an account service on a fresh database that keeps its
// mail in the outbox.
func newAccounts(t testing.TB) (*bun.DB, *mail.Outbox, *account.Service) {
	t.Helper()
	db := dbtest.New(t)
	public, err := url.Parse("http://localhost:8080")
	if err != nil {
		t.Fatal(err)
	}
	outbox := mail.NewOutbox(db)
	svc := account.New(db, account.Config{
		PublicURL: public, SessionIdleTimeout: time.Hour, SessionLifetime: 24 * time.Hour,
		VerifyTokenTTL: time.Hour, EmailChangeTokenTTL: time.Hour,
		// The cheapest valid argon2id: hashing is not what these tests are about.
		Passwords: password.NewHasher(password.HasherConfig{Params: password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}}),
	}, outbox, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return db, outbox, svc
}

// mustSignUp signs up through the service, verifies the email with the
// emailed link, optionally makes the user an admin, and signs in; it returns
// the viewer the session token stands for.
func mustSignUp(t testing.TB, db *bun.DB, outbox *mail.Outbox, svc *account.Service, email string, admin bool) *account.Viewer {
	t.Helper()
	ctx := account.WithClient(context.Background(), account.Client{IP: "192.0.2.1", UserAgent: "authz-test"})
	if err := svc.SignUp(ctx, account.SignUpInput{Email: email, Name: "Test", Password: goodPassword}); err != nil {
		t.Fatal(err)
	}
	msg, err := outbox.Latest(ctx, email, "verify_email")
	if err != nil {
		t.Fatal(err)
	}
	m := tokenInLink.FindStringSubmatch(msg.Text)
	if m == nil {
		t.Fatalf("verification email has no link with a token:\n%s", msg.Text)
	}
	u, err := svc.VerifyEmail(ctx, m[1])
	if err != nil {
		t.Fatal(err)
	}
	if admin {
		// No flow makes admins; operators do it in the database.
		if _, err := db.NewUpdate().Model((*account.User)(nil)).Set("role = ?", account.RoleAdmin).Where("id = ?", u.ID).Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	in, err := svc.SignIn(ctx, account.SignInInput{Email: email, Password: goodPassword})
	if err != nil {
		t.Fatal(err)
	}
	v, err := svc.Authenticate(ctx, in.Token)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func statusOf(t testing.TB, db *bun.DB, id uuid.UUID) string {
	t.Helper()
	var status string
	if err := db.NewRaw("SELECT status FROM users WHERE id = ?", id).Scan(context.Background(), &status); err != nil {
		t.Fatal(err)
	}
	return status
}

// TestAnotherUsersAccountIsRefused reads user A's sessions, security record
// and user row with user B's actor, A's own and an admin's, and suspends
// with and without admin rights: the domain refuses B (FORBIDDEN for A's
// record, nothing of A's among reads by id) and non-admins suspending.
func TestAnotherUsersAccountIsRefused(t *testing.T) {
	t.Parallel()
	db, outbox, svc := newAccounts(t)
	ctx := context.Background()
	va := mustSignUp(t, db, outbox, svc, "ada@example.com", false)
	vb := mustSignUp(t, db, outbox, svc, "bob@example.com", false)
	vadmin := mustSignUp(t, db, outbox, svc, "root@example.com", true)
	a, b, admin := va.Actor(), vb.Actor(), vadmin.Actor()
	userA, userB := va.User.ID, vb.User.ID
	if !a.Verified || a.Admin() || !admin.Admin() {
		t.Fatalf("got A verified %v admin %v, admin's admin %v; want a verified user and an admin", a.Verified, a.Admin(), admin.Admin())
	}

	eventsA, err := svc.SecurityEvents(ctx, a, userA, 50, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(eventsA.Items) < 3 { // signed up, verified, signed in
		t.Fatalf("A has %d security events, want at least 3", len(eventsA.Items))
	}
	eventIDs := make([]uuid.UUID, len(eventsA.Items))
	for i, e := range eventsA.Items {
		eventIDs[i] = e.ID
	}
	sessionIDs := []uuid.UUID{va.Session.ID}

	lists := []struct {
		name string
		call func(actor.Actor) (int, error)
	}{
		{"Sessions", func(who actor.Actor) (int, error) { s, err := svc.Sessions(ctx, who, userA); return len(s), err }},
		{"SecurityEvents", func(who actor.Actor) (int, error) {
			p, err := svc.SecurityEvents(ctx, who, userA, 50, nil)
			if err != nil {
				return 0, err
			}
			return len(p.Items), nil
		}},
	}
	for _, tc := range lists {
		t.Run(tc.name+" of A by B", func(t *testing.T) {
			if _, err := tc.call(b); apperr.CodeOf(err) != apperr.Forbidden {
				t.Errorf("got %q, want %q", apperr.CodeOf(err), apperr.Forbidden)
			}
		})
		t.Run(tc.name+" of A by A", func(t *testing.T) {
			n, err := tc.call(a)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Error("got none, want A's")
			}
		})
	}

	byIDs := []struct {
		name string
		who  actor.Actor
		call func(actor.Actor) (int, error)
		want int
	}{
		{"SessionsByIDs of A's by B", b, func(who actor.Actor) (int, error) {
			s, err := svc.SessionsByIDs(ctx, who, sessionIDs)
			return len(s), err
		}, 0},
		{"SessionsByIDs of A's by A", a, func(who actor.Actor) (int, error) {
			s, err := svc.SessionsByIDs(ctx, who, sessionIDs)
			return len(s), err
		}, len(sessionIDs)},
		{"SecurityEventsByIDs of A's by B", b, func(who actor.Actor) (int, error) {
			e, err := svc.SecurityEventsByIDs(ctx, who, eventIDs)
			return len(e), err
		}, 0},
		{"SecurityEventsByIDs of A's by A", a, func(who actor.Actor) (int, error) {
			e, err := svc.SecurityEventsByIDs(ctx, who, eventIDs)
			return len(e), err
		}, len(eventIDs)},
		{"UsersByIDs of A by B", b, func(who actor.Actor) (int, error) {
			u, err := svc.UsersByIDs(ctx, who, []uuid.UUID{userA})
			return len(u), err
		}, 0},
		{"UsersByIDs of A by A", a, func(who actor.Actor) (int, error) {
			u, err := svc.UsersByIDs(ctx, who, []uuid.UUID{userA})
			return len(u), err
		}, 1},
		{"UsersByIDs of A and B by admin", admin, func(who actor.Actor) (int, error) {
			u, err := svc.UsersByIDs(ctx, who, []uuid.UUID{userA, userB})
			return len(u), err
		}, 2},
	}
	for _, tc := range byIDs {
		t.Run(tc.name, func(t *testing.T) {
			n, err := tc.call(tc.who)
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.want {
				t.Errorf("got %d, want %d", n, tc.want)
			}
		})
	}

	// In order: each step starts from the status the one before left.
	steps := []struct {
		name       string
		call       func() error
		want       apperr.Code
		target     uuid.UUID
		wantStatus string
	}{
		{"Suspend A by B", func() error { _, err := svc.Suspend(ctx, b, userA, "spam"); return err },
			apperr.Forbidden, userA, account.StatusActive},
		{"Suspend B by admin", func() error { _, err := svc.Suspend(ctx, admin, userB, "spam"); return err },
			"", userB, account.StatusSuspended},
		{"Unsuspend B by A", func() error { _, err := svc.Unsuspend(ctx, a, userB); return err },
			apperr.Forbidden, userB, account.StatusSuspended},
		{"Unsuspend B by admin", func() error { _, err := svc.Unsuspend(ctx, admin, userB); return err },
			"", userB, account.StatusActive},
	}
	for _, tc := range steps {
		t.Run(tc.name, func(t *testing.T) {
			if got := apperr.CodeOf(tc.call()); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if got := statusOf(t, db, tc.target); got != tc.wantStatus {
				t.Errorf("status: got %q, want %q", got, tc.wantStatus)
			}
		})
	}
}
