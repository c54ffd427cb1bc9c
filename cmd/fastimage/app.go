package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/events"
	"github.com/fastimage/api/internal/generate"
	"github.com/fastimage/api/internal/mail"
	"github.com/fastimage/api/internal/ratelimit"
	"github.com/fastimage/api/internal/storage"
	"github.com/fastimage/api/internal/work"
)

// app is every service of the process, wired.
type app struct {
	log      *slog.Logger
	accounts *account.Service
	ledger   *credit.Ledger
	limiter  *ratelimit.Limiter
	bucket   storage.Bucket
	blobs    http.Handler
	gallery  *work.Service
	jobs     *generate.Service
	bus      *events.Bus
	outbox   *mail.Outbox
}

func build(ctx context.Context, cfg *config.Serve, bdb *bun.DB, log *slog.Logger) (*app, error) {
	mailer, outbox, err := newMailer(cfg, bdb)
	if err != nil {
		return nil, err
	}
	verifier, err := newCaptcha(cfg)
	if err != nil {
		return nil, err
	}
	bucket, localBucket, err := newBucket(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	p, err := newProvider(cfg.Generate)
	if err != nil {
		return nil, err
	}
	a := &app{
		log: log, ledger: credit.New(bdb), limiter: ratelimit.New(bdb), bucket: bucket, outbox: outbox,
		bus: events.New(bdb, log),
	}
	if localBucket != nil {
		a.blobs = localBucket.Handler()
	}
	a.gallery = work.New(bdb, bucket, work.Config{
		MaxUploadBytes: cfg.MaxUploadBytes, MaxPixels: cfg.Works.MaxPixels, QuotaBytes: cfg.Works.QuotaBytes,
		URLTTL: cfg.Works.URLTTL, Retention: cfg.Works.Retention,
	})
	a.accounts = account.New(bdb, accountConfig(cfg), mailer, verifier, log)
	a.jobs = generate.New(bdb, generate.Config{
		Workers: cfg.Generate.Workers, Lease: cfg.Generate.Lease, MaxAttempts: cfg.Generate.MaxAttempts,
		UserRunningLimit: cfg.Generate.UserRunningLimit, QueueCap: cfg.Generate.QueueCap,
	}, a.bus, a.gallery, p, log)
	return a, nil
}

func (a *app) close() {
	if c, ok := a.bucket.(io.Closer); ok {
		_ = c.Close()
	}
}

// background starts what runs beside requests: the event listener (in every
// process, so subscribers on any replica hear of every commit), the
// generation workers, and the periodic jobs. The returned function stops
// them, giving running jobs' leases back, and waits.
func (a *app) background(ctx context.Context, cfg *config.Serve) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { a.bus.Run(ctx) })
	if cfg.Generate.Workers > 0 {
		host, _ := os.Hostname()
		wg.Go(func() { a.jobs.RunWorkers(ctx, fmt.Sprintf("%s:%d", host, os.Getpid())) })
	}
	wg.Go(func() {
		runMaintenance(ctx, cfg.MaintenanceInterval, a.log,
			task{"release expired credit holds", a.ledger.ReleaseExpiredHolds},
			task{"expire credit lots", a.ledger.ExpireLots},
			task{"purge deleted works", a.gallery.Purge},
			task{"clean stale uploads", a.gallery.CleanStaleUploads},
			task{"forget old idempotency keys", a.jobs.ForgetOldKeys},
			task{"sweep rate-limit events", func(ctx context.Context) (int, error) {
				n, err := a.limiter.Sweep(ctx, 24*time.Hour)
				return int(n), err
			}},
		)
	})
	return func() {
		cancel()
		wg.Wait()
	}
}
