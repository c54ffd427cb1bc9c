package db_test

import (
	"context"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/db/dbtest"
)

func open(t *testing.T, url string) *db.Migrator {
	t.Helper()
	bdb, err := db.Open(context.Background(), dbtest.Config(url), "migrate-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bdb.Close() })
	m, err := db.NewMigrator(bdb)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMigrateUpDownUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := open(t, dbtest.NewEmptyURL(t))

	pending, err := m.Pending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) == 0 {
		t.Fatal("got no pending migrations on an empty database, want all of them")
	}
	applied, err := m.Up(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(pending) {
		t.Fatalf("applied %v, want %v", applied, pending)
	}
	if again, err := m.Up(ctx); err != nil || len(again) != 0 {
		t.Fatalf("second up applied %v (err %v), want nothing", again, err)
	}
	if p, err := m.Pending(ctx); err != nil || len(p) != 0 {
		t.Fatalf("pending after up: %v (err %v)", p, err)
	}
	undone, err := m.Down(ctx)
	if err != nil {
		t.Fatalf("down: %v", err)
	}
	if len(undone) == 0 {
		t.Fatal("down rolled back nothing")
	}
	if p, err := m.Pending(ctx); err != nil || len(p) != len(undone) {
		t.Fatalf("pending after down = %v (err %v), want %v", p, err, undone)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatalf("up after down: %v", err)
	}
}

// Many replicas starting together: every one calls Up, the migrations run
// once (the first migration is not idempotent, so a second run would fail).
func TestMigrateConcurrentReplicas(t *testing.T) {
	t.Parallel()
	url := dbtest.NewEmptyURL(t)
	const replicas = 6
	ms := make([]*db.Migrator, replicas)
	for i := range ms {
		ms[i] = open(t, url)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		total  int
		errors []error
	)
	for _, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied, err := m.Up(context.Background())
			mu.Lock()
			defer mu.Unlock()
			total += len(applied)
			if err != nil {
				errors = append(errors, err)
			}
		}()
	}
	wg.Wait()
	if len(errors) > 0 {
		t.Fatalf("concurrent up failed: %v", errors)
	}
	status, err := ms[0].Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if total != len(status) {
		t.Fatalf("replicas applied %d migrations in all, want %d (each exactly once)", total, len(status))
	}
}

func TestFailedMigrationIsNotMarkedApplied(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := dbtest.NewEmptyURL(t)
	bdb, err := db.Open(ctx, dbtest.Config(url), "migrate-test")
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	fsys := fstest.MapFS{
		"20200101000001_good.tx.up.sql":   {Data: []byte("CREATE TABLE good (id int);")},
		"20200101000001_good.tx.down.sql": {Data: []byte("DROP TABLE good;")},
		"20200101000002_bad.tx.up.sql":    {Data: []byte("CREATE TABLE half (id int);\nSELECT no_such_function();")},
		"20200101000002_bad.tx.down.sql":  {Data: []byte("DROP TABLE half;")},
	}
	m, err := db.NewMigratorFS(bdb, fsys)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err == nil {
		t.Fatal("up with a failing migration succeeded, want an error")
	}
	pending, err := m.Pending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0] != "20200101000002_bad" {
		t.Fatalf("pending = %v, want only the failed migration", pending)
	}
	var half bool
	if err := bdb.NewRaw("SELECT to_regclass('half') IS NOT NULL").Scan(ctx, &half); err != nil {
		t.Fatal(err)
	}
	if half {
		t.Fatal("the failed migration's first statement stayed: it did not run in a transaction")
	}
}
