package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/persisted"
)

// apqBody is a POST body that sends a persisted query's hash, and the query
// itself unless it is "".
func apqBody(hash, query string) string {
	body := map[string]any{"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash}}}
	if query != "" {
		body["query"] = query
	}
	return string(mustJSON(body))
}

func apqPOST(t *testing.T, baseURL, hash, query string) (*http.Response, gqlResponse) {
	t.Helper()
	return post(t, baseURL, "", "application/json", apqBody(hash, query))
}

func apqGET(t *testing.T, baseURL, hash, query string) (*http.Response, gqlResponse) {
	t.Helper()
	v := url.Values{}
	v.Set("extensions", string(mustJSON(map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash}})))
	if query != "" {
		v.Set("query", query)
	}
	req, err := http.NewRequest(http.MethodGet, baseURL+"/graphql?"+v.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

// The APQ exchange of Apollo clients: the hash alone misses, the hash with
// the query registers it, then the hash alone runs it; over POST and GET.
func TestAutomaticPersistedQueriesOverPOSTAndGET(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	for _, tc := range []struct {
		method string
		send   func(*testing.T, string, string, string) (*http.Response, gqlResponse)
		query  string
	}{
		{"POST", apqPOST, `query ViaPost { serverInfo { version } }`},
		{"GET", apqGET, `query ViaGet { serverInfo { version } }`},
	} {
		hash := persisted.Hash(tc.query)
		_, out := tc.send(t, s.URL, hash, "")
		if out.code() != "PERSISTED_QUERY_NOT_FOUND" || out.Errors[0].Message != "PersistedQueryNotFound" || out.HasData {
			t.Fatalf("%s, unknown hash: %+v, want PERSISTED_QUERY_NOT_FOUND with the message Apollo clients match and no data", tc.method, out)
		}
		resp, out := tc.send(t, s.URL, hash, tc.query)
		if resp.StatusCode != 200 || len(out.Errors) > 0 || !strings.Contains(string(out.Data), `"version":"test-1"`) {
			t.Fatalf("%s, hash with query: status %d, %+v", tc.method, resp.StatusCode, out)
		}
		resp, out = tc.send(t, s.URL, hash, "")
		if resp.StatusCode != 200 || len(out.Errors) > 0 || !strings.Contains(string(out.Data), `"version":"test-1"`) {
			t.Fatalf("%s, registered hash alone: status %d, %+v", tc.method, resp.StatusCode, out)
		}
	}

	// A hash that is not the query's is refused, and registers nothing.
	const q = `query Other { serverInfo { version } }`
	wrong := persisted.Hash(q + " ")
	if _, out := apqPOST(t, s.URL, wrong, q); out.code() != "BAD_REQUEST" || !strings.Contains(out.Errors[0].Message, persisted.Hash(q)) {
		t.Fatalf("mismatched hash: %+v, want BAD_REQUEST naming the query's real hash", out)
	}
	if _, out := apqPOST(t, s.URL, wrong, ""); out.code() != "PERSISTED_QUERY_NOT_FOUND" {
		t.Fatalf("the mismatched hash was registered: %+v", out)
	}
	for _, bad := range []string{
		`{"extensions":{"persistedQuery":{"version":2,"sha256Hash":"` + persisted.Hash(q) + `"}}}`,
		`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"not-hex"}}}`,
		`{"extensions":{"persistedQuery":"abc"}}`,
	} {
		if _, out := post(t, s.URL, "", "application/json", bad); out.code() != "BAD_REQUEST" {
			t.Errorf("%s: %+v, want BAD_REQUEST", bad, out)
		}
	}
}

// A mutation registered over POST cannot then run over GET by its hash:
// GET is for queries, whether the query is sent or only its hash.
func TestPersistedMutationIsRefusedOverGET(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	const m = `mutation Out { signOut { clientMutationId } }`
	hash := persisted.Hash(m)
	if resp, _ := apqPOST(t, s.URL, hash, m); resp.StatusCode != 200 {
		t.Fatalf("registering over POST: status %d", resp.StatusCode)
	}
	if _, out := apqPOST(t, s.URL, hash, ""); out.code() == "PERSISTED_QUERY_NOT_FOUND" {
		t.Fatalf("the mutation was not registered: %+v", out)
	}
	resp, out := apqGET(t, s.URL, hash, "")
	if resp.StatusCode != http.StatusMethodNotAllowed || out.code() != "BAD_REQUEST" || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("mutation by hash over GET: status %d, %+v, want 405 BAD_REQUEST", resp.StatusCode, out)
	}
}

// graphql-transport-ws carries extensions in subscribe's payload, so APQ
// works over the WebSocket as well.
func TestAutomaticPersistedQueriesOverWebSocket(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	c := wsAck(t, s.URL, "graphql-transport-ws")
	const q = `query OverSocket { serverInfo { version } }`
	ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": persisted.Hash(q)}}
	next := func(id string) gqlResponse {
		t.Helper()
		m := wsNext(t, c, 5*time.Second)
		if m.ID != id || (m.Type != "next" && m.Type != "error") {
			t.Fatalf("got %s for %q: %s", m.Type, m.ID, m.Payload)
		}
		var out gqlResponse
		if m.Type == "error" {
			_ = json.Unmarshal(m.Payload, &out.Errors)
		} else {
			_ = json.Unmarshal(m.Payload, &out)
		}
		if done := wsNext(t, c, 5*time.Second); done.Type != "complete" || done.ID != id {
			t.Fatalf("got %s for %q, want complete for %q", done.Type, done.ID, id)
		}
		return out
	}
	wsSend(t, c, wsMessage{ID: "1", Type: "subscribe", Payload: mustJSON(map[string]any{"extensions": ext})})
	if out := next("1"); out.code() != "PERSISTED_QUERY_NOT_FOUND" {
		t.Fatalf("unknown hash over WebSocket: %+v", out)
	}
	wsSend(t, c, wsMessage{ID: "2", Type: "subscribe", Payload: mustJSON(map[string]any{"query": q, "extensions": ext})})
	if out := next("2"); len(out.Errors) > 0 || !strings.Contains(string(out.Data), "test-1") {
		t.Fatalf("hash with query over WebSocket: %+v", out)
	}
	wsSend(t, c, wsMessage{ID: "3", Type: "subscribe", Payload: mustJSON(map[string]any{"extensions": ext})})
	if out := next("3"); len(out.Errors) > 0 || !strings.Contains(string(out.Data), "test-1") {
		t.Fatalf("registered hash over WebSocket: %+v", out)
	}
}

// With PERSISTED_QUERIES_ONLY, the manifest's operations run (by hash or by
// their exact text) and nothing else does, APQ registration included.
func TestPersistedQueriesAllowList(t *testing.T) {
	t.Parallel()
	const (
		registered   = `query Version { serverInfo { version } }`
		unregistered = `query Limits { serverInfo { limits { maxQueryDepth } } }`
	)
	manifest := filepath.Join(t.TempDir(), "manifest.json")
	if err := os.WriteFile(manifest, mustJSON(map[string]string{persisted.Hash(registered): registered}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.PersistedQueries = config.PersistedQueries{Only: true, File: manifest, CacheSize: 10}
	s := start(t, cfg)

	for name, send := range map[string]func() (*http.Response, gqlResponse){
		"hash over POST": func() (*http.Response, gqlResponse) { return apqPOST(t, s.URL, persisted.Hash(registered), "") },
		"hash over GET":  func() (*http.Response, gqlResponse) { return apqGET(t, s.URL, persisted.Hash(registered), "") },
		"hash and query": func() (*http.Response, gqlResponse) {
			return apqPOST(t, s.URL, persisted.Hash(registered), registered)
		},
		"registered text": func() (*http.Response, gqlResponse) {
			return post(t, s.URL, "", "application/json", string(mustJSON(map[string]any{"query": registered})))
		},
	} {
		if resp, out := send(); resp.StatusCode != 200 || len(out.Errors) > 0 || !strings.Contains(string(out.Data), "test-1") {
			t.Errorf("%s: status %d, %+v, want the registered operation to run", name, resp.StatusCode, out)
		}
	}
	for name, body := range map[string]string{
		"a query not in the manifest": string(mustJSON(map[string]any{"query": unregistered})),
		"an unknown hash":             apqBody(persisted.Hash(unregistered), ""),
		"an APQ registration":         apqBody(persisted.Hash(unregistered), unregistered),
	} {
		resp, out := post(t, s.URL, "application/graphql-response+json", "application/json", body)
		if resp.StatusCode != 400 || out.code() != "PERSISTED_QUERY_REQUIRED" || out.HasData || !strings.Contains(out.Errors[0].Message, "manifest") {
			t.Errorf("%s: status %d, %+v, want 400 PERSISTED_QUERY_REQUIRED with a sentence", name, resp.StatusCode, out)
		}
	}
	// The refused registration did not register anything.
	if _, out := apqPOST(t, s.URL, persisted.Hash(unregistered), ""); out.code() != "PERSISTED_QUERY_REQUIRED" {
		t.Errorf("after a refused registration: %+v", out)
	}
}

// The published schema is served as the committed snapshot, revalidated by
// its ETag.
func TestSchemaFile(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	resp, err := http.Get(s.URL + "/graphql/schema.graphql")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	published, err := os.ReadFile(filepath.Join("..", "..", "schema", "published.graphql"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || string(body) != string(published) {
		t.Fatalf("status %d; the body is not schema/published.graphql (run make schema-update?)", resp.StatusCode)
	}
	if !strings.Contains(string(body), "Any object by its global id") || !strings.Contains(string(body), "type Query {") {
		t.Errorf("the SDL lacks descriptions or types:\n%.300s", body)
	}
	etag := resp.Header.Get("ETag")
	if etag == "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || resp.Header.Get("Cache-Control") == "" {
		t.Errorf("headers %v, want an ETag, text/plain and Cache-Control", resp.Header)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/graphql/schema.graphql", nil)
	req.Header.Set("If-None-Match", etag)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match with the ETag: status %d, want 304", resp.StatusCode)
	}

	var index map[string]any
	if resp, err := http.Get(s.URL + "/api"); err != nil {
		t.Fatal(err)
	} else {
		_ = json.NewDecoder(resp.Body).Decode(&index)
		resp.Body.Close()
	}
	if index["schema"] != "/graphql/schema.graphql" {
		t.Errorf("the index does not list the schema: %v", index)
	}

	cfg := testConfig()
	cfg.DisableIntrospection = true
	closed := start(t, cfg)
	resp, err = http.Get(closed.URL + "/graphql/schema.graphql")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("with INTROSPECTION=false: status %d, want 404", resp.StatusCode)
	}
}
