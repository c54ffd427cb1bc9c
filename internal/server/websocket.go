package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// wsAcceptor plugs gorilla/websocket into gqlgen's WebSocket transport. Every
// write has a deadline, so a client that stops reading is dropped instead of
// stalling the goroutines that write to it; WebSocket-level pings find dead
// peers on either subprotocol; and every open socket is known, so shutdown can
// close each with 1001 (going away). What gqlgen's transport leaves out of
// the subprotocols — the init time-out and the close codes of
// graphql-transport-ws, unique operation ids — is enforced here, on every
// message read and written (see wsProtocol).
type wsAcceptor struct {
	upgrader     websocket.Upgrader
	initTimeout  time.Duration
	writeTimeout time.Duration
	pingInterval time.Duration
	open         prometheus.Gauge
	log          *slog.Logger

	mu       sync.Mutex
	conns    map[*wsConn]struct{}
	shutdown bool
}

var errShuttingDown = errors.New("server is shutting down")

func newWSAcceptor(origins *originList, initTimeout, writeTimeout, pingInterval time.Duration, open prometheus.Gauge, log *slog.Logger) *wsAcceptor {
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
		initTimeout:  initTimeout,
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
	conn := &wsConn{ws: c, acceptor: a, session: sessionEndFrom(r.Context()), proto: newWSProtocol(c.Subprotocol()), stop: make(chan struct{})}
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
	proto    *wsProtocol
	stop     chan struct{}
	once     sync.Once

	closeMu   sync.Mutex
	closeSent bool
}

// ping sends WebSocket pings, and closes a socket that sent no
// connection_init within the init time-out.
func (c *wsConn) ping() {
	t := time.NewTicker(c.acceptor.pingInterval)
	defer t.Stop()
	initTimeout := time.NewTimer(c.acceptor.initTimeout)
	defer initTimeout.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-initTimeout.C:
			c.initTimedOut()
		case <-t.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.acceptor.writeTimeout)); err != nil {
				_ = c.Close()
				return
			}
		}
	}
}

func (c *wsConn) initTimedOut() {
	if code, ok := c.proto.initTimedOut(); ok {
		c.closeWith(code, reasonInitTimeout)
	}
}

// closeWith sends the close frame that ends the socket, then closes it; a
// close gqlgen writes afterwards is not sent.
func (c *wsConn) closeWith(code int, reason string) {
	_ = c.WriteClose(code, reason)
	_ = c.Close()
}

// NextReader hands gqlgen the next message that wsProtocol lets through.
// Messages are read whole; gorilla bounds them by the read limit.
func (c *wsConn) NextReader() (int, io.Reader, error) {
	if b := c.proto.takePending(); b != nil {
		return websocket.TextMessage, bytes.NewReader(b), nil
	}
	for {
		mt, r, err := c.ws.NextReader()
		if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseNoStatusReceived, websocket.CloseGoingAway) {
			return mt, nil, transport.ErrWebsocketClosed
		}
		if err != nil {
			return mt, r, err
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return mt, nil, err
		}
		v := c.proto.inbound(data)
		switch {
		case v.code != 0:
			c.closeWith(v.code, v.reason)
			return mt, nil, transport.ErrWebsocketClosed
		case v.pass != nil:
			return mt, bytes.NewReader(v.pass), nil
		case v.reply != nil:
			if err := c.write(v.reply); err != nil {
				return mt, nil, err
			}
		}
	}
}

// WriteJSON writes one message of gqlgen's with the client's id in place of
// gqlgen's, or drops it (see wsProtocol.route). gqlgen's messages are
// structs with string fields ID and Type: the id is swapped in place, which
// spares decoding and encoding every message a second time. Anything else
// goes through JSON.
func (c *wsConn) WriteJSON(v any) error {
	id, typ, ok := messageFields(v)
	if !ok {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if b, ok = c.proto.outbound(b); !ok {
			return nil
		}
		return c.write(b)
	}
	var internal *string
	if s := id.String(); s != "" {
		internal = &s
	}
	client, keep := c.proto.route(internal, typ.String())
	if !keep {
		return nil
	}
	if internal != nil {
		id.SetString(client)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.write(b)
}

// messageFields finds the settable string fields ID and Type of the struct v
// points to.
func messageFields(v any) (id, typ reflect.Value, ok bool) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return id, typ, false
	}
	id, typ = rv.Elem().FieldByName("ID"), rv.Elem().FieldByName("Type")
	ok = id.IsValid() && id.Kind() == reflect.String && id.CanSet() && typ.IsValid() && typ.Kind() == reflect.String
	return id, typ, ok
}

func (c *wsConn) write(b []byte) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.acceptor.writeTimeout))
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
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
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closeSent {
		return nil // the adapter closed it already, with the right code
	}
	c.closeSent = true
	if c.session != nil && code == transport.WebsocketCloseNormalClosure {
		if err := c.session.err(); err != nil {
			code, message = closeFrame(err)
		}
	}
	return c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, closeReason(message)), time.Now().Add(time.Second))
}

// closeReason cuts a reason to the 123 bytes a close frame can carry (on a
// rune boundary): a longer one makes gorilla refuse to send the frame at all,
// and the client would see 1006 instead of the code.
func closeReason(s string) string {
	const max = 123
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
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
