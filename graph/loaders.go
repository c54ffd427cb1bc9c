package graph

import (
	"context"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vikstrous/dataloadgen"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/relay"
	"github.com/fastimage/api/internal/work"
)

// Loader settings: a short wait gathers the sibling fields gqlgen resolves
// concurrently; a cap keeps one batch's SQL bounded.
const (
	loaderWait  = 2 * time.Millisecond
	loaderBatch = 500
)

// loaders batch the nested fields of one response into one query per kind,
// whatever the page size. They are made fresh for every operation, and for
// every event of a subscription, so nothing is cached across them.
type loaders struct {
	r *Resolver
	// Each loader is made when first used: most responses use none, and a
	// subscription makes a set for every event.
	once   [3]sync.Once
	images *dataloadgen.Loader[uuid.UUID, []*work.Image]
	works  *dataloadgen.Loader[uuid.UUID, *work.Work]
	// nodes serves node, nodes and every field that names an object by
	// type and key (a ledger row's reference, a generation's retryOf): one
	// query per type for all of them in an operation, however many aliases.
	nodes *dataloadgen.Loader[nodeKey, relay.Node]
	// urlExpires is when the image URLs of this response expire: one value
	// for the whole response, so every url agrees with its urlExpiresAt.
	urlExpires time.Time
}

func (l *loaders) Images() *dataloadgen.Loader[uuid.UUID, []*work.Image] {
	l.once[0].Do(func() { l.images = dataloadgen.NewMappedLoader(l.r.fetchImages, loaderOptions...) })
	return l.images
}

func (l *loaders) Works() *dataloadgen.Loader[uuid.UUID, *work.Work] {
	l.once[1].Do(func() { l.works = dataloadgen.NewMappedLoader(l.r.fetchWorks, loaderOptions...) })
	return l.works
}

func (l *loaders) Nodes() *dataloadgen.Loader[nodeKey, relay.Node] {
	l.once[2].Do(func() { l.nodes = dataloadgen.NewMappedLoader(l.r.fetchNodeKeys, loaderOptions...) })
	return l.nodes
}

var loaderOptions = []dataloadgen.Option{dataloadgen.WithWait(loaderWait), dataloadgen.WithBatchCapacity(loaderBatch)}

type loadersKey struct{}

// WithLoaders is gqlgen operation middleware that gives each operation its
// own loaders. A subscription lives for hours: each of its events gets
// loaders of its own instead, so that an event neither reads what an earlier
// one cached nor gets image URLs that expire counting from the subscribe,
// and an idle subscription holds none. (Subscription root resolvers do not
// load through them.)
func (r *Resolver) WithLoaders(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	if op := graphql.GetOperationContext(ctx); op.Operation != nil && op.Operation.Operation == ast.Subscription {
		responses := next(ctx)
		return func(ctx context.Context) *graphql.Response {
			return responses(context.WithValue(ctx, loadersKey{}, r.newLoaders()))
		}
	}
	return next(context.WithValue(ctx, loadersKey{}, r.newLoaders()))
}

func (r *Resolver) newLoaders() *loaders {
	l := &loaders{r: r}
	if r.Gallery != nil {
		l.urlExpires = r.Gallery.URLExpiry()
	}
	return l
}

func loadersFrom(ctx context.Context) *loaders {
	return ctx.Value(loadersKey{}).(*loaders)
}

func (r *Resolver) fetchImages(ctx context.Context, workIDs []uuid.UUID) (map[uuid.UUID][]*work.Image, error) {
	a, err := account.Actor(ctx)
	if err != nil {
		return nil, err
	}
	found, err := r.Gallery.ImagesByWorkIDs(ctx, a, workIDs)
	if err != nil {
		return nil, err
	}
	for _, id := range workIDs {
		if _, ok := found[id]; !ok {
			found[id] = []*work.Image{} // a work without images yet
		}
	}
	return found, nil
}

func (r *Resolver) fetchWorks(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]*work.Work, error) {
	a, err := account.Actor(ctx)
	if err != nil {
		return nil, err
	}
	works, err := r.Gallery.WorksByIDs(ctx, a, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID]*work.Work, len(ids))
	for i := range works {
		out[works[i].ID] = &works[i]
	}
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			out[id] = nil // not the viewer's, deleted or gone
		}
	}
	return out, nil
}

// nodeKey names an object: its GraphQL type and its key.
type nodeKey struct {
	typ string
	key uuid.UUID
}

// fetchNodeKeys finds the objects of keys with one query per type; those
// the actor may not see, or that do not exist, are nil.
func (r *Resolver) fetchNodeKeys(ctx context.Context, keys []nodeKey) (map[nodeKey]relay.Node, error) {
	a, err := account.Actor(ctx)
	if err != nil {
		return nil, err
	}
	byType := map[string][]uuid.UUID{}
	for _, k := range keys {
		byType[k.typ] = append(byType[k.typ], k.key)
	}
	out := make(map[nodeKey]relay.Node, len(keys))
	for typ, ids := range byType {
		found, err := r.nodes[typ](ctx, a, ids)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			out[nodeKey{typ, id}] = found[id] // nil when not found
		}
	}
	return out, nil
}

// primeWorks starts the batches a page of works will need, with every key
// at once: gqlgen resolves the works' fields concurrently, and a goroutine
// scheduled late would otherwise miss the loader's wait and cost a query of
// its own. Only the fields the operation selects are loaded.
func primeWorks(ctx context.Context, works []work.Work) {
	l := loadersFrom(ctx)
	if requested(ctx, workConnectionTypes, "edges", "node", "images") {
		ids := make([]uuid.UUID, len(works))
		for i, w := range works {
			ids[i] = w.ID
		}
		l.Images().LoadAllThunk(ctx, ids)
	}
	if requested(ctx, workConnectionTypes, "edges", "node", "sourceWork") {
		var ids []uuid.UUID
		for _, w := range works {
			if w.SourceWorkID != nil {
				ids = append(ids, *w.SourceWorkID)
			}
		}
		if len(ids) > 0 {
			l.Works().LoadAllThunk(ctx, ids)
		}
	}
}

// primeReferences starts, with every key at once, the batch of the objects
// a page of ledger rows names, when the operation selects them (see
// primeWorks for why).
func primeReferences(ctx context.Context, types []string, refs []nodeKey) {
	if len(refs) > 0 && requested(ctx, types, "edges", "node", "reference") {
		loadersFrom(ctx).Nodes().LoadAllThunk(ctx, refs)
	}
}

// referenceKey is the node a ledger row names, if it names one by a key.
func (r *Resolver) referenceKey(typ, key *string) (nodeKey, bool) {
	if typ == nil || key == nil {
		return nodeKey{}, false
	}
	if _, known := r.nodes[*typ]; !known {
		return nodeKey{}, false
	}
	id, err := uuid.Parse(*key)
	return nodeKey{*typ, id}, err == nil
}

// referenceKeys returns the nodes that n ledger rows name (ref(i) gives
// row i's reference), for primeReferences.
func (r *Resolver) referenceKeys(n int, ref func(i int) (typ, key *string)) []nodeKey {
	var keys []nodeKey
	for i := range n {
		if k, ok := r.referenceKey(ref(i)); ok {
			keys = append(keys, k)
		}
	}
	return keys
}

// The types whose fragments count when looking down a connection's
// selections.
var (
	workConnectionTypes        = []string{"WorkConnection", "WorkEdge", "Work", "Node"}
	creditEntryConnectionTypes = []string{"CreditEntryConnection", "CreditEntryEdge", "CreditEntry", "Node"}
	creditHoldConnectionTypes  = []string{"CreditHoldConnection", "CreditHoldEdge", "CreditHold", "Node"}
)

// requested reports whether the current field's selection reaches path,
// looking through fragments on types.
func requested(ctx context.Context, types []string, path ...string) bool {
	opCtx := graphql.GetOperationContext(ctx)
	fields := graphql.CollectFieldsCtx(ctx, types)
	for i, name := range path {
		var next []graphql.CollectedField
		for _, f := range fields {
			if f.Name != name {
				continue
			}
			if i == len(path)-1 {
				return true
			}
			next = append(next, graphql.CollectFields(opCtx, f.Selections, types)...)
		}
		if len(next) == 0 {
			return false
		}
		fields = next
	}
	return false
}
