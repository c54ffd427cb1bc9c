package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/fastimage/api/internal/apperr"
)

// Media types of the GraphQL-over-HTTP specification.
const (
	mediaJSON            = "application/json"
	mediaGraphQLResponse = "application/graphql-response+json"
)

// httpTransport serves queries and mutations over GET and POST as the
// GraphQL-over-HTTP specification describes: it negotiates the response media
// type, answers well-formed requests under application/json with 200, and
// under application/graphql-response+json gives 400 to requests that fail
// before execution. Mutations over GET get 405; subscriptions belong to the
// WebSocket and SSE transports.
type httpTransport struct{}

var _ graphql.Transport = httpTransport{}

func (httpTransport) Supports(r *http.Request) bool {
	if r.Header.Get("Upgrade") != "" {
		return false
	}
	return r.Method == http.MethodGet || (r.Method == http.MethodPost && !isMultipart(r))
}

func isMultipart(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "multipart/form-data"
}

func (httpTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	media, ok := negotiate(r.Header.Get("Accept"))
	if !ok {
		writeGraphQLError(w, mediaJSON, http.StatusNotAcceptable, apperr.BadRequest,
			"This endpoint answers with application/graphql-response+json or application/json; send an Accept header that allows one.")
		return
	}
	start := graphql.Now()
	params := &graphql.RawParams{}
	if r.Method == http.MethodGet {
		if msg := readGETParams(r, params); msg != "" {
			writeGraphQLError(w, media, http.StatusBadRequest, apperr.BadRequest, msg)
			return
		}
	} else {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != mediaJSON {
			writeGraphQLError(w, media, http.StatusUnsupportedMediaType, apperr.BadRequest,
				"Send GraphQL requests as application/json (or multipart/form-data for uploads).")
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
				writeGraphQLError(w, media, http.StatusRequestEntityTooLarge, apperr.PayloadTooLarge,
					fmt.Sprintf("The request body is larger than the %d-byte limit; send a smaller query or fewer variables.", tooLarge.Limit))
				return
			}
			writeGraphQLError(w, media, http.StatusBadRequest, apperr.BadRequest, "The request body could not be read; send it again.")
			return
		}
		if msg := decodeParams(body, "request body", params); msg != "" {
			writeGraphQLError(w, media, http.StatusBadRequest, apperr.BadRequest, msg)
			return
		}
	}
	if msg := checkQuery(params); msg != "" {
		writeGraphQLError(w, media, http.StatusBadRequest, apperr.BadRequest, msg)
		return
	}
	if r.Method == http.MethodGet && isMutation(params) {
		w.Header().Set("Allow", http.MethodPost)
		writeGraphQLError(w, media, http.StatusMethodNotAllowed, apperr.BadRequest, "Mutations must be sent with POST, never GET.")
		return
	}
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	execute(w, r, exec, media, params)
}

// execute runs a query or mutation that a transport has read, and answers
// as the GraphQL-over-HTTP specification asks for media.
func execute(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, media string, params *graphql.RawParams) {
	params.Headers = r.Header
	ctx := r.Context()
	opCtx, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		status := http.StatusOK
		if media == mediaGraphQLResponse {
			status = http.StatusBadRequest
		}
		if retry := throttledRetryAfter(errs); retry != "" {
			w.Header().Set("Retry-After", retry)
			if media == mediaGraphQLResponse {
				status = http.StatusTooManyRequests
			}
		}
		resp := exec.DispatchError(graphql.WithOperationContext(ctx, opCtx), errs)
		writeJSONBody(w, media, status, requestError{Errors: resp.Errors, Extensions: resp.Extensions})
		return
	}
	if r.Method == http.MethodGet && opCtx.Operation.Operation == ast.Mutation {
		// A persisted query sent by its hash alone is known to be a
		// mutation only now.
		w.Header().Set("Allow", http.MethodPost)
		writeGraphQLError(w, media, http.StatusMethodNotAllowed, apperr.BadRequest, "Mutations must be sent with POST, never GET.")
		return
	}
	if opCtx.Operation.Operation == ast.Subscription {
		writeGraphQLError(w, media, http.StatusBadRequest, apperr.BadRequest,
			"Subscriptions need a stream: connect over WebSocket (graphql-transport-ws or graphql-ws) or send Accept: text/event-stream for SSE.")
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, opCtx)
	resp := responses(ctx)
	status := http.StatusOK
	if media == mediaGraphQLResponse && resp.Data == nil {
		// A response without data is a request error: it never executed.
		status = http.StatusBadRequest
	}
	writeResponse(w, media, status, resp)
}

// decodeParams decodes a JSON GraphQL request (what names where it came
// from) into p, and returns what is wrong with it, or "".
func decodeParams(body []byte, what string, p *graphql.RawParams) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(p); err != nil {
		return "The " + what + " is not valid JSON: " + jsonProblem(err) + `. Send {"query": "...", "variables": {...}}.`
	}
	if dec.More() {
		return "The " + what + " holds more than one JSON value; send exactly one object."
	}
	return ""
}

// checkQuery returns what is wrong with a request that names no operation to
// run, or "".
func checkQuery(p *graphql.RawParams) string {
	if strings.TrimSpace(p.Query) == "" && p.Extensions["persistedQuery"] == nil {
		return `The request has no "query"; send the GraphQL document in the "query" field.`
	}
	return ""
}

func readGETParams(r *http.Request, p *graphql.RawParams) string {
	q := r.URL.Query()
	p.Query = q.Get("query")
	p.OperationName = q.Get("operationName")
	if v := q.Get("variables"); v != "" {
		if err := json.Unmarshal([]byte(v), &p.Variables); err != nil {
			return "The variables parameter is not a JSON object: " + jsonProblem(err) + "."
		}
	}
	if v := q.Get("extensions"); v != "" {
		if err := json.Unmarshal([]byte(v), &p.Extensions); err != nil {
			return "The extensions parameter is not a JSON object: " + jsonProblem(err) + "."
		}
	}
	return ""
}

// jsonProblem describes a decoding error without echoing the body back.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("%q must be a %s, not a %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
		}
		return "the body must be a JSON object, not " + aOrAn(typ.Value)
	default:
		return "it ends too early"
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "map", "struct":
		return "JSON object"
	case "string":
		return "string"
	default:
		return goKind
	}
}

func aOrAn(s string) string {
	if s != "" && strings.ContainsRune("aeiou", rune(s[0])) {
		return "an " + s
	}
	return "a " + s
}

// negotiate picks the response media type from an Accept header: the
// acceptable type with the highest q, preferring graphql-response+json on a
// tie. No header, or a wildcard, means application/json, as the
// specification asks for legacy clients.
func negotiate(accept string) (string, bool) {
	if strings.TrimSpace(accept) == "" {
		return mediaJSON, true
	}
	best, bestQ := "", 0.0
	for part := range strings.SplitSeq(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(s, 64); err == nil {
				q = f
			}
		}
		var candidate string
		switch mt {
		case mediaGraphQLResponse:
			candidate = mediaGraphQLResponse
		case mediaJSON, "*/*", "application/*":
			candidate = mediaJSON
		default:
			continue
		}
		if q > 0 && (q > bestQ || (q == bestQ && candidate == mediaGraphQLResponse)) {
			best, bestQ = candidate, q
		}
	}
	return best, best != ""
}

// requestError is the body of a response to a request that never executed:
// the specification wants no "data" entry at all, where graphql.Response
// would write "data": null.
type requestError struct {
	Errors     gqlerror.List  `json:"errors"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

// isMutation reports whether the operation a GET request selects is a
// mutation. It looks before validation, so that the answer is 405 whatever
// the schema holds; a document that does not parse is left to validation.
func isMutation(p *graphql.RawParams) bool {
	doc, err := parser.ParseQuery(&ast.Source{Input: p.Query})
	if err != nil {
		return false
	}
	op := doc.Operations.ForName(p.OperationName)
	return op != nil && op.Operation == ast.Mutation
}

func writeResponse(w http.ResponseWriter, media string, status int, resp *graphql.Response) {
	writeJSONBody(w, media, status, resp)
}

func writeJSONBody(w http.ResponseWriter, media string, status int, resp any) {
	b, err := json.Marshal(resp)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"errors":[{"message":"The response could not be encoded.","extensions":{"code":"INTERNAL"}}]}`)
	}
	w.Header().Set("Content-Type", media+"; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeGraphQLError answers with a GraphQL error body outside of execution.
func writeGraphQLError(w http.ResponseWriter, media string, status int, code apperr.Code, message string) {
	writeJSONBody(w, media, status, requestError{Errors: gqlerror.List{{
		Message:    message,
		Extensions: map[string]any{"code": string(code)},
	}}})
}
