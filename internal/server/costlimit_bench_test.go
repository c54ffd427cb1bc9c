package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/fastimage/api/internal/config"
)

// BenchmarkCostLimit measures what the cost limiter adds to a request: the
// same small query through the whole stack, first with no bucket, then
// charged against one (a bucket too big to refuse it, so every request pays
// the UPDATE). The "with" run reports the difference as limiter-µs/op.
func BenchmarkCostLimit(b *testing.B) {
	var withoutNs float64
	for _, tc := range []struct {
		name   string
		bucket config.CostBucket
	}{
		{"without", config.CostBucket{}},
		{"with", config.CostBucket{Size: 1 << 30, RestoreRate: 1 << 20}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := testConfig()
			cfg.Costs.Anonymous = tc.bucket
			s := start(b, cfg)
			body := `{"query":"{ serverInfo { version limits { maxQueryDepth } } }"}`
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			b.Cleanup(client.CloseIdleConnections)
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.Post(s.URL+"/graphql", "application/json", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || strings.Contains(string(raw), `"errors"`) {
					b.Fatalf("status %d: %s", resp.StatusCode, raw)
				}
				n++
			}
			perOp := float64(b.Elapsed().Nanoseconds()) / float64(n)
			if tc.bucket.Size == 0 {
				withoutNs = perOp
				return
			}
			if withoutNs > 0 {
				b.ReportMetric((perOp-withoutNs)/1e3, "limiter-µs/op")
			}
		})
	}
}
