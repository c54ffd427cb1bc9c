package persisted

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/fastimage/api/internal/apperr"
)

// FuzzPersistedQuery sends any query text with any extensions object (as
// the JSON of a request body) to the extension, in APQ mode and in
// allow-list mode. It never panics; a refusal carries its code both in the
// error and in extensions.code; and whenever a hash was sent and the
// request goes on, the query it runs is the one with that hash — a client
// can never run a query under another's hash.
func FuzzPersistedQuery(f *testing.F) {
	schema := gqlparser.MustLoadSchema(&ast.Source{Name: "fuzz.graphqls", Input: `type Query { version: String! }`})
	registered := `{ version }`
	manifest, err := ParseManifest([]byte(`{"`+Hash(registered)+`": "{ version }"}`), schema)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []struct {
		query, ext string
	}{
		{registered, `{"persistedQuery": {"version": 1, "sha256Hash": "` + Hash(registered) + `"}}`},
		{"", `{"persistedQuery": {"version": 1, "sha256Hash": "` + Hash(registered) + `"}}`},
		{"", `{"persistedQuery": {"version": 1, "sha256Hash": "` + Hash("{ other }") + `"}}`},
		{"{ other }", `{"persistedQuery": {"version": 1, "sha256Hash": "` + Hash(registered) + `"}}`},
		{"{ version }", `{"persistedQuery": {"version": "1", "sha256Hash": "AB"}}`},
		{"{ version }", `{"persistedQuery": {"version": 2}}`},
		{"{ version }", `{"persistedQuery": [1]}`},
		{"{ version }", `{"persistedQuery": null}`},
		{"{ version }", `{}`},
	} {
		f.Add(seed.query, seed.ext, false)
		f.Add(seed.query, seed.ext, true)
	}
	f.Fuzz(func(t *testing.T, query, ext string, only bool) {
		p := &graphql.RawParams{Query: query}
		dec := json.NewDecoder(bytes.NewReader([]byte(ext)))
		dec.UseNumber() // as the POST transport decodes
		if dec.Decode(&p.Extensions) != nil {
			return // the transport refuses the body before this extension runs
		}
		hash, _ := readExtension(p.Extensions["persistedQuery"])
		q := New(manifest, only, 8)
		// A registration first, so that the cache has something to serve.
		if !only && query != "" {
			_ = q.MutateOperationParameters(context.Background(), &graphql.RawParams{Query: query, Extensions: map[string]any{
				"persistedQuery": map[string]any{"version": json.Number("1"), "sha256Hash": Hash(query)},
			}})
		}
		gerr := q.MutateOperationParameters(context.Background(), p)
		if gerr != nil {
			var ae *apperr.Error
			if !errors.As(gerr, &ae) || gerr.Extensions["code"] != string(ae.Code) || gerr.Message == "" {
				t.Fatalf("refusal without a code: %#v", gerr)
			}
			switch ae.Code {
			case apperr.BadRequest, apperr.PersistedQueryNotFound, apperr.PersistedQueryRequired:
			default:
				t.Fatalf("refused with %s", ae.Code)
			}
			return
		}
		if hash != "" && Hash(p.Query) != hash {
			t.Fatalf("ran %q under the hash %s", p.Query, hash)
		}
		if only && manifest.byHash[Hash(p.Query)] != p.Query {
			t.Fatalf("allow-list mode ran %q, which the manifest does not hold", p.Query)
		}
	})
}
