package graph

import (
	"context"

	"github.com/google/uuid"

	"github.com/fastimage/api/graph/model"
	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/relay"
)

// purged erases works from the actor's bin (ids; nil: all) and answers with
// what went and the storage use after.
func (r *Resolver) purged(ctx context.Context, a actor.Actor, ids []uuid.UUID) (*model.PurgeWorksPayload, error) {
	p, err := r.Gallery.PurgeBin(ctx, a, ids)
	if err != nil {
		return nil, err
	}
	usage, err := r.Gallery.UsageAfterWrite(ctx, a)
	if err != nil {
		return nil, err
	}
	out := &model.PurgeWorksPayload{PurgedWorkIds: make([]string, len(p.WorkIDs)), FreedBytes: p.FreedBytes, More: p.More, Storage: &usage}
	for i, id := range p.WorkIDs {
		out.PurgedWorkIds[i] = relay.ID("Work", id.String())
	}
	return out, nil
}
