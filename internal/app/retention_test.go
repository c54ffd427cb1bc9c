package app_test

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/fastimage/api/internal/app"
	"github.com/fastimage/api/internal/clock"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/db/dbtest"
)

// fixture writes rows of every age the retention job decides on.
type fixture struct {
	db  *bun.DB
	now time.Time
	t   *testing.T
}

func (f fixture) exec(q string, args ...any) {
	f.t.Helper()
	if _, err := f.db.ExecContext(context.Background(), q, args...); err != nil {
		f.t.Fatal(err)
	}
}

func (f fixture) ago(d time.Duration) time.Time { return f.now.Add(-d) }

func (f fixture) session(userID uuid.UUID, created, lastSeen, expires time.Time, revoked *time.Time) {
	f.t.Helper()
	hash := make([]byte, 32)
	_, _ = rand.Read(hash)
	f.exec(`INSERT INTO sessions (user_id, token_hash, ip, created_at, last_seen_at, expires_at, revoked_at)
		VALUES (?, ?, '203.0.113.9', ?, ?, ?, ?)`, userID, hash, created, lastSeen, expires, revoked)
}

func (f fixture) token(userID uuid.UUID, created, expires time.Time, used, voided *time.Time) {
	f.t.Helper()
	hash := make([]byte, 32)
	_, _ = rand.Read(hash)
	f.exec(`INSERT INTO email_tokens (user_id, kind, token_hash, created_at, expires_at, used_at, voided_at)
		VALUES (?, 'verify_email', ?, ?, ?, ?, ?)`, userID, hash, created, expires, used, voided)
}

func (f fixture) event(userID uuid.UUID, ip string, at time.Time) {
	f.exec(`INSERT INTO security_events (user_id, kind, ip, created_at) VALUES (?, 'SIGN_IN', ?, ?)`, userID, ip, at)
}

func (f fixture) count(q string, args ...any) int {
	f.t.Helper()
	var n int
	if err := f.db.NewRaw(q, args...).Scan(context.Background(), &n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

func TestRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bdb := dbtest.New(t)
	cfg := defaults(t)
	day := 24 * time.Hour
	cfg.Accounts.SessionIdleTimeout = 7 * day
	cfg.Privacy.Retention = config.Retention{
		Sessions: 30 * day, EmailTokens: 7 * day, SecurityEvents: 365 * day, UsageEvents: 90 * day, IPTruncateAfter: 30 * day,
	}
	now := time.Now()
	a, err := app.New(ctx, cfg, bdb, quietLog(), app.Overrides{Clock: clock.NewFake(now)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	f := fixture{db: bdb, now: now, t: t}
	var ada uuid.UUID
	if err := bdb.NewRaw("INSERT INTO users (email, password_hash) VALUES ('ada@example.com', 'x') RETURNING id").Scan(ctx, &ada); err != nil {
		t.Fatal(err)
	}

	// Sessions: live; revoked 40 days ago (gone); expired 31 days ago
	// (gone); idle for 40 days, so ended 33 days ago (gone); revoked 10
	// days ago (kept).
	f.session(ada, f.ago(time.Hour), now, now.Add(day), nil)
	f.session(ada, f.ago(50*day), f.ago(45*day), f.ago(20*day), ptr(f.ago(40*day)))
	f.session(ada, f.ago(61*day), f.ago(32*day), f.ago(31*day), nil)
	f.session(ada, f.ago(41*day), f.ago(40*day), now.Add(day), nil)
	f.session(ada, f.ago(11*day), f.ago(10*day), now.Add(day), ptr(f.ago(10*day)))
	// Email links: open; used 8 days ago (gone); voided 2 days ago; expired
	// 10 days ago (gone).
	f.token(ada, f.ago(time.Hour), now.Add(day), nil, nil)
	f.token(ada, f.ago(9*day), f.ago(8*day), ptr(f.ago(8*day)), nil)
	f.token(ada, f.ago(3*day), now.Add(day), nil, ptr(f.ago(2*day)))
	f.token(ada, f.ago(12*day), f.ago(10*day), nil, nil)
	// Security events: 400 days old (gone), 40 days old (IP cut), 40 days
	// old IPv6 (cut), 40 days old with no IP, 1 day old (whole).
	f.event(ada, "198.51.100.23", f.ago(400*day))
	f.event(ada, "198.51.100.23", f.ago(40*day))
	f.event(ada, "2001:db8:abcd:12::7", f.ago(40*day))
	f.event(ada, "", f.ago(40*day))
	f.event(ada, "198.51.100.23", f.ago(day))
	// Usage events: 100 days old (gone), 10 days old.
	f.exec("INSERT INTO usage_events (user_id, feature, created_at) VALUES (?, 'viewer', ?), (?, 'viewer', ?)", ada, f.ago(100*day), ada, f.ago(10*day))

	rep, err := a.Retain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := app.RetentionReport{Sessions: 3, EmailTokens: 2, SecurityEvents: 1, UsageEvents: 1, IPsTruncated: 3}
	if rep != want {
		t.Errorf("first run removed %+v, want %+v", rep, want)
	}
	if f.count("SELECT count(*) FROM sessions") != 2 || f.count("SELECT count(*) FROM email_tokens") != 2 ||
		f.count("SELECT count(*) FROM security_events") != 4 || f.count("SELECT count(*) FROM usage_events") != 1 {
		t.Error("the wrong rows were kept")
	}
	var ips []string
	if err := bdb.NewRaw("SELECT ip FROM security_events ORDER BY created_at, ip").Scan(ctx, &ips); err != nil {
		t.Fatal(err)
	}
	if got, want := ips, []string{"", "198.51.100.0", "2001:db8:abcd::", "198.51.100.23"}; !equal(got, want) {
		t.Errorf("IPs after the run %v, want %v", got, want)
	}

	// Idempotent: a second run finds nothing to do.
	if rep, err := a.Retain(ctx); err != nil || rep.Total() != 0 {
		t.Errorf("second run = %+v, %v; want nothing", rep, err)
	}

	// 0 keeps: with every setting off nothing is touched.
	cfg.Privacy.Retention = config.Retention{}
	f.event(ada, "198.51.100.23", f.ago(1000*day))
	if rep, err := a.Retain(ctx); err != nil || rep.Total() != 0 {
		t.Errorf("run with retention off = %+v, %v; want nothing", rep, err)
	}
}

// Security events stay append-only: only the retention job's IP cut goes
// through, and only in a transaction that says it is the job.
func TestSecurityEventsStayAppendOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bdb := dbtest.New(t)
	var id uuid.UUID
	if err := bdb.NewRaw("INSERT INTO security_events (kind, ip) VALUES ('SIGN_IN', '203.0.113.77') RETURNING id").Scan(ctx, &id); err != nil {
		t.Fatal(err)
	}
	inTx := func(retention bool, q string) error {
		return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if retention {
				if _, err := tx.ExecContext(ctx, "SET LOCAL fastimage.retention = 'on'"); err != nil {
					return err
				}
			}
			_, err := tx.ExecContext(ctx, q, id)
			return err
		})
	}
	for _, tc := range []struct {
		name      string
		retention bool
		q         string
	}{
		{"truncation outside the job", false, "UPDATE security_events SET ip = truncate_ip(ip), ip_truncated = true WHERE id = ?"},
		{"another IP", true, "UPDATE security_events SET ip = '10.0.0.1', ip_truncated = true WHERE id = ?"},
		{"IP erased", true, "UPDATE security_events SET ip = '', ip_truncated = true WHERE id = ?"},
		{"kind changed with the cut", true, "UPDATE security_events SET ip = truncate_ip(ip), ip_truncated = true, kind = 'SIGN_OUT' WHERE id = ?"},
		{"detail changed", true, `UPDATE security_events SET detail = '{"x": 1}' WHERE id = ?`},
		{"cut without the mark", true, "UPDATE security_events SET ip = truncate_ip(ip) WHERE id = ?"},
	} {
		err := inTx(tc.retention, tc.q)
		var pgErr pgdriver.Error
		if !errors.As(err, &pgErr) || pgErr.Field('C') != "23001" {
			t.Errorf("%s: got %v, want SQLSTATE 23001 (restrict_violation)", tc.name, err)
		}
	}
	if err := inTx(true, "UPDATE security_events SET ip = truncate_ip(ip), ip_truncated = true WHERE id = ?"); err != nil {
		t.Fatalf("the retention job's cut: %v", err)
	}
	// Once: a cut IP is never changed again.
	if err := inTx(true, "UPDATE security_events SET ip = truncate_ip(ip), ip_truncated = true WHERE id = ?"); err == nil {
		t.Error("a second cut went through")
	}
	// The setting does not outlive its transaction.
	if err := inTx(false, "UPDATE security_events SET ip_truncated = false WHERE id = ?"); err == nil {
		t.Error("an update outside the job went through after the job's transaction")
	}
}

func ptr[T any](v T) *T { return &v }

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
