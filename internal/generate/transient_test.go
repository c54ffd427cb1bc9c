package generate_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/generate"
)

// fault makes the first few statements that match fail as a statement
// timeout does, through the real database: before each runs, another
// connection takes a lock the statement waits for; once it waits, it is
// canceled there (SQLSTATE 57014, the statement timeout's) and the lock
// freed.
type fault struct {
	db    *bun.DB
	match func(query string) bool
	lock  string // takes, in a transaction of its own, the lock the statement waits for

	mu     sync.Mutex
	left   int
	failed int
	errs   []error
	wg     sync.WaitGroup
}

// inject adds a fault that fails the first times statements matching
// match; lock is a statement whose lock those statements wait for. Call it
// before anything else uses db.
func inject(t *testing.T, db *bun.DB, times int, match func(string) bool, lock string) *fault {
	t.Helper()
	f := &fault{db: db, match: match, lock: lock, left: times}
	db.AddQueryHook(f)
	return f
}

func (f *fault) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	if !f.match(e.Query) {
		return ctx
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.left == 0 {
		return ctx
	}
	f.left--
	tx, err := f.db.BeginTx(context.Background(), nil)
	if err == nil {
		_, err = tx.ExecContext(context.Background(), f.lock)
	}
	if err != nil {
		f.errs = append(f.errs, fmt.Errorf("take the lock: %w", err))
		return ctx
	}
	f.wg.Go(func() {
		defer tx.Rollback()
		err := f.cancelWaiting(e.Query)
		f.mu.Lock()
		defer f.mu.Unlock()
		if err != nil {
			f.errs = append(f.errs, err)
		} else {
			f.failed++
		}
	})
	return ctx
}

func (f *fault) AfterQuery(context.Context, *bun.QueryEvent) {}

// cancelWaiting cancels query once it waits for a lock.
func (f *fault) cancelWaiting(query string) error {
	ctx := context.Background()
	end := time.Now().Add(deadline)
	for {
		var pids []int
		if err := f.db.NewRaw(`SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query = ?`, query).Scan(ctx, &pids); err != nil {
			return fmt.Errorf("find the waiting statement: %w", err)
		}
		if len(pids) > 0 {
			if _, err := f.db.ExecContext(ctx, "SELECT pg_cancel_backend(?)", pids[0]); err != nil {
				return fmt.Errorf("cancel the waiting statement: %w", err)
			}
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("no statement waited for the lock within %v: %s", deadline, query)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// check waits for the fault's cancels and checks that it failed times
// statements.
func (f *fault) check(t *testing.T, times int) {
	t.Helper()
	f.wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, err := range f.errs {
		t.Error(err)
	}
	if f.failed != times {
		t.Errorf("statements failed: got %d, want %d", f.failed, times)
	}
}

func prefix(p string) func(string) bool {
	return func(q string) bool { return strings.HasPrefix(q, p) }
}

// TestTransientDatabaseErrorsDoNotFailTheJob: a statement time-out while a
// worker records a job's progress, its outputs or its end does not fail the
// job: a progress step is skipped, the other writes are tried again, and a
// job whose writes keep failing goes back to the queue rather than failing.
// Either way the job succeeds and is charged once.
func TestTransientDatabaseErrorsDoNotFailTheJob(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		times int
		match func(string) bool
		lock  string // %s is the generation's id
		// calls and attempts are the provider calls and the attempts the
		// job ends with.
		calls, attempts int
	}{{
		name: "progress write", times: 1,
		match: prefix("UPDATE generations SET progress"),
		lock:  "SELECT 1 FROM generations WHERE id = '%s' FOR UPDATE",
		calls: 1, attempts: 1,
	}, {
		name: "final capture, once", times: 1,
		match: func(q string) bool {
			return strings.HasPrefix(q, `UPDATE "credit_holds"`) && strings.Contains(q, "'captured'")
		},
		lock:  "SELECT 1 FROM credit_holds WHERE id = (SELECT hold_id FROM generations WHERE id = '%s') FOR UPDATE",
		calls: 1, attempts: 1,
	}, {
		// Every try of the first output's write fails: the job is given
		// back, its attempt uncounted, and runs again.
		name: "output write, every try", times: 4,
		match: prefix("UPDATE generations SET outputs"),
		lock:  "SELECT 1 FROM generations WHERE id = '%s' FOR UPDATE",
		calls: 2, attempts: 1,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorkers(t)
			p := &counted{Provider: fast()}
			a := w.replicas.start(t, config.Generate{Workers: 1, Lease: lease}, p, 20*time.Millisecond)
			g := submit(t, a.Jobs, newUser(t, w.db))
			f := inject(t, w.db, tc.times, tc.match, fmt.Sprintf(tc.lock, g.ID))

			stop := runWorkers(t, a.Jobs, "worker")
			waitStatus(t, w.db, g.ID, generate.StatusSucceeded)
			stop()
			f.check(t, tc.times)
			succeededOnce(t, ledgerOf(t, w.db, a.Jobs, g.ID), int64(g.CreditsPerImage), tc.attempts)
			if n := p.calls.Load(); int(n) != tc.calls {
				t.Errorf("provider calls: got %d, want %d", n, tc.calls)
			}
		})
	}
}
