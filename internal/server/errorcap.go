package server

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/fastimage/api/internal/apperr"
)

// maxErrors is the most errors one response lists.
const maxErrors = 50

// errorCap bounds the errors of every response, whichever transport carries
// it and whether they come from validation (a document with thousands of
// unknown directives) or from execution: past maxErrors, one last error says
// how many were left out.
type errorCap struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.ResponseInterceptor
} = errorCap{}

func (errorCap) ExtensionName() string { return "ErrorCap" }

func (errorCap) Validate(graphql.ExecutableSchema) error { return nil }

func (errorCap) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp == nil || len(resp.Errors) <= maxErrors {
		return resp
	}
	left := len(resp.Errors) - maxErrors
	resp.Errors = append(resp.Errors[:maxErrors:maxErrors], &gqlerror.Error{
		Message: fmt.Sprintf("%d more errors were left out of this response; fix the ones listed and send the request again.", left),
		Extensions: map[string]any{
			"code":          string(apperr.BadRequest),
			"omittedErrors": left,
		},
	})
	return resp
}
