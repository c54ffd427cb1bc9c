package apikey_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
)

// One query rechecks many keys, and says for each that no longer works the
// same as Authenticate would; those that work have no entry.
func TestStillValidKeysSaysWhyEachEnded(t *testing.T) {
	t.Parallel()
	db, keys := newKeys(t)
	ctx := context.Background()
	me := newUser(t, db, "me@example.com")
	suspended := newUser(t, db, "suspended@example.com")
	deleted := newUser(t, db, "deleted@example.com")
	create := func(a actor.Actor, name string) uuid.UUID {
		t.Helper()
		soon := time.Now().Add(time.Hour)
		c, err := keys.Create(ctx, a, name, []actor.Scope{actor.ScopeWorksRead}, &soon)
		if err != nil {
			t.Fatal(err)
		}
		return c.Key.ID
	}
	live, revoked, expired := create(me, "live"), create(me, "revoked"), create(me, "expired")
	ofSuspended, ofDeleted := create(suspended, "k"), create(deleted, "k")
	if _, err := keys.Revoke(ctx, me, revoked); err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		sql string
		arg uuid.UUID
	}{
		{"UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = ?", expired},
		{"UPDATE users SET status = 'suspended' WHERE id = ?", suspended.UserID},
		{"UPDATE users SET status = 'deleted' WHERE id = ?", deleted.UserID},
	} {
		if _, err := db.ExecContext(ctx, q.sql, q.arg); err != nil {
			t.Fatal(err)
		}
	}
	unknown := uuid.New()

	want := map[uuid.UUID]apperr.Code{
		live:        "",
		revoked:     apperr.Unauthenticated,
		expired:     apperr.Unauthenticated,
		ofSuspended: apperr.AccountSuspended,
		ofDeleted:   apperr.Unauthenticated,
		unknown:     apperr.Unauthenticated,
	}
	ids := []uuid.UUID{live, revoked, expired, ofSuspended, ofDeleted, unknown}
	ended, err := keys.StillValidKeys(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(ended) != len(ids)-1 {
		t.Errorf("got %d entries, want %d (one per key that no longer works)", len(ended), len(ids)-1)
	}
	for _, id := range ids {
		if got := apperr.CodeOf(ended[id]); got != want[id] {
			t.Errorf("key %s: got %q (%v), want %q", id, got, ended[id], want[id])
		}
	}

	if ended, err := keys.StillValidKeys(ctx, nil); err != nil || len(ended) != 0 {
		t.Errorf("no ids: got %v, %v; want nothing", ended, err)
	}
}
