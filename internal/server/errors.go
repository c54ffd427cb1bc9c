package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/logging"
)

// presentError is the one place that turns errors into what GraphQL clients
// see. An *apperr.Error shows its code and message. Errors gqlgen raises about
// the request itself (parse, validation, limits) keep their message and code,
// or get BAD_REQUEST. Anything else is a fault of ours: the client sees INTERNAL with the
// request id, and the cause goes to the log.
func presentError(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gerr := graphql.DefaultErrorPresenter(ctx, err)
		if ae := (*apperr.Error)(nil); errors.As(err, &ae) {
			gerr.Message = ae.Message
			ext := make(map[string]any, len(ae.Fields)+1)
			for k, v := range ae.Fields {
				ext[k] = v
			}
			ext["code"] = string(ae.Code)
			gerr.Extensions = ext
			return gerr
		}
		if _, coded := gerr.Extensions["code"]; coded {
			return gerr // gqlgen's own parse, validation and limit errors
		}
		if gerr.Err == nil && len(gerr.Path) == 0 {
			gerr.Extensions = map[string]any{"code": string(apperr.BadRequest)}
			return gerr
		}
		id := logging.RequestID(ctx)
		if db.Transient(err) {
			// The database (or another service) did not answer: not a
			// fault the client can see or one it should report, but a
			// moment to wait, as during a failover or a restart.
			log.WarnContext(ctx, "GraphQL operation met an unavailable dependency", "path", gerr.Path.String(), "err", err)
			return &gqlerror.Error{
				Message: fmt.Sprintf("A service we depend on did not answer just now; please try again in a moment (request id %s).", id),
				Path:    gerr.Path,
				Extensions: map[string]any{
					"code":       string(apperr.Unavailable),
					"retryAfter": unavailableRetryAfter,
					"requestId":  id,
				},
			}
		}
		if !errors.Is(err, errPanicLogged) {
			log.ErrorContext(ctx, "internal error in GraphQL operation", "path", gerr.Path.String(), "err", err)
		}
		return &gqlerror.Error{
			Message: fmt.Sprintf("Something went wrong on our side. Please try again; if it keeps happening, contact support and quote request id %s.", id),
			Path:    gerr.Path,
			Extensions: map[string]any{
				"code":      string(apperr.Internal),
				"requestId": id,
			},
		}
	}
}

var errPanicLogged = errors.New("panic in resolver (logged with its stack)")

// unavailableRetryAfter is the seconds a client is asked to wait when a
// dependency did not answer: a failover or a restart takes a few.
const unavailableRetryAfter = 2

// recoverPanic logs a resolver panic with its stack; the presenter then shows
// it as INTERNAL without logging it twice.
func recoverPanic(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in GraphQL resolver", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return errPanicLogged
	}
}
