package server

import (
	"context"
	"log/slog"
	"strconv"

	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/fastimage/api/graph"
	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/throttle"
)

// costLimits charges every operation's computed cost, before it runs,
// against a leaky bucket in Postgres: its API key's, else its session's,
// else (not signed in) its client IP's. Queries, mutations, and
// subscriptions once at their start, over every transport: the charge is
// made where gqlgen prepares each operation.
type costLimits struct {
	limiter *throttle.Limiter
	cfg     config.Costs
	log     *slog.Logger
}

// bucket names the bucket that pays for the operations of ctx.
func (c *costLimits) bucket(ctx context.Context) (string, throttle.Bucket) {
	// A caller whose credentials were refused pays as anonymous: the
	// operation fails on them anyway, but costs its parsing.
	if v, err := account.Optional(ctx); v != nil && err == nil {
		a := v.Actor()
		if a.APIKeyID != uuid.Nil {
			return "key:" + a.APIKeyID.String(), throttle.Bucket(c.cfg.Keys)
		}
		return "session:" + a.SessionID.String(), throttle.Bucket(c.cfg.Sessions)
	}
	return "ip:" + account.ClientFrom(ctx).IP, throttle.Bucket(c.cfg.Anonymous)
}

// charge takes cost from the bucket of ctx's caller and records the bucket
// in cost. Returns THROTTLED, with retryAfter, when the cost does not fit;
// UNAVAILABLE when the bucket cannot be read (the operation does not run
// unpaid).
func (c *costLimits) charge(ctx context.Context, cost *graph.OperationCost) *gqlerror.Error {
	key, b := c.bucket(ctx)
	if !b.Enabled() {
		return nil
	}
	st, err := c.limiter.Charge(ctx, key, b, cost.RequestedQueryCost)
	if err != nil {
		if ctx.Err() == nil { // a client that left is not a fault
			c.log.ErrorContext(ctx, "cost limit not checked", "err", err)
		}
		gerr := gqlerror.Errorf("We could not check your rate limit just now. Try again in a second.")
		errcode.Set(gerr, string(apperr.Unavailable))
		gerr.Extensions["retryAfter"] = 1
		return gerr
	}
	cost.ThrottleStatus = &graph.ThrottleStatus{MaximumAvailable: st.Maximum, CurrentlyAvailable: st.Available, RestoreRate: st.RestoreRate}
	if st.Allowed {
		return nil
	}
	retry := st.RetryAfterSeconds()
	gerr := gqlerror.Errorf("This operation costs %d points and your bucket has %.0f of %.0f free (it refills at %.0f a second). Try again in %ds, or ask for fewer fields or smaller pages (first).",
		cost.RequestedQueryCost, st.Available, st.Maximum, st.RestoreRate, retry)
	errcode.Set(gerr, string(apperr.Throttled))
	gerr.Extensions["retryAfter"] = retry
	return gerr
}

// throttledRetryAfter returns the Retry-After header of a response whose
// operation was throttled, or "".
func throttledRetryAfter(errs gqlerror.List) string {
	for _, e := range errs {
		if e.Extensions["code"] == string(apperr.Throttled) {
			if n, ok := e.Extensions["retryAfter"].(int); ok {
				return strconv.Itoa(n)
			}
		}
	}
	return ""
}
