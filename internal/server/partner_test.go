package server_test

import (
	"context"
	"testing"

	"github.com/fastimage/api/internal/config"
)

// A key pays from a bucket of its own: a partner looping until THROTTLED
// leaves the user's session and their other keys untouched; the refusal
// names the key's bucket.
func TestAPIKeyHasItsOwnCostBucket(t *testing.T) {
	t.Parallel()
	cfg := costCfg(10_000, config.CostBucket{Size: 10_000, RestoreRate: 5_000}, config.CostBucket{Size: 10_000, RestoreRate: 1})
	cfg.Costs.Keys = config.CostBucket{Size: 10_000, RestoreRate: 2}
	s := start(t, cfg)
	me, _ := mustSignUp(t, s, "partner-owner@example.com")
	_, loop := makeKey(t, me, "loop", "works:read")
	_, calm := makeKey(t, me, "calm", "works:read")
	looping := s.client(t).as(loop)
	page := `{ viewer { works(first: 100) { edges { node { id title images { url } } } } } }`
	var refused gqlResponse
	for range 20 {
		out := looping.do(page, nil)
		if out.code() == "THROTTLED" {
			refused = out
			break
		}
	}
	if refused.code() != "THROTTLED" {
		t.Fatal("pages of 100 works never drained a key's bucket of 10,000")
	}
	if c := costOf(t, refused); c.ThrottleStatus == nil || c.ThrottleStatus.RestoreRate != 2 {
		t.Errorf("THROTTLED key: extensions.cost %+v, want the key bucket (restoring 2/s)", c)
	}
	s.client(t).as(calm).must(page, nil, nil) // another key: its own bucket
	me.must(page, nil, nil)                   // the user's session: its own bucket
}

// Revoking a key stops the webhook endpoints it registered, in the same
// transaction; the user's own endpoints keep going.
func TestRevokedKeyStopsItsWebhookEndpoints(t *testing.T) {
	t.Parallel()
	s := start(t, noWorkers())
	me, _ := mustSignUp(t, s, "hooks-owner@example.com")
	keyID, secret := makeKey(t, me, "hooks", "webhooks")
	const create = `mutation($url: String!) { createWebhookEndpoint(input: {url: $url, events: ["generation.succeeded"]}) { endpoint { id } } }`
	s.client(t).as(secret).must(create, map[string]any{"url": "http://127.0.0.1:9/by-key"}, nil)
	me.must(create, map[string]any{"url": "http://127.0.0.1:9/by-user"}, nil)
	me.must(`mutation($id: ID!) { revokeApiKey(input: {apiKeyId: $id}) { revokedApiKeyId } }`, map[string]any{"id": keyID}, nil)
	var byKey, byUser string
	err := s.db.NewRaw(`SELECT
		coalesce((SELECT CASE WHEN disabled_at IS NULL THEN 'live' ELSE 'stopped' END FROM webhook_endpoints WHERE url LIKE '%by-key'), 'missing'),
		coalesce((SELECT CASE WHEN disabled_at IS NULL THEN 'live' ELSE 'stopped' END FROM webhook_endpoints WHERE url LIKE '%by-user'), 'missing')`).
		Scan(context.Background(), &byKey, &byUser)
	if err != nil || byKey != "stopped" || byUser != "live" {
		t.Errorf("after the key's revocation: its endpoint %s, the user's %s (%v); want stopped and live", byKey, byUser, err)
	}
}
