// Package graph holds the GraphQL resolvers: thin doorways that read the
// caller from the context, call one domain function and return its result.
// No SQL and no business rules live here. The generated code beside them is
// rebuilt by `make generate` from ../schema.graphqls (the root) and
// schema/*.graphqls (one file per domain, one resolver file each).
package graph

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/vikstrous/dataloadgen"

	"github.com/fastimage/api/graph/fanout"
	"github.com/fastimage/api/graph/model"
	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apikey"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/billing"
	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/feed"
	"github.com/fastimage/api/internal/generate"
	"github.com/fastimage/api/internal/legal"
	"github.com/fastimage/api/internal/privacy"
	"github.com/fastimage/api/internal/relay"
	"github.com/fastimage/api/internal/support"
	"github.com/fastimage/api/internal/webhook"
	"github.com/fastimage/api/internal/work"
)

const (
	maxNodes        = 100
	minHeartbeatMs  = 250
	maxHeartbeatMs  = 60_000
	defaultPageSize = 20
	maxPageSize     = 100
)

// SessionCookies sets and clears the browser's session cookie on the
// current HTTP response; on transports without one it does nothing.
type SessionCookies interface {
	Set(ctx context.Context, token string, expires time.Time)
	Clear(ctx context.Context)
}

// Resolver is the root resolver; its fields are what the resolvers call.
type Resolver struct {
	// ServerInfo is what serverInfo answers; it is fixed at start.
	ServerInfo *model.ServerInfo
	Accounts   *account.Service
	Ledger     *credit.Ledger
	Gallery    *work.Service
	Jobs       *generate.Service
	Feed       *feed.Service
	Billing    *billing.Service
	Privacy    *privacy.Service
	// Support takes messages to support and Legal serves the legal
	// documents; the server sets them after NewResolver.
	Support *support.Service
	Legal   *legal.Service
	// Keys makes and lists the keys of partner apps; the server sets
	// it with SetAPIKeys.
	Keys *apikey.Service
	// Webhooks registers webhook endpoints and lists deliveries; the
	// server sets it after NewResolver.
	Webhooks *webhook.Service
	Cookies  SessionCookies
	// nodes finds the objects of each Node type for node(id:) and
	// nodes(ids:), keyed by GraphQL type name.
	nodes map[string]nodeFinder
	// eventModels shares one model of a generation event among the
	// subscribers that take it at once (see sharedEventModel).
	eventModels *fanout.Recent[eventKey, madeEvent]
}

// NewResolver returns the root resolver with the node finders of every
// domain registered.
func NewResolver(info *model.ServerInfo, accounts *account.Service, credits *credit.Ledger, gallery *work.Service, jobs *generate.Service, fd *feed.Service, bill *billing.Service, priv *privacy.Service, cookies SessionCookies) *Resolver {
	r := &Resolver{ServerInfo: info, Accounts: accounts, Ledger: credits, Gallery: gallery, Jobs: jobs, Feed: fd, Billing: bill, Privacy: priv, Cookies: cookies, eventModels: newEventModels()}
	r.nodes = map[string]nodeFinder{
		"User":                finder(accounts.UsersByIDs, func(u *account.User) uuid.UUID { return u.ID }),
		"Session":             finder(accounts.SessionsByIDs, func(s *account.Session) uuid.UUID { return s.ID }),
		"SecurityEvent":       finder(accounts.SecurityEventsByIDs, func(e *account.SecurityEvent) uuid.UUID { return e.ID }),
		"CreditEntry":         finder(credits.EntriesByIDs, func(e *credit.Entry) uuid.UUID { return e.ID }),
		"CreditHold":          finder(credits.HoldsByIDs, func(h *credit.Hold) uuid.UUID { return h.ID }),
		"Work":                finder(gallery.WorksByIDs, func(w *work.Work) uuid.UUID { return w.ID }),
		"Image":               finderOfPointers(gallery.ImagesByIDs, func(i *work.Image) uuid.UUID { return i.ID }),
		"Generation":          finder(jobs.ByIDs, func(g *generate.Generation) uuid.UUID { return g.ID }),
		"Purchase":            finder(bill.PurchasesByIDs, func(p *billing.Purchase) uuid.UUID { return p.ID }),
		"BillingSubscription": finder(bill.SubscriptionsByIDs, func(s *billing.Subscription) uuid.UUID { return s.ID }),
		"PrivacyRequest":      finder(priv.RequestsByIDs, func(q *privacy.Request) uuid.UUID { return q.ID }),
	}
	return r
}

// SetAPIKeys sets the API keys' service and registers ApiKey as a Node type.
func (r *Resolver) SetAPIKeys(keys *apikey.Service) {
	r.Keys = keys
	r.nodes["ApiKey"] = finder(keys.ByIDs, func(k *apikey.Key) uuid.UUID { return k.ID })
}

// nodeFinder returns, of the objects of one type with the given keys, those
// the actor may see, by key. Every domain's ...ByIDs filters by the actor
// in its query.
type nodeFinder func(ctx context.Context, a actor.Actor, keys []uuid.UUID) (map[uuid.UUID]relay.Node, error)

func finder[T any](find func(context.Context, actor.Actor, []uuid.UUID) ([]T, error), key func(*T) uuid.UUID) nodeFinder {
	return func(ctx context.Context, a actor.Actor, keys []uuid.UUID) (map[uuid.UUID]relay.Node, error) {
		found, err := find(ctx, a, keys)
		if err != nil {
			return nil, err
		}
		out := make(map[uuid.UUID]relay.Node, len(found))
		for i := range found {
			out[key(&found[i])] = &found[i]
		}
		return out, nil
	}
}

func finderOfPointers[T any](find func(context.Context, actor.Actor, []uuid.UUID) ([]*T, error), key func(*T) uuid.UUID) nodeFinder {
	return func(ctx context.Context, a actor.Actor, keys []uuid.UUID) (map[uuid.UUID]relay.Node, error) {
		found, err := find(ctx, a, keys)
		if err != nil {
			return nil, err
		}
		out := make(map[uuid.UUID]relay.Node, len(found))
		for _, n := range found {
			out[key(n)] = n
		}
		return out, nil
	}
}

// fetchNodes returns the objects of global ids, in order, nil for each id
// that names nothing the actor may see. They are loaded through the
// operation's node loader: one query per type for every id the operation
// names, whatever the number of ids and aliases. Returns VALIDATION for an
// id this API never issued, then UNAUTHENTICATED.
func (r *Resolver) fetchNodes(ctx context.Context, ids []string) ([]relay.Node, error) {
	keys := make([]nodeKey, 0, len(ids))
	at := make([]int, len(ids)) // index in keys, or -1: names nothing
	for i, id := range ids {
		typ, key, err := relay.ParseID(id)
		if err != nil {
			return nil, err
		}
		u, ok := keyUUID(key)
		if _, known := r.nodes[typ]; !known || !ok {
			at[i] = -1
			continue
		}
		at[i] = len(keys)
		keys = append(keys, nodeKey{typ, u})
	}
	if _, err := account.Actor(ctx); err != nil {
		return nil, err
	}
	found, err := loadersFrom(ctx).Nodes().LoadAll(ctx, keys)
	if err != nil {
		return nil, firstError(err)
	}
	out := make([]relay.Node, len(ids))
	for i, k := range at {
		if k >= 0 {
			out[i] = found[k]
		}
	}
	return out, nil
}

// firstError returns the first error of a loader's per-key errors (a failed
// batch fails every key alike), or err itself.
func firstError(err error) error {
	var errs dataloadgen.ErrorSlice
	if errors.As(err, &errs) {
		for _, e := range errs {
			if e != nil {
				return e
			}
		}
	}
	return err
}

// node returns the object of one global id (see fetchNodes).
func (r *Resolver) node(ctx context.Context, id string) (relay.Node, error) {
	nodes, err := r.fetchNodes(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	return nodes[0], nil
}

// reference returns the object a ledger row names, when it is a Node the
// actor may see.
func (r *Resolver) reference(ctx context.Context, typ, key *string) (relay.Node, error) {
	k, ok := r.referenceKey(typ, key)
	if !ok {
		return nil, nil
	}
	return loadersFrom(ctx).Nodes().Load(ctx, k)
}

// actorAnd is the opening of most resolvers that act on one object: the
// signed-in actor, and the key of id, which names an object of type typ.
// Returns UNAUTHENTICATED, ACCOUNT_SUSPENDED, or NOT_FOUND / VALIDATION for id.
func actorAnd(ctx context.Context, id, typ string) (actor.Actor, uuid.UUID, error) {
	a, err := account.Actor(ctx)
	if err != nil {
		return a, uuid.Nil, err
	}
	key, err := uuidOf(id, typ)
	return a, key, err
}

// actorAndAll is actorAnd for a list of ids of type typ.
func actorAndAll(ctx context.Context, ids []string, typ string) (actor.Actor, []uuid.UUID, error) {
	a, err := account.Actor(ctx)
	if err != nil {
		return a, nil, err
	}
	keys, err := uuidsOf(ids, typ)
	return a, keys, err
}

// actorPage is the opening of connection fields: the signed-in actor and the
// page asked for. Returns UNAUTHENTICATED, ACCOUNT_SUSPENDED, VALIDATION or
// NOT_FOUND (a cursor of another type).
func actorPage(ctx context.Context, first *int, after *string, typ string) (actor.Actor, int, *uuid.UUID, error) {
	a, err := account.Actor(ctx)
	if err != nil {
		return a, 0, nil, err
	}
	n, cursor, err := pageArgs(first, after, typ)
	return a, n, cursor, err
}

// uuidsOf returns the keys of global ids of type typ.
// Returns NOT_FOUND for an id of another type.
func uuidsOf(ids []string, typ string) ([]uuid.UUID, error) {
	out := make([]uuid.UUID, len(ids))
	for i, id := range ids {
		u, err := uuidOf(id, typ)
		if err != nil {
			return nil, err
		}
		out[i] = u
	}
	return out, nil
}

// uuidOf returns the key of a global id of type typ as a UUID.
// Returns NOT_FOUND for an id of another type or a malformed key.
func uuidOf(id, typ string) (uuid.UUID, error) {
	key, err := relay.KeyOf(id, typ)
	if err != nil {
		return uuid.Nil, err
	}
	u, ok := keyUUID(key)
	if !ok {
		return uuid.Nil, apperr.Errorf(apperr.NotFound, "No %s has this id.", typ)
	}
	return u, nil
}

// keyUUID reads the key of a global id as a UUID, in the one spelling ids
// carry (lower-case, with hyphens): uuid.Parse would also take upper case,
// braces and urn:uuid:, so that one object would answer to several ids and
// come back under another id than the one asked for.
func keyUUID(key string) (uuid.UUID, bool) {
	u, err := uuid.Parse(key)
	return u, err == nil && u.String() == key
}

// cursorOf decodes a connection's `after` cursor: the global id of the last
// item of the previous page.
// Returns VALIDATION or NOT_FOUND for a cursor of another type.
func cursorOf(after *string, typ string) (*uuid.UUID, error) {
	if after == nil {
		return nil, nil
	}
	id, err := uuidOf(*after, typ)
	if err != nil {
		return nil, err
	}
	return &id, nil
}

// connection turns a page of domain rows into a Relay connection's edges
// and page info; edge wraps one row with its cursor (its global id).
func connection[T any, E any](page *db.Page[T], typ string, after *string, id func(*T) uuid.UUID, edge func(cursor string, n *T) E) ([]E, *model.PageInfo) {
	edges := make([]E, len(page.Items))
	pi := &model.PageInfo{HasNextPage: page.HasNext, HasPreviousPage: after != nil}
	for i := range page.Items {
		cursor := relay.ID(typ, id(&page.Items[i]).String())
		edges[i] = edge(cursor, &page.Items[i])
		if i == 0 {
			pi.StartCursor = &cursor
		}
		if i == len(page.Items)-1 {
			pi.EndCursor = &cursor
		}
	}
	return edges, pi
}

// pageArgs validates a connection's `first` and `after` (a cursor of type
// typ). Returns VALIDATION or NOT_FOUND.
func pageArgs(first *int, after *string, typ string) (int, *uuid.UUID, error) {
	n, err := pageSize(first)
	if err != nil {
		return 0, nil, err
	}
	cursor, err := cursorOf(after, typ)
	return n, cursor, err
}

// pageSize validates a connection's `first`.
// Returns VALIDATION.
func pageSize(first *int) (int, error) {
	if first == nil {
		return defaultPageSize, nil
	}
	if *first < 1 || *first > maxPageSize {
		return 0, apperr.Errorf(apperr.Validation, "first must be between 1 and %d; you gave %d.", maxPageSize, *first).With("field", "first")
	}
	return *first, nil
}

// deref returns *p, or def when p is nil (an argument the client left out).
func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
