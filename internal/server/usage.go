package server

import (
	"context"
	"slices"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/usage"
)

// maxFeatureFields bounds the root fields one usage event names.
const maxFeatureFields = 5

// recordUsage records a usage event for each operation a signed-in user
// runs, once it passed validation: which root fields (the feature), the
// operation's name, and the browser and OS family. It does nothing with
// analytics off; the user's objections are checked when the event is
// written (see usage.Recorder). Arguments, variables and results are never
// looked at: no prompt, image or id can end up in an event.
func (s *Server) recordUsage(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	if !s.usage.Enabled() {
		return next(ctx)
	}
	v, _ := account.Optional(ctx)
	opCtx := graphql.GetOperationContext(ctx)
	if v == nil || opCtx == nil || opCtx.Operation == nil {
		return next(ctx)
	}
	if feature := rootFields(opCtx); feature != "" {
		s.usage.Record(usage.Event{
			UserID:    v.User.ID,
			Feature:   feature,
			Operation: opCtx.Operation.Name,
			Client:    usage.ClientFamily(account.ClientFrom(ctx).UserAgent),
		})
	}
	return next(ctx)
}

// rootFields names the operation's root fields (not their aliases), sorted
// and without repeats, at most maxFeatureFields of them, "" when it asks only
// for introspection. Every name is a field of the schema, so the result
// holds nothing the client chose but which fields.
func rootFields(opCtx *graphql.OperationContext) string {
	root := map[ast.Operation]string{ast.Query: "Query", ast.Mutation: "Mutation", ast.Subscription: "Subscription"}[opCtx.Operation.Operation]
	var names []string
	for _, f := range graphql.CollectFields(opCtx, opCtx.Operation.SelectionSet, []string{root}) {
		if name := f.Name; !strings.HasPrefix(name, "__") && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if len(names) > maxFeatureFields {
		names = append(names[:maxFeatureFields], "…")
	}
	return strings.Join(names, ",")
}
