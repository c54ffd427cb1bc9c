package server

import (
	"cmp"
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/99designs/gqlgen/graphql/playground"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/fastimage/api/graph"
	"github.com/fastimage/api/graph/fanout"
	"github.com/fastimage/api/internal/persisted"
)

const (
	queryCacheSize = 1000
	// parserTokenLimit bounds the work of parsing one document, before any
	// limit on the parsed operation can apply.
	parserTokenLimit = 15_000
	sseKeepAlive     = 15 * time.Second
)

// graphqlHandler builds the GraphQL endpoint from explicit parts: our
// HTTP transport (GET and POST per the GraphQL-over-HTTP specification),
// multipart uploads, SSE, and WebSocket on gorilla with both subprotocols.
func (s *Server) graphqlHandler() http.Handler {
	resolver := graph.NewResolver(s.serverInfo(), s.accounts, s.ledger, s.gallery, s.jobs, s.feed, s.billing, s.privacy, cookieJar{secure: s.cfg.PublicURL.Scheme == "https"})
	resolver.Support, resolver.Legal = s.support, s.legal
	resolver.SetAPIKeys(s.keys)
	resolver.Webhooks = s.webhooks
	cfg := graph.Config{Resolvers: resolver}
	// Lists cost their size and expensive fields what they cost, so that
	// aliases and big pages cannot multiply work within the limit.
	graph.SetCosts(&cfg.Complexity)
	// Subscribers of one event with the same operation and authorization
	// class share its execution (graph/fanout).
	es := fanout.Wrap(graph.NewExecutableSchema(cfg), graph.AuthClass)
	h := handler.New(es)

	h.AddTransport(wsTransport{sockets: s.ws, init: s.wsInit, readLimit: s.cfg.WSMaxMessage, maxOperations: s.cfg.WSMaxOperations})
	h.AddTransport(sseTransport{SSE: transport.SSE{KeepAlivePingInterval: sseKeepAlive}, streams: s.streams, watch: s.watchSession})
	h.AddTransport(multipartTransport{maxFile: s.cfg.MaxUploadBytes, maxFields: s.cfg.MaxBodyBytes, maxMemory: 1 << 20, log: s.log})
	h.AddTransport(httpTransport{})
	h.AddTransport(otherMethods{})

	h.SetQueryCache(lru.New[*ast.QueryDocument](queryCacheSize))
	h.SetParserTokenLimit(parserTokenLimit)
	if s.cfg.DisableIntrospection {
		h.Use(noIntrospection{})
	} else {
		h.Use(extension.Introspection{})
	}
	pq := s.cfg.PersistedQueries
	h.Use(persisted.New(s.persisted, pq.Only, cmp.Or(pq.CacheSize, queryCacheSize)))
	h.Use(&queryLimits{maxComplexity: s.cfg.MaxQueryComplexity, maxDepth: s.cfg.MaxQueryDepth, maxMutations: s.cfg.MaxMutationsPerOperation,
		costs: &costLimits{limiter: s.costs, cfg: s.cfg.Costs, log: s.log}})
	h.Use(errorCap{})
	present := nameInputs(presentError(s.log))
	h.AroundOperations(endOperations(present))
	h.AroundOperations(s.limitSubscriptions(present))
	h.AroundOperations(s.countSubscriptions)
	h.AroundOperations(limitSocketOperations(present))
	h.AroundOperations(resolver.WithLoaders)
	h.AroundOperations(s.recordUsage)
	h.SetErrorPresenter(present)
	h.SetRecoverFunc(recoverPanic(s.log))
	return h
}

// sseTransport is gqlgen's SSE transport with streams that end at shutdown
// or when the viewer's session stops working.
type sseTransport struct {
	transport.SSE
	streams context.Context
	watch   func(context.Context) context.Context
}

func (t sseTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if !checkSSERequest(w, r) {
		return
	}
	ctx, cancel := context.WithCancel(t.watch(withSessionEnd(r.Context(), false)))
	defer cancel()
	stop := context.AfterFunc(t.streams, cancel)
	defer stop()
	t.SSE.Do(w, r.WithContext(ctx), exec)
}

// countSubscriptions keeps the active-subscriptions gauge: up when one
// starts, down when its stream ends (the transports read it to the end).
func (s *Server) countSubscriptions(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	if graphql.GetOperationContext(ctx).Operation.Operation != ast.Subscription {
		return next(ctx)
	}
	s.subscriptions.Inc()
	var once sync.Once
	responses := next(ctx)
	return func(ctx context.Context) *graphql.Response {
		resp := responses(ctx)
		if resp == nil {
			once.Do(s.subscriptions.Dec)
		}
		return resp
	}
}

// graphiqlHandler serves the GraphiQL page, or 404 when GRAPHIQL=false.
func (s *Server) graphiqlHandler() http.Handler {
	if s.cfg.DisableGraphiQL {
		return http.HandlerFunc(notFound)
	}
	return playground.Handler("FastImage API", "/graphql", playground.WithGraphiqlEnablePluginExplorer(true))
}
