package server_test

import (
	"context"
	"fmt"
	"strings"
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

// credits.low goes out once, in the transaction of the generation whose
// charge took the available credits below the threshold; the next charge,
// already below it, sends nothing more.
func TestCreditsLowWebhook(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Credits.LowThreshold = 24 // the bonus is 25: the first charge crosses it
	s := start(t, cfg)
	me, _ := mustSignUp(t, s, "low@example.com")
	me.must(`mutation { createWebhookEndpoint(input: {url: "http://127.0.0.1:9/low", events: ["credits.low"]}) { endpoint { id } } }`, nil, nil)
	for i := range 2 {
		var sub submitted
		me.must(generateMutation, map[string]any{"in": map[string]any{"prompt": fmt.Sprintf("spend %d", i), "width": 64, "height": 64}}, &sub)
		if evs := subscribeEvents(t, s, me.token, sub.GenerateImage.Generation.ID, nil).rest(); evs[len(evs)-1].Kind != "SUCCEEDED" {
			t.Fatalf("generation %d ended with %v", i, kinds(evs))
		}
	}
	var n int
	var payload string
	if err := s.db.NewRaw(`SELECT count(*), coalesce(min(payload::text), '') FROM webhook_deliveries WHERE event_type = 'credits.low'`).
		Scan(context.Background(), &n, &payload); err != nil {
		t.Fatal(err)
	}
	if n != 1 || !strings.Contains(payload, `"threshold": 24`) {
		t.Errorf("credits.low deliveries after two charges: %d (%s), want 1 naming the threshold", n, payload)
	}
}

// An administrator's key acts for its user, like any key: it reads that
// user's account within its scopes, never others' through the admin's
// reach (support reads are done signed in, in the editor).
func TestAdminKeyHasNoAdminReach(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	victim, _ := mustSignUp(t, s, "customer@example.com")
	var who struct{ Viewer struct{ ID string } }
	victim.must(`{ viewer { id } }`, nil, &who)
	admin, _ := mustSignUp(t, s, "admin@example.com")
	if _, err := s.db.ExecContext(context.Background(), "UPDATE users SET role = 'admin' WHERE email = 'admin@example.com'"); err != nil {
		t.Fatal(err)
	}
	const read = `query($id: ID!) { node(id: $id) { ... on User { email credits { balance } } } }`
	var signedIn struct{ Node *struct{ Email string } }
	admin.must(read, map[string]any{"id": who.Viewer.ID}, &signedIn)
	if signedIn.Node == nil || signedIn.Node.Email != "customer@example.com" {
		t.Fatalf("the signed-in admin reads the customer: %+v; want their record", signedIn.Node)
	}
	_, secret := makeKey(t, admin, "admin's app", "credits:read", "works:read")
	key := admin.as(secret)
	var viaKey struct{ Node *struct{ Email string } }
	key.must(read, map[string]any{"id": who.Viewer.ID}, &viaKey)
	if viaKey.Node != nil {
		t.Errorf("an admin's key reads another user: %+v", viaKey.Node)
	}
	var own struct {
		Viewer struct{ Credits struct{ Balance int } }
	}
	key.must(`{ viewer { credits { balance } } }`, nil, &own)
}
