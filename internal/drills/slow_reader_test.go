package drills

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/db/dbtest"
)

const heartbeatSubscription = `subscription { heartbeat(intervalMs: 250) { seq serverTime } }`

// Clients that stop reading (each with five hundred fast subscriptions and a
// tiny receive buffer) are dropped by the server once a write waits past
// the write deadline; meanwhile the other subscribers keep receiving every
// tick on time, and the server's memory stays bounded.
func TestDrillClientStopsReading(t *testing.T) {
	t.Parallel()
	const writeTimeout, perSocket = 2 * time.Second, 500
	healthyN, slowN := size(10, 100), size(2, 4)
	dbURL := dbtest.NewURL(t)
	vdb, err := db.Open(context.Background(), dbtest.Config(dbURL), "drills")
	if err != nil {
		t.Fatal(err)
	}
	defer vdb.Close()
	env := []string{"DATABASE_URL=" + dbURL}
	api := startServe(t, "api", env, settings(t.TempDir(), "--workers", "0", "--ws-write-timeout", writeTimeout.String(),
		"--max-subscriptions-per-socket", strconv.Itoa(perSocket))...)
	u := signUp(t, newClient(api.url), vdb)
	ctx, stop := stopper(t)

	healthy := make([]*ticker, healthyN)
	for i := range healthy {
		s, err := dialSocket(ctx, api.url, u.api.token, nil)
		if err != nil {
			t.Fatalf("healthy socket %d: %v", i, err)
		}
		healthy[i] = &ticker{sock: s}
		if err := s.subscribe("1", heartbeatSubscription, nil); err != nil {
			t.Fatal(err)
		}
		go healthy[i].read()
	}
	waitFor(t, time.Minute, "every healthy subscriber to tick", func() bool {
		for _, h := range healthy {
			if h.ticks() == 0 {
				return false
			}
		}
		return true
	})
	metrics := newClient(api.url)
	baseSubs := metric(t, metrics, "fastimage_graphql_active_subscriptions")
	baseRSS := api.rss(t)
	for _, h := range healthy {
		h.reset()
	}

	// The slow clients: a 4 KiB receive buffer, five hundred subscriptions
	// ticking four times a second, and never another read.
	tiny := &websocket.Dialer{HandshakeTimeout: 20 * time.Second, NetDialContext: (&net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) }); err != nil {
			return err
		}
		return serr
	}}).DialContext}
	slow := make([]*socket, slowN)
	for i := range slow {
		s, err := dialSocket(ctx, api.url, u.api.token, tiny)
		if err != nil {
			t.Fatalf("slow socket %d: %v", i, err)
		}
		slow[i] = s
	}
	for _, s := range slow {
		for j := range perSocket {
			if err := s.subscribe(strconv.Itoa(j), heartbeatSubscription, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	stoppedReading := time.Now()
	waitFor(t, time.Minute, "the slow subscriptions to start", func() bool {
		return metric(t, metrics, "fastimage_graphql_active_subscriptions") > baseSubs
	})
	var peakRSS int64
	waitFor(t, 2*time.Minute, "the server to drop every socket that stopped reading", func() bool {
		peakRSS = max(peakRSS, api.rss(t))
		return metric(t, metrics, "fastimage_graphql_active_subscriptions") <= baseSubs
	})
	dropped := time.Since(stoppedReading)
	// Each slow socket, read now, holds what fitted in the buffers and then
	// ends: the server closed it.
	notClosed := 0
	for i, s := range slow {
		_ = s.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var err error
		for err == nil {
			_, _, err = s.conn.ReadMessage()
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			notClosed++
			t.Errorf("slow socket %d: still open after the drop (%v)", i, err)
		}
		s.close()
	}
	afterRSS := api.rss(t)
	stop()

	// The healthy subscribers missed no tick, and their ticks came on time.
	var gaps, broken int
	var lat []time.Duration
	for _, h := range healthy {
		h.mu.Lock()
		for i := 1; i < len(h.seqs); i++ {
			if h.seqs[i] != h.seqs[i-1]+1 {
				gaps++
			}
		}
		if h.err != nil {
			broken++
			t.Errorf("a healthy subscriber broke: %v", h.err)
		}
		lat = append(lat, h.latency...)
		h.mu.Unlock()
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		t.Fatal("the healthy subscribers got no tick while the slow ones were dropped")
	}
	p50, p99, worst := lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	if p99 >= writeTimeout {
		t.Errorf("healthy subscribers' p99 latency %v, want below the write deadline %v: the slow readers held them up", p99, writeTimeout)
	}
	const rssBound = 128 << 20
	if peakRSS-baseRSS > rssBound {
		t.Errorf("server RSS grew %.1f MiB while %d clients did not read, want at most %d MiB", float64(peakRSS-baseRSS)/(1<<20), slowN, rssBound>>20)
	}
	report(t, fmt.Sprintf("%d clients stop reading, %d keep on", slowN, healthyN), gaps+broken+notClosed,
		fmt.Sprintf("%d slow sockets dropped (write deadline %v), %d left open; healthy: %d ticks, %d gaps, %d broken, latency p50 %v p99 %v max %v; server RSS %+.1f MiB at the peak, %+.1f MiB after",
			slowN-notClosed, writeTimeout, notClosed, len(lat), gaps, broken, p50.Round(time.Millisecond), p99.Round(time.Millisecond), worst.Round(time.Millisecond),
			float64(peakRSS-baseRSS)/(1<<20), float64(afterRSS-baseRSS)/(1<<20)), dropped)
}

// ticker is a socket with one heartbeat subscription that reads every tick
// and notes how late it came.
type ticker struct {
	sock *socket

	mu      sync.Mutex
	seqs    []int
	latency []time.Duration
	err     error
}

func (h *ticker) ticks() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seqs)
}

func (h *ticker) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seqs, h.latency = h.seqs[len(h.seqs)-1:], nil
}

func (h *ticker) read() {
	for {
		var m wsMessage
		if err := h.sock.conn.ReadJSON(&m); err != nil {
			h.mu.Lock()
			if !strings.Contains(err.Error(), "use of closed network connection") {
				h.err = err
			}
			h.mu.Unlock()
			return
		}
		got := time.Now()
		switch m.Type {
		case "next":
			var out struct {
				Data struct {
					Heartbeat struct {
						Seq        int
						ServerTime time.Time
					}
				}
			}
			if err := json.Unmarshal(m.Payload, &out); err != nil {
				h.mu.Lock()
				h.err = err
				h.mu.Unlock()
				return
			}
			h.mu.Lock()
			h.seqs = append(h.seqs, out.Data.Heartbeat.Seq)
			h.latency = append(h.latency, got.Sub(out.Data.Heartbeat.ServerTime))
			h.mu.Unlock()
		case "ping":
			_ = h.sock.write(wsMessage{Type: "pong"})
		case "error", "complete":
			h.mu.Lock()
			h.err = fmt.Errorf("%s: %s", m.Type, m.Payload)
			h.mu.Unlock()
			return
		}
	}
}

// metric reads one unlabelled gauge from the server's /metrics.
func metric(t *testing.T, c *client, name string) float64 {
	t.Helper()
	resp, err := c.http.Get(c.base + "/metrics")
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: status %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}
