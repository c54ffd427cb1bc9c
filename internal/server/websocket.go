package server

import (
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// Buffers of a socket. A client's messages are small (an init, a subscribe,
// a complete) and gorilla reads a longer one in pieces, so the read buffer
// that every idle socket holds is small; a write buffer is taken from a pool
// for each message and given back after it, so an idle socket holds none.
const (
	wsReadBuffer  = 512
	wsWriteBuffer = 4 << 10
)

// wsAcceptor upgrades requests to WebSockets on gorilla/websocket and knows
// every open socket, so that shutdown can close each with 1001 (going away).
type wsAcceptor struct {
	upgrader     websocket.Upgrader
	initTimeout  time.Duration
	writeTimeout time.Duration
	pingInterval time.Duration
	open         prometheus.Gauge
	log          *slog.Logger

	mu       sync.Mutex
	conns    map[*wsSocket]struct{}
	shutdown bool
}

var errShuttingDown = errors.New("server is shutting down")

func newWSAcceptor(origins *originList, initTimeout, writeTimeout, pingInterval time.Duration, open prometheus.Gauge, log *slog.Logger) *wsAcceptor {
	return &wsAcceptor{
		upgrader: websocket.Upgrader{
			HandshakeTimeout: 10 * time.Second,
			ReadBufferSize:   wsReadBuffer,
			WriteBufferSize:  wsWriteBuffer,
			WriteBufferPool:  &sync.Pool{},
			Subprotocols:     []string{subprotoLegacy, subprotoTransportWS},
			// The Origin was already checked before the transport saw the
			// request (see checkUpgradeOrigin); checking again costs nothing.
			CheckOrigin: func(r *http.Request) bool { return origins.allows(r.Header.Get("Origin")) },
			// The transport answers a failed upgrade itself (see
			// wsTransport.Do); writing here too would send two responses.
			Error: func(http.ResponseWriter, *http.Request, int, error) {},
		},
		initTimeout:  initTimeout,
		writeTimeout: writeTimeout,
		pingInterval: pingInterval,
		open:         open,
		log:          log,
		conns:        make(map[*wsSocket]struct{}),
	}
}

// accept upgrades the request and registers the socket; it refuses during
// shutdown.
func (a *wsAcceptor) accept(w http.ResponseWriter, r *http.Request) (*websocket.Conn, error) {
	if a.shuttingDown() {
		return nil, errShuttingDown
	}
	return a.upgrader.Upgrade(w, r, nil)
}

// add registers s; it reports false, having closed s with 1001, once
// shutdown has begun.
func (a *wsAcceptor) add(s *wsSocket) bool {
	a.mu.Lock()
	if a.shutdown {
		a.mu.Unlock()
		s.closeWith(closeGoingAway, reasonShutdown)
		return false
	}
	a.conns[s] = struct{}{}
	a.mu.Unlock()
	a.open.Inc()
	return true
}

func (a *wsAcceptor) remove(s *wsSocket) {
	a.mu.Lock()
	_, ok := a.conns[s]
	delete(a.conns, s)
	a.mu.Unlock()
	if ok {
		a.open.Dec()
	}
}

// closeAll closes every open socket with 1001 and refuses new ones.
func (a *wsAcceptor) closeAll() {
	a.mu.Lock()
	a.shutdown = true
	conns := make([]*wsSocket, 0, len(a.conns))
	for c := range a.conns {
		conns = append(conns, c)
	}
	a.mu.Unlock()
	for _, c := range conns {
		c.closeWith(closeGoingAway, reasonShutdown)
	}
}

func (a *wsAcceptor) shuttingDown() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.shutdown
}
