package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

func TestServerInfoOverPOSTAndGET(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	const q = `{ serverInfo { version limits { maxUploadBytes maxQueryDepth } integrations { payments { enabled } } } }`

	resp, out := post(t, s.URL, "", "application/json", string(mustJSON(map[string]any{"query": q})))
	if resp.StatusCode != 200 || len(out.Errors) > 0 {
		t.Fatalf("POST: status %d, errors %v", resp.StatusCode, out.Errors)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
		t.Errorf("POST without Accept: Content-Type %q, want application/json", got)
	}
	var data struct {
		ServerInfo struct {
			Version string
			Limits  struct{ MaxUploadBytes, MaxQueryDepth int }
		}
	}
	if err := json.Unmarshal(out.Data, &data); err != nil {
		t.Fatal(err)
	}
	if data.ServerInfo.Version != "test-1" || data.ServerInfo.Limits.MaxUploadBytes != 1<<20 || data.ServerInfo.Limits.MaxQueryDepth != 12 {
		t.Errorf("serverInfo = %+v, want version test-1 and the configured limits", data.ServerInfo)
	}
	cost, ok := out.Extensions["cost"].(map[string]any)
	if !ok || cost["requestedQueryCost"].(float64) < 1 || cost["actualQueryCost"] != cost["requestedQueryCost"] {
		t.Errorf("extensions.cost = %v, want the computed cost, requested and actual", out.Extensions["cost"])
	}

	req, _ := http.NewRequest(http.MethodGet, s.URL+"/graphql?query="+url.QueryEscape(q), nil)
	req.Header.Set("Accept", "application/graphql-response+json")
	resp, out = do(t, req)
	if resp.StatusCode != 200 || len(out.Errors) > 0 || !strings.Contains(string(out.Data), `"version":"test-1"`) {
		t.Fatalf("GET: status %d, data %s, errors %v", resp.StatusCode, out.Data, out.Errors)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/graphql-response+json; charset=utf-8" {
		t.Errorf("GET with Accept graphql-response+json: Content-Type %q", got)
	}
}

// The status codes and bodies of the GraphQL-over-HTTP specification.
func TestGraphQLOverHTTPStatusCodes(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	const gqlResp = "application/graphql-response+json"
	big := `{"query":"{ serverInfo { version } }","variables":{"pad":"` + strings.Repeat("x", 70<<10) + `"}}`
	tests := []struct {
		name        string
		method      string
		accept      string
		contentType string
		body        string
		query       string // for GET
		wantStatus  int
		wantCode    string
		wantData    bool
	}{
		{name: "malformed JSON", method: "POST", contentType: "application/json", body: `{"query": "{ serverInfo {`, wantStatus: 400, wantCode: "BAD_REQUEST"},
		{name: "JSON that is not an object", method: "POST", contentType: "application/json", body: `[1,2]`, wantStatus: 400, wantCode: "BAD_REQUEST"},
		{name: "query of the wrong type", method: "POST", contentType: "application/json", body: `{"query": 42}`, wantStatus: 400, wantCode: "BAD_REQUEST"},
		{name: "no query", method: "POST", contentType: "application/json", body: `{}`, wantStatus: 400, wantCode: "BAD_REQUEST"},
		{name: "oversized body", method: "POST", contentType: "application/json", body: big, wantStatus: 413, wantCode: "PAYLOAD_TOO_LARGE"},
		{name: "unsupported content type", method: "POST", contentType: "text/plain", body: `{ serverInfo { version } }`, wantStatus: 415, wantCode: "BAD_REQUEST"},
		{name: "unacceptable Accept", method: "POST", accept: "text/html", contentType: "application/json", body: `{"query":"{ serverInfo { version } }"}`, wantStatus: 406, wantCode: "BAD_REQUEST"},
		{name: "parse error under application/json", method: "POST", accept: "application/json", contentType: "application/json", body: `{"query":"{ serverInfo { "}`, wantStatus: 200, wantCode: "GRAPHQL_PARSE_FAILED"},
		{name: "parse error under graphql-response+json", method: "POST", accept: gqlResp, contentType: "application/json", body: `{"query":"{ serverInfo { "}`, wantStatus: 400, wantCode: "GRAPHQL_PARSE_FAILED"},
		{name: "unknown field under application/json", method: "POST", contentType: "application/json", body: `{"query":"{ nope }"}`, wantStatus: 200, wantCode: "GRAPHQL_VALIDATION_FAILED"},
		{name: "unknown field under graphql-response+json", method: "POST", accept: gqlResp, contentType: "application/json", body: `{"query":"{ nope }"}`, wantStatus: 400, wantCode: "GRAPHQL_VALIDATION_FAILED"},
		{name: "wrong variable type", method: "POST", accept: gqlResp, contentType: "application/json", body: `{"query":"query($id: ID!) { node(id: $id) { id } }","variables":{"id":{"x":1}}}`, wantStatus: 400, wantCode: "GRAPHQL_VALIDATION_FAILED"},
		{name: "malformed global id", method: "POST", contentType: "application/json", body: `{"query":"{ node(id: \"!!\") { id } }"}`, wantStatus: 200, wantCode: "VALIDATION", wantData: true},
		{name: "mutation over GET", method: "GET", query: `mutation { anything }`, wantStatus: 405, wantCode: "BAD_REQUEST"},
		{name: "subscription over POST", method: "POST", contentType: "application/json", body: `{"query":"subscription { heartbeat { seq } }"}`, wantStatus: 400, wantCode: "BAD_REQUEST"},
		{name: "bad variables over GET", method: "GET", query: `{ serverInfo { version } }&variables={oops`, wantStatus: 400, wantCode: "BAD_REQUEST"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var req *http.Request
			if tc.method == "GET" {
				q, vars, _ := strings.Cut(tc.query, "&variables=")
				u := s.URL + "/graphql?query=" + url.QueryEscape(q)
				if vars != "" {
					u += "&variables=" + url.QueryEscape(vars)
				}
				req, _ = http.NewRequest("GET", u, nil)
			} else {
				req, _ = http.NewRequest("POST", s.URL+"/graphql", strings.NewReader(tc.body))
				req.Header.Set("Content-Type", tc.contentType)
			}
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			resp, out := do(t, req)
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status %d, want %d (errors %v)", resp.StatusCode, tc.wantStatus, out.Errors)
			}
			if out.code() != tc.wantCode {
				t.Errorf("code %q, want %q (errors %v)", out.code(), tc.wantCode, out.Errors)
			}
			if len(out.Errors) == 0 || out.Errors[0].Message == "" {
				t.Errorf("no error message in %+v", out)
			}
			if out.HasData != tc.wantData {
				t.Errorf("data entry present = %v, want %v", out.HasData, tc.wantData)
			}
			if tc.wantStatus == 405 && resp.Header.Get("Allow") != "POST" {
				t.Errorf("Allow = %q, want POST", resp.Header.Get("Allow"))
			}
		})
	}
}

func TestChunkedOversizedBodyIs413(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(`{"query":"{ serverInfo { version } }","variables":{"pad":"`))
		pw.Write([]byte(strings.Repeat("y", 80<<10)))
		pw.Write([]byte(`"}}`))
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", s.URL+"/graphql", pr) // no Content-Length: chunked
	req.Header.Set("Content-Type", "application/json")
	resp, out := do(t, req)
	if resp.StatusCode != 413 || out.code() != "PAYLOAD_TOO_LARGE" {
		t.Fatalf("status %d code %q, want 413 PAYLOAD_TOO_LARGE", resp.StatusCode, out.code())
	}
}

func TestQueryLimitsRefuseBeforeExecution(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxQueryDepth = 3
	cfg.MaxQueryComplexity = 20
	s := start(t, cfg)

	deep := query(t, s.URL, `{ serverInfo { integrations { storage { enabled } } } }`)
	if deep.code() != "QUERY_TOO_DEEP" || deep.HasData {
		t.Errorf("depth 4 against limit 3: code %q, data present %v; want QUERY_TOO_DEEP and no data", deep.code(), deep.HasData)
	}
	viaFragment := query(t, s.URL, `{ serverInfo { ...I } } fragment I on ServerInfo { integrations { email { provider } } }`)
	if viaFragment.code() != "QUERY_TOO_DEEP" {
		t.Errorf("depth through a fragment: code %q, want QUERY_TOO_DEEP", viaFragment.code())
	}

	var b strings.Builder
	b.WriteString("{")
	for i := range 25 {
		b.WriteString(" a")
		b.WriteString(strings.Repeat("x", i+1))
		b.WriteString(": serverInfo { version }")
	}
	b.WriteString(" }")
	costly := query(t, s.URL, b.String())
	if costly.code() != "QUERY_TOO_COMPLEX" || costly.HasData {
		t.Errorf("50-field query against limit 20: code %q, data present %v; want QUERY_TOO_COMPLEX and no data", costly.code(), costly.HasData)
	}
	if cost, ok := costly.Extensions["cost"].(map[string]any); !ok || cost["requestedQueryCost"].(float64) <= 20 {
		t.Errorf("a refused operation still reports its cost; got %v", costly.Extensions)
	}

	ok := query(t, s.URL, `{ serverInfo { version } }`)
	if len(ok.Errors) > 0 {
		t.Errorf("a small query was refused: %v", ok.Errors)
	}
}

// GraphiQL and partner tooling must be able to read the whole schema under
// the default limits.
func TestIntrospectionWithinDefaultLimits(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	out := query(t, s.URL, introspectionQuery)
	if len(out.Errors) > 0 {
		t.Fatalf("introspection refused: %v", out.Errors)
	}
	if !strings.Contains(string(out.Data), `"name":"ServerInfo"`) || !strings.Contains(string(out.Data), "the server's time") {
		t.Errorf("introspection lacks ServerInfo or the schema's descriptions")
	}
}

func TestOperationsEndpoints(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/graphiql": 200, "/metrics": 200, "/nowhere": 404} {
		resp, err := http.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
		if resp.Header.Get("X-Request-ID") == "" {
			t.Errorf("GET %s: no X-Request-ID", path)
		}
	}
}

// TestMetrics scrapes /metrics from a real server: our own metrics keep their
// names, help texts, types and labels, Go runtime and process metrics sit
// beside them, and a counter goes up with each request.
func TestMetrics(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	query(t, s.URL, `{ serverInfo { version } }`)
	body := scrape(t, s.URL)
	for _, m := range []struct{ name, kind, help string }{
		{"fastimage_http_requests_total", "counter", "HTTP requests by route, method and status."},
		{"fastimage_http_request_duration_seconds", "histogram", "Time to answer HTTP requests (streams excluded)."},
		{"fastimage_websocket_connections", "gauge", "Open WebSocket connections."},
		{"fastimage_graphql_active_subscriptions", "gauge", "GraphQL subscriptions running now, over WebSocket or SSE."},
		{"fastimage_event_waiters", "gauge", "Subscriptions and workers waiting for a doorbell in this process."},
		{"fastimage_db_open_connections", "gauge", "Open database connections."},
		{"fastimage_db_in_use_connections", "gauge", "Database connections in use."},
		{"fastimage_db_idle_connections", "gauge", "Idle database connections."},
		{"fastimage_db_max_open_connections", "gauge", "Largest number of database connections allowed."},
		{"fastimage_db_wait_count_total", "counter", "Times a request waited for a free database connection."},
		{"fastimage_db_wait_seconds_total", "counter", "Time spent waiting for a free database connection."},
	} {
		if want := "# HELP " + m.name + " " + m.help + "\n# TYPE " + m.name + " " + m.kind + "\n"; !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for _, want := range []string{
		`fastimage_http_requests_total{method="POST",route="/graphql",status="200"} 1`,
		`fastimage_http_request_duration_seconds_bucket{method="POST",route="/graphql",le="0.005"} `,
		`fastimage_http_request_duration_seconds_bucket{method="POST",route="/graphql",le="10"} `,
		`fastimage_http_request_duration_seconds_bucket{method="POST",route="/graphql",le="+Inf"} 1`,
		`fastimage_http_request_duration_seconds_count{method="POST",route="/graphql"} 1`,
		"fastimage_websocket_connections 0",
		"fastimage_graphql_active_subscriptions 0",
		"fastimage_db_max_open_connections 10",
		"\ngo_goroutines ",
		"\nprocess_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	const healthz = `fastimage_http_requests_total{method="GET",route="/healthz",status="200"}`
	for want := 1; want <= 2; want++ {
		resp, err := http.Get(s.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := metricValue(t, s.URL, healthz); got != strconv.Itoa(want) {
			t.Errorf("after %d GET /healthz: %s = %s, want %d", want, healthz, got, want)
		}
	}
}

// scrape returns the body of GET /metrics.
func scrape(t *testing.T, baseURL string) string {
	t.Helper()
	resp, err := http.Get(baseURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d, want 200", resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func TestReadyzWhileMigrationsPending(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	s := startWithDB(t, cfg, emptyDB(t))
	resp, err := http.Get(s.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), "migrations pending") {
		t.Fatalf("readyz on an unmigrated database: %d %s, want 503 naming the pending migrations", resp.StatusCode, body)
	}
}

func TestRequestIDIsKeptOrMade(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	req, _ := http.NewRequest("GET", s.URL+"/healthz", nil)
	req.Header.Set("X-Request-ID", "lb-abc-123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-ID"); got != "lb-abc-123" {
		t.Errorf("well-formed incoming id: got %q back", got)
	}
	req.Header.Set("X-Request-ID", "bad id with spaces")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-ID"); got == "" || strings.Contains(got, " ") {
		t.Errorf("malformed incoming id: got %q, want a fresh one", got)
	}
}

const introspectionQuery = `query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}`
