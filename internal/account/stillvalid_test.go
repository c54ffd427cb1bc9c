package account_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/apperr"
)

// insertSession adds a session of userID in the state set says (an SQL SET
// list for sessions, or "" for a fresh one) and returns its id.
func insertSession(t *testing.T, db *bun.DB, userID uuid.UUID, set string) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	var id uuid.UUID
	if err := db.NewRaw(`INSERT INTO sessions (user_id, token_hash, expires_at)
		VALUES (?, sha256(gen_random_uuid()::text::bytea), now() + interval '1 day') RETURNING id`, userID).Scan(ctx, &id); err != nil {
		t.Fatal(err)
	}
	if set != "" {
		if _, err := db.ExecContext(ctx, "UPDATE sessions SET "+set+" WHERE id = ?", id); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

func insertUser(t *testing.T, db *bun.DB, email, status string) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	if err := db.NewRaw("INSERT INTO users (email, password_hash, email_verified_at, status) VALUES (?, 'x', now(), ?) RETURNING id", email, status).
		Scan(context.Background(), &id); err != nil {
		t.Fatal(err)
	}
	return id
}

// One query rechecks many sessions, and says for each that no longer works
// why; those that work have no entry.
func TestStillValidSessionsSaysWhyEachEnded(t *testing.T) {
	t.Parallel()
	db, _, svc := newAccounts(t)
	me := insertUser(t, db, "me@example.com", "active")
	suspended := insertUser(t, db, "suspended@example.com", "suspended")
	deleted := insertUser(t, db, "deleted@example.com", "deleted")
	ids := []uuid.UUID{}
	want := map[uuid.UUID]apperr.Code{}
	for _, s := range []struct {
		user uuid.UUID
		set  string
		want apperr.Code
	}{
		{me, "", ""},
		// An open connection is in use: the idle timeout (an hour here)
		// does not end it.
		{me, "last_seen_at = now() - interval '2 hours'", ""},
		{me, "revoked_at = now(), revoked_reason = 'signed out'", apperr.Unauthenticated},
		{me, "expires_at = now() - interval '1 second'", apperr.Unauthenticated},
		{suspended, "", apperr.AccountSuspended},
		{suspended, "revoked_at = now(), revoked_reason = 'signed out'", apperr.AccountSuspended},
		{deleted, "", apperr.Unauthenticated},
	} {
		id := insertSession(t, db, s.user, s.set)
		ids = append(ids, id)
		want[id] = s.want
	}
	unknown := uuid.New()
	ids = append(ids, unknown)
	want[unknown] = apperr.Unauthenticated

	ended, err := svc.StillValidSessions(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if got := apperr.CodeOf(ended[id]); got != want[id] {
			t.Errorf("session %s: got %q (%v), want %q", id, got, ended[id], want[id])
		}
	}
	if n := len(ended); n != 6 {
		t.Errorf("got %d entries, want 6 (one per session that no longer works)", n)
	}
}
