package apikey_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apikey"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/db/dbtest"
)

func newKeys(t testing.TB) (*bun.DB, *apikey.Service) {
	t.Helper()
	db := dbtest.New(t)
	return db, apikey.New(db, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
}

// newUser inserts a verified user and returns them as a signed-in actor.
func newUser(t testing.TB, db *bun.DB, email string) actor.Actor {
	t.Helper()
	var id uuid.UUID
	if err := db.NewRaw("INSERT INTO users (email, password_hash, email_verified_at) VALUES (?, 'x', now()) RETURNING id", email).
		Scan(context.Background(), &id); err != nil {
		t.Fatal(err)
	}
	var session uuid.UUID
	if err := db.NewRaw(`INSERT INTO sessions (user_id, token_hash, expires_at)
		VALUES (?, sha256(gen_random_uuid()::text::bytea), now() + interval '1 day') RETURNING id`, id).Scan(context.Background(), &session); err != nil {
		t.Fatal(err)
	}
	return actor.Actor{UserID: id, SessionID: session, Role: actor.RoleUser, Verified: true, Email: email}
}

func wantCode(t *testing.T, err error, code apperr.Code, what string) {
	t.Helper()
	if apperr.CodeOf(err) != code {
		t.Errorf("%s: %v, want %s", what, err, code)
	}
}

func TestKeysActForTheirUserWithinTheirScopes(t *testing.T) {
	t.Parallel()
	db, keys := newKeys(t)
	ctx := context.Background()
	me := newUser(t, db, "me@example.com")

	c, err := keys.Create(ctx, me, "  gallery  ", []actor.Scope{actor.ScopeGenerate, actor.ScopeWorksRead, actor.ScopeGenerate}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.Token, c.Key.VisiblePrefix()+"_") || !apikey.IsKey(c.Token) || c.Key.Name != "gallery" {
		t.Fatalf("token %q, key %+v", c.Token, c.Key)
	}
	if got := c.Key.ScopeNames; len(got) != 2 || got[0] != "works:read" || got[1] != "generate" {
		t.Errorf("scopes %v, want works:read and generate once each, in the scopes' order", got)
	}
	var stored []byte
	if err := db.NewRaw("SELECT secret_hash FROM api_keys WHERE id = ?", c.Key.ID).Scan(ctx, &stored); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(c.Token, string(stored)) || len(stored) != 32 {
		t.Errorf("stored %x", stored)
	}

	v, err := keys.Authenticate(ctx, c.Token)
	if err != nil {
		t.Fatal(err)
	}
	a := v.Actor()
	if !a.IsKey() || a.APIKeyID != c.Key.ID || a.UserID != me.UserID || !a.Verified || a.Email != "me@example.com" || v.Session != nil {
		t.Fatalf("actor %+v", a)
	}
	if a.RequireScope(actor.ScopeWorksRead) != nil || a.RequireScope(actor.ScopeGenerate) != nil {
		t.Error("the key lacks a scope it was given")
	}
	wantCode(t, a.RequireScope(actor.ScopeWorksWrite), apperr.Forbidden, "works:write")
	wantCode(t, a.RequireSession(), apperr.Forbidden, "RequireSession")

	// last_used_at is written once a minute, not on every request.
	var first, second time.Time
	if err := db.NewRaw("SELECT last_used_at FROM api_keys WHERE id = ?", c.Key.ID).Scan(ctx, &first); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Authenticate(ctx, c.Token); err != nil {
		t.Fatal(err)
	}
	if err := db.NewRaw("SELECT last_used_at FROM api_keys WHERE id = ?", c.Key.ID).Scan(ctx, &second); err != nil {
		t.Fatal(err)
	}
	if !first.Equal(second) {
		t.Errorf("last_used_at moved from %v to %v within a minute", first, second)
	}

	// Keys cannot manage keys.
	_, err = keys.Create(ctx, a, "more", []actor.Scope{actor.ScopeWorksRead}, nil)
	wantCode(t, err, apperr.Forbidden, "Create as a key")
	_, err = keys.List(ctx, a, me.UserID)
	wantCode(t, err, apperr.Forbidden, "List as a key")
	_, err = keys.Revoke(ctx, a, c.Key.ID)
	wantCode(t, err, apperr.Forbidden, "Revoke as a key")

	// A stranger can neither list nor revoke it.
	other := newUser(t, db, "other@example.com")
	_, err = keys.List(ctx, other, me.UserID)
	wantCode(t, err, apperr.Forbidden, "List of another user")
	_, err = keys.Revoke(ctx, other, c.Key.ID)
	wantCode(t, err, apperr.NotFound, "Revoke of another user's key")

	// Revoked: refused at once, and gone from the list.
	if _, err := keys.Revoke(ctx, me, c.Key.ID); err != nil {
		t.Fatal(err)
	}
	_, err = keys.Authenticate(ctx, c.Token)
	wantCode(t, err, apperr.Unauthenticated, "revoked key")
	ended, err := keys.StillValidKeys(ctx, []uuid.UUID{v.Key.ID})
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, ended[v.Key.ID], apperr.Unauthenticated, "StillValidKeys of a revoked key")
	if l, err := keys.List(ctx, me, me.UserID); err != nil || len(l) != 0 {
		t.Errorf("list after revocation: %v %v", l, err)
	}
	_, err = keys.Revoke(ctx, me, c.Key.ID)
	wantCode(t, err, apperr.NotFound, "second revocation")
}

func TestKeysAreRefused(t *testing.T) {
	t.Parallel()
	db, keys := newKeys(t)
	ctx := context.Background()
	me := newUser(t, db, "refused@example.com")
	c, err := keys.Create(ctx, me, "k", []actor.Scope{actor.ScopeWorksRead}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tampered := c.Token[:len(c.Token)-2] + "AA"
	if tampered == c.Token {
		tampered = c.Token[:len(c.Token)-2] + "BB"
	}
	for _, tok := range []string{tampered, "fi_live_", "fi_live_zz_" + strings.Repeat("a", 43), c.Token + "x", "fi_live_" + strings.Repeat("0", 16) + "_" + strings.Repeat("a", 43)} {
		_, err := keys.Authenticate(ctx, tok)
		wantCode(t, err, apperr.Unauthenticated, "token "+tok)
	}

	soon := time.Now().Add(time.Hour)
	exp, err := keys.Create(ctx, me, "expiring", []actor.Scope{actor.ScopeWorksRead}, &soon)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = ?", exp.Key.ID); err != nil {
		t.Fatal(err)
	}
	_, err = keys.Authenticate(ctx, exp.Token)
	wantCode(t, err, apperr.Unauthenticated, "expired key")
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired key's error %v does not say so", err)
	}

	if _, err := db.ExecContext(ctx, "UPDATE users SET status = 'suspended' WHERE id = ?", me.UserID); err != nil {
		t.Fatal(err)
	}
	_, err = keys.Authenticate(ctx, c.Token)
	wantCode(t, err, apperr.AccountSuspended, "suspended user")
	if _, err := db.ExecContext(ctx, "UPDATE users SET status = 'deleted' WHERE id = ?", me.UserID); err != nil {
		t.Fatal(err)
	}
	_, err = keys.Authenticate(ctx, c.Token)
	wantCode(t, err, apperr.Unauthenticated, "deleted user")

	// Bad input.
	past := time.Now().Add(-time.Minute)
	fresh := newUser(t, db, "fresh@example.com")
	for name, call := range map[string]func() error{
		"no name": func() error {
			_, err := keys.Create(ctx, fresh, " ", []actor.Scope{actor.ScopeWorksRead}, nil)
			return err
		},
		"long name": func() error {
			_, err := keys.Create(ctx, fresh, strings.Repeat("n", 101), []actor.Scope{actor.ScopeWorksRead}, nil)
			return err
		},
		"no scope":      func() error { _, err := keys.Create(ctx, fresh, "k", nil, nil); return err },
		"unknown scope": func() error { _, err := keys.Create(ctx, fresh, "k", []actor.Scope{"admin"}, nil); return err },
		"past expiry": func() error {
			_, err := keys.Create(ctx, fresh, "k", []actor.Scope{actor.ScopeWorksRead}, &past)
			return err
		},
	} {
		wantCode(t, call(), apperr.Validation, name)
	}

	// At most MaxKeysPerUser live keys.
	for range apikey.MaxKeysPerUser {
		if _, err := keys.Create(ctx, fresh, "k", []actor.Scope{actor.ScopeWorksRead}, nil); err != nil {
			t.Fatal(err)
		}
	}
	_, err = keys.Create(ctx, fresh, "one too many", []actor.Scope{actor.ScopeWorksRead}, nil)
	wantCode(t, err, apperr.LimitExceeded, "key past the bound")
}

// BenchmarkAuthenticate is the cost a key adds to each request: one query
// (the key with its user), the last-used write at most once a minute.
func BenchmarkAuthenticate(b *testing.B) {
	db := dbtest.New(b)
	keys := apikey.New(db, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	ctx := context.Background()
	// A session that has just proved the password, as making a key needs.
	c, err := keys.Create(ctx, newUser(b, db, "bench@example.com"), "bench", []actor.Scope{actor.ScopeWorksRead}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := keys.Authenticate(ctx, c.Token); err != nil {
			b.Fatal(err)
		}
	}
}

// A key outlives the session that made it, so making one wants the password
// proved within the last ten minutes: a stolen session cannot mint one.
func TestCreateNeedsARecentPassword(t *testing.T) {
	t.Parallel()
	db, keys := newKeys(t)
	ctx := context.Background()
	a := newUser(t, db, "sudo@example.com")
	if _, err := db.NewRaw("UPDATE sessions SET password_confirmed_at = now() - interval '11 minutes' WHERE id = ?", a.SessionID).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := keys.Create(ctx, a, "late", []actor.Scope{actor.ScopeWorksRead}, nil)
	wantCode(t, err, apperr.ReauthenticationRequired, "a key 11 minutes after the password")
	if _, err := db.NewRaw("UPDATE sessions SET password_confirmed_at = now() WHERE id = ?", a.SessionID).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Create(ctx, a, "fresh", []actor.Scope{actor.ScopeWorksRead}, nil); err != nil {
		t.Errorf("a key right after confirming the password: %v", err)
	}
}
