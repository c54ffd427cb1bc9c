package graph

import (
	"context"

	"github.com/fastimage/api/graph/model"
	"github.com/fastimage/api/internal/billing"
)

// catalogItem is the catalog's item of code; nil when it is no longer on
// sale.
func (r *Resolver) catalogItem(code string) *billing.Item {
	if it, ok := r.Billing.Catalog().Find(code); ok {
		return &it
	}
	return nil
}

// setCancelAtPeriodEnd cancels (or resumes) the actor's subscription id at
// period end.
func (r *Resolver) setCancelAtPeriodEnd(ctx context.Context, id string, cancel bool) (*model.SubscriptionPayload, error) {
	a, key, err := actorAnd(ctx, id, "BillingSubscription")
	if err != nil {
		return nil, err
	}
	sub, err := r.Billing.SetCancelAtPeriodEnd(ctx, a, key, cancel)
	if err != nil {
		return nil, err
	}
	return &model.SubscriptionPayload{Subscription: sub}, nil
}
