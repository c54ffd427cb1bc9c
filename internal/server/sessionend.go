package server

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/fastimage/api/graph"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/events"
)

// sessionEndGrace bounds how long a connection whose session ended waits for
// its operations to report the end before it closes.
const sessionEndGrace = 5 * time.Second

// sessionEnd is how the parts of one streaming connection (a WebSocket or an
// SSE stream) learn that its session stopped working and why, so that all of
// them end it the same way: every open operation finishes with the session's
// error (UNAUTHENTICATED or ACCOUNT_SUSPENDED), and only then does the
// connection close — a WebSocket with 4401 or 4403 and the error's message.
// The transports put one in the request's context (withSessionEnd);
// watchSession ends it; endOperations and the WebSocket adapter read it.
type sessionEnd struct {
	websocket bool

	mu      sync.Mutex // orders running.Add before running.Wait; guards why and ops
	why     error      // why the session ended; nil while it works
	ops     []*func()  // the cancel of each operation joined; a few per connection
	running sync.WaitGroup
}

type sessionEndKey struct{}

func withSessionEnd(ctx context.Context, websocket bool) context.Context {
	return context.WithValue(ctx, sessionEndKey{}, &sessionEnd{websocket: websocket})
}

func sessionEndFrom(ctx context.Context) *sessionEnd {
	e, _ := ctx.Value(sessionEndKey{}).(*sessionEnd)
	return e
}

// err is why the session ended, or nil while it works.
func (e *sessionEnd) err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.why
}

// join counts an operation that runs until ctx is done, and returns the
// context it is to run on: ctx, ended also when the session ends. ok is
// false, counting nothing, once the session has ended.
func (e *sessionEnd) join(ctx context.Context) (opCtx context.Context, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.why != nil {
		return ctx, false
	}
	// One cancel and one callback per operation: a socket holds many for
	// hours.
	// A WebSocket operation is halted instead (see wsOp.halt), and the
	// callback runs once it has reported.
	var cancel, release func()
	if op := wsOpFrom(ctx); op != nil {
		opCtx, cancel, release = ctx, op.halt, func() {}
	} else {
		opCtx, cancel = context.WithCancel(ctx)
		release = cancel
	}
	m := &cancel
	e.ops = append(e.ops, m)
	e.running.Add(1)
	events.AtEnd(ctx, func() {
		e.mu.Lock()
		if i := slices.Index(e.ops, m); i >= 0 {
			e.ops = slices.Delete(e.ops, i, i+1)
		}
		e.mu.Unlock()
		release()
		e.running.Done()
	})
	return opCtx, true
}

// end records why the session ended, which ends every operation joined to
// it, and waits (within sessionEndGrace) until they have all reported it.
func (e *sessionEnd) end(err error) {
	e.mu.Lock()
	if e.why == nil {
		e.why = err
	}
	for _, cancel := range e.ops {
		(*cancel)()
	}
	e.mu.Unlock()
	reported := make(chan struct{})
	go func() {
		e.running.Wait()
		close(reported)
	}()
	select {
	case <-reported:
	case <-time.After(sessionEndGrace):
	}
}

// endOperations makes an operation on a streaming connection finish with an
// error instead of a normal end when it stops for one: its session ended
// (it stops at once), or its stream broke (graph.StreamFailure). The error
// is shown by present: over WebSocket as an `error` message for its id,
// over SSE as a last `next` event.
func endOperations(present graphql.ErrorPresenterFunc) graphql.OperationMiddleware {
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		end := sessionEndFrom(ctx)
		if end == nil {
			return next(ctx)
		}
		ctx = graph.WithStreamFailure(ctx)
		responses := func(context.Context) *graphql.Response { return nil } // the session has already ended
		if opCtx, ok := end.join(ctx); ok {
			responses = next(opCtx)
		}
		reported := false
		return func(rctx context.Context) *graphql.Response {
			resp := responses(rctx)
			if resp != nil || reported {
				return resp
			}
			err := end.err()
			if err == nil {
				err = graph.StreamFailure(ctx)
			}
			if err == nil {
				return nil
			}
			reported = true
			gerr := present(rctx, err)
			if end.websocket {
				addOperationError(rctx, gerr)
				return nil
			}
			return &graphql.Response{Errors: gqlerror.List{gerr}}
		}
	}
}

// closeFrame is the WebSocket close code and reason for a session that ended
// with err: 4403 for a suspended account, 4401 otherwise, and the error's
// message. An error that is no verdict on the session — the database did
// not answer while it was checked (INTERNAL, UNAVAILABLE) — closes with
// 1013 (try again later) instead, which clients, the reference one
// included, answer by reconnecting rather than by signing the user out
// (found by the idle-subscriptions drill, internal/drills, when the
// database refused connections).
func closeFrame(err error) (int, string) {
	reason := "Your session has ended. Sign in again."
	if ae := (*apperr.Error)(nil); errors.As(err, &ae) {
		reason = ae.Message
	}
	switch apperr.CodeOf(err) {
	case apperr.Internal, apperr.Unavailable:
		return closeTryAgainLater, "Your session could not be checked just now; reconnect in a moment."
	case apperr.AccountSuspended:
		return 4403, reason
	}
	return 4401, reason
}
