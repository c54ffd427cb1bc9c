package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// A document with thousands of errors gets a response of bounded size: the
// first errors, and one more, with a code, saying how many were left out.
func TestErrorListIsCapped(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	var doc strings.Builder
	doc.WriteString("{ serverInfo ")
	for i := range 3000 {
		fmt.Fprintf(&doc, "@d%d ", i)
	}
	doc.WriteString("{ version } }")
	body := string(mustJSON(map[string]any{"query": doc.String()}))
	for _, accept := range []string{"application/json", "application/graphql-response+json"} {
		t.Run(accept, func(t *testing.T) {
			req, _ := http.NewRequest("POST", s.URL+"/graphql", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", accept)
			resp, out := do(t, req)
			if n := len(out.Errors); n != 51 {
				t.Fatalf("got %d errors (status %d), want 50 and one saying how many were left out", n, resp.StatusCode)
			}
			last := out.Errors[50]
			if last.Extensions["code"] == nil || last.Extensions["omittedErrors"] != float64(2950) {
				t.Errorf("last error %+v, want a code and omittedErrors 2950", last)
			}
			for _, e := range out.Errors[:50] {
				if e.Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" {
					t.Errorf("error %+v, want GRAPHQL_VALIDATION_FAILED", e)
				}
			}
		})
	}
}
