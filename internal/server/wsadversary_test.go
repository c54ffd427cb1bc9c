package server_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/db/dbtest"
)

// idleHeartbeat is a subscription that says nothing for the length of a
// test; it runs on goroutines of its own (it does not push).
const idleHeartbeat = `subscription { heartbeat(intervalMs: 60000) { seq } }`

// socketFrames are the functions whose goroutines belong to a socket or to
// one of its operations; none may be left once every socket has closed.
// The process-wide read poller's one goroutine is not among them.
var socketFrames = []string{
	"internal/server.wsTransport.",
	"internal/server.(*wsSocket).",
	"internal/server.(*wsOp).",
	"graph.(*subscriptionResolver).Heartbeat",
	"internal/events.(*streamFollower",
	"internal/server.(*sessionWatcher).run",
}

// leftovers returns the stacks of the process's goroutines that run one
// of socketFrames.
func leftovers() []string {
	var b bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	var out []string
	for g := range strings.SplitSeq(b.String(), "\n\n") {
		for _, f := range socketFrames {
			if strings.Contains(g, f) {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// settled waits until no goroutine of a socket is left and the process
// runs at most slack goroutines more than baseline; it fails t otherwise.
func settled(t *testing.T, baseline, slack int, what string) {
	t.Helper()
	var left []string
	n := 0
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		left, n = leftovers(), runtime.NumGoroutine()
		if len(left) == 0 && n <= baseline+slack {
			return
		}
	}
	t.Errorf("%s: %d goroutines (baseline %d); %d of sockets left, the first:\n%s", what, n, baseline, len(left), strings.Join(left[:min(len(left), 3)], "\n\n"))
}

// gauge waits until metric reads want; it fails t otherwise.
func gauge(t *testing.T, s *testServer, metric, want, what string) {
	t.Helper()
	got := ""
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if got = metricValue(t, s.URL, metric); got == want {
			return
		}
	}
	t.Errorf("%s: %s = %s, want %s", what, metric, got, want)
}

// idleFeedOf is a viewerEvents subscription of c's user that says nothing
// until something happens to the account: it starts after the latest
// entry. It pushes (it has no goroutine of its own while idle).
func idleFeedOf(c *client) string {
	var seq struct {
		Viewer struct{ LastViewerEventSeq int }
	}
	c.must(`{ viewer { lastViewerEventSeq } }`, nil, &seq)
	return fmt.Sprintf(`subscription { viewerEvents(afterSeq: %d) { seq kind } }`, seq.Viewer.LastViewerEventSeq)
}

// stallingDialer dials sockets whose kernel read buffer is tiny, for a
// client that stops reading: with smallBuffers on the server's side, the
// server's writes to it block within a few messages.
var stallingDialer = websocket.Dialer{
	Subprotocols: []string{"graphql-transport-ws"},
	NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096)
		}
		return c, err
	},
}

// openIdle opens n graphql-transport-ws sockets signed in with token ("" for
// none), each running every query in queries under ids 1, 2, ….
func openIdle(t *testing.T, s *testServer, token string, n int, queries ...string) []*websocket.Conn {
	t.Helper()
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		c := wsSignedIn(t, s, token)
		for j, q := range queries {
			subscribe(t, c, fmt.Sprint(j+1), q)
		}
		conns[i] = c
	}
	return conns
}

// Every way a socket can end gives back all it held: the open-sockets
// gauge, the active-subscriptions gauge and the process's goroutines go
// back to where they were before the sockets opened. 200 sockets with two
// idle subscriptions each end by a close frame, by a TCP close without
// one, by a TCP reset, by the client completing its operations first, and
// by the end of their session (sign-out), on a socket parked with the
// poller (nobody reads it). Not parallel: it counts the process's
// goroutines.
func TestWebSocketEveryEndGivesBackAllItHeld(t *testing.T) {
	cfg := testConfig()
	cfg.Streams = config.Streams{PerIP: 1000, PerSocket: 10, PerUser: 1000}
	s := start(t, cfg)
	user, _ := mustSignUp(t, s, "leaks@example.com")

	idleFeed := idleFeedOf(user)

	// Warm up: the poller, the session watcher's first run, pools.
	warm := openIdle(t, s, user.token, 1, idleFeed, idleHeartbeat)
	waitForSubscriptions(t, s, 2)
	warm[0].Close()
	gauge(t, s, "fastimage_graphql_active_subscriptions", "0", "after the warm-up")
	settled(t, 1<<20, 0, "after the warm-up")
	baseline := runtime.NumGoroutine()

	// Sockets whose subscriptions push hold no goroutine while idle.
	pushing := openIdle(t, s, user.token, 40, idleFeed, idleFeed)
	waitForSubscriptions(t, s, 80)
	if n := runtime.NumGoroutine(); n > baseline+10 {
		t.Errorf("40 idle sockets with 2 pushing subscriptions each: %d goroutines, baseline %d", n, baseline)
	}

	const perWay = 40
	ways := []struct {
		name string
		end  func(t *testing.T, c *websocket.Conn)
	}{
		{"close frame", func(t *testing.T, c *websocket.Conn) {
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			if code := wsCloseCode(t, c, 5*time.Second); code != websocket.CloseNormalClosure {
				t.Errorf("the server answered the close with %d", code)
			}
			c.Close()
		}},
		{"tcp close", func(t *testing.T, c *websocket.Conn) { c.Close() }},
		{"tcp reset", func(t *testing.T, c *websocket.Conn) {
			_ = c.UnderlyingConn().(*net.TCPConn).SetLinger(0)
			c.Close()
		}},
		{"complete then close", func(t *testing.T, c *websocket.Conn) {
			wsSend(t, c, wsMessage{ID: "1", Type: "complete"})
			wsSend(t, c, wsMessage{ID: "2", Type: "complete"})
			c.Close()
		}},
	}
	var anon [][]*websocket.Conn
	for range ways {
		anon = append(anon, openIdle(t, s, "", perWay, idleHeartbeat, idleHeartbeat))
	}
	waitForSubscriptions(t, s, 80+2*perWay*len(ways))
	if n := len(leftovers()); n < 2*2*perWay*len(ways) {
		t.Fatalf("%d goroutines run the idle heartbeats, want 2 each at least: leftovers misses them", n)
	}
	gauge(t, s, "fastimage_websocket_connections", fmt.Sprint(40+perWay*len(ways)), "all open")
	for i, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			for _, c := range anon[i] {
				w.end(t, c)
			}
		})
	}
	gauge(t, s, "fastimage_graphql_active_subscriptions", "80", "after the anonymous sockets ended")

	// The session's end: each pushing socket hears the error of each of its
	// operations, then 4401, though all are parked.
	user.must(`mutation { signOut { clientMutationId } }`, nil, nil)
	signedOut := time.Now()
	var wg sync.WaitGroup
	for i, c := range pushing {
		wg.Go(func() {
			errs, code := readErrorsUntilClose(c, 10*time.Second)
			if code != 4401 || fmt.Sprint(errs) != "map[1:UNAUTHENTICATED 2:UNAUTHENTICATED]" {
				t.Errorf("signed-out socket %d: errors %v, close %d; want UNAUTHENTICATED for 1 and 2, then 4401", i, errs, code)
			}
		})
	}
	wg.Wait()
	// Well within sessionEndGrace: no operation failed to report the end.
	if d := time.Since(signedOut); d > 3*time.Second {
		t.Errorf("the signed-out sockets took %v to close", d)
	}

	gauge(t, s, "fastimage_websocket_connections", "0", "after every socket ended")
	gauge(t, s, "fastimage_graphql_active_subscriptions", "0", "after every socket ended")
	settled(t, baseline, 5, "after every socket ended")
}

// readErrorsUntilClose reads c until the server closes it, and returns the
// codes of the `error` messages by id and the close code (0 if the socket
// ended without a close frame).
func readErrorsUntilClose(c *websocket.Conn, timeout time.Duration) (map[string]string, int) {
	errs := map[string]string{}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	for {
		var m wsMessage
		if err := c.ReadJSON(&m); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return errs, ce.Code
			}
			return errs, 0
		}
		if m.Type == "error" {
			errs[m.ID] = strings.Join(payloadCodesOf(m.Payload), ",")
		}
	}
}

// payloadCodesOf returns the codes of the errors of a `next` payload or of
// an `error` message's payload.
func payloadCodesOf(payload []byte) []string {
	var r gqlResponse
	if err := json.Unmarshal(payload, &r); err != nil {
		_ = json.Unmarshal(payload, &r.Errors)
	}
	codes := make([]string, len(r.Errors))
	for i, e := range r.Errors {
		codes[i], _ = e.Extensions["code"].(string)
	}
	return codes
}

// Several client goroutines subscribe and complete, over and over, on one
// socket at its subscription limit (writes are serialized, as one client
// library would): the server takes the messages in order, so no more than
// the limit ever run and a slot the client freed is free at once. Nothing
// is refused, nothing is said about an operation after the client
// completed it, and once all are completed the active-subscriptions gauge
// is back to 0 while the socket stays open; at the end the limit still
// holds.
func TestWebSocketSubscribeCompleteRaceAtTheLimit(t *testing.T) {
	t.Parallel()
	const limit = 4
	cfg := testConfig()
	cfg.Streams = config.Streams{PerIP: 100, PerSocket: limit, PerUser: 1000}
	s := start(t, cfg)
	user, _ := mustSignUp(t, s, "race@example.com")
	idleFeed := idleFeedOf(user)
	c := wsSignedIn(t, s, user.token)
	_ = c.SetReadDeadline(time.Time{})

	var wmu sync.Mutex
	send := func(m wsMessage) {
		wmu.Lock()
		defer wmu.Unlock()
		if err := c.WriteJSON(m); err != nil {
			t.Errorf("write: %v", err)
		}
	}
	heard := readAnswers(c, 100)

	var wg sync.WaitGroup
	for g := range limit {
		wg.Go(func() {
			for i := range 100 {
				q := idleFeed // pushes: no goroutine of its own
				if i%3 == 0 {
					q = idleHeartbeat // runs on its own goroutine
				}
				id := fmt.Sprint("g", g)
				send(wsMessage{ID: id, Type: "subscribe", Payload: mustJSON(map[string]any{"query": q})})
				send(wsMessage{ID: id, Type: "complete"})
			}
		})
	}
	wg.Wait()
	// A ping answered means every message before it was handled.
	send(wsMessage{Type: "ping"})
	for m := range heard {
		if m.Type == "pong" {
			break
		}
		t.Errorf("the server said %s %s for %q, an operation the client completed", m.Type, m.Payload, m.ID)
	}
	gauge(t, s, "fastimage_graphql_active_subscriptions", "0", "after the client completed every operation")

	for i := range limit {
		send(wsMessage{ID: fmt.Sprint("h", i), Type: "subscribe", Payload: mustJSON(map[string]any{"query": idleFeed})})
	}
	send(wsMessage{ID: "over", Type: "subscribe", Payload: mustJSON(map[string]any{"query": idleFeed})})
	select {
	case m := <-heard:
		if m.ID != "over" || m.Type != "error" || fmt.Sprint(payloadCodesOf(m.Payload)) != "[LIMIT_EXCEEDED]" {
			t.Fatalf("got %s %s for %q, want LIMIT_EXCEEDED for over", m.Type, m.Payload, m.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a subscription over the limit was not refused")
	}
	waitForSubscriptions(t, s, limit)
}

// A client that sends part of a frame and then nothing, answering no ping,
// is dropped within about two ping intervals: its reader waits for the
// rest of the frame (not parked), and either its read deadline or the ping
// finds it silent. What it held is given back.
func TestWebSocketHalfAFrameIsDropped(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.WSPingInterval = 200 * time.Millisecond
	s := start(t, cfg)
	text := maskedTextFrame(`{"type":"ping","payload":{"n":1}}`)
	pong := []byte{0x8a, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2}
	for _, tc := range []struct {
		name string
		sent []byte
	}{
		{"one byte of a header", text[:1]},
		{"a header without its mask", text[:3]},
		{"half a text frame", text[:len(text)/2]},
		{"half a pong", pong[:5]},
		{"all of a text frame but its last byte", text[:len(text)-1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := wsAck(t, s.URL, "graphql-transport-ws")
			subscribe(t, c, "1", idleHeartbeat)
			c.SetPingHandler(func(string) error { return nil }) // never pong
			if _, err := c.UnderlyingConn().Write(tc.sent); err != nil {
				t.Fatal(err)
			}
			sent := time.Now()
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						t.Fatal("the socket was still open 5s after its client stopped halfway through a frame")
					}
					break
				}
			}
			// Two intervals of silence, counted from the ack, and the ping
			// that notices it at most an interval later.
			if d := time.Since(sent); d > 1500*time.Millisecond {
				t.Errorf("dropped only %v after the client stopped", d)
			}
		})
	}
	gauge(t, s, "fastimage_websocket_connections", "0", "after the half-frame clients were dropped")
	gauge(t, s, "fastimage_graphql_active_subscriptions", "0", "after the half-frame clients were dropped")
}

// A client that stops reading while its subscriptions stream is dropped
// when a write times out, and the subscription slots it held are given
// back: here it holds every slot its address may hold, and once it is
// dropped another socket from that address gets them all.
func TestWebSocketStalledReaderGivesBackItsSlots(t *testing.T) {
	t.Parallel()
	const slots = 20
	cfg := testConfig()
	cfg.WSWriteTimeout = 300 * time.Millisecond
	cfg.WSPingInterval = time.Minute // only the write deadline can find the staller
	cfg.Streams = config.Streams{PerIP: 100, PerSocket: slots, PerUser: slots}
	s := startWithListener(t, cfg, dbtest.NewURL(t), func(ln net.Listener) net.Listener { return smallBuffers{ln} })

	staller, _, err := stallingDialer.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/graphql", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer staller.Close()
	wsInit(t, staller, "")
	for i := range slots {
		subscribe(t, staller, fmt.Sprint(i), heartbeatQuery)
	}
	waitForSubscriptions(t, s, slots)
	// It reads nothing more from here on.

	other := wsSignedIn(t, s, "")
	subscribe(t, other, "early", heartbeatQuery)
	wantLimitExceeded(t, awaitOp(t, other, "early", "error"))

	gauge(t, s, "fastimage_websocket_connections", "1", "once the server gave up on the staller")
	waitForSubscriptions(t, s, 0)
	for i := range slots {
		subscribe(t, other, fmt.Sprint(i), idleHeartbeat)
	}
	waitForSubscriptions(t, s, slots)
	ping := wsMessage{Type: "ping"}
	wsSend(t, other, ping)
	if err := readUntilPong(other, 5*time.Second); err != nil {
		t.Fatalf("after its subscriptions, the other socket: %v", err)
	}
}

// Shutdown closes every socket with 1001 at once, though nobody reads
// them (they are parked with the poller): signed in or not, on either
// subprotocol, with idle subscriptions or before connection_init.
func TestWebSocketShutdownClosesEveryParkedSocket(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.WSInitTimeout = time.Minute
	cfg.Streams = config.Streams{PerIP: 1000, PerSocket: 10, PerUser: 1000}
	s := start(t, cfg)
	user, _ := mustSignUp(t, s, "shutdown@example.com")

	var conns []*websocket.Conn
	conns = append(conns, openIdle(t, s, user.token, 30, idleFeedOf(user), idleHeartbeat)...)
	conns = append(conns, openIdle(t, s, "", 30, idleHeartbeat)...)
	for range 30 {
		c := wsAck(t, s.URL, "graphql-ws")
		wsSend(t, c, wsMessage{ID: "1", Type: "start", Payload: mustJSON(map[string]any{"query": idleHeartbeat})})
		conns = append(conns, c)
	}
	for range 30 { // no connection_init yet
		c, _, err := wsDial(t, s.URL, "graphql-transport-ws", "")
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	waitForSubscriptions(t, s, 30*2+30+30)

	stopped := make(chan error, 1)
	begun := time.Now()
	go func() { stopped <- s.stop() }()
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			_, code := readErrorsUntilClose(c, 5*time.Second)
			if code != websocket.CloseGoingAway {
				t.Errorf("socket %d: close %d, want 1001", i, code)
			}
		})
	}
	wg.Wait()
	if d := time.Since(begun); d > 2*time.Second {
		t.Errorf("the last of %d sockets heard 1001 after %v", len(conns), d)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("shutdown: %v", err)
		}
	case <-time.After(6 * time.Second):
		t.Error("shutdown did not finish")
	}
}

// talker keeps a socket busy from the client's side: subscribe and
// complete query under id "h", and protocol pings, a millisecond apart,
// until the socket ends, so that its reader keeps going from parked to
// reading and back while the server closes the socket. The codes of the
// `error` messages are collected by id; closed gets the close code (0
// without a close frame) once the socket has ended.
type talker struct {
	mu     sync.Mutex
	errs   map[string][]string // codes of each `error` by id
	closed chan int
}

func talk(c *websocket.Conn, query string) *talker {
	tk := &talker{errs: map[string][]string{}, closed: make(chan int, 1)}
	_ = c.SetReadDeadline(time.Time{})
	var wmu sync.Mutex
	send := func(m wsMessage) error {
		wmu.Lock()
		defer wmu.Unlock()
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		return c.WriteJSON(m)
	}
	stop := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var err error
			switch i % 3 {
			case 0:
				err = send(wsMessage{ID: "h", Type: "subscribe", Payload: mustJSON(map[string]any{"query": query})})
			case 1:
				err = send(wsMessage{ID: "h", Type: "complete"})
			case 2:
				err = send(wsMessage{Type: "ping"})
			}
			if err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	go func() {
		defer close(stop)
		for {
			var m wsMessage
			if err := c.ReadJSON(&m); err != nil {
				code := 0
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					code = ce.Code
				}
				tk.closed <- code
				return
			}
			if m.Type == "error" {
				tk.mu.Lock()
				tk.errs[m.ID] = append(tk.errs[m.ID], strings.Join(payloadCodesOf(m.Payload), ","))
				tk.mu.Unlock()
			}
		}
	}()
	return tk
}

// A session that ends while its sockets' clients are busy subscribing and
// completing ends every socket the same way: the subscriptions that ran
// the whole time each get UNAUTHENTICATED, the busy id nothing else, and
// then 4401, well within the grace the session's end gives operations to
// report it (no operation is lost on the way). Everything is given back.
func TestWebSocketSessionEndWhileTheClientIsBusy(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.WSPingInterval = time.Minute // a lost wake would not be covered up by a ping
	cfg.Streams = config.Streams{PerIP: 100, PerSocket: 3, PerUser: 1000}
	s := start(t, cfg)
	user, _ := mustSignUp(t, s, "busy@example.com")
	idleFeed := idleFeedOf(user)

	var talkers []*talker
	for i := range 10 {
		c := wsSignedIn(t, s, user.token)
		subscribe(t, c, "keep1", idleFeed)
		subscribe(t, c, "keep2", idleHeartbeat)
		q := idleFeed
		if i%2 == 1 {
			q = idleHeartbeat
		}
		talkers = append(talkers, talk(c, q))
	}
	time.Sleep(300 * time.Millisecond)
	user.must(`mutation { signOut { clientMutationId } }`, nil, nil)
	signedOut := time.Now()
	for i, tk := range talkers {
		select {
		case code := <-tk.closed:
			if code != 4401 {
				t.Errorf("socket %d: close %d, want 4401", i, code)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("socket %d still open 10s after its session ended", i)
		}
		tk.mu.Lock()
		errs := tk.errs
		tk.mu.Unlock()
		for _, id := range []string{"keep1", "keep2"} {
			if fmt.Sprint(errs[id]) != "[UNAUTHENTICATED]" {
				t.Errorf("socket %d: errors for %s %v, want [UNAUTHENTICATED]", i, id, errs[id])
			}
		}
		for _, code := range errs["h"] {
			if code != "UNAUTHENTICATED" {
				t.Errorf("socket %d: errors for the busy id %v, want UNAUTHENTICATED only", i, errs["h"])
			}
		}
	}
	if d := time.Since(signedOut); d > 3*time.Second {
		t.Errorf("the sockets took %v to close after the sign-out", d)
	}
	gauge(t, s, "fastimage_websocket_connections", "0", "after the session's end")
	gauge(t, s, "fastimage_graphql_active_subscriptions", "0", "after the session's end")
}

// Shutdown closes with 1001 sockets whose clients are busy, so that their
// readers are parked, woken by the client and reading at any moment.
func TestWebSocketShutdownWhileClientsAreBusy(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.WSPingInterval = time.Minute // a lost wake would not be covered up by a ping
	cfg.Streams = config.Streams{PerIP: 100, PerSocket: 3, PerUser: 1000}
	s := start(t, cfg)
	var talkers []*talker
	for range 30 {
		c := wsSignedIn(t, s, "")
		subscribe(t, c, "keep", idleHeartbeat)
		talkers = append(talkers, talk(c, idleHeartbeat))
	}
	time.Sleep(300 * time.Millisecond)
	begun := time.Now()
	go func() { _ = s.stop() }()
	for i, tk := range talkers {
		select {
		case code := <-tk.closed:
			if code != websocket.CloseGoingAway {
				t.Errorf("socket %d: close %d, want 1001", i, code)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("socket %d still open 10s after shutdown began", i)
		}
	}
	if d := time.Since(begun); d > 2*time.Second {
		t.Errorf("the busy sockets took %v to hear 1001", d)
	}
}
