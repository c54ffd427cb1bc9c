package server_test

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A stream that meets a row it cannot deliver ends with an INTERNAL error for
// its operation, never with a normal `complete` that a client would take for
// the end of its feed.
func TestBrokenStreamEndsWithAnError(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	c, userID := mustSignUp(t, s, "broken-feed@example.com")
	// The sign-up bonus is entry 1; entry 2 has a cause no client knows.
	if _, err := s.db.ExecContext(context.Background(), `
		WITH s AS (UPDATE viewer_feeds SET last_seq = last_seq + 1 WHERE user_id = ? RETURNING user_id, last_seq)
		INSERT INTO viewer_events (user_id, seq, kind, payload)
		SELECT user_id, last_seq, 'CREDITS', '{"balance": 1, "held": 0, "available": 1, "cause": "BOGUS"}' FROM s`,
		uuidOfGlobal(t, userID)); err != nil {
		t.Fatal(err)
	}

	ws, _, err := wsDial(t, s.URL, "graphql-transport-ws", "")
	if err != nil {
		t.Fatal(err)
	}
	wsInit(t, ws, c.token)
	wsSend(t, ws, wsMessage{ID: "1", Type: "subscribe", Payload: mustJSON(map[string]any{"query": `subscription { viewerEvents(afterSeq: 0) { seq kind cause } }`})})
	if m := wsNext(t, ws, 5*time.Second); m.Type != "next" || !strings.Contains(string(m.Payload), `"SIGNUP_BONUS"`) {
		t.Fatalf("got %s %s, want the sign-up bonus", m.Type, m.Payload)
	}
	m := wsNext(t, ws, 5*time.Second)
	if m.Type != "error" || m.ID != "1" {
		t.Fatalf("got %s %s, want an error for operation 1", m.Type, m.Payload)
	}
	if codes := payloadCodes(t, m.Payload); len(codes) != 1 || codes[0] != "INTERNAL" {
		t.Errorf("error codes %v, want [INTERNAL]", codes)
	}
}
