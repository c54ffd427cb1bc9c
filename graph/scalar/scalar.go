// Package scalar binds GraphQL's built-in String and ID scalars. Every string
// a client sends, in variables or written inline, is coerced through
// UnmarshalString or UnmarshalID before any resolver sees it; both refuse a
// NUL character or invalid UTF-8, which Postgres cannot store in text, with
// VALIDATION.
package scalar

import (
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"

	"github.com/fastimage/api/internal/apperr"
)

// MarshalString writes s as gqlgen's String does.
func MarshalString(s string) graphql.Marshaler { return graphql.MarshalString(s) }

// UnmarshalString reads a String as gqlgen's does. Returns VALIDATION (an
// *InvalidText) for text holding a NUL character or invalid UTF-8.
func UnmarshalString(v any) (string, error) {
	s, err := graphql.UnmarshalString(v)
	if err != nil {
		return "", err
	}
	return s, Check(s)
}

// MarshalID writes an ID as gqlgen's ID does.
func MarshalID(s string) graphql.Marshaler { return graphql.MarshalID(s) }

// UnmarshalID reads an ID as gqlgen's does. Returns VALIDATION (an
// *InvalidText) for an ID holding a NUL character or invalid UTF-8.
func UnmarshalID(v any) (string, error) {
	s, err := graphql.UnmarshalID(v)
	if err != nil {
		return "", err
	}
	return s, Check(s)
}

// Check returns an *InvalidText if s holds a NUL character or is not valid
// UTF-8, and nil otherwise.
func Check(s string) error {
	switch {
	case strings.IndexByte(s, 0) >= 0:
		return &InvalidText{problem: `contains a NUL character (\u0000), which text may not hold; remove it and send it again.`}
	case !utf8.ValidString(s):
		return &InvalidText{problem: "is not valid UTF-8; send text encoded as UTF-8."}
	}
	return nil
}

// InvalidText is text a client sent that the service cannot store. It is a
// VALIDATION *apperr.Error (through Unwrap); Named gives the same error
// naming the argument or input field it came in.
type InvalidText struct{ problem string }

func (e *InvalidText) Error() string { return e.Unwrap().Error() }

// Unwrap returns the VALIDATION error, naming no field.
func (e *InvalidText) Unwrap() error {
	return apperr.Errorf(apperr.Validation, "This text %s", e.problem)
}

// Named returns the VALIDATION error naming input (such as input.prompt),
// which it also reports as extensions.field.
func (e *InvalidText) Named(input string) *apperr.Error {
	return apperr.Errorf(apperr.Validation, "The value of %q %s", input, e.problem).With("field", input)
}
