package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkGraphQLQuery measures one small query through the whole stack:
// a kept-alive HTTP connection, middleware, the GraphQL transport, the
// limits and cost reporting, and the access log.
func BenchmarkGraphQLQuery(b *testing.B) {
	s := start(b, testConfig())
	body := `{"query":"{ serverInfo { version limits { maxQueryDepth } } }"}`
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	b.Cleanup(client.CloseIdleConnections) // before the server stops
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := client.Post(s.URL+"/graphql", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkGraphQLQueryParallel is the same query from many clients at once.
func BenchmarkGraphQLQueryParallel(b *testing.B) {
	s := start(b, testConfig())
	body := `{"query":"{ serverInfo { version limits { maxQueryDepth } } }"}`
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(client.CloseIdleConnections)
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(s.URL+"/graphql", "application/json", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkSignIn measures a successful sign-in through the API (argon2id
// verify, session insert, security event), and the two failures that must
// cost about the same: a wrong password and an unknown email.
func BenchmarkSignIn(b *testing.B) {
	s := start(b, testConfig())
	mustSignUp(b, s, "bench@example.com")
	cases := []struct{ name, email, password, wantCode string }{
		{"ok", "bench@example.com", goodPassword, ""},
		{"wrong-password", "bench@example.com", "not the password", "INVALID_CREDENTIALS"},
		{"unknown-email", "nobody@example.com", "not the password", "INVALID_CREDENTIALS"},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			c := s.client(b)
			for b.Loop() {
				if tc.wantCode != "" {
					// Stay under the failed-sign-in block.
					b.StopTimer()
					s.forgetRateLimits(b)
					b.StartTimer()
				}
				out := c.do(signInMutation, map[string]any{"email": tc.email, "password": tc.password})
				if out.code() != tc.wantCode {
					b.Fatalf("got %q, want %q", out.code(), tc.wantCode)
				}
			}
		})
	}
}
