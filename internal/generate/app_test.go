package generate_test

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/app"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/generate/provider"
	localprovider "github.com/fastimage/api/internal/generate/provider/local"
	"github.com/fastimage/api/internal/storage/local"
)

// replicas build the service graph through internal/app, as `fastimage
// serve` does, once per replica: every replica of a test shares one fresh
// database and one bucket, as a deployment's do. Background jobs are not
// started; tests run workers themselves when they need them.
type replicas struct {
	db     *bun.DB
	bucket *local.Bucket
	log    *slog.Logger
}

func newReplicas(t testing.TB, db *bun.DB) *replicas {
	t.Helper()
	bucket, err := local.New(local.Config{
		Dir: t.TempDir(), SigningKey: []byte("test-signing-key-0123456789abcdef"),
		BaseURL: "http://localhost/blobs", MaxPutBytes: 1 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &replicas{db: db, bucket: bucket, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// start builds one replica with the generation settings gen and provider p
// (nil: the local provider at full speed); poll is the safety-net poll.
func (r *replicas) start(t testing.TB, gen config.Generate, p provider.Provider, poll time.Duration) *app.App {
	t.Helper()
	if p == nil {
		p = localprovider.New(localprovider.Config{Steps: 2, StepDelay: -1})
	}
	public, _ := url.Parse("http://localhost:8080")
	cfg := &config.Serve{
		Env:            config.Development,
		PublicURL:      public,
		MaxUploadBytes: 1 << 20,
		Works:          config.Works{MaxPixels: 40_000_000, QuotaBytes: 50 << 20, URLTTL: time.Hour, Retention: time.Hour},
		Generate:       gen,
	}
	a, err := app.New(context.Background(), cfg, r.db, r.log, app.Overrides{
		Bucket: r.bucket, Provider: p, PollInterval: poll, WorkerID: t.Name(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}
