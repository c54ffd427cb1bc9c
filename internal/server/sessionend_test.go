package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

const viewerEventsQuery = `subscription { viewerEvents { seq kind } }`

// A session that ends while a subscription is open ends it the same way on
// every transport: the operation fails with a code the client can act on,
// and a WebSocket closes with 4401 (4403 for a suspended account) and a
// reason — never a plain 1000 or a `complete` that invites a blind reconnect.
func TestSessionEndEndsSubscriptions(t *testing.T) {
	t.Parallel()
	ends := []struct {
		name      string
		code      string
		closeCode int
		end       func(t *testing.T, s *testServer, email, userID string)
	}{
		{"revoked", "UNAUTHENTICATED", 4401, revokeFromAnotherSession},
		{"suspended", "ACCOUNT_SUSPENDED", 4403, suspendByAdmin},
	}
	transports := []struct {
		name  string
		check func(t *testing.T, s *testServer, token string, end func(), code string, closeCode int)
	}{
		{"graphql-transport-ws", checkWebSocketEnd("graphql-transport-ws", "subscribe")},
		{"graphql-ws", checkWebSocketEnd("graphql-ws", "start")},
		{"sse", checkSSEEnd},
	}
	for _, e := range ends {
		for _, tr := range transports {
			t.Run(e.name+"/"+tr.name, func(t *testing.T) {
				t.Parallel()
				s := start(t, testConfig())
				email := "end@example.com"
				c, userID := mustSignUp(t, s, email)
				tr.check(t, s, c.token, func() { e.end(t, s, email, userID) }, e.code, e.closeCode)
			})
		}
	}
}

func revokeFromAnotherSession(t *testing.T, s *testServer, email, _ string) {
	laptop, _ := signIn(t, s, email, goodPassword)
	var out struct{ RevokeOtherSessions struct{ RevokedCount int } }
	laptop.must(`mutation { revokeOtherSessions { revokedCount } }`, nil, &out)
	if out.RevokeOtherSessions.RevokedCount != 1 {
		t.Fatalf("revoked %d sessions, want 1", out.RevokeOtherSessions.RevokedCount)
	}
}

func suspendByAdmin(t *testing.T, s *testServer, _, userID string) {
	admin, _ := mustSignUp(t, s, "admin@example.com")
	if _, err := s.db.ExecContext(context.Background(), "UPDATE users SET role = 'admin' WHERE email = 'admin@example.com'"); err != nil {
		t.Fatal(err)
	}
	admin.must(`mutation($id: ID!) { suspendUser(input: {userId: $id, reason: "spam"}) { user { status } } }`, map[string]any{"id": userID}, nil)
}

// waitForSubscriptions waits until the server runs n subscriptions, so that
// what the test does next happens while they are open.
func waitForSubscriptions(t *testing.T, s *testServer, n int) {
	t.Helper()
	waitFor(t, 5*time.Second, func() bool { return metricValue(t, s.URL, "fastimage_graphql_active_subscriptions") == fmt.Sprint(n) },
		"the subscriptions to start")
}

// checkWebSocketEnd opens viewerEvents and heartbeat over a WebSocket
// subprotocol, ends the session, and expects an `error` message with the code
// for each operation, then a close with closeCode and a reason.
func checkWebSocketEnd(proto, startType string) func(t *testing.T, s *testServer, token string, end func(), code string, closeCode int) {
	return func(t *testing.T, s *testServer, token string, end func(), code string, closeCode int) {
		c, _, err := wsDial(t, s.URL, proto, "")
		if err != nil {
			t.Fatal(err)
		}
		wsSend(t, c, wsMessage{Type: "connection_init", Payload: mustJSON(map[string]any{"token": token})})
		if m := wsNext(t, c, 5*time.Second); m.Type != "connection_ack" {
			t.Fatalf("got %s, want connection_ack", m.Type)
		}
		wsSend(t, c, wsMessage{ID: "1", Type: startType, Payload: mustJSON(map[string]any{"query": viewerEventsQuery})})
		wsSend(t, c, wsMessage{ID: "2", Type: startType, Payload: mustJSON(map[string]any{"query": heartbeatQuery})})
		waitForSubscriptions(t, s, 2)
		end()

		errorCodes := map[string]string{}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			var m wsMessage
			err := c.ReadJSON(&m)
			if err != nil {
				var ce *websocket.CloseError
				if !errors.As(err, &ce) {
					t.Fatalf("after %v the socket ended with %v, want close %d", errorCodes, err, closeCode)
				}
				if ce.Code != closeCode || ce.Text == "" {
					t.Errorf("close %d %q, want %d with a reason", ce.Code, ce.Text, closeCode)
				}
				break
			}
			switch m.Type {
			case "ka", "ping", "pong", "next", "data":
			case "error":
				if _, twice := errorCodes[m.ID]; twice {
					t.Errorf("a second error for id %q", m.ID)
				}
				errorCodes[m.ID] = strings.Join(payloadCodes(t, m.Payload), ",")
			default:
				t.Errorf("got %s %s before the close, want only errors", m.Type, m.Payload)
			}
		}
		if want := map[string]string{"1": code, "2": code}; !maps.Equal(errorCodes, want) {
			t.Errorf("error messages' codes by id %v, want %v", errorCodes, want)
		}
	}
}

// checkSSEEnd opens viewerEvents over SSE, ends the session, and expects a
// `next` event whose errors carry the code before the stream ends.
func checkSSEEnd(t *testing.T, s *testServer, token string, end func(), code string, _ int) {
	req, _ := http.NewRequest("POST", s.URL+"/graphql", strings.NewReader(string(mustJSON(map[string]any{"query": viewerEventsQuery}))))
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
	waitForSubscriptions(t, s, 1)
	end()

	deadline := time.AfterFunc(10*time.Second, func() { resp.Body.Close() })
	defer deadline.Stop()
	var events []string // "event:code" for events with errors, the event name otherwise
	r := bufio.NewReader(resp.Body)
	event := ""
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after events %v: %v", events, err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
			if event == "complete" {
				events = append(events, event)
			}
		case strings.HasPrefix(line, "data: "):
			var body struct{ Errors json.RawMessage }
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &body); err != nil {
				t.Fatalf("event data %q: %v", line, err)
			}
			if body.Errors != nil {
				events = append(events, fmt.Sprintf("%s:%s", event, strings.Join(payloadCodes(t, body.Errors), ",")))
			}
		}
	}
	if got, want := strings.Join(events, " "), "next:"+code+" complete"; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
}

// payloadCodes returns the extensions.code of each error in a list.
func payloadCodes(t *testing.T, payload json.RawMessage) []string {
	t.Helper()
	var errs []struct{ Extensions struct{ Code string } }
	if err := json.Unmarshal(payload, &errs); err != nil {
		t.Fatalf("errors %s: %v", payload, err)
	}
	codes := make([]string, len(errs))
	for i, e := range errs {
		codes[i] = e.Extensions.Code
	}
	return codes
}
