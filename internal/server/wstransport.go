package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/logging"
)

// wsTransport serves GraphQL over WebSocket, both subprotocols, on gorilla.
// It is ours rather than gqlgen's because gqlgen's costs every idle socket
// three goroutines beside the reader (pings, keep-alives, a closer), gets the
// close codes of graphql-transport-ws wrong, and lets a duplicate id orphan
// an operation; here the rules of the subprotocols are kept where messages
// are read, pings ride runtime timers, and ids are the client's own.
type wsTransport struct {
	sockets       *wsAcceptor
	init          func(ctx context.Context, payload transport.InitPayload, ended func()) (_ context.Context, stop func(), _ error)
	readLimit     int64
	maxOperations int // queries and mutations at once per socket (see socketOps)
}

var _ graphql.Transport = wsTransport{}

func (wsTransport) Supports(r *http.Request) bool { return r.Header.Get("Upgrade") != "" }

func (t wsTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if !checkUpgrade(w, r, t.sockets) {
		return
	}
	c, idle, err := t.sockets.accept(w, r)
	if err != nil {
		if err == errShuttingDown {
			w.Header().Set("Retry-After", "1")
			writeGraphQLError(w, mediaJSON, http.StatusServiceUnavailable, apperr.Unavailable,
				"This server is shutting down; connect again and another will answer.")
			return
		}
		// The upgrader has hijacked nothing when it refuses.
		writeGraphQLError(w, mediaJSON, http.StatusBadRequest, apperr.BadRequest,
			fmt.Sprintf("The WebSocket handshake failed (%v); use a WebSocket client library.", err))
		return
	}
	if t.readLimit > 0 {
		c.SetReadLimit(t.readLimit)
	}
	// The socket outlives this handler (see below) and ends when it closes.
	ctx := withSocketOps(withSessionEnd(socketContext(r), true), t.maxOperations)
	s := &wsSocket{
		ws:       c,
		idle:     idle,
		acceptor: t.sockets,
		legacy:   c.Subprotocol() != subprotoTransportWS,
		exec:     exec,
		session:  sessionEndFrom(ctx),
		ctx:      ctx,
		pingPos:  -1,
	}
	if !t.sockets.add(s) {
		return
	}
	s.release = keepStreamSlot(r.Context())
	s.resume = func() { t.read(s) }
	s.startTimers()
	// The socket is read on goroutines of its own and this handler
	// returns: the handler's goroutine has a deep stack (net/http, the
	// middleware, gqlgen), and while it runs net/http keeps the connection's
	// buffers, several KiB that a hijacked connection no longer uses.
	go t.read(s)
}

// socketContext returns what a socket's operations use of the request that
// opened it: its id (for the logs), the client, the sign-in its cookie
// carried, and the socket's subscription count (see limitStreams). Nothing
// else: the request's own context would keep the request, its headers, its
// response writer and net/http's contexts alive for as long as the socket,
// several KiB that no idle socket needs.
func socketContext(r *http.Request) context.Context {
	src := r.Context()
	ctx := context.Background()
	if id := logging.RequestID(src); id != "" {
		ctx = logging.WithRequestID(ctx, id)
	}
	ctx = account.WithClient(ctx, account.ClientFrom(src))
	if v, err := account.Optional(src); v != nil || err != nil {
		ctx = account.WithAuth(ctx, v, err)
	}
	if subs, ok := src.Value(socketSubsKey{}).(*socketSubs); ok {
		ctx = context.WithValue(ctx, socketSubsKey{}, subs)
	}
	return ctx
}

// read handles the client's messages until the socket closes, then
// releases it. While the client sends nothing the socket is parked (see
// idleReader) and no goroutine reads it: read runs again, on a new one,
// when the client sends more. Each message is read and handled on a
// short-lived goroutine: reading a frame and handling a message go deep
// (gorilla, JSON, authentication, parsing and validating an operation, its
// resolvers), a goroutine's stack that grew stays grown for a while after,
// and a reader that waits where there is no poller should not pay for the
// deepest message it ever handled.
func (t wsTransport) read(s *wsSocket) {
	for {
		if s.idle.wait(s.alive, s.answerPing, s.resume) {
			return
		}
		if !s.onFreshStack(func() bool { return t.message(s) }) {
			s.finish()
			return
		}
	}
}

// message reads and handles the client's next message; it reports false
// when the socket is to close.
func (t wsTransport) message(s *wsSocket) bool {
	data, err := s.readMessage()
	if err != nil {
		return false
	}
	s.alive()
	start := graphql.Now()
	var f wsFrame
	if err := json.Unmarshal(data, &f); err != nil {
		s.protocolError(`The message is not JSON.`)
		return false
	}
	if s.legacy {
		return t.legacyMessage(s, f, readTiming(start))
	}
	return t.transportWSMessage(s, f, readTiming(start))
}

// onFreshStack runs f on a short-lived goroutine and returns its result
// (see read). A panic closes the socket, as it would have ended the
// request.
func (s *wsSocket) onFreshStack(f func() bool) bool {
	done := make(chan bool, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				s.acceptor.log.Error("websocket message handler panicked", "panic", r, "stack", string(debug.Stack()))
				done <- false
			}
		}()
		done <- f()
	}()
	return <-done
}

// transportWSMessage handles one message of graphql-transport-ws; it
// reports false when the socket is to close.
func (t wsTransport) transportWSMessage(s *wsSocket, f wsFrame, read graphql.TraceTiming) bool {
	switch f.Type {
	case msgInit:
		s.mu.Lock()
		again := s.initSeen
		s.initSeen = true
		s.mu.Unlock()
		if again {
			s.closeWith(closeTooManyInits, reasonTooManyInits)
			return false
		}
		return t.initialise(s, f.Payload)
	case msgPing:
		_ = s.send(nil, "", msgPong, f.Payload)
	case msgPong:
	case msgSubscribe:
		s.mu.Lock()
		acked := s.acked
		s.mu.Unlock()
		switch {
		case !acked:
			s.closeWith(closeUnauthorized, reasonUnauthorized)
			return false
		case f.ID == "" || !isObject(f.Payload):
			s.closeWith(closeBadRequest, reasonBadRequest)
			return false
		case s.running(f.ID):
			s.closeWith(closeDuplicateID, "Subscriber for "+f.ID+" already exists")
			return false
		}
		s.start(f.ID, f.Payload, read)
	case msgComplete:
		s.mu.Lock()
		acked := s.acked
		s.mu.Unlock()
		if !acked {
			return true // nothing can be running
		}
		if f.ID == "" {
			s.closeWith(closeBadRequest, reasonBadRequest)
			return false
		}
		s.stop(f.ID, true)
	default:
		s.closeWith(closeBadRequest, reasonBadRequest)
		return false
	}
	return true
}

// legacyMessage handles one message of graphql-ws; it reports false when
// the socket is to close.
func (t wsTransport) legacyMessage(s *wsSocket, f wsFrame, read graphql.TraceTiming) bool {
	s.mu.Lock()
	initSeen, acked := s.initSeen, s.acked
	if f.Type == msgInit {
		s.initSeen = true
	}
	s.mu.Unlock()
	switch {
	case f.Type == msgInit && !initSeen:
		return t.initialise(s, f.Payload)
	case f.Type == legacyTerminate:
		s.closeWith(closeNormal, "terminated")
		return false
	case f.Type == legacyStart && acked:
		// As the legacy reference server does: a start under an id already
		// running replaces that operation, which stops first, silently.
		s.stop(f.ID, true)
		s.start(f.ID, f.Payload, read)
	case f.Type == legacyStop && acked:
		s.stop(f.ID, false) // legacy clients expect a complete after it
	default:
		s.protocolError(fmt.Sprintf("unexpected message %s", f.Type))
		return false
	}
	return true
}

// initialise answers connection_init: it signs the socket in with the
// payload's token (or the request's cookie session) and acknowledges, or
// closes with 4401/4403 and the reason when the token is refused, or with
// 1013 (try again later) when the token could not be checked.
func (t wsTransport) initialise(s *wsSocket, raw json.RawMessage) bool {
	s.stopInitTimeout()
	var payload transport.InitPayload
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &payload); err != nil {
			s.protocolError("The connection_init payload must be an object.")
			return false
		}
	}
	// The session's end closes the socket with its code (see closeWith).
	ctx, unwatch, err := t.init(s.ctx, payload, func() { s.closeWith(closeNormal, "terminated") })
	if err != nil {
		if serverFailed(err) {
			// Not the client's fault: the token could not be checked (the
			// database failed or timed out). 4401 would send the user to sign
			// in again, and the reference client gives up for good after
			// 4500 or 1011; after 1013 it reconnects, as a socket whose
			// session check fails later does (closeFrame).
			s.acceptor.log.Warn("websocket connection_init: could not check the token", "err", err)
			if s.legacy {
				s.connectionError("The server could not check your sign-in; connect again.")
			}
			s.closeWith(closeTryAgainLater, reasonInternal)
			return false
		}
		code, reason := closeFrame(err)
		if s.legacy {
			s.connectionError(err.Error())
		}
		s.closeWith(code, reason)
		return false
	}
	s.ctx = ctx
	s.unwatch = unwatch
	s.mu.Lock()
	s.acked = true
	s.mu.Unlock()
	_ = s.send(nil, "", msgAck, nil)
	if s.legacy {
		_ = s.send(nil, "", legacyKeepAlive, nil)
	}
	return true
}

// serverFailed reports whether err is the server's failure (a database
// error, a timeout, an unavailable dependency) rather than a refusal of the
// client's credentials.
func serverFailed(err error) bool {
	switch apperr.CodeOf(err) {
	case apperr.Internal, apperr.Unavailable, apperr.RequestTimeout:
		return true
	}
	return false
}

// protocolError closes the socket for a message its subprotocol does not
// allow: 4400 on graphql-transport-ws; on legacy graphql-ws, which has no
// codes, a connection_error and 1002.
func (s *wsSocket) protocolError(message string) {
	if !s.legacy {
		s.closeWith(closeBadRequest, reasonBadRequest)
		return
	}
	s.connectionError(message)
	s.closeWith(closeProtocolError, message)
}

func (s *wsSocket) connectionError(message string) {
	b, _ := json.Marshal(&gqlerror.Error{Message: message})
	_ = s.send(nil, "", legacyConnError, b)
}
