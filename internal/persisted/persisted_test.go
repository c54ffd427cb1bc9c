package persisted

import (
	"context"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

func testSchema(t *testing.T) *ast.Schema {
	t.Helper()
	return gqlparser.MustLoadSchema(&ast.Source{Name: "test.graphqls", Input: `
type Query { version: String! hello(name: String!): String! }
`})
}

func apq(hash, query string) *graphql.RawParams {
	return &graphql.RawParams{Query: query, Extensions: map[string]any{
		"persistedQuery": map[string]any{"version": float64(1), "sha256Hash": hash},
	}}
}

func codeOf(t *testing.T, q *Queries, p *graphql.RawParams) string {
	t.Helper()
	err := q.MutateOperationParameters(context.Background(), p)
	if err == nil {
		return ""
	}
	return err.Extensions["code"].(string)
}

// The cache holds at most its size; the least recently used query goes
// first, and a client that sends its hash again is told to resend it.
func TestCacheIsBounded(t *testing.T) {
	q := New(nil, false, 2)
	queries := []string{`{ a: version }`, `{ b: version }`, `{ c: version }`}
	for _, text := range queries[:2] {
		if code := codeOf(t, q, apq(Hash(text), text)); code != "" {
			t.Fatalf("registering %s: %s", text, code)
		}
	}
	// Using the first makes the second the least recently used.
	if p := apq(Hash(queries[0]), ""); codeOf(t, q, p) != "" || p.Query != queries[0] {
		t.Fatalf("hit on the first query gave %q", p.Query)
	}
	if code := codeOf(t, q, apq(Hash(queries[2]), queries[2])); code != "" {
		t.Fatal(code)
	}
	if code := codeOf(t, q, apq(Hash(queries[1]), "")); code != "PERSISTED_QUERY_NOT_FOUND" {
		t.Errorf("the least recently used query is still cached (%q)", code)
	}
	for _, text := range []string{queries[0], queries[2]} {
		if p := apq(Hash(text), ""); codeOf(t, q, p) != "" || p.Query != text {
			t.Errorf("%s was evicted", text)
		}
	}
}

// A query longer than maxCachedQueryBytes runs but is not kept, so that
// the cache's memory stays bounded by its size.
func TestLongQueriesAreNotCached(t *testing.T) {
	q := New(nil, false, 10)
	long := "{ version }" + strings.Repeat(" ", maxCachedQueryBytes)
	if p := apq(Hash(long), long); codeOf(t, q, p) != "" || p.Query != long {
		t.Fatal("a long query with its hash did not run")
	}
	if code := codeOf(t, q, apq(Hash(long), "")); code != "PERSISTED_QUERY_NOT_FOUND" {
		t.Errorf("a query over %d bytes was cached (%q)", maxCachedQueryBytes, code)
	}
}

func TestHashIsCaseInsensitive(t *testing.T) {
	q := New(nil, false, 10)
	const text = `{ version }`
	if code := codeOf(t, q, apq(strings.ToUpper(Hash(text)), text)); code != "" {
		t.Fatal(code)
	}
	if p := apq(Hash(text), ""); codeOf(t, q, p) != "" || p.Query != text {
		t.Fatalf("lowercase lookup of an uppercase registration: %q", p.Query)
	}
}

func TestParseManifest(t *testing.T) {
	schema := testSchema(t)
	good := `query V { version }`
	other := `query H($n: String!) { hello(name: $n) }`

	plain := `{"` + Hash(good) + `": "` + good + `", "` + Hash(other) + `": "query H($n: String!) { hello(name: $n) }"}`
	m, err := ParseManifest([]byte(plain), schema)
	if err != nil || m.Len() != 2 {
		t.Fatalf("plain manifest: %v, %d operations", err, m.Len())
	}
	apollo := `{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id":"` + Hash(good) + `","name":"V","type":"query","body":"` + good + `"}]}`
	m, err = ParseManifest([]byte(apollo), schema)
	if err != nil || m.Len() != 1 {
		t.Fatalf("Apollo manifest: %v", err)
	}
	if q, ok := m.lookup(Hash(good)); !ok || q != good {
		t.Fatalf("lookup = %q, %v", q, ok)
	}

	for name, tc := range map[string]struct{ manifest, want string }{
		"wrong hash":      {`{"` + Hash("x") + `": "` + good + `"}`, "not the sha256 of the query"},
		"unknown field":   {`{"` + Hash(`{ nope }`) + `": "{ nope }"}`, "not valid against the schema"},
		"not a string":    {`{"` + Hash(good) + `": 1}`, "not a string"},
		"not an object":   {`[]`, "not a JSON object"},
		"other format":    {`{"format":"relay","version":1,"operations":[]}`, "this server reads"},
		"bad apollo body": {`{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id":"` + Hash(`{ nope }`) + `","name":"N","body":"{ nope }"}]}`, "(N): not valid"},
	} {
		_, err := ParseManifest([]byte(tc.manifest), schema)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one saying %q", name, err, tc.want)
		}
	}
}

// In allow-list mode the manifest's operations run, by hash or by text,
// and nothing else; without it, the manifest's operations are known
// beside those registered by APQ.
func TestAllowList(t *testing.T) {
	const good = `query V { version }`
	m, err := ParseManifest([]byte(`{"`+Hash(good)+`": "`+good+`"}`), testSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	only := New(m, true, 10)
	if p := apq(Hash(good), ""); codeOf(t, only, p) != "" || p.Query != good {
		t.Errorf("registered hash: %q", p.Query)
	}
	if code := codeOf(t, only, &graphql.RawParams{Query: good}); code != "" {
		t.Errorf("registered text: %s", code)
	}
	for _, p := range []*graphql.RawParams{
		{Query: `{ version }`},
		apq(Hash(`{ version }`), ""),
		apq(Hash(`{ version }`), `{ version }`),
	} {
		if code := codeOf(t, only, p); code != "PERSISTED_QUERY_REQUIRED" {
			t.Errorf("%+v: %q, want PERSISTED_QUERY_REQUIRED", p, code)
		}
	}

	open := New(m, false, 10)
	if p := apq(Hash(good), ""); codeOf(t, open, p) != "" || p.Query != good {
		t.Errorf("manifest operation without allow-list mode: %q", p.Query)
	}
	if code := codeOf(t, open, &graphql.RawParams{Query: `{ version }`}); code != "" {
		t.Errorf("free query without allow-list mode: %s", code)
	}
}
