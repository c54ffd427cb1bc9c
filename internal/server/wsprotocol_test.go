package server_test

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsCloseCode reads until the server closes c and returns the close code;
// it fails the test if the socket is still open after timeout.
func wsCloseCode(t *testing.T, c *websocket.Conn, timeout time.Duration) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("got %v, want a close frame from the server within %v", err, timeout)
		}
		return ce.Code
	}
}

// wsAck opens a socket and has it acknowledged.
func wsAck(t *testing.T, baseURL, proto string) *websocket.Conn {
	t.Helper()
	return wsAckAs(t, baseURL, proto, "")
}

// wsAckAs is wsAck signed in with token in the connection_init payload
// (anonymous when it is empty).
func wsAckAs(t *testing.T, baseURL, proto, token string) *websocket.Conn {
	t.Helper()
	c, _, err := wsDial(t, baseURL, proto, "")
	if err != nil {
		t.Fatal(err)
	}
	init := wsMessage{Type: "connection_init"}
	if token != "" {
		init.Payload = mustJSON(map[string]any{"token": token})
	}
	wsSend(t, c, init)
	if m := wsNext(t, c, 5*time.Second); m.Type != "connection_ack" {
		t.Fatalf("got %q, want connection_ack", m.Type)
	}
	return c
}

// A protocol violation closes a graphql-transport-ws socket with the code
// the protocol gives it, which tells the reference client whether to
// reconnect (4408) or stop (the others); gqlgen used 1002 or 1000 for all.
func TestWebSocketCloseCodes(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.WSInitTimeout = 300 * time.Millisecond
	s := start(t, cfg)
	subscribe := func(id string) wsMessage {
		return wsMessage{ID: id, Type: "subscribe", Payload: mustJSON(map[string]any{"query": heartbeatQuery})}
	}
	for _, tc := range []struct {
		name  string
		proto string
		do    func(t *testing.T, c *websocket.Conn)
		want  int
	}{
		{"no connection_init in time", "graphql-transport-ws", func(*testing.T, *websocket.Conn) {}, 4408},
		{"second connection_init", "graphql-transport-ws", func(t *testing.T, c *websocket.Conn) {
			wsSend(t, c, wsMessage{Type: "connection_init"})
			if m := wsNext(t, c, 5*time.Second); m.Type != "connection_ack" {
				t.Fatalf("got %q, want connection_ack", m.Type)
			}
			wsSend(t, c, wsMessage{Type: "connection_init"})
		}, 4429},
		{"subscribe before connection_ack", "graphql-transport-ws", func(t *testing.T, c *websocket.Conn) {
			wsSend(t, c, subscribe("1"))
		}, 4401},
		{"subscribe with an id already running", "graphql-transport-ws", func(t *testing.T, c *websocket.Conn) {
			wsSend(t, c, wsMessage{Type: "connection_init"})
			wsNext(t, c, 5*time.Second)
			wsSend(t, c, subscribe("1"))
			if m := wsNext(t, c, 5*time.Second); m.Type != "next" || m.ID != "1" {
				t.Fatalf("got %s %s, want next for id 1", m.Type, m.Payload)
			}
			wsSend(t, c, subscribe("1"))
		}, 4409},
		{"a long id already running", "graphql-transport-ws", func(t *testing.T, c *websocket.Conn) {
			// The reason names the id; it must still fit in a close frame.
			id := strings.Repeat("é", 100)
			wsSend(t, c, wsMessage{Type: "connection_init"})
			wsNext(t, c, 5*time.Second)
			wsSend(t, c, subscribe(id))
			wsSend(t, c, subscribe(id))
		}, 4409},
		{"a server message from the client", "graphql-transport-ws", func(t *testing.T, c *websocket.Conn) {
			wsSend(t, c, wsMessage{Type: "connection_init"})
			wsNext(t, c, 5*time.Second)
			wsSend(t, c, wsMessage{ID: "1", Type: "next"})
		}, 4400},
		{"not JSON", "graphql-transport-ws", func(t *testing.T, c *websocket.Conn) {
			wsSend(t, c, wsMessage{Type: "connection_init"})
			wsNext(t, c, 5*time.Second)
			if err := c.WriteMessage(websocket.TextMessage, []byte("{")); err != nil {
				t.Fatal(err)
			}
		}, 4400},
		{"subscribe whose payload is not an operation", "graphql-transport-ws", func(t *testing.T, c *websocket.Conn) {
			wsSend(t, c, wsMessage{Type: "connection_init"})
			wsNext(t, c, 5*time.Second)
			wsSend(t, c, wsMessage{ID: "1", Type: "subscribe", Payload: mustJSON("not an operation")})
		}, 4400},
		// Legacy graphql-ws defines no codes; it keeps gqlgen's 1002.
		{"legacy: no connection_init in time", "graphql-ws", func(*testing.T, *websocket.Conn) {}, websocket.CloseProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := wsDial(t, s.URL, tc.proto, "")
			if err != nil {
				t.Fatal(err)
			}
			tc.do(t, c)
			if got := wsCloseCode(t, c, 5*time.Second); got != tc.want {
				t.Errorf("got close code %d, want %d", got, tc.want)
			}
		})
	}
}

// Once an operation ended, its id is the client's to reuse: nothing the
// server still had to say about the old operation reaches the new one — no
// complete echoing the client's own, no tick of the old stream.
func TestWebSocketReusedIDIsNotEndedByItsPast(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	c := wsAck(t, s.URL, "graphql-transport-ws")
	subscribe := func(id string) {
		wsSend(t, c, wsMessage{ID: id, Type: "subscribe", Payload: mustJSON(map[string]any{"query": heartbeatQuery})})
	}
	subscribe("1")
	if m := wsNext(t, c, 5*time.Second); m.Type != "next" || m.ID != "1" {
		t.Fatalf("got %s %s, want next for id 1", m.Type, m.Payload)
	}
	wsSend(t, c, wsMessage{ID: "1", Type: "complete"})
	subscribe("1")
	// Ticks of the old stream sent before the server read the complete may
	// still come; the new stream starts again at seq 1.
	for {
		m := wsNext(t, c, 5*time.Second)
		if m.Type != "next" || m.ID != "1" {
			t.Fatalf("got %s for id %q %s, want only ticks for id 1", m.Type, m.ID, m.Payload)
		}
		if decodeHeartbeat(t, m.Payload).Data.Heartbeat.Seq == 1 {
			break
		}
	}
	// Everything the server sends about id 1 after it read this complete is
	// dropped, and it reads the complete before the subscribe of id 2.
	wsSend(t, c, wsMessage{ID: "1", Type: "complete"})
	subscribe("2")
	for seen := 0; seen < 3; {
		m := wsNext(t, c, 5*time.Second)
		if m.ID == "1" && seen == 0 && m.Type == "next" {
			continue // sent before the complete was read
		}
		if m.Type != "next" || m.ID != "2" {
			t.Fatalf("got %s for id %q %s, want only ticks for id 2", m.Type, m.ID, m.Payload)
		}
		seen++
	}
}

// On legacy graphql-ws a start under an id already running replaces that
// operation, as the reference server did: the old one stops, so its ticks
// do not interleave with the new one's (gqlgen ran both, the first beyond
// reach of any stop).
func TestLegacyWebSocketDuplicateIDReplaces(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	c := wsAck(t, s.URL, "graphql-ws")
	startOp := func() {
		wsSend(t, c, wsMessage{ID: "a", Type: "start", Payload: mustJSON(map[string]any{"query": heartbeatQuery})})
	}
	startOp()
	for {
		m := wsNext(t, c, 5*time.Second)
		if m.Type != "data" || m.ID != "a" {
			t.Fatalf("got %s %s, want data for id a", m.Type, m.Payload)
		}
		if decodeHeartbeat(t, m.Payload).Data.Heartbeat.Seq == 2 {
			break
		}
	}
	startOp()
	// The old stream may still be heard until the new one starts at seq 1;
	// from then on, only the new one.
	want := 0
	for want < 4 {
		m := wsNext(t, c, 5*time.Second)
		if m.Type != "data" || m.ID != "a" {
			t.Fatalf("got %s %s, want data for id a", m.Type, m.Payload)
		}
		seq := decodeHeartbeat(t, m.Payload).Data.Heartbeat.Seq
		switch {
		case want == 0 && seq != 1:
			continue
		case want == 0:
			want = 2
		case seq != want:
			t.Fatalf("got seq %d, want %d: the replaced operation still runs", seq, want)
		default:
			want++
		}
	}
	wsSend(t, c, wsMessage{ID: "a", Type: "stop"})
	for {
		if m := wsNext(t, c, 5*time.Second); m.Type == "complete" && m.ID == "a" {
			break
		}
	}
}

// A token the server could not check (here the database fails the session
// lookup) is not a token that was refused: the socket closes with 1013 (try
// again later), which the reference client retries, and not with 4401, which
// sends the user to sign in again (nor 4500 or 1011, after which that client
// gives up).
func TestWebSocketInitServerFailureIsNotSignOut(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	c, _ := mustSignUp(t, s, "init-failure@example.com")
	if _, err := s.db.ExecContext(context.Background(), `ALTER TABLE sessions RENAME TO sessions_unreachable`); err != nil {
		t.Fatal(err)
	}
	for proto, want := range map[string]int{"graphql-transport-ws": 1013, "graphql-ws": 1013} {
		t.Run(proto, func(t *testing.T) {
			ws, _, err := wsDial(t, s.URL, proto, "")
			if err != nil {
				t.Fatal(err)
			}
			wsSend(t, ws, wsMessage{Type: "connection_init", Payload: mustJSON(map[string]any{"token": c.token})})
			if got := wsCloseCode(t, ws, 5*time.Second); got != want {
				t.Errorf("close code %d, want %d", got, want)
			}
		})
	}
}

// Messages that reach the server in one TCP segment are each handled at
// once: the reader waits for the client with a shallow stack (see
// idleReader), and must not wait while bytes sit in its buffer.
func TestWebSocketMessagesInOneSegment(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
		t.Run(proto, func(t *testing.T) {
			c := wsAck(t, s.URL, proto)
			defer c.Close()
			var segment []byte
			var want []string
			if proto == "graphql-transport-ws" {
				for i := range 3 {
					segment = append(segment, maskedTextFrame(`{"type":"ping","payload":{"n":`+strconv.Itoa(i)+`}}`)...)
					want = append(want, "pong")
				}
			} else {
				for i := range 3 {
					segment = append(segment, maskedTextFrame(`{"id":"`+strconv.Itoa(i)+`","type":"start","payload":{"query":"{ __typename }"}}`)...)
					want = append(want, "data", "complete")
				}
			}
			if _, err := c.UnderlyingConn().Write(segment); err != nil {
				t.Fatal(err)
			}
			// The operations run at once, so only each one's own answers
			// are in order.
			var got []string
			byID := map[string][]string{}
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			for len(got) < len(want) {
				var m wsMessage
				if err := c.ReadJSON(&m); err != nil {
					t.Fatalf("after %v: %v", got, err)
				}
				if m.Type != "ka" {
					got = append(got, m.Type)
					byID[m.ID] = append(byID[m.ID], m.Type)
				}
			}
			if proto == "graphql-transport-ws" {
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Fatalf("answers %v, want %v", got, want)
				}
				return
			}
			for i := range 3 {
				if id := strconv.Itoa(i); strings.Join(byID[id], ",") != "data,complete" {
					t.Errorf("answers to operation %s: %v, want [data complete] (all: %v)", id, byID[id], got)
				}
			}
		})
	}
}

// maskedTextFrame is one final text frame as a client sends it (masked),
// for a payload under 126 bytes.
func maskedTextFrame(payload string) []byte {
	mask := [4]byte{0x1f, 0x2e, 0x3d, 0x4c}
	f := []byte{0x81, 0x80 | byte(len(payload)), mask[0], mask[1], mask[2], mask[3]}
	for i := range len(payload) {
		f = append(f, payload[i]^mask[i%4])
	}
	return f
}

// A socket whose client answers our pings for a while, and sends nothing
// else, holds no goroutine on Linux (it is parked with the poller, see
// idleReader), and elsewhere one waiting with a shallow stack: the pongs are
// taken before gorilla's read path, which would otherwise keep a goroutine
// waiting deep inside it until the next message. The socket still answers
// afterwards. Not parallel: it reads the goroutines of the whole process.
func TestWebSocketIdleAfterPongs(t *testing.T) {
	cfg := testConfig()
	cfg.WSPingInterval = 100 * time.Millisecond
	s := start(t, cfg)
	c := wsAck(t, s.URL, "graphql-transport-ws")
	defer c.Close()
	pongs := make(chan struct{}, 100)
	c.SetPingHandler(func(data string) error {
		err := c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		pongs <- struct{}{}
		return err
	})
	answers := readAnswers(c, 10)
	for i := range 5 {
		select {
		case <-pongs:
		case <-time.After(2 * time.Second):
			t.Fatalf("ping %d never came", i+1)
		}
	}
	idleThenAnswers(t, c, answers, "the pongs")
}

// readAnswers reads c's messages into the channel it returns (of size n),
// but for the subprotocol's keep-alive pings, which these clients ignore;
// it closes when c does.
func readAnswers(c *websocket.Conn, n int) <-chan wsMessage {
	answers := make(chan wsMessage, n)
	go func() {
		defer close(answers)
		for {
			var m wsMessage
			if err := c.ReadJSON(&m); err != nil {
				return
			}
			if m.Type != "ping" {
				answers <- m
			}
		}
	}()
	return answers
}

// idleThenAnswers checks that no goroutine waits for c's next message (on
// Linux none at all, elsewhere none in gorilla's read path), then that the
// socket still answers a ping with a pong; after says what came before.
func idleThenAnswers(t *testing.T, c *websocket.Conn, answers <-chan wsMessage, after string) {
	t.Helper()
	waiting := func() int { return socketReaders("websocket.(*Conn).NextReader") }
	what := "in gorilla's read path"
	if runtime.GOOS == "linux" {
		waiting = func() int { return socketReaders("internal/server.wsTransport.") }
		what = "at all"
	}
	n := -1
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end) && n != 0; time.Sleep(20 * time.Millisecond) {
		n = waiting()
	}
	if n != 0 {
		t.Errorf("%d goroutines wait %s for the next message of a socket idle after %s; want none", n, what, after)
	}
	wsSend(t, c, wsMessage{Type: "ping", Payload: mustJSON(map[string]int{"n": 1})})
	select {
	case m, ok := <-answers:
		if !ok || m.Type != "pong" {
			t.Fatalf("after %s the socket answered %+v (open: %v), want a pong", after, m, ok)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("after %s the socket no longer answers", after)
	}
}

// socketReaders counts the server's goroutines that read a socket and
// whose stack holds at.
func socketReaders(at string) int {
	var b bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	n := 0
	for g := range strings.SplitSeq(b.String(), "\n\n") {
		if strings.Contains(g, at) && strings.Contains(g, "internal/server.wsTransport.") {
			n++
		}
	}
	return n
}
