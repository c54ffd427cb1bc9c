package server_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Subscribers of one generation share each event's execution when they
// ask the same thing as the same user (graph/fanout). Each still gets
// exactly its own selection, every event once and in order, and another
// user is refused as before.
func TestSharedFanOutKeepsEachSubscribersSelection(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	me, _ := mustSignUp(t, s, "fan@example.com")
	other, _ := mustSignUp(t, s, "other@example.com")
	var sub submitted
	me.must(generateMutation, map[string]any{"in": map[string]any{"prompt": "a kite", "width": 64, "height": 64}}, &sub)
	id := sub.GenerateImage.Generation.ID

	full := map[string]any{"query": eventsSubscription, "variables": map[string]any{"id": id}}
	slim := map[string]any{"query": `subscription($id: ID!) { generationEvents(id: $id) { seq kind } }`, "variables": map[string]any{"id": id}}
	streams := []struct {
		token string
		op    map[string]any
	}{{me.token, full}, {me.token, full}, {me.token, slim}}
	var conns []*websocket.Conn
	for _, st := range streams { // all subscribed before any event is read
		c, _, err := wsDial(t, s.URL, "graphql-transport-ws", "")
		if err != nil {
			t.Fatal(err)
		}
		wsSend(t, c, wsMessage{Type: "connection_init", Payload: mustJSON(map[string]any{"token": st.token})})
		if m := wsNext(t, c, 5*time.Second); m.Type != "connection_ack" {
			t.Fatalf("got %s", m.Type)
		}
		wsSend(t, c, wsMessage{ID: "1", Type: "subscribe", Payload: mustJSON(st.op)})
		conns = append(conns, c)
	}
	var got [][]json.RawMessage
	for _, c := range conns {
		var evs []json.RawMessage
		for {
			m := wsNext(t, c, 20*time.Second)
			if m.Type == "complete" {
				break
			}
			if m.Type != "next" {
				t.Fatalf("got %s %s", m.Type, m.Payload)
			}
			evs = append(evs, m.Payload)
		}
		got = append(got, evs)
	}
	if len(got[0]) < 3 || len(got[0]) != len(got[1]) || len(got[0]) != len(got[2]) {
		t.Fatalf("got %d, %d and %d events, want the same whole sequence for each", len(got[0]), len(got[1]), len(got[2]))
	}
	for i := range got[0] {
		var a, b, c struct {
			Data struct {
				GenerationEvents map[string]any
			}
			Errors []gqlError
		}
		for _, p := range []struct {
			raw json.RawMessage
			v   any
		}{{got[0][i], &a}, {got[1][i], &b}, {got[2][i], &c}} {
			if err := json.Unmarshal(p.raw, p.v); err != nil {
				t.Fatal(err)
			}
		}
		if a.Data.GenerationEvents["seq"] != float64(i+1) || len(a.Errors)+len(b.Errors)+len(c.Errors) > 0 {
			t.Fatalf("event %d: %s (errors %v %v %v)", i, got[0][i], a.Errors, b.Errors, c.Errors)
		}
		if len(a.Data.GenerationEvents) != 7 || len(b.Data.GenerationEvents) != 7 {
			t.Errorf("event %d: the full selection got fields %v and %v, want 7", i, a.Data.GenerationEvents, b.Data.GenerationEvents)
		}
		if len(c.Data.GenerationEvents) != 2 || c.Data.GenerationEvents["seq"] != a.Data.GenerationEvents["seq"] {
			t.Errorf("event %d: the slim selection got %v, want seq and kind only", i, c.Data.GenerationEvents)
		}
	}

	// Another user asking for the same generation, in the same words, gets
	// NOT_FOUND, not the events the owner's subscribers share.
	if errs := subscribeAs(t, s, other.token, eventsSubscription, map[string]any{"id": id}); len(errs) != 1 || errs[0].Extensions["code"] != "NOT_FOUND" {
		t.Fatalf("another user's subscription: got %+v, want NOT_FOUND", errs)
	}
}
