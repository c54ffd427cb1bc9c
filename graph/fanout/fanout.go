// Package fanout executes a subscription event once for all the
// subscribers of a process that would get the same bytes: the same event
// value, the same operation (document, operation name, variables) and the
// same authorization class. gqlgen runs every subscription on its own and
// would resolve and marshal one event a thousand times for a thousand
// subscribers; here the first of them does it and the others reuse its
// data.
//
// Authorization stays per subscriber: each one still runs its own resolver
// (which checks the actor and opens the stream), its own response
// middleware (extensions such as cost) and its own transport. What is
// shared is the execution of one event's selection set, and only between
// subscribers of one authorization class, so a field that depends on who
// is asking still answers each class for itself.
//
// A subscription takes part when its resolver passes its channel through
// Share, and every value it sends is shared by all of its subscribers (the
// same pointer for the same event): values that merely look alike never
// share.
package fanout

import (
	"context"
	"encoding/json"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// Class names a caller's authorization class: callers of one class see the
// same data for the same event and operation (e.g. one user with one set of
// scopes). An empty class never shares.
type Class func(ctx context.Context) string

// Executor wraps an executable schema so that subscriptions whose resolvers
// use Share execute each event once per (event, operation, class).
type Executor struct {
	graphql.ExecutableSchema
	class Class
	memo  *memo
}

// Wrap returns es with shared execution of subscription events.
func Wrap(es graphql.ExecutableSchema, class Class) *Executor {
	return &Executor{ExecutableSchema: es, class: class, memo: newMemo(memoSize, memoTTL)}
}

// Bounds of the memo: how many events' data it holds, and how long one is
// kept for subscribers that are slower to take it.
const (
	memoSize = 4096
	memoTTL  = 5 * time.Second
)

type tapKey struct{}

// tap connects one subscription's resolver (Share) with Exec: Exec takes
// each value off the resolver's channel itself, and hands it on (gate) only
// when this subscriber is the one that executes it.
type tap struct {
	recv  func(ctx context.Context) (any, bool)
	gate  func(v any)
	close func()
}

// Share is called by a subscription resolver on the channel it returns:
// under an Executor, the channel is replaced by one that Exec feeds. Every
// value sent on in must be the one value all subscribers of that event get.
func Share[T comparable](ctx context.Context, in <-chan T) <-chan T {
	t, _ := ctx.Value(tapKey{}).(*tap)
	if t == nil || t.recv != nil {
		return in
	}
	gate := make(chan T, 1)
	t.recv = func(ctx context.Context) (any, bool) {
		select {
		case v, ok := <-in:
			return v, ok
		case <-ctx.Done():
			return nil, false
		}
	}
	t.gate = func(v any) { gate <- v.(T) }
	t.close = func() { close(gate) }
	return gate
}

// Exec runs the operation as the wrapped schema does; a subscription whose
// resolver called Share gets each event's data from the memo when another
// subscriber of its class and operation has executed it.
func (e *Executor) Exec(ctx context.Context) graphql.ResponseHandler {
	op := graphql.GetOperationContext(ctx)
	if op == nil || op.Operation == nil || op.Operation.Operation != ast.Subscription {
		return e.ExecutableSchema.Exec(ctx)
	}
	t := &tap{}
	next := e.ExecutableSchema.Exec(context.WithValue(ctx, tapKey{}, t))
	class := e.class(ctx)
	if t.recv == nil || class == "" {
		if t.recv != nil {
			return passThrough(t, next)
		}
		return next
	}
	key, err := operationKey(op, class)
	if err != nil {
		return passThrough(t, next)
	}
	closed := false
	return func(ctx context.Context) *graphql.Response {
		if closed {
			return nil
		}
		v, ok := t.recv(ctx)
		if !ok {
			closed = true
			t.close()
			return next(ctx) // reads the closed gate: the end
		}
		var (
			own *graphql.Response
			ran bool
		)
		data, shared := e.memo.Do(entryKey{value: v, op: key}, func() ([]byte, bool) {
			ran = true
			t.gate(v)
			own = next(ctx)
			if own == nil {
				return nil, false
			}
			// An event that errored for this subscriber is not shared: its
			// errors are in ctx, and another may fare better.
			ok := len(own.Errors) == 0 && len(graphql.GetErrors(ctx)) == 0
			return append([]byte(nil), own.Data...), ok
		})
		switch {
		case ran:
			return own
		case shared:
			return &graphql.Response{Data: data}
		default: // the run it waited for could not share: its own turn
			t.gate(v)
			return next(ctx)
		}
	}
}

// passThrough feeds every value to the subscriber's own execution.
func passThrough(t *tap, next graphql.ResponseHandler) graphql.ResponseHandler {
	return func(ctx context.Context) *graphql.Response {
		v, ok := t.recv(ctx)
		if !ok {
			t.close()
			return next(ctx)
		}
		t.gate(v)
		return next(ctx)
	}
}

// operationKey is what, besides the event, decides the bytes a subscriber
// gets: the document, the operation chosen in it, the variables, and the
// caller's class.
func operationKey(op *graphql.OperationContext, class string) (string, error) {
	vars, err := json.Marshal(op.Variables) // maps marshal with sorted keys
	if err != nil {
		return "", err
	}
	b, err := json.Marshal([]string{op.RawQuery, op.OperationName, string(vars), class})
	return string(b), err
}

type entryKey struct {
	value any
	op    string
}

type memo = Recent[entryKey, []byte]

func newMemo(size int, ttl time.Duration) *memo { return NewRecent[entryKey, []byte](size, ttl) }
