package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/events"
)

// streamLimits bounds what clients hold open in this process: streams
// (WebSockets and SSE streams) per client IP, subscriptions per WebSocket,
// and subscriptions per user over all their streams, the clients of one
// address that are not signed in counting as one user. A slot is taken when
// a stream or subscription starts and given back when it ends, however it
// ends.
type streamLimits struct {
	cfg     config.Streams
	refused *prometheus.CounterVec

	mu     sync.Mutex
	ips    map[string]int
	owners map[owner]slots
}

// owner is whom a subscription counts against for MAX_SUBSCRIPTIONS_PER_USER:
// its viewer, or, for a client not signed in, its address. Otherwise one
// address could run MAX_STREAMS_PER_IP × MAX_SUBSCRIPTIONS_PER_SOCKET
// subscriptions without an account.
type owner struct {
	user uuid.UUID // zero when not signed in
	ip   string    // only when not signed in
}

// slot is one running subscription's place in its socket's and its user's
// counts. It is free as soon as its operation's context is done: a client
// that stops one subscription and at once starts another finds the room,
// though the goroutine that gives the slot back may not have run yet.
type slot struct {
	ctx    context.Context
	socket *socketSubs
	owner  owner
}

// slots are the subscriptions of a socket or an owner: a slice, as each
// runs few (PerSocket, PerUser at most) and every socket and signed-in user
// holds one for as long as they stream.
type slots []*slot

// live returns the slots whose operation still runs, forgetting the others.
func (ss slots) live() slots {
	return slices.DeleteFunc(ss, func(sl *slot) bool { return sl.ctx.Err() != nil })
}

// without returns ss without sl.
func (ss slots) without(sl *slot) slots {
	if i := slices.Index(ss, sl); i >= 0 {
		return slices.Delete(ss, i, i+1)
	}
	return ss
}

func newStreamLimits(cfg config.Streams, reg promauto.Factory) *streamLimits {
	return &streamLimits{
		cfg:     cfg,
		refused: reg.NewCounterVec(prometheus.CounterOpts{Name: "fastimage_stream_limit_refusals_total", Help: "Streams and subscriptions refused for being over a limit, by limit (ip, socket, user, anonymous)."}, []string{"limit"}),
		ips:     make(map[string]int),
		owners:  make(map[owner]slots),
	}
}

// socketSubs holds the subscriptions running on one WebSocket (guarded by
// streamLimits.mu).
type socketSubs struct{ slots slots }

type socketSubsKey struct{}

// limitStreams refuses a WebSocket upgrade or an SSE stream from a client IP
// (as clientIP works it out) that already holds MAX_STREAMS_PER_IP open,
// with 429 and LIMIT_EXCEEDED before anything else happens; the slot is
// given back when the stream ends. A WebSocket also gets its subscription
// count.

func (s *Server) limitStreams(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		websocket := r.Header.Get("Upgrade") != "" // what gqlgen's WebSocket transport takes
		if !websocket && !(transport.SSE{}).Supports(r) {
			next.ServeHTTP(w, r)
			return
		}
		ip := s.clientIP(r)
		if !s.limits.openStream(ip) {
			writeJSONError(w, http.StatusTooManyRequests, apperr.LimitExceeded,
				fmt.Sprintf("%d WebSockets and SSE streams are already open from your address, the most allowed at once. Close one before opening another; one WebSocket can carry many subscriptions.", s.limits.cfg.PerIP))
			return
		}
		slot := &streamSlot{release: sync.OnceFunc(func() { s.limits.closeStream(ip) })}
		defer func() {
			if !slot.kept {
				slot.release()
			}
		}()
		ctx := context.WithValue(r.Context(), streamSlotKey{}, slot)
		if websocket {
			ctx = context.WithValue(ctx, socketSubsKey{}, &socketSubs{})
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// streamSlot is a stream's place in its client IP's count. The handler
// gives it back when it returns, unless the stream kept it: a WebSocket
// outlives its handshake's handler (see wsTransport.Do) and gives it back
// when it closes.
type streamSlot struct {
	release func() // once
	kept    bool   // set on the handler's goroutine only
}

type streamSlotKey struct{}

// keepStreamSlot takes over the stream slot of ctx from the handler, which
// must not have returned yet, and returns what gives it back.
func keepStreamSlot(ctx context.Context) func() {
	slot, ok := ctx.Value(streamSlotKey{}).(*streamSlot)
	if !ok {
		return func() {}
	}
	slot.kept = true
	return slot.release
}

func (l *streamLimits) openStream(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ips[ip] >= l.cfg.PerIP {
		l.refused.WithLabelValues("ip").Inc()
		return false
	}
	l.ips[ip]++
	return true
}

func (l *streamLimits) closeStream(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ips[ip]--; l.ips[ip] <= 0 {
		delete(l.ips, ip)
	}
}

// limitSubscriptions refuses a subscription over MAX_SUBSCRIPTIONS_PER_SOCKET
// on its WebSocket or over MAX_SUBSCRIPTIONS_PER_USER for its viewer (or,
// not signed in, its client IP), with LIMIT_EXCEEDED: over a WebSocket an `error` message for its id, over SSE
// its one event. The slots are given back when the operation ends (it
// completes, the client stops it, or the connection closes).
func (s *Server) limitSubscriptions(present graphql.ErrorPresenterFunc) graphql.OperationMiddleware {
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		if graphql.GetOperationContext(ctx).Operation.Operation != ast.Subscription {
			return next(ctx)
		}
		socket, _ := ctx.Value(socketSubsKey{}).(*socketSubs)
		own := owner{ip: account.ClientFrom(ctx).IP}
		if v, _ := account.Optional(ctx); v != nil {
			own = owner{user: v.User.ID}
		}
		sl, err := s.limits.startSubscription(ctx, socket, own)
		if err != nil {
			refused := false
			return func(rctx context.Context) *graphql.Response {
				if refused {
					return nil
				}
				refused = true
				gerr := present(rctx, err)
				if socket != nil {
					addOperationError(rctx, gerr)
					return nil
				}
				return &graphql.Response{Errors: gqlerror.List{gerr}}
			}
		}
		events.AtEnd(ctx, func() { s.limits.endSubscription(sl) })
		return next(ctx)
	}
}

// startSubscription takes a slot on socket (nil over SSE) and for own for
// the operation of ctx. Returns LimitExceeded, taking nothing, when either
// is full.
func (l *streamLimits) startSubscription(ctx context.Context, socket *socketSubs, own owner) (*slot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if socket != nil {
		socket.slots = socket.slots.live()
	}
	if socket != nil && len(socket.slots) >= l.cfg.PerSocket {
		l.refused.WithLabelValues("socket").Inc()
		return nil, apperr.Errorf(apperr.LimitExceeded, "This connection already runs %d subscriptions, the most one connection may run at once. Stop one (complete) before starting another.", l.cfg.PerSocket).
			With("limit", l.cfg.PerSocket)
	}
	mine := l.owners[own].live()
	if len(mine) >= l.cfg.PerUser {
		l.owners[own] = mine
		if own.user == uuid.Nil {
			l.refused.WithLabelValues("anonymous").Inc()
			return nil, apperr.Errorf(apperr.LimitExceeded, "Your address already runs %d subscriptions without signing in, the most allowed at once. Stop one, or sign in, before starting another.", l.cfg.PerUser).
				With("limit", l.cfg.PerUser)
		}
		l.refused.WithLabelValues("user").Inc()
		return nil, apperr.Errorf(apperr.LimitExceeded, "You already run %d subscriptions, the most one account may run at once. Stop one, or close a tab or device that follows the same things, before starting another.", l.cfg.PerUser).
			With("limit", l.cfg.PerUser)
	}
	sl := &slot{ctx: ctx, socket: socket, owner: own}
	if socket != nil {
		socket.slots = append(socket.slots, sl)
	}
	l.owners[own] = append(mine, sl)
	return sl, nil
}

// endSubscription gives back the slot of an operation that ended.
func (l *streamLimits) endSubscription(sl *slot) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sl.socket != nil {
		sl.socket.slots = sl.socket.slots.without(sl)
	}
	if left := l.owners[sl.owner].without(sl); len(left) > 0 {
		l.owners[sl.owner] = left
	} else {
		delete(l.owners, sl.owner)
	}
}
