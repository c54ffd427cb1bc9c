// Package graph holds the GraphQL resolvers: thin doorways that read the
// caller from the context, call one domain function and return its result.
// No SQL and no business rules live here. The generated code beside them is
// rebuilt by `make generate` from ../schema.graphqls.
package graph

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/graph/model"
	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/generate"
	"github.com/fastimage/api/internal/relay"
	"github.com/fastimage/api/internal/work"
)

const (
	maxNodes        = 100
	minHeartbeatMs  = 250
	maxHeartbeatMs  = 60_000
	defaultPageSize = 20
	maxPageSize     = 100
)

// NodeFetcher loads the object of one GraphQL type by its key for node(id:),
// returning nil when it does not exist or the caller may not see it.
type NodeFetcher func(ctx context.Context, key string) (relay.Node, error)

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
	Cookies    SessionCookies
	// Nodes maps a GraphQL type name to its fetcher, for node(id:) and
	// nodes(ids:); NewResolver registers the types of every domain.
	Nodes map[string]NodeFetcher
}

// NewResolver returns the root resolver with the node fetchers registered.
func NewResolver(info *model.ServerInfo, accounts *account.Service, credits *credit.Ledger, gallery *work.Service, jobs *generate.Service, cookies SessionCookies) *Resolver {
	r := &Resolver{ServerInfo: info, Accounts: accounts, Ledger: credits, Gallery: gallery, Jobs: jobs, Cookies: cookies}
	r.Nodes = map[string]NodeFetcher{
		"User":       r.fetchUser,
		"Session":    r.fetchSession,
		"Work":       r.fetchWork,
		"Generation": r.fetchGeneration,
	}
	return r
}

func (r *Resolver) node(ctx context.Context, id string) (relay.Node, error) {
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

func (r *Resolver) fetchUser(ctx context.Context, key string) (relay.Node, error) {
	a, err := account.Actor(ctx)
	if err != nil {
		return nil, err
	}
	id, err := uuid.Parse(key)
	if err != nil {
		return nil, nil
	}
	users, err := r.Accounts.UsersByIDs(ctx, a, []uuid.UUID{id})
	if err != nil || len(users) == 0 {
		return nil, err
	}
	return &users[0], nil
}

func (r *Resolver) fetchSession(ctx context.Context, key string) (relay.Node, error) {
	a, err := account.Actor(ctx)
	if err != nil {
		return nil, err
	}
	id, err := uuid.Parse(key)
	if err != nil {
		return nil, nil
	}
	sessions, err := r.Accounts.SessionsByIDs(ctx, a, []uuid.UUID{id})
	if err != nil || len(sessions) == 0 {
		return nil, err
	}
	return &sessions[0], nil
}

func (r *Resolver) fetchWork(ctx context.Context, key string) (relay.Node, error) {
	if _, err := account.Require(ctx); err != nil {
		return nil, err
	}
	id, err := uuid.Parse(key)
	if err != nil {
		return nil, nil
	}
	w, err := loadersFrom(ctx).works.Load(ctx, id)
	if err != nil || w == nil {
		return nil, err
	}
	return w, nil
}

func (r *Resolver) fetchGeneration(ctx context.Context, key string) (relay.Node, error) {
	a, err := account.Actor(ctx)
	if err != nil {
		return nil, err
	}
	id, err := uuid.Parse(key)
	if err != nil {
		return nil, nil
	}
	g, err := r.Jobs.Get(ctx, a, id)
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil, nil
	}
	return g, err
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
	u, err := uuid.Parse(key)
	if err != nil {
		return uuid.Nil, apperr.Errorf(apperr.NotFound, "No %s has this id.", typ)
	}
	return u, nil
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

// pageInfo describes a page of n edges in newest-first order.
func pageInfo(hasPrevious, hasNext bool, n int, cursor func(int) string) *model.PageInfo {
	pi := &model.PageInfo{HasNextPage: hasNext, HasPreviousPage: hasPrevious}
	if n > 0 {
		start, end := cursor(0), cursor(n-1)
		pi.StartCursor, pi.EndCursor = &start, &end
	}
	return pi
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
