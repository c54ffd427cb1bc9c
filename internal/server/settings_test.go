package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// INTROSPECTION=false refuses schema reads with a code before anything runs
// (__typename still works); GRAPHIQL=false answers 404 at /graphiql;
// METRICS_ADDR keeps /metrics off the API's address.
func TestProductionSettings(t *testing.T) {
	t.Parallel()
	t.Run("off", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig()
		cfg.DisableIntrospection = true
		cfg.DisableGraphiQL = true
		cfg.MetricsAddr = "127.0.0.1:9464"
		s := start(t, cfg)
		c := s.client(t)
		for _, q := range []string{
			`{ __schema { queryType { name } } }`,
			`{ __type(name: "User") { name } }`,
			`{ serverInfo { version } ...F } fragment F on Query { __schema { types { name } } }`,
			`{ serverInfo { ... on ServerInfo { version } } ... on Query { __type(name: "Work") { name } } }`,
		} {
			out := c.do(q, nil)
			if out.code() != "FORBIDDEN" || out.HasData && string(out.Data) != "null" {
				t.Errorf("%s: got code %q, data %s (%+v), want FORBIDDEN and no data", q, out.code(), out.Data, out.Errors)
			}
		}
		var tn struct {
			Typename string `json:"__typename"`
		}
		c.must(`{ __typename }`, nil, &tn)
		if tn.Typename != "Query" {
			t.Errorf("__typename = %q, want Query", tn.Typename)
		}
		for _, path := range []string{"/graphiql", "/metrics"} {
			resp, out := do(t, mustRequest(t, "GET", s.URL+path))
			if resp.StatusCode != http.StatusNotFound || out.code() != "NOT_FOUND" {
				t.Errorf("GET %s: %d %q, want 404 NOT_FOUND", path, resp.StatusCode, out.code())
			}
		}
		var index map[string]any
		if resp, err := http.Get(s.URL + "/api"); err != nil {
			t.Fatal(err)
		} else {
			err := json.NewDecoder(resp.Body).Decode(&index)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		if _, listed := index["graphiql"]; listed {
			t.Errorf("the index lists /graphiql, which is off: %v", index)
		}
		if _, listed := index["metrics"]; listed {
			t.Errorf("the index lists /metrics, which is on its own address: %v", index)
		}
		for _, line := range strings.Split(s.logs.String(), "\n") {
			if strings.Contains(line, `"level":"ERROR"`) {
				t.Errorf("logged an error: %s", line)
			}
		}
	})
	t.Run("default", func(t *testing.T) {
		t.Parallel()
		s := start(t, testConfig())
		var out struct {
			Schema struct{ QueryType struct{ Name string } } `json:"__schema"`
		}
		s.client(t).must(`{ __schema { queryType { name } } }`, nil, &out)
		if out.Schema.QueryType.Name != "Query" {
			t.Errorf("__schema.queryType = %q, want Query", out.Schema.QueryType.Name)
		}
		for _, path := range []string{"/graphiql", "/metrics"} {
			resp, err := http.Get(s.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s: %d, want 200", path, resp.StatusCode)
			}
		}
	})
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
