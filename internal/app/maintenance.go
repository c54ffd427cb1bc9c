package app

import (
	"context"
	"log/slog"
	"time"
)

// task is one periodic maintenance job; it returns how many things it did.
type task struct {
	name string
	run  func(ctx context.Context) (int, error)
}

// runMaintenance runs every task each interval until ctx ends. Every replica
// may run it: each task is safe to repeat and to run on several replicas at
// once (conditional updates, idempotency keys, SKIP LOCKED claims).
func runMaintenance(ctx context.Context, interval time.Duration, log *slog.Logger, tasks ...task) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, tk := range tasks {
			n, err := tk.run(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				log.ErrorContext(ctx, "maintenance task failed", "task", tk.name, "err", err)
			case n > 0:
				log.InfoContext(ctx, "maintenance task done", "task", tk.name, "count", n)
			}
		}
	}
}
