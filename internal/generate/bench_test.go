package generate_test

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/app"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/generate"
	localprovider "github.com/fastimage/api/internal/generate/provider/local"
	"github.com/fastimage/api/internal/storage/local"
)

// rig is the whole service graph, as `fastimage serve` builds it, on a
// fresh database with its background running: the generation service, its
// event bus, and workers when asked for.
type rig struct {
	db   *bun.DB
	svc  *generate.Service
	user uuid.UUID
}

func newRig(b *testing.B, workers int) *rig {
	b.Helper()
	bdb := dbtest.New(b)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bucket, err := local.New(local.Config{Dir: b.TempDir(), SigningKey: []byte("bench-signing-key-0123456789abcdef"), BaseURL: "http://localhost/blobs", MaxPutBytes: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	cfg := &config.Serve{
		Env:                 config.Development,
		PublicURL:           &url.URL{Scheme: "http", Host: "localhost"}, // app.New derives addresses from it
		MaxUploadBytes:      20 << 20,
		MaintenanceInterval: time.Minute,
		Works:               config.Works{MaxPixels: 40e6, QuotaBytes: 1 << 40, URLTTL: time.Hour, Retention: time.Hour},
		Generate:            config.Generate{Workers: workers, QueueCap: 100000, UserRunningLimit: 100},
	}
	ctx := context.Background()
	a, err := app.New(ctx, cfg, bdb, log, app.Overrides{
		Bucket:       bucket,
		Provider:     localprovider.New(localprovider.Config{Steps: 2, StepDelay: -1}),
		WorkerID:     "bench",
		PollInterval: 5 * time.Second,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = a.Close() })
	b.Cleanup(a.Background(ctx))
	var user uuid.UUID
	if err := bdb.NewRaw("INSERT INTO users (email, password_hash) VALUES ('bench@example.com', 'x') RETURNING id").Scan(ctx, &user); err != nil {
		b.Fatal(err)
	}
	if _, err := a.Ledger.Post(ctx, credit.Posting{UserID: user, Amount: 1 << 40, Kind: credit.Purchase, IdempotencyKey: "bench"}); err != nil {
		b.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the listener is up
	return &rig{db: bdb, svc: a.Jobs, user: user}
}

func (r *rig) submit(b *testing.B) *generate.Generation {
	b.Helper()
	g, err := r.svc.Submit(context.Background(), actor.Actor{UserID: r.user, Verified: true}, generate.Request{Kind: generate.KindGenerate, Prompt: "bench", Width: 64, Height: 64})
	if err != nil {
		b.Fatal(err)
	}
	return g
}

func (r *rig) stream(b *testing.B, ctx context.Context, id uuid.UUID, after int) <-chan generate.Event {
	ch, err := r.svc.Stream(ctx, actor.Actor{UserID: r.user}, id, after)
	if err != nil {
		b.Fatal(err)
	}
	return ch
}

func reportPercentiles(b *testing.B, d []time.Duration, unit string) {
	slices.Sort(d)
	p := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(p(0.50), "p50-"+unit)
	b.ReportMetric(p(0.99), "p99-"+unit)
}

// BenchmarkSubmitToStarted measures how long a submitted job waits for an
// idle worker: the NOTIFY doorbell wakes it at once; without it, the 5 s
// poll would show.
func BenchmarkSubmitToStarted(b *testing.B) {
	r := newRig(b, 2)
	var lat []time.Duration
	for b.Loop() {
		g := r.submit(b)
		for ev := range r.stream(b, context.Background(), g.ID, 0) {
			if ev.Kind == generate.EventStarted {
				var queued time.Time
				if err := r.db.NewRaw("SELECT queued_at FROM generations WHERE id = ?", g.ID).Scan(context.Background(), &queued); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, ev.CreatedAt.Sub(queued))
			}
		}
	}
	reportPercentiles(b, lat, "ms")
}

// BenchmarkFanOut measures commit → subscriber latency: one job followed by
// 1,000 subscribers, and 1,000 jobs with one subscriber each.
func BenchmarkFanOut(b *testing.B) {
	for _, shape := range []struct {
		name       string
		jobs, subs int
	}{{"1job-1000subs", 1, 1000}, {"1000jobs-1sub", 1000, 1}} {
		b.Run(shape.name, func(b *testing.B) {
			r := newRig(b, 0)
			gens := make([]*generate.Generation, shape.jobs)
			for i := range gens {
				gens[i] = r.submit(b)
			}
			var lat []time.Duration
			var mu sync.Mutex
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var ready sync.WaitGroup
			// When each job's latest event was committed (just before).
			committed := make(map[uuid.UUID]time.Time, len(gens))
			var cmu sync.RWMutex
			for _, g := range gens {
				for range shape.subs {
					ready.Add(1)
					ch := r.stream(b, ctx, g.ID, 0)
					go func() {
						<-ch // QUEUED, replayed from the table
						ready.Done()
						for ev := range ch {
							now := time.Now()
							cmu.RLock()
							at := committed[ev.GenerationID]
							cmu.RUnlock()
							mu.Lock()
							lat = append(lat, now.Sub(at))
							mu.Unlock()
						}
					}()
				}
			}
			ready.Wait()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				before := len(lat)
				for _, g := range gens {
					cmu.Lock()
					committed[g.ID] = time.Now()
					cmu.Unlock()
					if err := r.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
						_, err := generate.AppendEvent(ctx, tx, g.ID, generate.Progress{Fraction: 0.5, Step: 1, TotalSteps: 2})
						return err
					}); err != nil {
						b.Fatal(err)
					}
				}
				for {
					mu.Lock()
					n := len(lat)
					mu.Unlock()
					if n-before >= shape.jobs*shape.subs {
						break
					}
					time.Sleep(100 * time.Microsecond)
				}
			}
			b.StopTimer()
			reportPercentiles(b, lat, "ms")
		})
	}
}

// BenchmarkIdleSubscriptionMemory reports the memory one idle subscription
// (its goroutines, channels and doorbell registration) holds.
func BenchmarkIdleSubscriptionMemory(b *testing.B) {
	r := newRig(b, 0)
	g := r.submit(b)
	const n = 2000
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range n {
			ch := r.stream(b, ctx, g.ID, 1) // nothing after QUEUED: idle
			_ = ch
		}
		time.Sleep(200 * time.Millisecond) // every stream has read the table and is waiting
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64((after.HeapInuse+after.StackInuse)-(before.HeapInuse+before.StackInuse))/n, "bytes/subscription")
		cancel()
	}
}
