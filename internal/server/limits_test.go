package server_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fastimage/api/internal/config"
)

// wsSignedIn opens a graphql-transport-ws socket acknowledged for token
// ("" for an anonymous one).
func wsSignedIn(t *testing.T, s *testServer, token string) *websocket.Conn {
	t.Helper()
	ws, _, err := wsDial(t, s.URL, "graphql-transport-ws", "")
	if err != nil {
		t.Fatal(err)
	}
	wsInit(t, ws, token)
	return ws
}

// wsInit sends connection_init, with token unless it is "", and waits for
// the ack.
func wsInit(t *testing.T, ws *websocket.Conn, token string) {
	t.Helper()
	payload := map[string]any{}
	if token != "" {
		payload["token"] = token
	}
	wsSend(t, ws, wsMessage{Type: "connection_init", Payload: mustJSON(payload)})
	if m := wsNext(t, ws, 5*time.Second); m.Type != "connection_ack" {
		t.Fatalf("got %s %s, want connection_ack", m.Type, m.Payload)
	}
}

// subscribe starts query as operation id on ws.
func subscribe(t *testing.T, ws *websocket.Conn, id, query string) {
	t.Helper()
	wsSend(t, ws, wsMessage{ID: id, Type: "subscribe", Payload: mustJSON(map[string]any{"query": query})})
}

// awaitOp reads ws until a message of type typ for operation id arrives,
// skipping the others (ticks of other subscriptions), and returns it.
func awaitOp(t *testing.T, ws *websocket.Conn, id, typ string) wsMessage {
	t.Helper()
	end := time.Now().Add(10 * time.Second)
	for time.Now().Before(end) {
		m := wsNext(t, ws, time.Until(end))
		if m.ID != id {
			continue
		}
		if m.Type != typ {
			t.Fatalf("operation %s: got %s %s, want %s", id, m.Type, m.Payload, typ)
		}
		return m
	}
	t.Fatalf("operation %s: no %s", id, typ)
	return wsMessage{}
}

// wantLimitExceeded checks that m is the refusal of a subscription.
func wantLimitExceeded(t *testing.T, m wsMessage) {
	t.Helper()
	if codes := payloadCodes(t, m.Payload); len(codes) != 1 || codes[0] != "LIMIT_EXCEEDED" {
		t.Errorf("error codes %v, want [LIMIT_EXCEEDED]", codes)
	}
}

// One socket runs at most MAX_SUBSCRIPTIONS_PER_SOCKET subscriptions: the
// next is refused with LIMIT_EXCEEDED while the others keep running, and
// stopping one makes room for another.
func TestSubscriptionsPerSocketAreCapped(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Streams.PerSocket = 3
	s := start(t, cfg)
	var info struct {
		ServerInfo struct {
			Limits struct{ MaxStreamsPerIP, MaxSubscriptionsPerSocket, MaxSubscriptionsPerUser int }
		}
	}
	r := query(t, s.URL, `{ serverInfo { limits { maxStreamsPerIp maxSubscriptionsPerSocket maxSubscriptionsPerUser } } }`)
	if len(r.Errors) > 0 {
		t.Fatalf("serverInfo: %+v", r.Errors)
	}
	if err := json.Unmarshal(r.Data, &info); err != nil {
		t.Fatal(err)
	}
	if got, want := info.ServerInfo.Limits, (struct{ MaxStreamsPerIP, MaxSubscriptionsPerSocket, MaxSubscriptionsPerUser int }{100, 3, 100}); got != want {
		t.Errorf("serverInfo.limits %+v, want %+v", got, want)
	}

	ws := wsSignedIn(t, s, "")
	for _, id := range []string{"1", "2", "3"} {
		subscribe(t, ws, id, heartbeatQuery)
		awaitOp(t, ws, id, "next")
	}

	subscribe(t, ws, "4", heartbeatQuery)
	wantLimitExceeded(t, awaitOp(t, ws, "4", "error"))
	for _, id := range []string{"1", "2", "3"} {
		awaitOp(t, ws, id, "next") // still ticking
	}

	wsSend(t, ws, wsMessage{ID: "1", Type: "complete"})
	subscribe(t, ws, "5", heartbeatQuery)
	awaitOp(t, ws, "5", "next")

	// Another socket has room of its own.
	other := wsSignedIn(t, s, "")
	subscribe(t, other, "1", heartbeatQuery)
	awaitOp(t, other, "1", "next")
}

// One user runs at most MAX_SUBSCRIPTIONS_PER_USER subscriptions over all
// their sockets and SSE streams; closing a socket gives its slots back.
func TestSubscriptionsPerUserAreCapped(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Streams.PerUser = 2
	s := start(t, cfg)
	c, _ := mustSignUp(t, s, "tabs@example.com")
	const feed = `subscription { viewerEvents(afterSeq: 0) { seq } }`

	tab1, tab2, tab3 := wsSignedIn(t, s, c.token), wsSignedIn(t, s, c.token), wsSignedIn(t, s, c.token)
	subscribe(t, tab1, "1", feed)
	awaitOp(t, tab1, "1", "next")
	subscribe(t, tab2, "1", feed)
	awaitOp(t, tab2, "1", "next")

	subscribe(t, tab3, "1", feed)
	wantLimitExceeded(t, awaitOp(t, tab3, "1", "error"))
	if codes := sseErrorCodes(t, s, c.token, feed); len(codes) != 1 || codes[0] != "LIMIT_EXCEEDED" {
		t.Errorf("over SSE: error codes %v, want [LIMIT_EXCEEDED]", codes)
	}

	// Someone else is not held back by this user.
	d, _ := mustSignUp(t, s, "other@example.com")
	theirs := wsSignedIn(t, s, d.token)
	subscribe(t, theirs, "1", feed)
	awaitOp(t, theirs, "1", "next")

	// Closing a tab frees its subscription: a new one is accepted as soon
	// as the server has seen the close.
	if err := tab1.Close(); err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(10 * time.Second)
	for i := 2; ; i++ {
		id := fmt.Sprint(i)
		subscribe(t, tab3, id, feed)
		m := wsNext(t, tab3, 10*time.Second)
		if m.ID == id && m.Type == "next" {
			break
		}
		if m.ID != id || m.Type != "error" {
			t.Fatalf("got %s %s for %s, want next or error", m.Type, m.Payload, m.ID)
		}
		wantLimitExceeded(t, m)
		if time.Now().After(end) {
			t.Fatal("closing a socket did not free its subscription")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sseErrorCodes runs query over SSE as token and returns the codes of the
// errors its stream carries (the stream must end by itself).
func sseErrorCodes(t *testing.T, s *testServer, token, query string) []string {
	t.Helper()
	req, _ := http.NewRequest("POST", s.URL+"/graphql", strings.NewReader(string(mustJSON(map[string]any{"query": query}))))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	deadline := time.AfterFunc(10*time.Second, func() { resp.Body.Close() })
	defer deadline.Stop()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var body struct{ Errors json.RawMessage }
		if err := json.Unmarshal([]byte(data), &body); err != nil {
			t.Fatalf("event data %q: %v", data, err)
		}
		if body.Errors != nil {
			return payloadCodes(t, body.Errors)
		}
	}
	t.Fatalf("the stream ended without errors (%v)", sc.Err())
	return nil
}

// dialAs opens a WebSocket through a trusted proxy that says the client is
// at ip.
func dialAs(t *testing.T, s *testServer, ip string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/graphql", http.Header{"X-Forwarded-For": {ip}})
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

// One client IP (as worked out through trusted proxies) holds at most
// MAX_STREAMS_PER_IP WebSockets and SSE streams: the next is refused at the
// upgrade with 429 and LIMIT_EXCEEDED, and closing one makes room.
func TestStreamsPerIPAreCapped(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Streams.PerIP = 2
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	s := start(t, cfg)
	const ip = "203.0.113.7"

	first, _, err := dialAs(t, s, ip)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := dialAs(t, s, ip); err != nil {
		t.Fatal(err)
	}
	_, resp, err := dialAs(t, s, ip)
	if err == nil {
		t.Fatal("a third socket from one IP was accepted")
	}
	wantRefused(t, resp)

	// SSE streams count too.
	req, _ := http.NewRequest("POST", s.URL+"/graphql", strings.NewReader(string(mustJSON(map[string]any{"query": heartbeatQuery}))))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("X-Forwarded-For", ip)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, resp)

	// Another address has room of its own.
	if _, _, err := dialAs(t, s, "203.0.113.8"); err != nil {
		t.Errorf("another IP: %v", err)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool {
		c, resp, err := dialAs(t, s, ip)
		if err != nil {
			wantRefused(t, resp)
			return false
		}
		c.Close()
		return true
	}, "closing a socket to make room for another")
}

func wantRefused(t *testing.T, resp *http.Response) {
	t.Helper()
	if resp == nil {
		t.Fatal("no HTTP response")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("status %d, want 429", resp.StatusCode)
	}
	var body gqlResponse
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("body: %v", err)
	}
	if got := body.code(); got != "LIMIT_EXCEEDED" {
		t.Errorf("code %q, want LIMIT_EXCEEDED", got)
	}
}

// queriesOver counts the server's SQL statements during d.
func queriesOver(s *testServer, d time.Duration) int64 {
	before := s.queries.all.Load()
	time.Sleep(d) // the measurement is a window of time: idle polls are what it counts
	return s.queries.all.Load() - before
}

// Followers of one user's feed share its reads: a thousand idle viewerEvents
// subscriptions cost about what one does per poll interval, not a thousand
// reads.
func TestIdleFeedFollowersShareReads(t *testing.T) {
	t.Parallel()
	const (
		sockets   = 10
		perSocket = 100
		poll      = 2 * time.Second // the test server's safety-net poll
		window    = 3 * poll
	)
	cfg := testConfig()
	cfg.Streams = config.Streams{PerIP: sockets, PerSocket: perSocket, PerUser: sockets * perSocket}
	s := start(t, cfg)
	c, _ := mustSignUp(t, s, "many-tabs@example.com")

	wss := make([]*websocket.Conn, sockets)
	for i := range wss {
		wss[i] = wsSignedIn(t, s, c.token)
	}
	// Every subscription replays the sign-up bonus, then sits at the tip.
	follow := func(ws *websocket.Conn, id string) {
		t.Helper()
		subscribe(t, ws, id, `subscription { viewerEvents(afterSeq: 0) { seq } }`)
	}
	awaitFirst := func(ws *websocket.Conn, n int) {
		t.Helper()
		seen := map[string]bool{}
		for len(seen) < n {
			m := wsNext(t, ws, 30*time.Second)
			if m.Type != "next" {
				t.Fatalf("got %s %s, want next", m.Type, m.Payload)
			}
			seen[m.ID] = true
		}
	}
	follow(wss[0], "0")
	awaitFirst(wss[0], 1)
	one := queriesOver(s, window)

	for i, ws := range wss {
		for j := range perSocket {
			if i == 0 && j == 0 {
				continue
			}
			follow(ws, fmt.Sprintf("%d", i*perSocket+j))
		}
	}
	for i, ws := range wss {
		n := perSocket
		if i == 0 {
			n--
		}
		awaitFirst(ws, n)
	}
	many := queriesOver(s, window)
	t.Logf("statements in %v: %d with 1 idle follower, %d with %d", window, one, many, sockets*perSocket)
	if many > 2*one+10 {
		t.Errorf("%d idle followers cost %d statements in %v; one cost %d", sockets*perSocket, many, window, one)
	}
}

// Clients that are not signed in share one account's allowance of
// subscriptions per address (MAX_SUBSCRIPTIONS_PER_USER). Before, nothing
// counted them together: one address could hold MAX_STREAMS_PER_IP sockets
// of MAX_SUBSCRIPTIONS_PER_SOCKET subscriptions each, 10,000 by default,
// which took the server's memory up by a quarter of a gigabyte.
func TestAnonymousSubscriptionsPerIPAreCapped(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Streams.PerUser = 3
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	s := start(t, cfg)
	const (
		ip   = "203.0.113.7"
		tick = `subscription { heartbeat(intervalMs: 250) { seq } }`
	)
	// as opens a socket from ip, signed in with token unless it is "".
	as := func(ip, token string) *websocket.Conn {
		t.Helper()
		ws, _, err := dialAs(t, s, ip)
		if err != nil {
			t.Fatal(err)
		}
		wsInit(t, ws, token)
		return ws
	}

	a, b := as(ip, ""), as(ip, "")
	for _, id := range []string{"1", "2"} {
		subscribe(t, a, id, tick)
		awaitOp(t, a, id, "next")
	}
	subscribe(t, b, "1", tick)
	awaitOp(t, b, "1", "next")
	subscribe(t, b, "2", tick)
	wantLimitExceeded(t, awaitOp(t, b, "2", "error"))

	// SSE streams from the address count too.
	req, _ := http.NewRequest("POST", s.URL+"/graphql", strings.NewReader(string(mustJSON(map[string]any{"query": tick}))))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("X-Forwarded-For", ip)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := bufio.NewReader(resp.Body).ReadString('}')
	resp.Body.Close()
	if err != nil || !strings.Contains(body, "LIMIT_EXCEEDED") {
		t.Errorf("an SSE subscription over the allowance: %q (%v), want LIMIT_EXCEEDED", body, err)
	}

	// Another address has room of its own, and so has a user signed in at
	// this one.
	other := as("203.0.113.8", "")
	subscribe(t, other, "1", tick)
	awaitOp(t, other, "1", "next")
	c, _ := mustSignUp(t, s, "behind-nat@example.com")
	mine := as(ip, c.token)
	subscribe(t, mine, "1", tick)
	awaitOp(t, mine, "1", "next")

	// Stopping one makes room for another.
	wsSend(t, a, wsMessage{ID: "1", Type: "complete"})
	subscribe(t, a, "3", tick)
	awaitOp(t, a, "3", "next")
}
