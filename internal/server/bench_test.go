package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/imaging/imagingtest"
	"github.com/fastimage/api/internal/work"
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
				// Stay under the sign-in limit: every password check counts.
				b.StopTimer()
				s.forgetRateLimits(b)
				b.StartTimer()
				out := c.do(signInMutation, map[string]any{"email": tc.email, "password": tc.password})
				if out.code() != tc.wantCode {
					b.Fatalf("got %q, want %q", out.code(), tc.wantCode)
				}
			}
		})
	}
}

// BenchmarkWorksQuery measures viewer.works(first: 100) with every image's
// signed URL and both thumbnail URLs, through the whole stack, and reports
// the SQL statements it runs (the session lookup aside).
func BenchmarkWorksQuery(b *testing.B) {
	s := start(b, worksCfg())
	me, id := mustSignUp(b, s, "bench-works@example.com")
	user := uuidOfGlobal(b, id)
	for i := range 100 {
		if _, err := s.gallery.Upload(context.Background(), actor.Actor{UserID: user}, workUpload(fmt.Sprint("work ", i))); err != nil {
			b.Fatal(err)
		}
	}
	q := `{ viewer { works(first: 100) { totalCount edges { cursor node { id title status createdAt
		images { id role width height bytes url thumbnailUrl(size: 256) big: thumbnailUrl(size: 1024) urlExpiresAt } } } } } }`
	b.ReportAllocs()
	s.queries.n.Store(0)
	b.ResetTimer()
	for b.Loop() {
		out := me.do(q, nil)
		if len(out.Errors) > 0 {
			b.Fatal(out.Errors)
		}
	}
	b.ReportMetric(float64(s.queries.n.Load())/float64(b.N), "sql/op")
}

// BenchmarkUpload10MiB measures storing a 10 MiB PNG: the checks, metadata
// stripping, storage, both thumbnails and the rows.
func BenchmarkUpload10MiB(b *testing.B) {
	cfg := worksCfg()
	cfg.MaxUploadBytes = 20 << 20
	cfg.Works.QuotaBytes = 1 << 40
	s := start(b, cfg)
	_, id := mustSignUp(b, s, "bench-upload@example.com")
	user := uuidOfGlobal(b, id)
	img := imagingtest.NoisyPNG(1620, 1620)
	b.SetBytes(int64(len(img)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.gallery.Upload(context.Background(), actor.Actor{UserID: user}, work.UploadInput{File: bytes.NewReader(img), Size: int64(len(img))}); err != nil {
			b.Fatal(err)
		}
	}
}
