package server_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsSignedIn opens a graphql-transport-ws socket acknowledged for token
// ("" for an anonymous one).
func wsSignedIn(t *testing.T, s *testServer, token string) *websocket.Conn {
	t.Helper()
	ws, _, err := wsDial(t, s.URL, "graphql-transport-ws", "")
	if err != nil {
		t.Fatal(err)
	}
	payload := map[string]any{}
	if token != "" {
		payload["token"] = token
	}
	wsSend(t, ws, wsMessage{Type: "connection_init", Payload: mustJSON(payload)})
	if m := wsNext(t, ws, 5*time.Second); m.Type != "connection_ack" {
		t.Fatalf("got %s %s, want connection_ack", m.Type, m.Payload)
	}
	return ws
}

// subscribe starts query as operation id on ws.
func subscribe(t *testing.T, ws *websocket.Conn, id, query string) {
	t.Helper()
	wsSend(t, ws, wsMessage{ID: id, Type: "subscribe", Payload: mustJSON(map[string]any{"query": query})})
}

// queriesOver counts the server's SQL statements during d.
func queriesOver(s *testServer, d time.Duration) int64 {
	before := s.queries.n.Load()
	time.Sleep(d) // the measurement is a window of time: idle polls are what it counts
	return s.queries.n.Load() - before
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
	s := start(t, testConfig())
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
