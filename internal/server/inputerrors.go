package server

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/fastimage/api/internal/apperr"
)

// inputNamer is an error about one argument or input field (such as
// scalar.InvalidText) that can say which one it is about.
type inputNamer interface {
	Named(input string) *apperr.Error
}

// nameInputs returns present, first letting an error raised while gqlgen
// coerced an argument name that argument (input.prompt, ids[2]): gqlgen
// knows the path, the function that raised the error does not.
func nameInputs(present graphql.ErrorPresenterFunc) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		var n inputNamer
		var gerr *gqlerror.Error
		if errors.As(err, &n) && errors.As(err, &gerr) {
			if input := inputPath(ctx, gerr.Path); input != "" {
				err = n.Named(input)
			}
		}
		return present(ctx, err)
	}
}

// inputPath is what path holds past the field being resolved in ctx: the
// argument and input fields, written as input.files[0].name.
func inputPath(ctx context.Context, path ast.Path) string {
	var field ast.Path
	if fc := graphql.GetFieldContext(ctx); fc != nil {
		field = fc.Path()
	}
	if len(path) <= len(field) {
		return ""
	}
	var b strings.Builder
	for _, el := range path[len(field):] {
		switch el := el.(type) {
		case ast.PathIndex:
			b.WriteString("[" + strconv.Itoa(int(el)) + "]")
		case ast.PathName:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(string(el))
		}
	}
	return b.String()
}
