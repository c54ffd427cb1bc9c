package dbtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/fastimage/api/internal/db/dbtest"
)

func TestCloneIsMigratedAndPrivate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := dbtest.New(t), dbtest.New(t)
	var id string
	if err := a.NewRaw("SELECT uuidv7()::text").Scan(ctx, &id); err != nil {
		t.Fatalf("clone has no migrations applied: %v", err)
	}
	if _, err := a.ExecContext(ctx, "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatal(err)
	}
	var seen bool
	if err := b.NewRaw("SELECT to_regclass('only_in_a') IS NOT NULL").Scan(ctx, &seen); err != nil {
		t.Fatal(err)
	}
	if seen {
		t.Fatal("a table made in one test database is visible in another")
	}
}

// BenchmarkCloneDatabase measures one CREATE DATABASE … TEMPLATE plus its
// DROP: what every test that needs Postgres pays.
func BenchmarkCloneDatabase(b *testing.B) {
	var created, dropped time.Duration
	for b.Loop() {
		start := time.Now()
		_, drop := dbtest.Clone(b)
		mid := time.Now()
		if err := drop(); err != nil {
			b.Fatal(err)
		}
		created += mid.Sub(start)
		dropped += time.Since(mid)
	}
	b.ReportMetric(float64(created.Milliseconds())/float64(b.N), "create-ms")
	b.ReportMetric(float64(dropped.Milliseconds())/float64(b.N), "drop-ms")
}
