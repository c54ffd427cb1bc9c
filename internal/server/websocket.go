package server

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// wsAcceptor plugs gorilla/websocket into gqlgen's WebSocket transport. Every
// write has a deadline, so a client that stops reading is dropped instead of
// stalling the goroutines that write to it; WebSocket-level pings find dead
// peers on either subprotocol; and every open socket is known, so shutdown can
// close each with 1001 (going away).
type wsAcceptor struct {
	upgrader     websocket.Upgrader
	writeTimeout time.Duration
	pingInterval time.Duration
	open         prometheus.Gauge
	log          *slog.Logger

	mu       sync.Mutex
	conns    map[*wsConn]struct{}
	shutdown bool
}

var errShuttingDown = errors.New("server is shutting down")

func newWSAcceptor(origins *originList, writeTimeout, pingInterval time.Duration, open prometheus.Gauge, log *slog.Logger) *wsAcceptor {
	return &wsAcceptor{
		upgrader: websocket.Upgrader{
			HandshakeTimeout: 10 * time.Second,
			ReadBufferSize:   4 << 10,
			WriteBufferSize:  4 << 10,
			// The Origin was already checked before gqlgen saw the request
			// (see checkUpgradeOrigin); checking again costs nothing.
			CheckOrigin: func(r *http.Request) bool { return origins.allows(r.Header.Get("Origin")) },
			// gqlgen answers a failed upgrade itself; writing here too would
			// send two responses.
			Error: func(http.ResponseWriter, *http.Request, int, error) {},
		},
		writeTimeout: writeTimeout,
		pingInterval: pingInterval,
		open:         open,
		log:          log,
		conns:        make(map[*wsConn]struct{}),
	}
}

// Accept implements transport.WebsocketImplementation.
func (a *wsAcceptor) Accept(w http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	a.mu.Lock()
	shutdown := a.shutdown
	a.mu.Unlock()
	if shutdown {
		return nil, errShuttingDown
	}
	up := a.upgrader
	up.Subprotocols = opts.Subprotocols
	c, err := up.Upgrade(w, r, opts.ResponseHeader)
	if err != nil {
		return nil, err
	}
	conn := &wsConn{ws: c, acceptor: a, session: sessionEndFrom(r.Context()), stop: make(chan struct{})}
	a.mu.Lock()
	if a.shutdown {
		a.mu.Unlock()
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
		_ = c.Close()
		return nil, errShuttingDown
	}
	a.conns[conn] = struct{}{}
	a.mu.Unlock()
	a.open.Inc()

	deadline := func() time.Time { return time.Now().Add(2 * a.pingInterval) }
	_ = c.SetReadDeadline(deadline())
	c.SetPongHandler(func(string) error { return c.SetReadDeadline(deadline()) })
	go conn.ping()
	return conn, nil
}

// closeAll closes every open socket with 1001 and refuses new ones.
func (a *wsAcceptor) closeAll() {
	a.mu.Lock()
	a.shutdown = true
	conns := make([]*wsConn, 0, len(a.conns))
	for c := range a.conns {
		conns = append(conns, c)
	}
	a.mu.Unlock()
	for _, c := range conns {
		_ = c.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"),
			time.Now().Add(time.Second))
		_ = c.Close()
	}
}

// wsConn is one socket. gqlgen serialises its writes; WriteControl may run
// beside them (gorilla allows it), which the pinger and shutdown rely on.
type wsConn struct {
	ws       *websocket.Conn
	acceptor *wsAcceptor
	session  *sessionEnd // nil outside wsTransport
	stop     chan struct{}
	once     sync.Once
}

func (c *wsConn) ping() {
	t := time.NewTicker(c.acceptor.pingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.acceptor.writeTimeout)); err != nil {
				_ = c.Close()
				return
			}
		}
	}
}

func (c *wsConn) NextReader() (int, io.Reader, error) {
	mt, r, err := c.ws.NextReader()
	if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseNoStatusReceived, websocket.CloseGoingAway) {
		return mt, nil, transport.ErrWebsocketClosed
	}
	return mt, r, err
}

func (c *wsConn) WriteJSON(v any) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.acceptor.writeTimeout))
	if err := c.ws.WriteJSON(v); err != nil {
		// A write that timed out leaves the socket unusable; closing it also
		// ends the read loop, so gqlgen stops every subscription on it.
		c.acceptor.log.Debug("websocket write failed; closing", "err", err)
		_ = c.Close()
		return err
	}
	return nil
}

// WriteClose sends a close frame. gqlgen closes a socket whose context ended
// with 1000 (normal closure) whatever the cause; when the cause was the end of
// the session, the client gets 4401 or 4403 with a reason instead, so that it
// signs in again rather than reconnecting as if nothing happened.
func (c *wsConn) WriteClose(code int, message string) error {
	if c.session != nil && code == transport.WebsocketCloseNormalClosure {
		if err := c.session.err(); err != nil {
			code, message = closeFrame(err)
		}
	}
	return c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, message), time.Now().Add(time.Second))
}

func (c *wsConn) Close() error {
	var err error
	c.once.Do(func() {
		close(c.stop)
		err = c.ws.Close()
		c.acceptor.mu.Lock()
		delete(c.acceptor.conns, c)
		c.acceptor.mu.Unlock()
		c.acceptor.open.Dec()
	})
	return err
}

func (c *wsConn) Subprotocol() string { return c.ws.Subprotocol() }

func (c *wsConn) SetReadLimit(limit int64) { c.ws.SetReadLimit(limit) }
