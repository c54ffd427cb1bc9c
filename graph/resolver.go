// Package graph holds the GraphQL resolvers: thin doorways that read the
// caller from the context, call one domain function and return its result.
// No SQL and no business rules live here. The generated code beside them is
// rebuilt by `make generate` from ../schema.graphqls.
package graph

import (
	"context"

	"github.com/fastimage/api/graph/model"
	"github.com/fastimage/api/internal/relay"
)

const (
	maxNodes       = 100
	minHeartbeatMs = 250
	maxHeartbeatMs = 60_000
)

// NodeFetcher loads the object of one GraphQL type by its key for node(id:),
// returning nil when it does not exist or the caller may not see it.
type NodeFetcher func(ctx context.Context, key string) (model.Node, error)

// Resolver is the root resolver; its fields are what the resolvers call.
type Resolver struct {
	// ServerInfo is what serverInfo answers; it is fixed at start.
	ServerInfo *model.ServerInfo
	// Nodes maps a GraphQL type name to its fetcher, for node(id:) and
	// nodes(ids:). Each domain adds its types as it arrives.
	Nodes map[string]NodeFetcher
}

func (r *Resolver) node(ctx context.Context, id string) (model.Node, error) {
	typ, key, err := relay.ParseID(id)
	if err != nil {
		return nil, err
	}
	fetch, ok := r.Nodes[typ]
	if !ok {
		return nil, nil
	}
	return fetch(ctx, key)
}
