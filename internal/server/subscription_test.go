package server_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fastimage/api/internal/db/dbtest"
)

const heartbeatQuery = `subscription { heartbeat(intervalMs: 250) { seq serverTime } }`

type heartbeat struct {
	Data struct {
		Heartbeat struct {
			Seq        int
			ServerTime time.Time
		}
	}
}

func decodeHeartbeat(t *testing.T, payload json.RawMessage) heartbeat {
	t.Helper()
	var hb heartbeat
	if err := json.Unmarshal(payload, &hb); err != nil {
		t.Fatalf("heartbeat payload %s: %v", payload, err)
	}
	return hb
}

func TestHeartbeatOverGraphQLTransportWS(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	c, _, err := wsDial(t, s.URL, "graphql-transport-ws", testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subprotocol() != "graphql-transport-ws" {
		t.Fatalf("negotiated %q", c.Subprotocol())
	}
	wsSend(t, c, wsMessage{Type: "connection_init"})
	if m := wsNext(t, c, 5*time.Second); m.Type != "connection_ack" {
		t.Fatalf("got %q, want connection_ack", m.Type)
	}
	wsSend(t, c, wsMessage{ID: "1", Type: "subscribe", Payload: mustJSON(map[string]any{"query": heartbeatQuery})})
	var last time.Time
	for want := 1; want <= 3; want++ {
		m := wsNext(t, c, 5*time.Second)
		if m.Type != "next" || m.ID != "1" {
			t.Fatalf("got %s %s, want next for id 1", m.Type, m.Payload)
		}
		hb := decodeHeartbeat(t, m.Payload).Data.Heartbeat
		if hb.Seq != want || !hb.ServerTime.After(last) {
			t.Fatalf("tick %d: seq %d at %v (previous %v)", want, hb.Seq, hb.ServerTime, last)
		}
		last = hb.ServerTime
	}
	wsSend(t, c, wsMessage{ID: "1", Type: "complete"})

	// A second subscription on the same socket, with a bad interval, is
	// answered with a coded error.
	wsSend(t, c, wsMessage{ID: "2", Type: "subscribe", Payload: mustJSON(map[string]any{"query": `subscription { heartbeat(intervalMs: 5) { seq } }`})})
	for {
		m := wsNext(t, c, 5*time.Second)
		if m.ID != "2" {
			continue // a tick of id 1 sent before it completed
		}
		if m.Type == "error" || (m.Type == "next" && strings.Contains(string(m.Payload), `"VALIDATION"`)) {
			if !strings.Contains(string(m.Payload), "VALIDATION") {
				t.Fatalf("error without VALIDATION code: %s", m.Payload)
			}
			break
		}
		t.Fatalf("got %s %s, want a VALIDATION error for id 2", m.Type, m.Payload)
	}
}

func TestHeartbeatOverLegacyGraphQLWS(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	c, _, err := wsDial(t, s.URL, "graphql-ws", "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Subprotocol() != "graphql-ws" {
		t.Fatalf("negotiated %q", c.Subprotocol())
	}
	wsSend(t, c, wsMessage{Type: "connection_init"})
	if m := wsNext(t, c, 5*time.Second); m.Type != "connection_ack" {
		t.Fatalf("got %q, want connection_ack", m.Type)
	}
	wsSend(t, c, wsMessage{ID: "a", Type: "start", Payload: mustJSON(map[string]any{"query": heartbeatQuery})})
	for want := 1; want <= 2; want++ {
		m := wsNext(t, c, 5*time.Second)
		if m.Type != "data" || m.ID != "a" {
			t.Fatalf("got %s %s, want data for id a", m.Type, m.Payload)
		}
		if hb := decodeHeartbeat(t, m.Payload).Data.Heartbeat; hb.Seq != want {
			t.Fatalf("seq %d, want %d", hb.Seq, want)
		}
	}
	wsSend(t, c, wsMessage{ID: "a", Type: "stop"})
	for {
		m := wsNext(t, c, 5*time.Second)
		if m.Type == "complete" && m.ID == "a" {
			break
		}
	}
}

func TestHeartbeatOverSSE(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	req, _ := http.NewRequest("POST", s.URL+"/graphql", strings.NewReader(string(mustJSON(map[string]any{"query": heartbeatQuery}))))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	got := 0
	deadline := time.AfterFunc(10*time.Second, func() { resp.Body.Close() })
	defer deadline.Stop()
	for got < 2 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d events: %v", got, err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok && strings.Contains(data, "heartbeat") {
			got++
			if hb := decodeHeartbeat(t, json.RawMessage(data)).Data.Heartbeat; hb.Seq != got {
				t.Fatalf("seq %d, want %d", hb.Seq, got)
			}
		}
	}
}

func TestWebSocketOriginCheck(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	_, resp, err := wsDial(t, s.URL, "graphql-transport-ws", "https://evil.example")
	if err == nil {
		t.Fatal("upgrade from a foreign origin succeeded")
	}
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: response %v, want 403", resp)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `"FORBIDDEN"`) {
		t.Errorf("403 body lacks the FORBIDDEN code: %s", body)
	}
	for _, origin := range []string{testOrigin, "https://partner.example"} {
		if _, _, err := wsDial(t, s.URL, "graphql-transport-ws", origin); err != nil {
			t.Errorf("allowed origin %s refused: %v", origin, err)
		}
	}
}

func TestWebSocketWithoutInitIsClosed(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.WSInitTimeout = 300 * time.Millisecond
	s := start(t, cfg)
	c, _, err := wsDial(t, s.URL, "graphql-transport-ws", "")
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return // closed by the server, as it should be
		}
		t.Fatalf("socket without connection_init: %v, want a close from the server", err)
	}
}

// One client that stops reading must not hold up anyone else: the server
// drops it when its writes time out, while other sockets keep ticking.
func TestStalledSubscriberDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.WSWriteTimeout = 500 * time.Millisecond
	cfg.WSPingInterval = time.Minute // so that only the write deadline can find the staller
	cfg.Streams.PerUser = 1000       // both sockets are anonymous, from one address
	s := startWithListener(t, cfg, dbtest.NewURL(t), func(ln net.Listener) net.Listener { return smallBuffers{ln} })

	// The staller opens many fast subscriptions and then never reads, so the
	// server's writes to it fill the socket buffers and block.
	staller, _, err := stallingDialer.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/graphql", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer staller.Close()
	wsSend(t, staller, wsMessage{Type: "connection_init"})
	wsNext(t, staller, 5*time.Second)
	for i := range 100 {
		wsSend(t, staller, wsMessage{ID: fmt.Sprint("s", i), Type: "subscribe", Payload: mustJSON(map[string]any{"query": heartbeatQuery})})
	}

	reader, _, err := wsDial(t, s.URL, "graphql-transport-ws", "")
	if err != nil {
		t.Fatal(err)
	}
	wsSend(t, reader, wsMessage{Type: "connection_init"})
	wsNext(t, reader, 5*time.Second)
	wsSend(t, reader, wsMessage{ID: "r", Type: "subscribe", Payload: mustJSON(map[string]any{"query": heartbeatQuery})})
	start := time.Now()
	for want := 1; want <= 12; want++ {
		m := wsNext(t, reader, 2*time.Second)
		if hb := decodeHeartbeat(t, m.Payload).Data.Heartbeat; hb.Seq != want {
			t.Fatalf("reader got seq %d, want %d", hb.Seq, want)
		}
	}
	// 12 ticks at 250 ms: about 3 s when nothing holds the reader up.
	if elapsed := time.Since(start); elapsed > 6*time.Second {
		t.Errorf("reader's 12 ticks took %v; the stalled socket delayed it", elapsed)
	}

	// By now the server has given up on the staller.
	waitFor(t, 10*time.Second, func() bool { return metricValue(t, s.URL, "fastimage_websocket_connections") == "1" },
		"the stalled socket to be closed by the server (open sockets back to 1)")
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func metricValue(t *testing.T, baseURL, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(scrape(t, baseURL))
	if m == nil {
		t.Fatalf("metric %s missing", name)
	}
	return m[1]
}

func TestShutdownClosesWebSocketsWithGoingAway(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	c, _, err := wsDial(t, s.URL, "graphql-transport-ws", "")
	if err != nil {
		t.Fatal(err)
	}
	wsSend(t, c, wsMessage{Type: "connection_init"})
	wsNext(t, c, 5*time.Second)
	wsSend(t, c, wsMessage{ID: "1", Type: "subscribe", Payload: mustJSON(map[string]any{"query": heartbeatQuery})})
	wsNext(t, c, 5*time.Second)
	if got := metricValue(t, s.URL, "fastimage_graphql_active_subscriptions"); got != "1" {
		t.Errorf("active subscriptions = %s, want 1", got)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- s.stop() }()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Fatalf("at shutdown the socket ended with %v, want close 1001", err)
		}
		break
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("shutdown did not finish within its timeout")
	}
}

// A peer that stops answering WebSocket pings is closed, on either
// subprotocol, even while it still holds the TCP connection open.
func TestWebSocketWithoutPongsIsClosed(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.WSPingInterval = 200 * time.Millisecond
	s := start(t, cfg)
	for _, proto := range []string{"graphql-ws", "graphql-transport-ws"} {
		c, _, err := wsDial(t, s.URL, proto, "")
		if err != nil {
			t.Fatal(err)
		}
		c.SetPingHandler(func(string) error { return nil }) // never pong
		wsSend(t, c, wsMessage{Type: "connection_init"})
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("%s: a peer that never pongs was still open after 5s", proto)
				}
				break
			}
		}
		if time.Since(start) > 3*time.Second {
			t.Errorf("%s: closed only after %v", proto, time.Since(start))
		}
	}
}

func TestWebSocketMessageSizeLimit(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.WSMaxMessage = 2048
	s := start(t, cfg)
	c, _, err := wsDial(t, s.URL, "graphql-transport-ws", "")
	if err != nil {
		t.Fatal(err)
	}
	wsSend(t, c, wsMessage{Type: "connection_init"})
	wsNext(t, c, 5*time.Second)
	huge := `subscription { heartbeat { seq } } # ` + strings.Repeat("x", 4096)
	// The server may close before the whole message is written, so the write
	// itself may fail; what matters is that the server ends the socket.
	_ = c.WriteJSON(wsMessage{ID: "1", Type: "subscribe", Payload: mustJSON(map[string]any{"query": huge})})
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the socket stayed open after an oversized message")
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) && ce.Code != websocket.CloseMessageTooBig {
			t.Fatalf("oversized message: closed with %d, want 1009", ce.Code)
		}
		return
	}
}
