package server_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Input layout of FuzzWebSocketMessages: the first byte picks how the
// socket is opened and closed, the rest are the client's text frames,
// separated by wsFuzzSep.
const (
	wsFuzzLegacy = 1 << 0 // graphql-ws instead of graphql-transport-ws
	wsFuzzInit   = 1 << 1 // a valid connection_init (and its ack) first
	wsFuzzPolite = 1 << 2 // the client ends with a close frame, not a bare TCP close

	wsFuzzSep       = '\n'
	wsFuzzMaxFrames = 8
	wsFuzzMaxFrame  = 8 << 10 // twice the read limit below, so that 1009 is reachable
	wsFuzzReadLimit = 4 << 10
)

// The close codes the server can end a socket with (wsprotocol.go, wsconn.go,
// wstransport.go, closeFrame in sessionend.go, and gorilla's own 1009 for a
// message over the read limit). 1000 is the end of a session without error
// or a legacy connection_terminate; 1001 is shutdown; 1013 a token the
// database could not check; 4401 and 4403 also close a refused token on
// either subprotocol.
var (
	wsFuzzCodesTransport = codeSet(1000, 1001, 1009, 1013, 4400, 4401, 4403, 4408, 4409, 4429)
	wsFuzzCodesLegacy    = codeSet(1000, 1001, 1002, 1009, 1013, 4401, 4403)

	// Message types the server sends, per subprotocol; the ones that speak of
	// an operation carry its id.
	wsFuzzTypesTransport = map[string]bool{"connection_ack": false, "ping": false, "pong": false, "next": true, "error": true, "complete": true}
	wsFuzzTypesLegacy    = map[string]bool{"connection_ack": false, "ka": false, "connection_error": false, "data": true, "error": true, "complete": true}
)

func codeSet(codes ...int) map[int]bool {
	m := make(map[int]bool, len(codes))
	for _, c := range codes {
		m[c] = true
	}
	return m
}

// FuzzWebSocketMessages opens a real socket to a real server for each input
// (graphql-transport-ws, or legacy graphql-ws), optionally has it
// acknowledged, sends the input's frames, then a sentinel whose answer shows
// that the server has read them all, and reads until that answer, a close, or
// a deadline. What a client would notice must hold whatever it sent:
//
//   - every message from the server is a JSON object {id?, type, payload?}
//     with a type of the subprotocol; the messages of an operation carry an
//     id the client started one under, the others none;
//   - the socket stays open or closes with a close frame whose code the
//     subprotocol allows (never a bare TCP close, 1006);
//   - nothing panics (the server logs every panic it recovers), and a fresh
//     socket is still acknowledged after the input;
//   - once the client has gone, no socket and no subscription stays open on
//     the server (its gauges return to 0), so nothing leaks across inputs.
//
// One server runs for the whole fuzz run; each input costs two sockets and a
// scrape of /metrics, some 10-30 ms. At that pace go test's minimizing of each
// new interesting input (up to 60s by default) can take most of a short run:
// FUZZMINIMIZETIME=20x .ci/fuzz (go test -fuzzminimizetime 20x) bounds it.
func FuzzWebSocketMessages(f *testing.F) {
	cfg := testConfig()
	cfg.WSMaxMessage = wsFuzzReadLimit
	s := start(f, cfg)
	// The seeds are in testdata/fuzz/FuzzWebSocketMessages.
	logOffset := len(s.logs.String())
	sentinel := 0
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		// Go's fuzzer has no timeout of its own: an input that hangs would
		// only stall the run. Every wait below has a deadline, so this one
		// fires only on a hang outside them, and reports where everything
		// stands.
		watchdog := time.AfterFunc(45*time.Second, func() {
			buf := make([]byte, 4<<20)
			panic(fmt.Sprintf("FuzzWebSocketMessages: an input ran for 45s; goroutines:\n%s", buf[:runtime.Stack(buf, true)]))
		})
		defer watchdog.Stop()
		flags, rest := data[0], data[1:]
		legacy := flags&wsFuzzLegacy != 0
		proto, codes, types := "graphql-transport-ws", wsFuzzCodesTransport, wsFuzzTypesTransport
		if legacy {
			proto, codes, types = "graphql-ws", wsFuzzCodesLegacy, wsFuzzTypesLegacy
		}
		frames := bytes.SplitN(rest, []byte{wsFuzzSep}, wsFuzzMaxFrames)
		if len(rest) == 0 {
			frames = nil
		}

		c, _, err := wsDial(t, s.URL, proto, "")
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		var got []wsFuzzMessage
		if flags&wsFuzzInit != 0 {
			wsSend(t, c, wsMessage{Type: "connection_init"})
			got = append(got, wsFuzzUntil(t, c, "connection_ack", "")...)
		}

		// The ids the client started operations under, as the server
		// decodes its frames, and how often.
		ids := map[string]int{}
		closedEarly := false
		for _, fr := range frames {
			if len(fr) > wsFuzzMaxFrame {
				fr = fr[:wsFuzzMaxFrame]
			}
			var m struct{ ID, Type string }
			if json.Unmarshal(fr, &m) == nil && (m.Type == "subscribe" || legacy && m.Type == "start") {
				ids[m.ID]++
			}
			if err := c.WriteMessage(websocket.TextMessage, fr); err != nil {
				closedEarly = true // the server closed already; its close frame tells why
				break
			}
		}

		// The server handles a socket's messages in order: once it answers
		// the sentinel, it has handled every frame before it. On
		// graphql-transport-ws a ping is allowed at any time; legacy
		// graphql-ws has none, so there the sentinel is a start whose payload
		// is no operation, answered by error and complete (or, before
		// connection_ack, by a close).
		sentinel++
		sentinelID := fmt.Sprintf("fuzz-sentinel-%d", sentinel)
		var waitType string
		if !closedEarly {
			if legacy {
				ids[sentinelID]++
				waitType = "complete"
				err = c.WriteJSON(wsMessage{ID: sentinelID, Type: "start", Payload: json.RawMessage(`{"query":1}`)})
			} else {
				waitType = "pong"
				err = c.WriteJSON(wsMessage{Type: "ping", Payload: mustJSON(map[string]string{"sentinel": sentinelID})})
			}
			if err != nil {
				waitType = ""
			}
		}
		msgs, closeErr := wsFuzzRead(c, waitType, sentinelID, 5*time.Second)
		got = append(got, msgs...)
		seen := make([]string, len(got))
		for i, m := range got {
			seen[i] = m.Type
		}
		t.Logf("%s: the server sent %s; read ended with %v", proto, strings.Join(seen, ", "), closeErr)
		for _, m := range got {
			if m.err != "" {
				t.Fatalf("server sent %q: %s", m.raw, m.err)
			}
			wantID, ok := types[m.Type]
			switch {
			case !ok:
				t.Fatalf("server sent type %q, not one of %s: %q", m.Type, proto, m.raw)
			case wantID && ids[m.ID] == 0:
				t.Fatalf("server sent %s for id %q, which the client never started: %q", m.Type, m.ID, m.raw)
			case !wantID && m.ID != "":
				t.Fatalf("server sent %s with an id: %q", m.Type, m.raw)
			}
		}
		// Each operation ends at most once: with error or complete on
		// graphql-transport-ws; on graphql-ws with complete (after an error,
		// or a stop, or its last data).
		ends := map[string]int{}
		for _, m := range got {
			if m.Type == "complete" || !legacy && m.Type == "error" {
				ends[m.ID]++
				if ends[m.ID] > ids[m.ID] {
					t.Fatalf("server ended id %q %d times, but the client started it only %d times (last: %q)", m.ID, ends[m.ID], ids[m.ID], m.raw)
				}
			}
		}
		if closeErr != nil {
			var ce *websocket.CloseError
			if !errors.As(closeErr, &ce) {
				t.Fatalf("the socket ended with %v, not a close frame", closeErr)
			}
			if !codes[ce.Code] {
				t.Fatalf("closed with %d %q, which %s does not allow here", ce.Code, ce.Text, proto)
			}
		}

		// The client goes.
		if flags&wsFuzzPolite != 0 {
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		}
		c.Close()

		// The server still answers.
		h, _, err := wsDial(t, s.URL, "graphql-transport-ws", "")
		if err != nil {
			t.Fatalf("after the input, a fresh socket: %v", err)
		}
		wsSend(t, h, wsMessage{Type: "connection_init"})
		wsFuzzUntil(t, h, "connection_ack", "")
		h.Close()

		logs := s.logs.String()
		fresh := logs[logOffset:]
		logOffset = len(logs)
		for _, p := range []string{`"msg":"websocket message handler panicked"`, `"msg":"panic in `} {
			if i := strings.Index(fresh, p); i >= 0 {
				end := min(len(fresh), i+2000)
				t.Fatalf("the server recovered a panic: %s", fresh[i:end])
			}
		}

		// Nothing outlives the client.
		deadline := time.Now().Add(3 * time.Second)
		for {
			metrics := scrape(t, s.URL)
			sockets := metricIn(metrics, "fastimage_websocket_connections")
			subs := metricIn(metrics, "fastimage_graphql_active_subscriptions")
			if sockets == "0" && subs == "0" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("3s after the client left, %s sockets and %s subscriptions are still open", sockets, subs)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// wsFuzzMessage is one message from the server; err says what is wrong
// with its shape.
type wsFuzzMessage struct {
	wsMessage
	raw []byte
	err string
}

func decodeWSFuzzMessage(typ int, raw []byte) wsFuzzMessage {
	m := wsFuzzMessage{raw: raw}
	if typ != websocket.TextMessage {
		m.err = fmt.Sprintf("a message of WebSocket type %d, not text", typ)
		return m
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var shape struct {
		ID      *string         `json:"id"`
		Type    *string         `json:"type"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := dec.Decode(&shape); err != nil || dec.More() {
		m.err = fmt.Sprintf("not one JSON object of id, type and payload (%v)", err)
		return m
	}
	if shape.Type == nil {
		m.err = "no type"
		return m
	}
	if shape.ID != nil {
		m.ID = *shape.ID
	}
	m.Type, m.Payload = *shape.Type, shape.Payload
	switch m.Type {
	case "next", "data":
		var result map[string]json.RawMessage
		if json.Unmarshal(m.Payload, &result) != nil || result == nil {
			m.err = "a result that is not an object"
		}
	case "error":
		var errs []struct {
			Message *string `json:"message"`
		}
		if json.Unmarshal(m.Payload, &errs) != nil || len(errs) == 0 {
			m.err = "an error message without a list of errors"
		}
		for _, e := range errs {
			if e.Message == nil {
				m.err = "an error without a message"
			}
		}
	}
	return m
}

// wsFuzzRead reads until the server sends a message of waitType answering
// the sentinel (a pong echoing it, or a complete for its id), or closes, or
// the deadline passes; it returns what it read and the read error, nil once
// the sentinel's answer came. With no waitType it reads until the close.
func wsFuzzRead(c *websocket.Conn, waitType, sentinelID string, timeout time.Duration) ([]wsFuzzMessage, error) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	var msgs []wsFuzzMessage
	for {
		typ, raw, err := c.ReadMessage()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return msgs, fmt.Errorf("neither the sentinel's answer nor a close within %v: %w", timeout, err)
			}
			return msgs, err
		}
		m := decodeWSFuzzMessage(typ, raw)
		msgs = append(msgs, m)
		if waitType == "" || m.err != "" || m.Type != waitType {
			continue
		}
		if waitType == "pong" && strings.Contains(string(m.Payload), sentinelID) || waitType == "complete" && m.ID == sentinelID {
			return msgs, nil
		}
	}
}

// wsFuzzUntil reads until a message of typ and returns what it read; it
// fails t on a close or after 5s.
func wsFuzzUntil(t *testing.T, c *websocket.Conn, typ, id string) []wsFuzzMessage {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var msgs []wsFuzzMessage
	for {
		mt, raw, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		m := decodeWSFuzzMessage(mt, raw)
		msgs = append(msgs, m)
		if m.err == "" && m.Type == typ && m.ID == id {
			return msgs
		}
	}
}

// metricIn returns the value of an unlabelled metric in a scrape of
// /metrics, or "" if it is missing.
func metricIn(scrape, name string) string {
	for line := range strings.SplitSeq(scrape, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}
