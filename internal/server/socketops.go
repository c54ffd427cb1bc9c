package server

import (
	"context"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/fastimage/api/internal/apperr"
)

// socketOps bounds the queries and mutations one WebSocket runs at once:
// gqlgen's transport starts every message's operation in a goroutine of its
// own, so one socket could otherwise start any number of them (each sign-in
// holding a 19 MiB hash). Subscriptions are not counted here.
type socketOps chan struct{}

type socketOpsKey struct{}

// withSocketOps gives the operations of one socket a bound of max at once.
func withSocketOps(ctx context.Context, max int) context.Context {
	return context.WithValue(ctx, socketOpsKey{}, make(socketOps, max))
}

// limitSocketOperations is operation middleware that refuses a query or
// mutation with RATE_LIMITED when its socket already runs as many as
// allowed. Operations over HTTP (one per request) pass.
func limitSocketOperations(present graphql.ErrorPresenterFunc) graphql.OperationMiddleware {
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		slots, ok := ctx.Value(socketOpsKey{}).(socketOps)
		if !ok || graphql.GetOperationContext(ctx).Operation.Operation == ast.Subscription {
			return next(ctx)
		}
		select {
		case slots <- struct{}{}:
		default:
			err := apperr.Errorf(apperr.RateLimited, "This connection already runs %d operations; wait for their results before sending more.", cap(slots)).
				With("retryAfter", 1)
			return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{present(ctx, err)}})
		}
		return slots.hold(ctx, next)
	}
}

// hold runs the operation in the slot it has taken, and frees the slot when
// its result is out or, at the latest, when the transport cancels the
// operation's context (it does when the operation ends, is stopped or
// panics). A stopped operation still waiting for a password hash stops
// waiting then; one already hashing is bounded by the process's Hasher.
func (slots socketOps) hold(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	var once sync.Once
	release := func() { once.Do(func() { <-slots }) }
	context.AfterFunc(ctx, release)
	responses := next(ctx)
	return func(ctx context.Context) *graphql.Response {
		defer release()
		return responses(ctx)
	}
}
