package server_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The server rechecks every open socket's session (and key) on its own
// schedule, with no doorbell: a session or key that expires quietly — an
// UPDATE, no ring — ends exactly its own sockets within about one
// SESSION_RECHECK_INTERVAL, each with 4401 after its operation's
// UNAUTHENTICATED, and every other socket, of the same user or another,
// stays open.
func TestRecheckEndsOnlyExpiredSessionsSockets(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Accounts.SessionRecheck = 200 * time.Millisecond
	s := start(t, cfg)
	ada, _ := mustSignUp(t, s, "ada@example.com")
	adaLaptop, _ := signIn(t, s, "ada@example.com", goodPassword)
	bob, _ := mustSignUp(t, s, "bob@example.com")
	_, liveKey := makeKey(t, bob, "live", "events:read")
	expiringKeyID, expiringKey := makeKey(t, bob, "expiring", "events:read")

	open := func(token string, n int) []*websocket.Conn {
		conns := make([]*websocket.Conn, n)
		for i := range conns {
			conns[i] = openViewerEvents(t, s, token)
		}
		return conns
	}
	expired := slices.Concat(open(ada.token, 3), open(expiringKey, 2))
	kept := slices.Concat(open(adaLaptop.token, 1), open(bob.token, 2), open(liveKey, 1))
	waitForSubscriptions(t, s, len(expired)+len(kept))

	ctx := context.Background()
	if _, err := s.db.ExecContext(ctx, "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE token_hash = sha256(?::bytea)", ada.token); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = ?", uuidOfGlobal(t, expiringKeyID)); err != nil {
		t.Fatal(err)
	}
	for i, c := range expired {
		code, closeCode := readUntilClose(t, c, 5*time.Second)
		if code != "UNAUTHENTICATED" || closeCode != 4401 {
			t.Errorf("expired socket %d: got error %q and close %d, want UNAUTHENTICATED and 4401", i, code, closeCode)
		}
	}

	// A few more rechecks, which must leave the others be.
	time.Sleep(3 * cfg.Accounts.SessionRecheck)
	for i, c := range kept {
		wsSend(t, c, wsMessage{Type: "ping"})
		if err := readUntilPong(c, 5*time.Second); err != nil {
			t.Errorf("kept socket %d: %v, want a pong", i, err)
		}
	}
	waitForSubscriptions(t, s, len(kept))
}

// openViewerEvents opens a graphql-transport-ws socket signed in with token
// and subscribes to viewerEvents under id 1.
func openViewerEvents(t *testing.T, s *testServer, token string) *websocket.Conn {
	t.Helper()
	c := wsAckAs(t, s.URL, "graphql-transport-ws", token)
	wsSend(t, c, wsMessage{ID: "1", Type: "subscribe", Payload: mustJSON(map[string]any{"query": viewerEventsQuery})})
	return c
}

// readUntilPong reads a socket until a pong comes (wsNext skips those).
func readUntilPong(c *websocket.Conn, timeout time.Duration) error {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	for {
		var m wsMessage
		if err := c.ReadJSON(&m); err != nil {
			return err
		}
		if m.Type == "pong" {
			return nil
		}
	}
}

// readUntilClose reads a socket until the server closes it and returns the
// code of the last `error` message before the close, and the close code.
func readUntilClose(t *testing.T, c *websocket.Conn, timeout time.Duration) (code string, closeCode int) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	for {
		var m wsMessage
		err := c.ReadJSON(&m)
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("the socket ended with %v, want a close", err)
			}
			if ce.Text == "" {
				t.Errorf("close %d has no reason", ce.Code)
			}
			return code, ce.Code
		}
		if m.Type == "error" {
			code = strings.Join(payloadCodes(t, m.Payload), ",")
		}
	}
}
