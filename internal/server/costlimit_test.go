package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fastimage/api/internal/config"
)

// costCfg is the test configuration with small cost buckets, so that a
// short loop exceeds them and retryAfter is a second or two.
func costCfg(maxComplexity int, anonymous, sessions config.CostBucket) *config.Serve {
	cfg := testConfig()
	cfg.MaxQueryComplexity = maxComplexity
	cfg.Costs = config.Costs{Keys: sessions, Sessions: sessions, Anonymous: anonymous}
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	return cfg
}

const rateLimitQuery = `{ rateLimit { maximumAvailable currentlyAvailable restoreRate cost } serverInfo { version } }`

// costPost sends q from the client IP ip (through the trusted proxy) under
// the graphql-response+json media type.
func costPost(t *testing.T, baseURL, ip, accept, q string) (*http.Response, gqlResponse) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, baseURL+"/graphql", strings.NewReader(string(mustJSON(map[string]any{"query": q}))))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", accept)
	if ip != "" {
		req.Header.Set("X-Forwarded-For", ip)
	}
	return do(t, req)
}

// operationCost is extensions.cost as a client decodes it.
type operationCost struct {
	RequestedQueryCost, ActualQueryCost int
	ThrottleStatus                      *struct{ MaximumAvailable, CurrentlyAvailable, RestoreRate float64 }
}

func costOf(t *testing.T, out gqlResponse) operationCost {
	t.Helper()
	raw, _ := json.Marshal(out.Extensions["cost"])
	var c operationCost
	if err := json.Unmarshal(raw, &c); err != nil || c.RequestedQueryCost == 0 {
		t.Fatalf("extensions.cost = %s (%v); want the operation's cost", raw, err)
	}
	return c
}

// drain sends q until it is THROTTLED, at most max times, and returns the
// refusal and how many went through.
func drain(t *testing.T, urls []string, ip, q string, max int) (*http.Response, gqlResponse, int) {
	t.Helper()
	for i := range max {
		resp, out := costPost(t, urls[i%len(urls)], ip, mediaResponse, q)
		if out.code() == "THROTTLED" {
			return resp, out, i
		}
		if resp.StatusCode != http.StatusOK || len(out.Errors) > 0 {
			t.Fatalf("request %d: status %d, errors %+v", i, resp.StatusCode, out.Errors)
		}
	}
	t.Fatalf("%d requests of %q were never THROTTLED", max, q)
	return nil, gqlResponse{}, 0
}

const mediaResponse = "application/graphql-response+json"

// A client looping past its bucket gets THROTTLED with retryAfter (HTTP 429
// and Retry-After under graphql-response+json, 200 under application/json),
// extensions.cost on every response, and after waiting retryAfter it runs
// again.
func TestCostLimitThrottlesUntilRetryAfter(t *testing.T) {
	t.Parallel()
	s := start(t, costCfg(100, config.CostBucket{Size: 100, RestoreRate: 20}, config.CostBucket{Size: 1000, RestoreRate: 100}))
	const ip = "198.51.100.7"

	resp, out := costPost(t, s.URL, ip, mediaResponse, rateLimitQuery)
	var first struct {
		RateLimit struct {
			MaximumAvailable, CurrentlyAvailable, RestoreRate float64
			Cost                                              int
		}
	}
	if err := json.Unmarshal(out.Data, &first); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first query: status %d, %s, %v", resp.StatusCode, out.Data, out.Errors)
	}
	cost := costOf(t, out)
	rl := first.RateLimit
	if cost.ThrottleStatus == nil || cost.ActualQueryCost != cost.RequestedQueryCost ||
		rl.Cost != cost.RequestedQueryCost || rl.MaximumAvailable != 100 || rl.RestoreRate != 20 ||
		rl.CurrentlyAvailable != float64(100-rl.Cost) || *cost.ThrottleStatus != (struct{ MaximumAvailable, CurrentlyAvailable, RestoreRate float64 }{100, rl.CurrentlyAvailable, 20}) {
		t.Fatalf("first query: rateLimit %+v, extensions.cost %+v; want a full bucket of 100 less the query's cost, restoring 20/s", rl, cost)
	}

	var info struct {
		ServerInfo struct {
			Limits struct {
				APIKeyCostBucket, SessionCostBucket, AnonymousCostBucket struct{ MaximumAvailable, RestoreRate float64 }
			}
		}
	}
	_, out = costPost(t, s.URL, "198.51.100.99", mediaResponse, `{ serverInfo { limits {
		apiKeyCostBucket { maximumAvailable restoreRate } sessionCostBucket { maximumAvailable restoreRate }
		anonymousCostBucket { maximumAvailable restoreRate } } } }`)
	if err := json.Unmarshal(out.Data, &info); err != nil {
		t.Fatal(err)
	}
	if l := info.ServerInfo.Limits; l.AnonymousCostBucket.MaximumAvailable != 100 || l.AnonymousCostBucket.RestoreRate != 20 ||
		l.SessionCostBucket.MaximumAvailable != 1000 || l.APIKeyCostBucket.RestoreRate != 100 {
		t.Errorf("serverInfo.limits cost buckets %+v, want the settings", l)
	}

	resp, throttled, n := drain(t, []string{s.URL}, ip, rateLimitQuery, 100)
	t.Logf("%d queries of cost %d went through before THROTTLED", n+1, rl.Cost)
	retry, _ := throttled.Errors[0].Extensions["retryAfter"].(float64)
	if resp.StatusCode != http.StatusTooManyRequests || throttled.HasData || retry < 1 || retry > 2 ||
		resp.Header.Get("Retry-After") != strconv.Itoa(int(retry)) {
		t.Fatalf("THROTTLED: status %d, Retry-After %q, data present %v, errors %+v; want 429 with retryAfter 1 or 2 seconds (%d points at 20/s) in the error and the header",
			resp.StatusCode, resp.Header.Get("Retry-After"), throttled.HasData, throttled.Errors, rl.Cost)
	}
	if c := costOf(t, throttled); c.ThrottleStatus == nil || c.ThrottleStatus.CurrentlyAvailable >= float64(rl.Cost) {
		t.Errorf("THROTTLED extensions.cost = %+v; want the bucket with less than the cost %d free", c, rl.Cost)
	}

	legacy, out := costPost(t, s.URL, ip, "application/json", rateLimitQuery)
	if legacy.StatusCode != http.StatusOK || out.code() != "THROTTLED" || legacy.Header.Get("Retry-After") == "" {
		t.Errorf("under application/json: status %d, code %q, Retry-After %q; want 200, THROTTLED and the header", legacy.StatusCode, out.code(), legacy.Header.Get("Retry-After"))
	}

	// The refusals took nothing: waiting retryAfter is enough.
	time.Sleep(time.Duration(retry) * time.Second)
	if resp, out := costPost(t, s.URL, ip, mediaResponse, rateLimitQuery); resp.StatusCode != 200 || len(out.Errors) > 0 {
		t.Fatalf("after waiting retryAfter: status %d, errors %+v; want it to run", resp.StatusCode, out.Errors)
	}
}

// Replicas charge one bucket: a client alternating between two servers on
// one database is let through no more than one bucket's worth.
func TestCostLimitSharedByReplicas(t *testing.T) {
	t.Parallel()
	cfg := costCfg(100, config.CostBucket{Size: 100, RestoreRate: 1}, config.CostBucket{Size: 1000, RestoreRate: 100})
	a := start(t, cfg)
	b := startWithDB(t, cfg, a.dbURL)
	const ip = "198.51.100.8"
	_, out := costPost(t, a.URL, ip, mediaResponse, rateLimitQuery)
	cost := costOf(t, out).RequestedQueryCost
	_, _, n := drain(t, []string{b.URL, a.URL}, ip, rateLimitQuery, 100)
	// One bucket of 100 holds 100/cost queries, the first included; two
	// buckets would have let twice as many through.
	if total, most := n+1, 100/cost+1; total > most {
		t.Fatalf("%d queries of cost %d ran over two replicas; one bucket of 100 holds %d", total, cost, most)
	}
	for _, s := range []*testServer{a, b} {
		if _, out := costPost(t, s.URL, ip, mediaResponse, rateLimitQuery); out.code() != "THROTTLED" {
			t.Errorf("replica %s after the bucket ran dry: code %q, want THROTTLED", s.URL, out.code())
		}
	}
}

// Each session has a bucket of its own, apart from its address's.
func TestCostLimitPerSession(t *testing.T) {
	t.Parallel()
	s := start(t, costCfg(10_000, config.CostBucket{Size: 10_000, RestoreRate: 5_000}, config.CostBucket{Size: 10_000, RestoreRate: 1}))
	me, _ := mustSignUp(t, s, "bucket@example.com")
	other, _ := mustSignUp(t, s, "other-bucket@example.com")

	// A session's bucket: pages of 100 works with their images drain it.
	page := `{ viewer { works(first: 100) { edges { node { id title images { url } } } } } rateLimit { cost currentlyAvailable } }`
	var refused gqlResponse
	for i := range 20 {
		out := me.do(page, nil)
		if out.code() == "THROTTLED" {
			refused = out
			break
		}
		if len(out.Errors) > 0 {
			t.Fatalf("page %d: %+v", i, out.Errors)
		}
	}
	if refused.code() != "THROTTLED" {
		t.Fatal("pages of 100 works never drained a session bucket of 10,000")
	}
	if c := costOf(t, refused); c.ThrottleStatus == nil || c.ThrottleStatus.MaximumAvailable != 10_000 || c.ThrottleStatus.RestoreRate != 1 {
		t.Errorf("THROTTLED session: extensions.cost %+v, want the session bucket (10,000 at 1/s)", c)
	}
	other.must(page, nil, nil) // another session: its own bucket
	// The address the sessions came from, not signed in: its own bucket.
	_, out := costPost(t, s.URL, "", mediaResponse, rateLimitQuery)
	if len(out.Errors) > 0 || costOf(t, out).ThrottleStatus.RestoreRate != 5_000 {
		t.Fatalf("anonymous: errors %+v, extensions.cost %+v; want the anonymous bucket", out.Errors, out.Extensions["cost"])
	}
}

// Clients not signed in share one bucket per client IP; another IP has its
// own.
func TestCostLimitPerAnonymousIP(t *testing.T) {
	t.Parallel()
	s := start(t, costCfg(100, config.CostBucket{Size: 100, RestoreRate: 1}, config.CostBucket{Size: 1000, RestoreRate: 1}))
	drain(t, []string{s.URL}, "203.0.113.1", rateLimitQuery, 100)
	if _, out := costPost(t, s.URL, "203.0.113.1", mediaResponse, rateLimitQuery); out.code() != "THROTTLED" {
		t.Errorf("same IP again: code %q, want THROTTLED", out.code())
	}
	if _, out := costPost(t, s.URL, "203.0.113.2", mediaResponse, rateLimitQuery); len(out.Errors) > 0 {
		t.Errorf("another IP: %+v; want a bucket of its own", out.Errors)
	}
}

// Subscriptions pay once, when they start, over WebSocket and SSE; one that
// does not fit is refused with THROTTLED for its id.
func TestCostLimitChargesSubscriptionsOnce(t *testing.T) {
	t.Parallel()
	s := start(t, costCfg(100, config.CostBucket{Size: 100, RestoreRate: 1}, config.CostBucket{Size: 1000, RestoreRate: 1}))
	ws, _, err := wsDial(t, s.URL, "graphql-transport-ws", "")
	if err != nil {
		t.Fatal(err)
	}
	wsInit(t, ws, "")
	subscribe(t, ws, "1", heartbeatQuery)
	var subCost int
	for range 6 { // 1.5 s of ticks
		m := awaitOp(t, ws, "1", "next")
		var tick gqlResponse
		if err := json.Unmarshal(m.Payload, &tick); err != nil {
			t.Fatal(err)
		}
		subCost = costOf(t, tick).RequestedQueryCost
	}
	// The WebSocket comes from 127.0.0.1 itself.
	_, out := costPost(t, s.URL, "", mediaResponse, rateLimitQuery)
	var got struct {
		RateLimit struct{ CurrentlyAvailable float64 }
	}
	if err := json.Unmarshal(out.Data, &got); err != nil || len(out.Errors) > 0 {
		t.Fatalf("rateLimit: %s %+v", out.Data, out.Errors)
	}
	q := costOf(t, out).RequestedQueryCost
	if avail := got.RateLimit.CurrentlyAvailable; avail < float64(100-subCost-q) || avail > float64(100-q) {
		t.Fatalf("after 6 ticks of a subscription of cost %d and a query of %d, %v points are free; want the subscription charged once (%d to %d)",
			subCost, q, avail, 100-subCost-q, 100-q)
	}

	drain(t, []string{s.URL}, "", rateLimitQuery, 100)
	subscribe(t, ws, "2", heartbeatQuery)
	m := wsNext(t, ws, 5*time.Second)
	for m.ID != "2" {
		m = wsNext(t, ws, 5*time.Second)
	}
	if !strings.Contains(string(m.Payload), `"THROTTLED"`) || !strings.Contains(string(m.Payload), `"retryAfter"`) {
		t.Fatalf("subscription over an empty bucket: %s %s; want THROTTLED with retryAfter", m.Type, m.Payload)
	}

	req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", strings.NewReader(string(mustJSON(map[string]any{"query": heartbeatQuery}))))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	// A refused stream ends at once; one that ran would tick until the
	// client's timeout.
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `"THROTTLED"`) {
		t.Errorf("SSE subscription over an empty bucket: %s; want THROTTLED", body)
	}
}

// The cost charged grows with the page asked for.
func TestCostOfPageGrowsWithFirst(t *testing.T) {
	t.Parallel()
	s := start(t, costCfg(10_000, config.CostBucket{Size: 10_000, RestoreRate: 5_000}, config.CostBucket{Size: 100_000, RestoreRate: 100_000}))
	me, _ := mustSignUp(t, s, "pages@example.com")
	cost := func(first int) int {
		var out struct{ RateLimit struct{ Cost int } }
		me.must(fmt.Sprintf(`{ viewer { works(first: %d) { edges { node { id } } } } rateLimit { cost } }`, first), nil, &out)
		return out.RateLimit.Cost
	}
	if one, hundred := cost(1), cost(100); hundred <= one {
		t.Fatalf("works(first: 100) costs %d, works(first: 1) %d; want more", hundred, one)
	}
}
