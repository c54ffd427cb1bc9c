package server

import (
	"context"
	"math"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/fastimage/api/graph"
	"github.com/fastimage/api/internal/apperr"
)

// queryLimits refuses operations that nest too deep or cost too much before
// anything executes, charges the cost of the others against their caller's
// bucket (see chargeCost), and records the cost so that it can be reported in
// extensions.cost of every response.
type queryLimits struct {
	maxComplexity int
	maxDepth      int
	maxMutations  int
	costs         *costLimits
	es            graphql.ExecutableSchema
}

const queryLimitsName = "QueryLimits"

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
	graphql.ResponseInterceptor
} = (*queryLimits)(nil)

func (q *queryLimits) ExtensionName() string { return queryLimitsName }

func (q *queryLimits) Validate(es graphql.ExecutableSchema) error {
	q.es = es
	return nil
}

func (q *queryLimits) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	// Every field selected costs at least 1, so an operation that selects
	// more fields than the limit, counting each fragment spread as often
	// as it is spread, is too complex. Counted first, in time linear in
	// the document: the estimator and selectionDepth walk every spread
	// again, and fragments that each spread the one below twice make that
	// walk exponential (a 2 KB document took minutes of CPU).
	if n := expandedFields(opCtx.Operation.SelectionSet, map[string]int{}); n > q.maxComplexity {
		// The count, a floor of the cost, is what is reported.
		graph.SetOperationCost(ctx, opCtx, &graph.OperationCost{RequestedQueryCost: n, ActualQueryCost: n})
		err := gqlerror.Errorf("This operation selects %s fields once its fragments are spread; the limit is %d. Ask for fewer fields, or split it into several operations.", countText(n), q.maxComplexity)
		errcode.Set(err, string(apperr.QueryTooComplex))
		return err
	}
	points := complexity.Calculate(ctx, q.es, opCtx.Operation, opCtx.Variables)
	cost := &graph.OperationCost{RequestedQueryCost: points, ActualQueryCost: points}
	graph.SetOperationCost(ctx, opCtx, cost)
	if depth := selectionDepth(opCtx.Operation.SelectionSet); depth > q.maxDepth {
		err := gqlerror.Errorf("This operation nests fields %d levels deep; the limit is %d. Select fewer nested fields, or split it into several operations.", depth, q.maxDepth)
		errcode.Set(err, string(apperr.QueryTooDeep))
		return err
	}
	if opCtx.Operation.Operation == ast.Mutation {
		// Root mutation fields run one after another, each as much work as
		// a request of its own: aliases must not multiply them.
		if n := len(graphql.CollectFields(opCtx, opCtx.Operation.SelectionSet, []string{"Mutation"})); n > q.maxMutations {
			err := gqlerror.Errorf("This operation has %d mutations; the limit is %d. Send them in several operations.", n, q.maxMutations)
			errcode.Set(err, string(apperr.QueryTooComplex))
			return err
		}
	}
	if points > q.maxComplexity {
		err := gqlerror.Errorf("This operation costs %d; the limit is %d. Ask for fewer fields or smaller pages (first), or split it into several operations.", points, q.maxComplexity)
		errcode.Set(err, string(apperr.QueryTooComplex))
		return err
	}
	return q.costs.charge(ctx, cost)
}

// InterceptResponse adds the operation's cost to each of its responses. A
// response with no other extension gets the operation's own extensions map
// (OperationCost.Extensions), not a new one: a subscription sends one for
// every event. A WebSocket operation's transport writes that extension
// itself (see wsSocket.sendResponse), and the operation keeps no map.
func (q *queryLimits) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	cost := graph.OperationCostOf(ctx)
	switch {
	case resp == nil || cost == nil:
	case len(resp.Extensions) == 0:
		if wsOpFrom(ctx) == nil {
			resp.Extensions = cost.Extensions()
		}
	default:
		resp.Extensions[graph.CostExtension] = cost
	}
	return resp
}

// selectionDepth is the deepest nesting of fields in set. Introspection
// fields do not count: tools such as GraphiQL must always be able to read the
// schema. Fragment cycles were already refused by validation.
func selectionDepth(set ast.SelectionSet) int {
	deepest := 0
	for _, sel := range set {
		d := 0
		switch s := sel.(type) {
		case *ast.Field:
			if strings.HasPrefix(s.Name, "__") {
				continue
			}
			d = 1 + selectionDepth(s.SelectionSet)
		case *ast.InlineFragment:
			d = selectionDepth(s.SelectionSet)
		case *ast.FragmentSpread:
			if s.Definition != nil {
				d = selectionDepth(s.Definition.SelectionSet)
			}
		}
		deepest = max(deepest, d)
	}
	return deepest
}

// expandedFields is how many fields set selects with its fragments spread
// in place, saturating at math.MaxInt. Introspection fields do not count,
// as the estimator skips them. Each fragment is counted once (memo, by
// name); validation already refused fragment cycles.
func expandedFields(set ast.SelectionSet, memo map[string]int) int {
	total := 0
	for _, sel := range set {
		n := 0
		switch s := sel.(type) {
		case *ast.Field:
			if strings.HasPrefix(s.Name, "__") {
				continue
			}
			n = saturatingAdd(1, expandedFields(s.SelectionSet, memo))
		case *ast.InlineFragment:
			n = expandedFields(s.SelectionSet, memo)
		case *ast.FragmentSpread:
			if s.Definition == nil {
				continue
			}
			var ok bool
			if n, ok = memo[s.Name]; !ok {
				n = expandedFields(s.Definition.SelectionSet, memo)
				memo[s.Name] = n
			}
		}
		total = saturatingAdd(total, n)
	}
	return total
}

func saturatingAdd(a, b int) int {
	if a > math.MaxInt-b {
		return math.MaxInt
	}
	return a + b
}

// countText writes a field count, saying "more than a billion" for the
// absurd ones rather than a 19-digit number.
func countText(n int) string {
	if n > 1_000_000_000 {
		return "more than a billion"
	}
	return strconv.Itoa(n)
}
