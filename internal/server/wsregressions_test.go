package server_test

// Regression tests: each reproduces a bug found by trying to break the
// WebSocket transport through real sockets; the comment of each says what
// used to happen.

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/db/dbtest"
)

// badHeartbeat is a subscription the server ends at once, itself: its
// resolver refuses the interval.
const badHeartbeat = `subscription { heartbeat(intervalMs: 1) { seq } }`

// An operation the server ended is over for the client as soon as it hears
// its end (complete or error): its id may be reused and its subscription
// slot is free. Here each subscription is refused by its resolver and so
// ends on the server's side; the client subscribes again under the same id
// the moment it reads the end, on a socket allowed one subscription. It
// must never be closed with 4409 (the id "already exists") nor refused
// with LIMIT_EXCEEDED.
//
// It was: wsSocket.end sent the complete (or error) first, and only then
// forgot the operation (s.ops) and canceled its context, which is what
// frees its subscription slot (slot.ctx). A client that answered the
// complete at once found the id still running (4409) or the slot still
// taken (LIMIT_EXCEEDED).
func TestWebSocketServerEndedOperationFreesItsIDAndSlotAtOnce(t *testing.T) {
	for _, sameID := range []bool{true, false} {
		t.Run(fmt.Sprintf("same id %v", sameID), func(t *testing.T) { testServerEndedFrees(t, sameID) })
	}
}

func testServerEndedFrees(t *testing.T, sameID bool) {
	t.Parallel()
	cfg := testConfig()
	cfg.Streams.PerSocket = 1
	s := start(t, cfg)
	// A few sockets at once, so that the race is lost within a second.
	var wg sync.WaitGroup
	for range 3 {
		c := wsAck(t, s.URL, "graphql-transport-ws")
		wg.Go(func() {
			if err := resubscribeOnEnd(c, sameID, 3000); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// resubscribeOnEnd subscribes with badHeartbeat rounds times, each as soon
// as the previous one has ended; it returns what went wrong.
func resubscribeOnEnd(c *websocket.Conn, sameID bool, rounds int) error {
	for i := range rounds {
		id := "x"
		if !sameID {
			id = fmt.Sprint("x", i)
		}
		if err := c.WriteJSON(wsMessage{ID: id, Type: "subscribe", Payload: mustJSON(map[string]any{"query": badHeartbeat})}); err != nil {
			return fmt.Errorf("round %d: %v", i, err)
		}
		for ended := false; !ended; {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			var m wsMessage
			if err := c.ReadJSON(&m); err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					return fmt.Errorf("round %d: the server closed the socket with %d %q after the client reused the id of an operation the server had ended", i, ce.Code, ce.Text)
				}
				return fmt.Errorf("round %d: %v", i, err)
			}
			switch m.Type {
			case "ping", "pong":
			case "next", "error":
				if codes := payloadCodesOf(m.Payload); fmt.Sprint(codes) == "[LIMIT_EXCEEDED]" {
					return fmt.Errorf("round %d: refused with LIMIT_EXCEEDED though the only other subscription had ended", i)
				}
				ended = m.Type == "error"
			case "complete":
				ended = true
			default:
				return fmt.Errorf("round %d: got %s %s", i, m.Type, m.Payload)
			}
		}
	}
	return nil
}

// Shutdown tells every healthy socket 1001 at once even when some clients
// have stopped reading (a phone that lost its network keeps its socket's
// buffers full until the write deadline, 10 s by default): the close of one
// socket must not wait for another's.
//
// It did not: wsAcceptor.closeAll closed the sockets one after another, and
// closeWith's WriteControl of the close frame waits up to a second for a
// socket whose buffers are full (or whose writer holds gorilla's write
// lock); every stalled socket before a healthy one delayed its 1001 by a
// second, and the SSE streams and http.Server.Shutdown waited for them all.
func TestWebSocketShutdownNotHeldUpByStalledSockets(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.WSWriteTimeout = 10 * time.Second // the default
	cfg.WSPingInterval = time.Minute
	cfg.Streams = config.Streams{PerIP: 1000, PerSocket: 100, PerUser: 1000}
	s := startWithListener(t, cfg, dbtest.NewURL(t), func(ln net.Listener) net.Listener { return smallBuffers{ln} })

	const stalled, subs = 4, 100
	for range stalled {
		c, _, err := stallingDialer.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/graphql", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wsInit(t, c, "")
		for i := range subs {
			subscribe(t, c, fmt.Sprint(i), heartbeatQuery)
		}
		// It reads nothing more from here on.
	}
	healthy := openIdle(t, s, "", 20, idleHeartbeat)
	waitForSubscriptions(t, s, stalled*subs+len(healthy))
	time.Sleep(time.Second) // the stallers' buffers fill; the server's writes to them block

	begun := time.Now()
	go func() { _ = s.stop() }()
	var wg sync.WaitGroup
	for i, c := range healthy {
		wg.Go(func() {
			_, code := readErrorsUntilClose(c, 10*time.Second)
			if code != websocket.CloseGoingAway {
				t.Errorf("healthy socket %d: close %d, want 1001", i, code)
			}
			if d := time.Since(begun); d > time.Second {
				t.Errorf("healthy socket %d heard 1001 only %v after shutdown began", i, d.Round(10*time.Millisecond))
			}
		})
	}
	wg.Wait()
}

// A socket whose client sends WebSocket pings of its own (OkHttp's
// pingInterval, Node's ws heartbeats and many native clients do), and
// answers ours, is as idle as one that only answers ours: on Linux it holds
// no goroutine (see TestWebSocketIdleAfterPongs), elsewhere none waiting in
// gorilla's read path.
//
// It held two: idleReader.wait took only pongs before gorilla's read path;
// a client's ping went to gorilla's NextReader, which answered it and then
// waited inside, deep, for the next data message, and the message's
// goroutine and the reader waiting for it stayed until that message came.
// The pongs extended the read deadline, so it lasted as long as the client.
// Not parallel: it reads the goroutines of the whole process.
func TestWebSocketIdleAfterClientPings(t *testing.T) {
	cfg := testConfig()
	cfg.WSPingInterval = 100 * time.Millisecond
	s := start(t, cfg)
	c := wsAck(t, s.URL, "graphql-transport-ws")
	defer c.Close()
	_ = c.SetReadDeadline(time.Time{})
	c.SetPingHandler(func(data string) error {
		return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	pongs := make(chan string, 10)
	c.SetPongHandler(func(data string) error { pongs <- data; return nil })
	answers := readAnswers(c, 10)
	for i := range 3 {
		sent := fmt.Sprintf("client ping %d", i+1)
		if err := c.WriteControl(websocket.PingMessage, []byte(sent), time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-pongs:
			if got != sent {
				t.Errorf("pong carried %q, want the ping's %q", got, sent)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("the server did not answer ping %d", i+1)
		}
	}
	idleThenAnswers(t, c, answers, "its client's pings")
}
