package server

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/fastimage/api/internal/apperr"
)

// noIntrospection refuses, before anything executes, operations that read
// the schema (__schema, __type) when INTROSPECTION=false. Without it gqlgen
// would run them and fail each such field with an uncoded error, which
// would read as INTERNAL. __typename stays allowed: clients need it.
type noIntrospection struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = noIntrospection{}

func (noIntrospection) ExtensionName() string { return "NoIntrospection" }

func (noIntrospection) Validate(graphql.ExecutableSchema) error { return nil }

func (noIntrospection) MutateOperationContext(_ context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	opCtx.DisableIntrospection = true
	if !readsSchema(opCtx.Operation.SelectionSet, map[*ast.FragmentDefinition]bool{}) {
		return nil
	}
	err := gqlerror.Errorf("Introspection is turned off on this server (INTROSPECTION=false): __schema and __type cannot be read. Ask the operators for the schema file.")
	errcode.Set(err, string(apperr.Forbidden))
	return err
}

// readsSchema reports whether set selects __schema or __type anywhere,
// fragments included; seen keeps a fragment from being walked twice.
func readsSchema(set ast.SelectionSet, seen map[*ast.FragmentDefinition]bool) bool {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name == "__schema" || s.Name == "__type" || readsSchema(s.SelectionSet, seen) {
				return true
			}
		case *ast.InlineFragment:
			if readsSchema(s.SelectionSet, seen) {
				return true
			}
		case *ast.FragmentSpread:
			if s.Definition != nil && !seen[s.Definition] {
				seen[s.Definition] = true
				if readsSchema(s.Definition.SelectionSet, seen) {
					return true
				}
			}
		}
	}
	return false
}
