package webhook

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/fastimage/api/internal/db"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
)

// CheckURL validates a webhook URL as the guard will send to it.
// Returns VALIDATION naming field.
func (s *Service) CheckURL(ctx context.Context, field, raw string) error {
	return s.guard.CheckURL(ctx, field, raw)
}

// CreateEndpoint registers url for the event types and returns the
// endpoint with its secret, which is shown this once.
// Returns FORBIDDEN (a key without the webhooks scope, or without
// credits:read for credits.low), VALIDATION.
func (s *Service) CreateEndpoint(ctx context.Context, a actor.Actor, rawURL string, types []string) (*Endpoint, error) {
	if err := a.RequireScope(actor.ScopeWebhooks); err != nil {
		return nil, err
	}
	rawURL = strings.TrimSpace(rawURL)
	if err := s.guard.CheckURL(ctx, "url", rawURL); err != nil {
		return nil, err
	}
	if len(types) == 0 {
		return nil, apperr.Errorf(apperr.Validation, "Pick at least one event type: %s.", strings.Join(EventTypes, ", ")).With("field", "events")
	}
	var evs []string
	for _, t := range types {
		if !slices.Contains(EventTypes, t) {
			return nil, apperr.Errorf(apperr.Validation, "Unknown event type %q; use %s.", t, strings.Join(EventTypes, ", ")).With("field", "events")
		}
		if t == CreditsLow {
			// Its data is the user's available credits.
			if err := a.RequireScope(actor.ScopeCreditsRead); err != nil {
				return nil, err
			}
		}
		if !slices.Contains(evs, t) {
			evs = append(evs, t)
		}
	}
	ep := &Endpoint{UserID: a.UserID, URL: rawURL, Events: evs, Secret: newSecret()}
	if a.IsKey() {
		ep.APIKeyID = &a.APIKeyID
	}
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		// The user's row serializes concurrent registrations, so the cap holds.
		if _, err := tx.ExecContext(ctx, "SELECT 1 FROM users WHERE id = ? FOR UPDATE", a.UserID); err != nil {
			return err
		}
		n, err := tx.NewSelect().Model((*Endpoint)(nil)).Where("user_id = ? AND disabled_at IS NULL", a.UserID).Count(ctx)
		if err != nil {
			return err
		}
		if n >= int64(s.cfg.MaxEndpoints) {
			return apperr.Errorf(apperr.Validation, "You have %d webhook endpoints, the most allowed; delete one first.", n)
		}
		_, err = tx.NewInsert().Model(ep).Returning("*").Exec(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create webhook endpoint: %w", err)
	}
	return ep, nil
}

// Endpoints returns owner's endpoints, newest first, without secrets.
// Returns FORBIDDEN (a key without the webhooks scope, or not the owner).
func (s *Service) Endpoints(ctx context.Context, a actor.Actor, owner uuid.UUID) ([]Endpoint, error) {
	if err := ownScoped(a, owner); err != nil {
		return nil, err
	}
	var eps []Endpoint
	if err := s.db.NewSelect().Model(&eps).Where("user_id = ? AND disabled_at IS NULL", a.UserID).Order("id DESC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	for i := range eps {
		eps[i].hideSecrets()
	}
	return eps, nil
}

// EndpointsByIDs returns the actor's endpoints among ids, without secrets.
func (s *Service) EndpointsByIDs(ctx context.Context, a actor.Actor, ids []uuid.UUID) ([]Endpoint, error) {
	if a.RequireScope(actor.ScopeWebhooks) != nil {
		return nil, nil // what a key may not see does not exist for it
	}
	var eps []Endpoint
	if err := s.db.NewSelect().Model(&eps).Where("id IN (?) AND user_id = ? AND disabled_at IS NULL", bun.In(ids), a.UserID).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find webhook endpoints: %w", err)
	}
	for i := range eps {
		eps[i].hideSecrets()
	}
	return eps, nil
}

func (e *Endpoint) hideSecrets() { e.Secret, e.PreviousSecret = "", nil }

// DeleteEndpoint removes an endpoint; its pending deliveries are given up,
// and its past ones stay listed.
// Returns FORBIDDEN (a key without the webhooks scope), NOT_FOUND (also
// for anyone else's).
func (s *Service) DeleteEndpoint(ctx context.Context, a actor.Actor, id uuid.UUID) error {
	if err := a.RequireScope(actor.ScopeWebhooks); err != nil {
		return err
	}
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewDelete().Model((*Endpoint)(nil)).Where("id = ? AND user_id = ?", id, a.UserID).Exec(ctx)
		if err != nil {
			return fmt.Errorf("delete webhook endpoint: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return endpointNotFound()
		}
		// The foreign key has set endpoint_id NULL; per_request tells
		// these rows from per-request ones.
		_, err = tx.ExecContext(ctx, `UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL,
			last_error = 'The endpoint was deleted.' WHERE user_id = ? AND endpoint_id IS NULL AND NOT per_request AND status = 'pending'`, a.UserID)
		return err
	})
}

// RotateSecret gives an endpoint a new secret, returned this once; the old
// one still signs (a second signature) for the rotation grace period.
// Returns FORBIDDEN (a key without the webhooks scope), NOT_FOUND (also
// for anyone else's).
func (s *Service) RotateSecret(ctx context.Context, a actor.Actor, id uuid.UUID) (*Endpoint, error) {
	if err := a.RequireScope(actor.ScopeWebhooks); err != nil {
		return nil, err
	}
	var ep Endpoint
	err := s.db.NewRaw(`UPDATE webhook_endpoints SET previous_secret = secret,
		previous_secret_expires_at = now() + ?::interval, secret = ?
		WHERE id = ? AND user_id = ? AND disabled_at IS NULL RETURNING *`,
		db.Interval(s.cfg.RotationGrace), newSecret(), id, a.UserID).Scan(ctx, &ep)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, endpointNotFound()
	}
	if err != nil {
		return nil, fmt.Errorf("rotate webhook secret: %w", err)
	}
	ep.PreviousSecret = nil
	return &ep, nil
}

// RequestSecret returns the secret that signs the user's per-request
// webhooks (webhookUrl), making it on first use. Like Replicate's, it can
// be read again: a per-request URL has no registration to show it at.
// Returns FORBIDDEN (a key without the webhooks scope, or not the owner).
func (s *Service) RequestSecret(ctx context.Context, a actor.Actor, owner uuid.UUID) (string, error) {
	if err := ownScoped(a, owner); err != nil {
		return "", err
	}
	return userSecret(ctx, s.db, a.UserID)
}

// userSecret returns (making it if needed) userID's per-request secret.
func userSecret(ctx context.Context, idb bun.IDB, userID uuid.UUID) (string, error) {
	var secret string
	var err error
	// A second try covers a concurrent first use: the insert waits for the
	// other and does nothing, and its statement's snapshot predates the
	// other's row; the next statement sees it.
	for range 2 {
		err = idb.NewRaw(`WITH made AS (
				INSERT INTO webhook_user_secrets (user_id, secret) VALUES (?, ?) ON CONFLICT (user_id) DO NOTHING RETURNING secret
			) SELECT secret FROM made UNION ALL SELECT secret FROM webhook_user_secrets WHERE user_id = ? LIMIT 1`,
			userID, newSecret(), userID).Scan(ctx, &secret)
		if !errors.Is(err, sql.ErrNoRows) {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("webhook request secret: %w", err)
	}
	return secret, nil
}

// ownScoped allows the webhooks of owner's account to its owner, within
// the webhooks scope: a partner's hooks are private, even from admins.
func ownScoped(a actor.Actor, owner uuid.UUID) error {
	if err := a.OwnAccount(owner); err != nil {
		return err
	}
	return a.RequireScope(actor.ScopeWebhooks)
}

// DisableKeyEndpointsTx stops the endpoints an API key registered, in tx
// (the transaction that revokes the key): they receive nothing more and
// their pending deliveries are given up. Returns how many it disabled.
// Internal: for the key's revocation, already authorized.
func DisableKeyEndpointsTx(ctx context.Context, tx bun.IDB, keyID uuid.UUID) (int, error) {
	res, err := tx.ExecContext(ctx, `UPDATE webhook_endpoints SET disabled_at = now() WHERE api_key_id = ? AND disabled_at IS NULL`, keyID)
	if err != nil {
		return 0, fmt.Errorf("disable key's webhook endpoints: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries d SET status = 'failed', next_attempt_at = NULL,
		last_error = 'The API key that registered the endpoint was revoked.'
		FROM webhook_endpoints e WHERE e.id = d.endpoint_id AND e.api_key_id = ? AND d.status = 'pending'`, keyID); err != nil {
		return 0, fmt.Errorf("give up key's webhook deliveries: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
