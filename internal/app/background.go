package app

import (
	"context"
	"sync"
	"time"

	"github.com/fastimage/api/internal/mail"
	"github.com/fastimage/api/internal/throttle"
)

// Background starts what runs beside requests: the event listener (in every
// process, so that subscribers on any replica hear of every commit), the
// mail worker when mail is delivered (SMTP is configured), the generation
// workers when cfg.Generate.Workers > 0, the usage recorder and forwarder
// when analytics is on (after publishing the legal documents), and the periodic
// maintenance tasks every cfg.MaintenanceInterval (none when it is not
// positive). The returned function stops them all, giving running jobs'
// leases back, and waits until they have returned; stopping ctx does the
// same without the wait.
func (a *App) Background(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { a.Bus.Run(ctx) })
	if a.Mail != nil {
		wg.Go(func() { a.Mail.Run(ctx) })
	}
	wg.Go(func() { a.Webhooks.Run(ctx) })
	if a.Config.Generate.Workers > 0 {
		wg.Go(func() { a.Jobs.RunWorkers(ctx, a.workerID) })
	}
	if a.Config.Generate.Workers > 0 {
		// Exports and deletions, one at a time per process: they are rare
		// and each streams a whole account.
		wg.Go(func() { a.Privacy.RunWorkers(ctx, a.workerID, 1) })
	}
	a.runPrivacy(ctx, &wg)
	if a.Config.MaintenanceInterval > 0 {
		wg.Go(func() { runMaintenance(ctx, a.Config.MaintenanceInterval, a.Log, a.maintenanceTasks()...) })
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// maintenanceTasks are the periodic jobs; each is safe to repeat and to run
// on several replicas at once.
func (a *App) maintenanceTasks() []task {
	tasks := []task{
		{"release expired credit holds", func(ctx context.Context) (int, error) {
			return a.Ledger.ReleaseExpiredHolds(ctx, a.clock.Now())
		}},
		{"expire credit lots", a.Ledger.ExpireLots},
		{"purge deleted works", a.Gallery.Purge},
		{"clean stale uploads", a.Gallery.CleanStaleUploads},
		{"forget old idempotency keys", a.Jobs.ForgetOldKeys},
		{"forget delivered mail", func(ctx context.Context) (int, error) { return mail.ForgetDelivered(ctx, a.DB) }},
		{"forget old webhook deliveries", a.Webhooks.ForgetOld},
		{"purge expired data exports", a.Privacy.PurgeExpiredExports},
		{"sweep rate-limit events", func(ctx context.Context) (int, error) {
			n, err := a.Limiter.Sweep(ctx, 24*time.Hour)
			return int(n), err
		}},
		{"sweep idle cost buckets", func(ctx context.Context) (int, error) {
			return a.Costs.Sweep(ctx, a.costBucketsDrain())
		}},
	}
	if a.Config.Privacy.Retention.Interval > 0 {
		tasks = append(tasks, task{"apply retention", a.every(a.Config.Privacy.Retention.Interval, a.retain)})
	}
	if a.Billing.Enabled() && a.Config.Payments.ReconcileInterval > 0 {
		tasks = append(tasks, task{"reconcile payments", a.every(a.Config.Payments.ReconcileInterval, a.reconcile)})
	}
	return tasks
}

// every runs fn at most once per interval, for tasks that should run less
// often than the maintenance tick; the first tick runs it.
func (a *App) every(interval time.Duration, fn func(context.Context) (int, error)) func(context.Context) (int, error) {
	var mu sync.Mutex
	var last time.Time
	return func(ctx context.Context) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		now := a.clock.Now()
		if !last.IsZero() && now.Sub(last) < interval {
			return 0, nil
		}
		last = now
		return fn(ctx)
	}
}

// reconcile applies paid Checkout Sessions and invoices that no webhook
// delivered, over ReconcileWindow.
func (a *App) reconcile(ctx context.Context) (int, error) {
	r, err := a.Billing.Reconcile(ctx, a.Config.Payments.ReconcileWindow)
	return r.Applied, err
}

// costBucketsDrain is how long the slowest cost bucket takes to leak from
// full to empty: a bucket idle that long holds nothing and can go.
func (a *App) costBucketsDrain() time.Duration {
	c := a.Config.Costs
	return max(throttle.Bucket(c.Keys).DrainTime(), throttle.Bucket(c.Sessions).DrainTime(), throttle.Bucket(c.Anonymous).DrainTime(), time.Minute)
}
