// Package apikey holds the API keys of partner apps: a key acts for the
// user who made it, within its scopes (see actor.Scope). Only the signed-in
// user may make, list or revoke keys; a key can never manage keys.
//
// A key reads fi_live_<prefix>_<secret>. The prefix (16 hex digits) is
// stored as it is: it finds the row, and lists show it so that users can
// tell keys apart. The secret (32 random bytes, base64url) is shown once and
// stored only as its SHA-256: a slow hash protects guessable passwords, and
// a 256-bit random secret is not guessable.
package apikey

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/events"
)

// TokenPrefix starts every API key, so that keys are told from session
// tokens (and found by secret scanners) at a glance.
const TokenPrefix = "fi_live_"

const (
	prefixBytes = 8
	secretBytes = 32
	// MaxKeysPerUser bounds the keys one user holds at once (revoked ones
	// do not count): each is a standing credential to review.
	MaxKeysPerUser = 50
	maxNameRunes   = 100
	// lastUsedGranularity is how stale last_used_at may be: it is written
	// at most once a minute per key, not on every request.
	lastUsedGranularity = time.Minute
)

// Key is an API key as its owner sees it; the secret is never kept.
type Key struct {
	bun.BaseModel `bun:"table:api_keys"`

	ID         uuid.UUID  `bun:"id,pk,type:uuid,default:uuidv7()"`
	UserID     uuid.UUID  `bun:"user_id,type:uuid"`
	Name       string     `bun:"name"`
	Prefix     string     `bun:"prefix"`
	SecretHash []byte     `bun:"secret_hash"`
	ScopeNames []string   `bun:"scopes,array"`
	CreatedAt  time.Time  `bun:"created_at,nullzero,default:now()"`
	LastUsedAt *time.Time `bun:"last_used_at"`
	ExpiresAt  *time.Time `bun:"expires_at"`
	RevokedAt  *time.Time `bun:"revoked_at"`

	// User is loaded with the key when it authenticates (one query).
	User *account.User `bun:"rel:belongs-to,join:user_id=id"`
}

// Scopes returns the key's scopes.
func (k *Key) Scopes() []actor.Scope {
	out := make([]actor.Scope, len(k.ScopeNames))
	for i, s := range k.ScopeNames {
		out[i] = actor.Scope(s)
	}
	return out
}

// VisiblePrefix is how the key starts, for telling keys apart in lists.
func (k *Key) VisiblePrefix() string { return TokenPrefix + k.Prefix }

// Topic is the events-bus topic rung when key id is revoked, so that
// streams it opened end at once (as sessions' do on their topic).
func Topic(id uuid.UUID) string { return "apikey:" + id.String() }

// IsKey reports whether a bearer token is meant as an API key (rather than
// a session token): by its prefix, before any lookup.
func IsKey(token string) bool { return strings.HasPrefix(token, TokenPrefix) }

// Service makes, lists, revokes and checks API keys.
type Service struct {
	db  *bun.DB
	log *slog.Logger
	// onRevoke runs in the transaction that revokes a key, for what other
	// domains hold under it (webhook endpoints).
	onRevoke func(ctx context.Context, tx bun.Tx, keyID uuid.UUID) error
}

// New returns a Service on db. onRevoke, when set, runs inside the
// transaction that revokes a key.
func New(db *bun.DB, log *slog.Logger, onRevoke func(ctx context.Context, tx bun.Tx, keyID uuid.UUID) error) *Service {
	return &Service{db: db, log: log, onRevoke: onRevoke}
}

// Created is a new key with its token, which is shown this once.
type Created struct {
	Key   *Key
	Token string
}

// Create makes a key for the actor's user, limited to scopes, working until
// expiresAt (nil: until revoked).
// Returns FORBIDDEN for a key (only the signed-in user makes keys),
// VALIDATION for a bad name, scope or expiry, LIMIT_EXCEEDED past
// MaxKeysPerUser keys.
func (s *Service) Create(ctx context.Context, a actor.Actor, name string, scopes []actor.Scope, expiresAt *time.Time) (*Created, error) {
	if err := a.RequireSession(); err != nil {
		return nil, err
	}
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > maxNameRunes || !utf8.ValidString(name) || strings.ContainsRune(name, 0) {
		return nil, apperr.Errorf(apperr.Validation, "Name the key with 1 to %d characters, e.g. the app that will use it.", maxNameRunes).With("field", "name")
	}
	if len(scopes) == 0 {
		return nil, apperr.Errorf(apperr.Validation, "Give the key at least one scope.").With("field", "scopes")
	}
	var names []string
	for _, sc := range scopes {
		if !slices.Contains(actor.Scopes, sc) {
			return nil, apperr.Errorf(apperr.Validation, "%q is not a scope; the scopes are %v.", sc, actor.Scopes).With("field", "scopes")
		}
		if !slices.Contains(names, string(sc)) {
			names = append(names, string(sc))
		}
	}
	slices.SortFunc(names, func(x, y string) int {
		return slices.Index(actor.Scopes, actor.Scope(x)) - slices.Index(actor.Scopes, actor.Scope(y))
	})
	if expiresAt != nil && !expiresAt.After(time.Now()) {
		return nil, apperr.Errorf(apperr.Validation, "The expiry must be in the future; leave it out for a key that works until revoked.").With("field", "expiresAt")
	}
	// A key outlives the session that made it (and a password change):
	// a stolen session must not be able to mint one.
	if err := account.RequireRecentPassword(ctx, s.db, a, "Making an API key"); err != nil {
		return nil, err
	}

	prefix, secret := newPrefix(), newSecret()
	k := &Key{UserID: a.UserID, Name: name, Prefix: prefix, SecretHash: hashSecret(secret), ScopeNames: names, ExpiresAt: expiresAt}
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		// Counting and inserting under the user's row lock keeps two
		// concurrent creates from both passing the bound.
		if _, err := tx.NewRaw("SELECT 1 FROM users WHERE id = ? FOR UPDATE", a.UserID).Exec(ctx); err != nil {
			return fmt.Errorf("lock user: %w", err)
		}
		n, err := tx.NewSelect().Model((*Key)(nil)).Where("user_id = ? AND revoked_at IS NULL", a.UserID).Count(ctx)
		if err != nil {
			return fmt.Errorf("count keys: %w", err)
		}
		if n >= MaxKeysPerUser {
			return apperr.Errorf(apperr.LimitExceeded, "You hold %d API keys, the most allowed; revoke one you no longer use first.", n)
		}
		if _, err := tx.NewInsert().Model(k).Returning("*").Exec(ctx); err != nil {
			return fmt.Errorf("create key: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Created{Key: k, Token: TokenPrefix + prefix + "_" + secret}, nil
}

// List returns userID's keys that are not revoked (expired ones too, so
// that their owner sees why an app stopped), newest first.
// Returns FORBIDDEN for a key, and unless the actor is that user.
func (s *Service) List(ctx context.Context, a actor.Actor, userID uuid.UUID) ([]Key, error) {
	if err := a.RequireSession(); err != nil {
		return nil, err
	}
	if err := a.OwnAccount(userID); err != nil {
		return nil, err
	}
	var out []Key
	if err := s.db.NewSelect().Model(&out).Where("user_id = ? AND revoked_at IS NULL", userID).Order("created_at DESC", "id DESC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return out, nil
}

// ByIDs returns the actor's keys among ids that are not revoked, in no order.
// Returns FORBIDDEN for a key.
func (s *Service) ByIDs(ctx context.Context, a actor.Actor, ids []uuid.UUID) ([]Key, error) {
	if err := a.RequireSession(); err != nil {
		return nil, err
	}
	var out []Key
	if err := s.db.NewSelect().Model(&out).Where("user_id = ? AND id IN (?) AND revoked_at IS NULL", a.UserID, bun.In(ids)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find keys: %w", err)
	}
	return out, nil
}

// Revoke stops one of the actor's keys at once: its next request fails, and
// the streams it holds open end (its topic is rung in the same
// transaction).
// Returns FORBIDDEN for a key, NOT_FOUND for a key that is not the actor's
// or is already revoked.
func (s *Service) Revoke(ctx context.Context, a actor.Actor, id uuid.UUID) (*Key, error) {
	if err := a.RequireSession(); err != nil {
		return nil, err
	}
	var k Key
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		err := tx.NewUpdate().Model(&k).Set("revoked_at = now()").
			Where("id = ? AND user_id = ? AND revoked_at IS NULL", id, a.UserID).Returning("*").Scan(ctx)
		if errors.Is(err, sql.ErrNoRows) {
			return apperr.Errorf(apperr.NotFound, "No such API key: it is not yours, or it is already revoked.")
		}
		if err != nil {
			return fmt.Errorf("revoke key: %w", err)
		}
		if err := events.Ring(ctx, tx, Topic(id)); err != nil {
			return fmt.Errorf("ring key: %w", err)
		}
		if s.onRevoke != nil {
			return s.onRevoke(ctx, tx, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &k, nil
}

// Authenticate returns the viewer an API key stands for: its user, and the
// key's id and scopes (the viewer's Actor carries them).
// Returns UNAUTHENTICATED for a malformed, unknown, revoked or expired key
// and for a deleted user, ACCOUNT_SUSPENDED for a suspended one.
func (s *Service) Authenticate(ctx context.Context, token string) (*account.Viewer, error) {
	prefix, secret, ok := parse(token)
	if !ok {
		return nil, invalidKey()
	}
	var k Key
	err := s.db.NewSelect().Model(&k).Relation("User", account.WithoutPasswordHash).Where("key.prefix = ?", prefix).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, invalidKey()
	}
	if err != nil {
		return nil, fmt.Errorf("authenticate key: %w", err)
	}
	// The prefix is not secret; the secret's hash is compared in constant
	// time so that the comparison leaks nothing of it.
	if subtle.ConstantTimeCompare(k.SecretHash, hashSecret(secret)) != 1 {
		return nil, invalidKey()
	}
	if err := usable(&k, time.Now()); err != nil {
		return nil, err
	}
	u := k.User
	if err := userUsable(u.Status); err != nil {
		return nil, err
	}
	if k.LastUsedAt == nil || time.Since(*k.LastUsedAt) > lastUsedGranularity {
		// The condition makes concurrent requests write once, not each.
		if _, err := s.db.NewUpdate().Model((*Key)(nil)).Set("last_used_at = now()").
			Where("id = ? AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')", k.ID).Exec(ctx); err != nil {
			s.log.WarnContext(ctx, "could not touch API key", "err", err)
		}
	}
	return &account.Viewer{User: u, Key: &account.KeyGrant{ID: k.ID, Scopes: k.Scopes()}}, nil
}

// StillValidKeys rechecks keys that long-lived streams authenticated
// once, all in one query: the result holds, for each of ids that no longer
// works, why — UNAUTHENTICATED (unknown, revoked, expired, user deleted) or
// ACCOUNT_SUSPENDED, as Authenticate would say; ids that still work have no
// entry. Callers bound len(ids), which all go into the query.
func (s *Service) StillValidKeys(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]error, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var rows []struct {
		ID        uuid.UUID
		RevokedAt *time.Time
		ExpiresAt *time.Time
		Status    string
	}
	err := s.db.NewSelect().ColumnExpr("k.id, k.revoked_at, k.expires_at, u.status").
		TableExpr("api_keys AS k").Join("JOIN users AS u ON u.id = k.user_id").
		Where("k.id IN (?)", bun.In(ids)).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("check keys: %w", err)
	}
	ended := make(map[uuid.UUID]error)
	for _, id := range ids {
		ended[id] = invalidKey() // unless its row says otherwise, below
	}
	now := time.Now()
	for _, r := range rows {
		err := usable(&Key{RevokedAt: r.RevokedAt, ExpiresAt: r.ExpiresAt}, now)
		if err == nil {
			err = userUsable(r.Status)
		}
		if err != nil {
			ended[r.ID] = err
		} else {
			delete(ended, r.ID)
		}
	}
	return ended, nil
}

func usable(k *Key, now time.Time) error {
	if k.RevokedAt != nil {
		return apperr.Errorf(apperr.Unauthenticated, "This API key was revoked at %s; its owner can make a new one in the editor.", k.RevokedAt.UTC().Format(time.RFC3339))
	}
	if k.ExpiresAt != nil && !now.Before(*k.ExpiresAt) {
		return apperr.Errorf(apperr.Unauthenticated, "This API key expired at %s; its owner can make a new one in the editor.", k.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

func userUsable(status string) error {
	switch status {
	case account.StatusActive:
		return nil
	case account.StatusSuspended:
		return apperr.Errorf(apperr.AccountSuspended, "The account of this API key is suspended. Its owner may contact support if they think this is a mistake.")
	default:
		return apperr.Errorf(apperr.Unauthenticated, "The account of this API key no longer exists.")
	}
}

func invalidKey() error {
	return apperr.Errorf(apperr.Unauthenticated, "This API key is not valid: check that you sent all of it (fi_live_…), or make a new one in the editor.")
}

// parse splits a token into its prefix and secret; ok is false for
// anything that cannot be a key.
func parse(token string) (prefix, secret string, ok bool) {
	rest, found := strings.CutPrefix(token, TokenPrefix)
	if !found {
		return "", "", false
	}
	prefix, secret, found = strings.Cut(rest, "_")
	if !found || len(prefix) != 2*prefixBytes || len(secret) != base64.RawURLEncoding.EncodedLen(secretBytes) {
		return "", "", false
	}
	if _, err := hex.DecodeString(prefix); err != nil {
		return "", "", false
	}
	if _, err := base64.RawURLEncoding.DecodeString(secret); err != nil {
		return "", "", false
	}
	return prefix, secret, true
}

func newPrefix() string {
	var b [prefixBytes]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	return hex.EncodeToString(b[:])
}

func newSecret() string {
	var b [secretBytes]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}
