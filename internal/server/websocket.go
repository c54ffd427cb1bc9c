package server

import (
	"bufio"
	"errors"
	"log/slog"
	"net"
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
	pings        *pingWheel
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
			ReadBufferSize:   0, // gorilla keeps ours (see hijackReader)
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
		pings:        &pingWheel{interval: pingInterval},
		open:         open,
		log:          log,
		conns:        make(map[*wsSocket]struct{}),
	}
}

// accept upgrades the request; it refuses during shutdown. The socket's
// reads go through the idle reader it also returns (see idleReader).
func (a *wsAcceptor) accept(w http.ResponseWriter, r *http.Request) (*websocket.Conn, *idleReader, error) {
	if a.shuttingDown() {
		return nil, nil, errShuttingDown
	}
	h := &hijackReader{ResponseWriter: w}
	c, err := a.upgrader.Upgrade(h, r, nil)
	if err != nil {
		return nil, nil, err
	}
	return c, newIdleReader(c.UnderlyingConn(), h.br), nil
}

// hijackReader hands gorilla, when it hijacks the connection, a read
// buffer of wsReadBuffer bytes that we made, so that we can see how much of
// it is left (gorilla keeps the buffer it is given when its own
// ReadBufferSize is 0 and the given one holds more than 256 bytes).
type hijackReader struct {
	http.ResponseWriter
	br *bufio.Reader
}

func (h *hijackReader) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil || rw.Reader.Buffered() > 0 { // gorilla refuses the latter
		return c, rw, err
	}
	h.br = bufio.NewReaderSize(c, wsReadBuffer)
	return c, bufio.NewReadWriter(h.br, rw.Writer), nil
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

// closeAll closes every open socket with 1001 and refuses new ones. The
// sockets are closed closeAllAtOnce at a time: a client that stopped
// reading holds its close for up to a second (see closeWith), and the
// others, and the rest of the shutdown, must not wait behind it.
func (a *wsAcceptor) closeAll() {
	a.mu.Lock()
	a.shutdown = true
	conns := make([]*wsSocket, 0, len(a.conns))
	for c := range a.conns {
		conns = append(conns, c)
	}
	a.mu.Unlock()
	var wg sync.WaitGroup
	next := make(chan *wsSocket)
	for range min(closeAllAtOnce, len(conns)) {
		wg.Go(func() {
			for c := range next {
				c.closeWith(closeGoingAway, reasonShutdown)
			}
		})
	}
	for _, c := range conns {
		next <- c
	}
	close(next)
	wg.Wait()
}

// closeAllAtOnce bounds the goroutines that close sockets at shutdown.
const closeAllAtOnce = 256

func (a *wsAcceptor) shuttingDown() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.shutdown
}
