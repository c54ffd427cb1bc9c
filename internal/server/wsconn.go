package server

import (
	"context"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/gorilla/websocket"
)

// wsSocket is one GraphQL WebSocket: its connection, its subprotocol's state
// and its running operations. An idle socket costs no goroutine: its reader
// is parked with the process's poller (see idleReader), pings and
// keep-alives come from the acceptor's ping wheel (see pingWheel), a
// subscription whose stream pushes is run by the stream's own goroutine
// (see wsOp.pump), and no write buffer is held between messages; what
// remains is a 512 B read buffer.
//
// Every write has a deadline, so a client that stops reading is dropped
// instead of stalling the goroutines that write to it; WebSocket-level pings
// find dead peers on either subprotocol.
type wsSocket struct {
	ws       *websocket.Conn
	idle     *idleReader
	acceptor *wsAcceptor
	legacy   bool // graphql-ws; graphql-transport-ws otherwise
	exec     graphql.GraphExecutor
	session  *sessionEnd
	release  func() // gives back the client IP's stream slot (see limitStreams)
	resume   func() // reads the socket again once it was parked (see idleReader)

	// ctx is the parent of the socket's operations: what the socket's
	// request had (see socketContext), and from connection_init on the
	// viewer too, whose session's end closes the socket (see
	// Server.wsInit). Only the reader sets it, before any operation starts.
	// It never ends: the socket's end ends each operation (see finish), and
	// a context that could end would keep, for as long as the socket,
	// what every query made under it leaves behind (a child map, a done
	// channel).
	ctx    context.Context
	closed atomic.Bool // the socket has ended

	// unwatch stops the watch on the viewer's session (see Server.wsInit);
	// nil until connection_init. Only the reader sets it.
	unwatch func()

	pingSlot    int          // on the acceptor's pingWheel, guarded by it
	pingPos     int          // -1 once off the wheel
	heard       atomic.Int64 // when the peer last showed a sign of life (Unix ns)
	initTimeout *time.Timer  // nil once connection_init has come; only the reader touches it

	// writeMu orders whole messages; checking that an operation may still
	// speak happens under it too, so that nothing is sent for an operation
	// after the read loop has forgotten it.
	writeMu sync.Mutex

	mu        sync.Mutex
	initSeen  bool
	acked     bool
	closeSent bool
	ops       wsOps
}

// startTimers puts the socket on the acceptor's ping wheel (see
// pingWheel), and arms the close of a socket that sends no connection_init
// in time. A peer silent for two ping intervals (no pong, no message) is
// dropped: by the read deadline when it stops halfway through a frame, by
// the next ping otherwise.
func (s *wsSocket) startTimers() {
	a := s.acceptor
	s.alive()
	s.ws.SetPongHandler(func(string) error { s.alive(); return nil })
	a.pings.add(s)
	s.initTimeout = time.AfterFunc(a.initTimeout, s.initTimedOut)
}

// alive extends the read deadline after a sign of life from the peer; only
// the reader calls it.
func (s *wsSocket) alive() {
	now := time.Now()
	s.heard.Store(now.UnixNano())
	_ = s.ws.SetReadDeadline(now.Add(2 * s.acceptor.pingInterval))
}

// answerPing answers a ping of the client's, as gorilla would: a sign of
// life, and a pong with its payload.
func (s *wsSocket) answerPing(payload []byte) {
	s.alive()
	err := s.ws.WriteControl(websocket.PongMessage, payload, time.Now().Add(s.acceptor.writeTimeout))
	if err != nil && err != websocket.ErrCloseSent {
		s.closeConn()
	}
}

// silent reports whether the peer has shown no sign of life for two ping
// intervals. A parked socket is read by nobody, so its read deadline
// passes unnoticed; the ping notices instead.
func (s *wsSocket) silent() bool {
	return time.Since(time.Unix(0, s.heard.Load())) >= 2*s.acceptor.pingInterval
}

// ping sends a WebSocket ping and the subprotocol's keep-alive: legacy
// clients expect "ka" messages, and graphql-transport-ws clients in a
// browser see only the protocol's own ping.
func (s *wsSocket) ping() {
	if s.closed.Load() {
		return
	}
	if s.silent() {
		s.closeConn()
		return
	}
	if err := s.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.acceptor.writeTimeout)); err != nil {
		s.closeConn()
		return
	}
	s.mu.Lock()
	acked := s.acked
	s.mu.Unlock()
	if acked {
		if s.legacy {
			_ = s.send(nil, "", legacyKeepAlive, nil)
		} else {
			_ = s.send(nil, "", msgPing, nil)
		}
	}
}

// stopInitTimeout stops the init time-out, and lets its timer go: a socket
// signed in has no more use for it.
func (s *wsSocket) stopInitTimeout() {
	if s.initTimeout != nil {
		s.initTimeout.Stop()
		s.initTimeout = nil
	}
}

func (s *wsSocket) initTimedOut() {
	s.mu.Lock()
	seen := s.initSeen
	s.mu.Unlock()
	if seen {
		return
	}
	if s.legacy {
		s.closeWith(closeProtocolError, reasonInitTimeout)
		return
	}
	s.closeWith(closeInitTimeout, reasonInitTimeout)
}

// send writes one message; for an operation's message (op not nil), only
// while the operation is still the one the client knows under its id. A
// write that fails closes the socket.
func (s *wsSocket) send(op *wsOp, id, typ string, payload []byte) error {
	return s.write(op, encodeFrame(id, typ, payload))
}

// write sends one encoded message; see send.
func (s *wsSocket) write(op *wsOp, frame []byte) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if op != nil && !s.current(op) {
		return nil
	}
	return s.writeLocked(frame)
}

// writeLast sends the last message of op (none when frame is nil), and
// forgets op just before: a client that reuses its id, or takes its place
// under the subscription limits, as soon as it reads that message finds
// both free. Nothing is sent once the client has completed op itself.
func (s *wsSocket) writeLast(op *wsOp, frame []byte) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	i := s.ops.index(op)
	if i >= 0 {
		s.ops = slices.Delete(s.ops, i, i+1)
	}
	s.mu.Unlock()
	if i >= 0 && frame != nil {
		_ = s.writeLocked(frame)
	}
}

// writeLocked writes one message under writeMu.
func (s *wsSocket) writeLocked(frame []byte) error {
	_ = s.ws.SetWriteDeadline(time.Now().Add(s.acceptor.writeTimeout))
	if err := s.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		// A write that timed out leaves the socket unusable; closing it also
		// ends the read loop, which stops every operation on it.
		s.acceptor.log.Debug("websocket write failed; closing", "err", err)
		s.closeConn()
		return err
	}
	return nil
}

// readMessage returns the next message, read whole; gorilla bounds its size
// by the read limit (and answers a bigger one with 1009 itself).
func (s *wsSocket) readMessage() ([]byte, error) {
	_, r, err := s.ws.NextReader()
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// closeWith sends the close frame that ends the socket, once, then closes
// the connection, which ends the read loop. A normal closure (1000) when
// the viewer's session has ended becomes 4401 or 4403 with a reason instead,
// so that the client signs in again rather than reconnecting as if nothing
// happened.
func (s *wsSocket) closeWith(code int, reason string) {
	s.mu.Lock()
	sent := s.closeSent
	s.closeSent = true
	s.mu.Unlock()
	if !sent {
		if s.session != nil && code == closeNormal {
			if err := s.session.err(); err != nil {
				code, reason = closeFrame(err)
			}
		}
		_ = s.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, closeReason(reason)), time.Now().Add(time.Second))
	}
	s.closeConn()
}

// closeConn closes the connection; a parked reader is woken to find that
// and end the socket (see finish).
func (s *wsSocket) closeConn() {
	_ = s.ws.Close()
	s.idle.wake()
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

// finish releases what the socket holds once its reader has found it closed.
func (s *wsSocket) finish() {
	s.acceptor.pings.remove(s)
	s.stopInitTimeout()
	s.closed.Store(true)
	s.mu.Lock()
	ops := slices.Clone(s.ops)
	s.mu.Unlock()
	for _, op := range ops {
		op.cancel()
	}
	if s.unwatch != nil {
		s.unwatch()
	}
	s.closeConn()
	s.acceptor.remove(s)
	s.release()
}
