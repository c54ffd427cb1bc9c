package privacy_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/clock"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/events"
	"github.com/fastimage/api/internal/mail"
	"github.com/fastimage/api/internal/privacy"
)

type fixture struct {
	db    *bun.DB
	svc   *privacy.Service
	clock *clock.Fake
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := dbtest.New(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	public, _ := url.Parse("http://localhost:8080")
	clk := clock.NewFake(time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC))
	svc := privacy.New(db, mail.NewOutbox(db), events.New(db, log), log, privacy.Config{PublicURL: public, Clock: clk, PollInterval: 100 * time.Millisecond, RetryBackoff: 200 * time.Millisecond})
	return &fixture{db: db, svc: svc, clock: clk}
}

// user makes a verified user with a session whose password was confirmed
// confirmedAgo before the database's now, and returns them as an actor.
func (f *fixture) user(t *testing.T, confirmedAgo time.Duration) actor.Actor {
	t.Helper()
	ctx := context.Background()
	email := fmt.Sprintf("u%s@example.com", uuid.NewString()[:8])
	var id, session uuid.UUID
	if err := f.db.NewRaw("INSERT INTO users (email, password_hash, email_verified_at) VALUES (?, 'x', now()) RETURNING id", email).Scan(ctx, &id); err != nil {
		t.Fatal(err)
	}
	if err := f.db.NewRaw(`INSERT INTO sessions (user_id, token_hash, expires_at, password_confirmed_at)
		VALUES (?, decode(md5(random()::text) || md5(random()::text), 'hex'), now() + interval '1 day', now() - ?::interval) RETURNING id`,
		id, fmt.Sprintf("%d seconds", int(confirmedAgo.Seconds()))).Scan(ctx, &session); err != nil {
		t.Fatal(err)
	}
	return actor.Actor{UserID: id, SessionID: session, Verified: true, Email: email}
}

func (f *fixture) trail(t *testing.T, a actor.Actor, id uuid.UUID) string {
	t.Helper()
	es, err := f.svc.Audit(context.Background(), a, id)
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, e := range es {
		steps = append(steps, e.Action+"/"+e.Actor)
	}
	return strings.Join(steps, " ")
}

// A request is verified at once, due one calendar month later (31 January
// → 28 February), written step by step to an audit trail that cannot be
// changed, told to the user by email and in their feed, and can be
// canceled until it starts.
func TestRequestLifecycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	a := f.user(t, 0)
	r, err := f.svc.RequestCorrection(ctx, a, "a work's title", "Sunset", "it was misspelt")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != privacy.StatusVerified || !r.DueAt.Equal(time.Date(2026, 2, 28, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("new correction: status %s, due %s", r.Status, r.DueAt)
	}
	if got := f.trail(t, a, r.ID); got != "received/user verified/user" {
		t.Errorf("trail: %s", got)
	}
	var mails, feed int
	_ = f.db.NewRaw("SELECT count(*) FROM mail_outbox WHERE to_address = ? AND kind = 'privacy_request'", a.Email).Scan(ctx, &mails)
	_ = f.db.NewRaw("SELECT count(*) FROM viewer_events WHERE user_id = ? AND kind = 'PRIVACY_REQUEST'", a.UserID).Scan(ctx, &feed)
	if mails != 1 || feed != 1 {
		t.Errorf("after a new request: %d emails, %d feed entries; want 1 and 1", mails, feed)
	}
	if _, err := f.db.NewRaw("UPDATE privacy_audit SET actor = 'someone else' WHERE request_id = ?", r.ID).Exec(ctx); err == nil {
		t.Error("the audit trail accepted an UPDATE")
	}
	if _, err := f.db.NewRaw("DELETE FROM privacy_audit WHERE request_id = ?", r.ID).Exec(ctx); err == nil {
		t.Error("the audit trail accepted a DELETE")
	}

	stranger := f.user(t, 0)
	if _, err := f.svc.Cancel(ctx, stranger, r.ID); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("another user's cancel: %v, want NOT_FOUND", err)
	}
	if _, err := f.svc.Audit(ctx, stranger, r.ID); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("another user's read of the trail: %v, want NOT_FOUND", err)
	}
	c, err := f.svc.Cancel(ctx, a, r.ID)
	if err != nil || c.Status != privacy.StatusCanceled || c.CompletedAt == nil {
		t.Fatalf("cancel: %+v, %v", c, err)
	}
	if _, err := f.svc.Cancel(ctx, a, r.ID); apperr.CodeOf(err) != apperr.Conflict {
		t.Errorf("cancel twice: %v, want CONFLICT", err)
	}
	if got := f.trail(t, a, r.ID); got != "received/user verified/user canceled/user" {
		t.Errorf("trail after cancel: %s", got)
	}
}

// Name and email are self-service; other corrections go to the admin
// queue, where an admin completes, rejects (with a reason) or extends them
// once; none of it is open to non-admins.
func TestCorrectionsThroughTheAdminQueue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	a := f.user(t, 0)
	admin := f.user(t, 0)
	admin.Role = actor.RoleAdmin
	if _, err := f.svc.RequestCorrection(ctx, a, "Email", "new@example.com", ""); apperr.CodeOf(err) != apperr.Validation ||
		!strings.Contains(err.Error(), "changeEmail") {
		t.Errorf("a correction of the email: %v, want VALIDATION pointing at changeEmail", err)
	}
	first, _ := f.svc.RequestCorrection(ctx, a, "purchase record", "the 5 January one was a pack of 500", "")
	f.clock.Advance(24 * time.Hour)
	second, _ := f.svc.RequestCorrection(ctx, a, "security event", "that sign-in was me", "")
	if _, _, err := f.svc.Queue(ctx, a, "", 10, nil); apperr.CodeOf(err) != apperr.Forbidden {
		t.Errorf("a user reading the queue: %v, want FORBIDDEN", err)
	}
	if _, err := f.svc.Reject(ctx, a, first.ID, "no"); apperr.CodeOf(err) != apperr.Forbidden {
		t.Errorf("a user rejecting: %v, want FORBIDDEN", err)
	}
	q, _, err := f.svc.Queue(ctx, admin, "", 10, nil)
	if err != nil || len(q) != 2 || q[0].ID != first.ID || q[1].ID != second.ID {
		t.Fatalf("queue, soonest due first: %v, %v", q, err)
	}
	ext, err := f.svc.Extend(ctx, admin, second.ID, "needs the bank's records")
	if err != nil || !ext.DueAt.Equal(privacy.Extended(second.DueAt)) || ext.ExtensionReason == nil {
		t.Fatalf("extend: %+v, %v", ext, err)
	}
	if _, err := f.svc.Extend(ctx, admin, second.ID, "again"); apperr.CodeOf(err) != apperr.Conflict {
		t.Errorf("a second extension: %v, want CONFLICT", err)
	}
	if _, err := f.svc.Reject(ctx, admin, first.ID, " "); apperr.CodeOf(err) != apperr.Validation {
		t.Errorf("a rejection without a reason: %v, want VALIDATION", err)
	}
	done, err := f.svc.CompleteCorrection(ctx, admin, first.ID, "fixed the pack size on the purchase")
	if err != nil || done.Status != privacy.StatusCompleted {
		t.Fatalf("complete: %+v, %v", done, err)
	}
	rej, err := f.svc.Reject(ctx, admin, second.ID, "the sign-in record is correct as it stands")
	if err != nil || rej.Status != privacy.StatusRejected || rej.RejectionReason == nil {
		t.Fatalf("reject: %+v, %v", rej, err)
	}
	want := "received/user verified/user in_progress/admin:" + admin.UserID.String() + " completed/admin:" + admin.UserID.String()
	if got := f.trail(t, a, first.ID); got != want {
		t.Errorf("trail of the completed correction:\n got %s\nwant %s", got, want)
	}
	if q, _, _ := f.svc.Queue(ctx, admin, "", 10, nil); len(q) != 0 {
		t.Errorf("queue after both were handled: %d left", len(q))
	}
	var msg string
	_ = f.db.NewRaw("SELECT text_body FROM mail_outbox WHERE to_address = ? ORDER BY created_at DESC, id DESC LIMIT 1", a.Email).Scan(ctx, &msg)
	if !strings.Contains(msg, "the sign-in record is correct as it stands") {
		t.Errorf("the rejection email does not give the reason: %q", msg)
	}
}

// Deleting the account needs the password proved on this session within
// ten minutes; one deletion (or export) at a time.
func TestDeletionNeedsARecentPassword(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	stale := f.user(t, 11*time.Minute)
	if _, err := f.svc.RequestDeletion(ctx, stale); apperr.CodeOf(err) != privacy.ReauthenticationRequired {
		t.Errorf("deletion 11 minutes after the password: %v, want REAUTHENTICATION_REQUIRED", err)
	}
	fresh := f.user(t, 9*time.Minute)
	r, err := f.svc.RequestDeletion(ctx, fresh)
	if err != nil || r.Kind != privacy.KindDeletion || r.Status != privacy.StatusVerified {
		t.Fatalf("deletion 9 minutes after the password: %+v, %v", r, err)
	}
	if _, err := f.svc.RequestDeletion(ctx, fresh); apperr.CodeOf(err) != apperr.Conflict {
		t.Errorf("a second deletion while one is open: %v, want CONFLICT", err)
	}
	unverified := f.user(t, 0)
	unverified.Verified = false
	if _, err := f.svc.RequestExport(ctx, unverified); apperr.CodeOf(err) != apperr.EmailNotVerified {
		t.Errorf("an export by an unverified user: %v, want EMAIL_NOT_VERIFIED", err)
	}
}

// Objections apply at once and are recorded as completed requests;
// objecting twice keeps one objection; a withdrawal removes it.
func TestObjections(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	a := f.user(t, 0)
	for range 2 {
		r, err := f.svc.Object(ctx, a, privacy.PurposeAnalytics)
		if err != nil || r.Status != privacy.StatusCompleted {
			t.Fatalf("object: %+v, %v", r, err)
		}
	}
	if _, err := f.svc.Object(ctx, a, "selling"); apperr.CodeOf(err) != apperr.Validation {
		t.Errorf("an unknown purpose: %v, want VALIDATION", err)
	}
	ps, _ := f.svc.Objections(ctx, a, a.UserID)
	if len(ps) != 1 || ps[0] != privacy.PurposeAnalytics {
		t.Fatalf("objections: %v", ps)
	}
	if _, err := f.svc.Objections(ctx, f.user(t, 0), a.UserID); apperr.CodeOf(err) != apperr.Forbidden {
		t.Errorf("another user's objections: %v, want FORBIDDEN", err)
	}
	if _, err := f.svc.Withdraw(ctx, a, privacy.PurposeAnalytics); err != nil {
		t.Fatal(err)
	}
	if ps, _ := privacy.ObjectionsOf(ctx, f.db, a.UserID); len(ps) != 0 {
		t.Errorf("objections after the withdrawal: %v", ps)
	}
	page, _ := f.svc.Requests(ctx, a, a.UserID, 10, nil)
	if page.TotalCount != 3 {
		t.Errorf("requests recorded: %d, want 3 (two objections, one withdrawal)", page.TotalCount)
	}
}
