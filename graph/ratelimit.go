package graph

import (
	"context"
	"encoding/json"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"

	"github.com/fastimage/api/graph/model"
)

// OperationCost is what an operation costs and the state of the bucket that
// paid for it, in Shopify's shape. The server records it on the operation
// context before the operation runs (SetOperationCost); extensions.cost and
// the rateLimit field report it.
type OperationCost struct {
	RequestedQueryCost int `json:"requestedQueryCost"`
	// ActualQueryCost is the requested cost: the estimate is charged in
	// full, before the operation runs, and nothing is refunded after.
	ActualQueryCost int `json:"actualQueryCost"`
	// ThrottleStatus is nil when no bucket was charged: the operation was
	// refused for its size first, or no cost limit applies to its caller.
	ThrottleStatus *ThrottleStatus `json:"throttleStatus,omitempty"`

	// encoded is the JSON of the cost, made on the first response: a
	// subscription sends the same cost with every event (see AppendJSON).
	encoded atomic.Pointer[[]byte]
	// extensions is {"cost": c}, made on the first response (Extensions).
	extensions atomic.Pointer[map[string]any]
}

// Extensions returns the extensions of a response that carries only the
// cost: one map for all the responses of the operation, which nobody may
// change.
func (c *OperationCost) Extensions() map[string]any {
	if m := c.extensions.Load(); m != nil {
		return *m
	}
	m := map[string]any{CostExtension: c}
	c.extensions.Store(&m)
	return m
}

// AppendJSON appends the cost as encoding/json writes it (fanout's
// JSONAppender). The cost is complete before the operation runs, so its
// JSON is made once.
func (c *OperationCost) AppendJSON(dst []byte) ([]byte, error) {
	if b := c.encoded.Load(); b != nil {
		return append(dst, *b...), nil
	}
	type plain OperationCost // without this method, and no copy of encoded in the JSON
	b, err := json.Marshal((*plain)(c))
	if err != nil {
		return dst, err
	}
	c.encoded.Store(&b)
	return append(dst, b...), nil
}

// ThrottleStatus is the caller's bucket after the charge (or, refused,
// without it).
type ThrottleStatus struct {
	MaximumAvailable   float64 `json:"maximumAvailable"`
	CurrentlyAvailable float64 `json:"currentlyAvailable"`
	RestoreRate        float64 `json:"restoreRate"`
}

const operationCostStat = "OperationCost"

// CostExtension is the name of the cost among a response's extensions.
const CostExtension = "cost"

// CostSlot is where a transport that runs operations for long (a
// WebSocket's subscriptions) keeps each one's cost, instead of the
// operation's stats: a map that an idle subscription would hold for hours.
type CostSlot struct{ cost *OperationCost }

type costSlotKey struct{}

// WithCostSlot returns ctx under which the cost of the operation made from
// it (graphql.Executor.CreateOperationContext) is kept in the returned
// slot.
func WithCostSlot(ctx context.Context) (context.Context, *CostSlot) {
	slot := &CostSlot{}
	return context.WithValue(ctx, costSlotKey{}, slot), slot
}

// Cost returns the cost kept in the slot, or nil.
func (s *CostSlot) Cost() *OperationCost { return s.cost }

// SetOperationCost records c as the cost of opCtx's operation, made from
// ctx: in ctx's CostSlot if it has one, else in the operation's stats.
func SetOperationCost(ctx context.Context, opCtx *graphql.OperationContext, c *OperationCost) {
	if slot, ok := ctx.Value(costSlotKey{}).(*CostSlot); ok {
		slot.cost = c
		return
	}
	opCtx.Stats.SetExtension(operationCostStat, c)
}

// OperationCostOf returns the cost recorded for the operation of ctx, or nil.
func OperationCostOf(ctx context.Context) *OperationCost {
	if slot, ok := ctx.Value(costSlotKey{}).(*CostSlot); ok {
		return slot.cost
	}
	if !graphql.HasOperationContext(ctx) {
		return nil
	}
	c, _ := graphql.GetOperationContext(ctx).Stats.GetExtension(operationCostStat).(*OperationCost)
	return c
}

func rateLimitOf(ctx context.Context) *model.RateLimit {
	rl := &model.RateLimit{}
	if c := OperationCostOf(ctx); c != nil {
		rl.Cost = c.RequestedQueryCost
		if t := c.ThrottleStatus; t != nil {
			rl.MaximumAvailable, rl.CurrentlyAvailable, rl.RestoreRate = t.MaximumAvailable, t.CurrentlyAvailable, t.RestoreRate
		}
	}
	return rl
}
