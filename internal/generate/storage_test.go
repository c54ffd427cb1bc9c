package generate_test

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/fastimage/api/internal/app"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/storage"
)

// outage is a bucket that answers every Put with storage.ErrUnavailable
// for a while from the first one, as object storage answering 503 does
// once the client's own retries run out.
type outage struct {
	storage.Bucket
	length time.Duration

	mu      sync.Mutex
	began   time.Time
	refused int
}

func (o *outage) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) (storage.ObjectInfo, error) {
	o.mu.Lock()
	if o.began.IsZero() {
		o.began = time.Now()
	}
	down := time.Since(o.began) < o.length
	if down {
		o.refused++
	}
	o.mu.Unlock()
	if down {
		return storage.ObjectInfo{}, fmt.Errorf("put %q: %w: 503", key, storage.ErrUnavailable)
	}
	return o.Bucket.Put(ctx, key, r, opts)
}

// A job whose images object storage does not take for a while (found by
// the storage drill, internal/drills: such jobs failed with INTERNAL) goes
// back to the queue, the attempt uncounted, and succeeds once storage
// answers again, charged once.
func TestStorageOutageGivesTheJobBack(t *testing.T) {
	t.Parallel()
	w := newWorkers(t)
	user := newUser(t, w.db)
	bucket := &outage{Bucket: w.replicas.bucket, length: 1500 * time.Millisecond}
	public, _ := url.Parse("http://localhost:8080")
	a, err := app.New(context.Background(), &config.Serve{
		Env: config.Development, PublicURL: public, MaxUploadBytes: 1 << 20,
		Works:    config.Works{MaxPixels: 40_000_000, QuotaBytes: 50 << 20, URLTTL: time.Hour, Retention: time.Hour},
		Generate: config.Generate{Workers: 1, Lease: lease},
	}, w.db, w.replicas.log, app.Overrides{Bucket: bucket, Provider: fast(), PollInterval: 20 * time.Millisecond, WorkerID: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	g := submit(t, a.Jobs, user)
	stop := runWorkers(t, a.Jobs, "worker")
	waitStatus(t, w.db, g.ID, "succeeded")
	stop()
	bucket.mu.Lock()
	refused := bucket.refused
	bucket.mu.Unlock()
	if refused == 0 {
		t.Fatal("no Put was refused: the job ran after the outage")
	}
	succeededOnce(t, ledgerOf(t, w.db, a.Jobs, g.ID), int64(g.CreditsPerImage), 1)
}
