package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// recordingExec stands in for gqlgen's executor: it keeps the parameters a
// transport hands it and refuses them all, as validation would, so that a
// fuzzed request goes through every step of a transport but execution.
type recordingExec struct {
	params   *graphql.RawParams
	temps    []string // the uploads that went to temporary files
	problems []string // what was wrong with the uploads
}

func (e *recordingExec) CreateOperationContext(_ context.Context, p *graphql.RawParams) (*graphql.OperationContext, gqlerror.List) {
	e.params = p
	walkUploads(p.Variables, func(up graphql.Upload) {
		if f, ok := up.File.(*os.File); ok {
			e.temps = append(e.temps, f.Name())
		}
		if up.File == nil {
			e.problems = append(e.problems, "an upload without its file")
			return
		}
		if n, err := io.Copy(io.Discard, up.File); err != nil || n != up.Size {
			e.problems = append(e.problems, fmt.Sprintf("upload %q: read %d bytes (%v), Size says %d", up.Filename, n, err, up.Size))
		}
	})
	return &graphql.OperationContext{RawQuery: p.Query}, gqlerror.List{{Message: "not executed in this test", Extensions: map[string]any{"code": "GRAPHQL_VALIDATION_FAILED"}}}
}

func (e *recordingExec) DispatchOperation(context.Context, *graphql.OperationContext) (graphql.ResponseHandler, context.Context) {
	panic("recordingExec never lets an operation run")
}

func (e *recordingExec) DispatchError(_ context.Context, list gqlerror.List) *graphql.Response {
	return &graphql.Response{Errors: list}
}

// walkUploads calls fn with every upload in variables.
func walkUploads(v any, fn func(graphql.Upload)) {
	switch v := v.(type) {
	case graphql.Upload:
		fn(v)
	case map[string]any:
		for _, x := range v {
			walkUploads(x, fn)
		}
	case []any:
		for _, x := range v {
			walkUploads(x, fn)
		}
	}
}

const fuzzBoundary = "fuzzboundary"

// multipartBody is a GraphQL multipart request: operations, map, then the
// files by name.
func multipartBody(operations, mapping string, files ...[2]string) []byte {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	_ = w.SetBoundary(fuzzBoundary)
	_ = w.WriteField("operations", operations)
	_ = w.WriteField("map", mapping)
	for _, f := range files {
		fw, _ := w.CreateFormFile(f[0], f[0]+".png")
		_, _ = fw.Write([]byte(f[1]))
	}
	_ = w.Close()
	return b.Bytes()
}

// FuzzGraphQLRequest sends any GET query string, or any POST body under any
// Content-Type (JSON or multipart, which picks the transport as the server
// does), with any Accept header, through our HTTP transports up to the
// executor. Whatever arrives: no panic; the answer is JSON in the
// negotiated media type with errors that each carry a code, and a status
// the GraphQL-over-HTTP specification allows; what reaches the executor
// names a query; every upload it sees holds its declared size; and no
// temporary upload file outlives the request.
func FuzzGraphQLRequest(f *testing.F) {
	mp := "multipart/form-data; boundary=" + fuzzBoundary
	for _, s := range []struct {
		get                 bool
		contentType, accept string
		body                string
		rawQuery            string
	}{
		{false, "application/json", "", `{"query":"{ viewer { id } }","variables":{"a":1.5e3}}`, ""},
		{false, "application/json", mediaGraphQLResponse, `{"query":"mutation { signOut }","operationName":"x","extensions":{"persistedQuery":{"version":1,"sha256Hash":"00"}}}`, ""},
		{false, "application/json; charset=utf-8", "application/json;q=0.5, application/graphql-response+json;q=0.9", `{"query":""}{}`, ""},
		{false, "text/plain", "*/*", `{"query":"{ a }"}`, ""},
		{false, "application/json", "image/png", `[1,2]`, ""},
		{true, "", "", "", "query=%7B+viewer+%7B+id+%7D+%7D&variables=%7B%22a%22%3A1%7D"},
		{true, "", mediaGraphQLResponse, "", "query=mutation+%7B+signOut+%7D"},
		{true, "", "", "", "query=%7Ba%7D&extensions=%5B%5D&variables=nope"},
		{false, mp, "", string(multipartBody(`{"query":"mutation($f: Upload!) { upload(file: $f) }","variables":{"f":null}}`, `{"0":["variables.f"]}`, [2]string{"0", "\x89PNG\r\n\x1a\nsmall"})), ""},
		{false, mp, "", string(multipartBody(`{"query":"mutation($f: [Upload!]!) { upload(files: $f) }","variables":{"f":[null,{"x":[null]}]}}`, `{"0":["variables.f.0"],"1":["variables.f.1.x.0","variables.f.0"]}`, [2]string{"0", strings.Repeat("big file ", 20)}, [2]string{"1", "b"})), ""},
		{false, mp, "", string(multipartBody(`{"query":"{ a }","variables":{}}`, `{"0":["variables.f.7"]}`, [2]string{"0", "x"})), ""},
		{false, mp, "", string(multipartBody(`{"query":"{ a }"}`, `{"0":["variables.f"]}`)), ""},
		{false, "multipart/form-data", "", "--x\r\n\r\n", ""},
	} {
		f.Add(s.get, s.contentType, s.accept, []byte(s.body), s.rawQuery)
	}
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, get bool, contentType, accept string, body []byte, rawQuery string) {
		r := &http.Request{Method: http.MethodPost, URL: &url.URL{Path: "/graphql"}, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(body))}
		if get {
			r.Method, r.URL.RawQuery, r.Body = http.MethodGet, rawQuery, http.NoBody
		} else {
			r.Header.Set("Content-Type", contentType)
		}
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		r = r.WithContext(context.Background())
		w := httptest.NewRecorder()
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		exec := &recordingExec{}
		var transport graphql.Transport = httpTransport{}
		if (multipartTransport{}).Supports(r) {
			transport = multipartTransport{maxFile: 256, maxFields: 1 << 10, maxMemory: 64, log: log}
		} else if !transport.Supports(r) {
			t.Fatalf("no transport for %s %q", r.Method, contentType)
		}
		transport.Do(w, r, exec)

		media := w.Header().Get("Content-Type")
		if media != mediaJSON+"; charset=utf-8" && media != mediaGraphQLResponse+"; charset=utf-8" {
			t.Fatalf("answered as %q", media)
		}
		var out struct {
			Data   *json.RawMessage `json:"data"`
			Errors []struct {
				Message    string
				Extensions struct{ Code string }
			}
		}
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || len(out.Errors) == 0 || out.Data != nil {
			t.Fatalf("status %d, body %q: want JSON errors and no data (%v)", w.Code, w.Body, err)
		}
		for _, e := range out.Errors {
			if e.Message == "" || e.Extensions.Code == "" {
				t.Fatalf("an error without a message or code: %q", w.Body)
			}
		}
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusNotAcceptable,
			http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		default:
			t.Fatalf("status %d: %q", w.Code, w.Body)
		}
		if exec.params == nil {
			if w.Code == http.StatusOK {
				t.Fatalf("200 without reaching the executor: %q", w.Body)
			}
		} else {
			if msg := checkQuery(exec.params); msg != "" {
				t.Fatalf("the executor got a request without a query: %s", msg)
			}
			if len(exec.problems) > 0 {
				t.Fatal(strings.Join(exec.problems, "; "))
			}
		}
		for _, name := range exec.temps {
			if _, err := os.Stat(name); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("temporary upload %s outlived the request (%v)", name, err)
			}
		}
	})
}

// FuzzDecodeParams decodes any bytes as a JSON GraphQL request. It never
// panics; a refusal is one short sentence that does not echo the body; and
// what it accepts survives encoding and decoding again unchanged.
func FuzzDecodeParams(f *testing.F) {
	for _, s := range []string{
		`{"query":"{ a }","operationName":"A","variables":{"n":1e400,"s":"\u0000","l":[{}]},"extensions":{"persistedQuery":{"version":1}}}`,
		`{"query":1}`, `{"variables":[]}`, `null`, `{}{}`, `{"query":"x"} `, `"string"`, `{"query":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var p graphql.RawParams
		msg := decodeParams(body, "request body", &p)
		if msg != "" {
			if len(msg) > 300 || !strings.HasPrefix(msg, "The request body ") || !strings.HasSuffix(msg, ".") {
				t.Fatalf("refusal %q", msg)
			}
			return
		}
		_ = checkQuery(&p)
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("re-encoding %q: %v", body, err)
		}
		var q graphql.RawParams
		if msg := decodeParams(again, "request body", &q); msg != "" || !reflect.DeepEqual(p, q) {
			t.Fatalf("%q decodes to %+v, which encodes to %q, which decodes to %+v (%s)", body, p, again, q, msg)
		}
	})
}

// FuzzNegotiate reads any Accept header: it picks one of the two media
// types this endpoint answers with, or refuses.
func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"", "*/*", "application/json;q=0", "application/graphql-response+json;q=0.1, application/json;q=0.1", "text/html, application/*;q=nan", "application/json;q=1e309"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		media, ok := negotiate(accept)
		if ok != (media == mediaJSON || media == mediaGraphQLResponse) || !ok && media != "" {
			t.Fatalf("negotiate(%q) = %q, %v", accept, media, ok)
		}
	})
}
