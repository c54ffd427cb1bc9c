package usage_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/usage"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newUser inserts an account and returns its id.
func newUser(t *testing.T, bdb *bun.DB, email string, objections ...string) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	var id uuid.UUID
	if err := bdb.NewRaw("INSERT INTO users (email, password_hash) VALUES (?, 'x') RETURNING id", email).Scan(ctx, &id); err != nil {
		t.Fatal(err)
	}
	for _, p := range objections {
		if _, err := bdb.ExecContext(ctx, "INSERT INTO processing_objections (user_id, purpose) VALUES (?, ?)", id, p); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

func countEvents(t *testing.T, bdb *bun.DB, userID uuid.UUID) int {
	t.Helper()
	var n int
	if err := bdb.NewRaw("SELECT count(*) FROM usage_events WHERE user_id = ?", userID).Scan(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAnalyticsOffRecordsNothing(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	ada := newUser(t, bdb, "ada@example.com")
	r := usage.New(bdb, quietLog(), usage.Config{Enabled: false})
	r.Record(usage.Event{UserID: ada, Feature: "generateImage"})
	if n, err := r.Flush(context.Background()); err != nil || n != 0 {
		t.Fatalf("Flush = %d, %v; want 0, nil", n, err)
	}
	if n := countEvents(t, bdb, ada); n != 0 {
		t.Errorf("analytics off: %d usage events, want 0", n)
	}
}

func TestObjectionsStopUsageEvents(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	ctx := context.Background()
	users := map[string]uuid.UUID{
		"none":                newUser(t, bdb, "none@example.com"),
		"analytics":           newUser(t, bdb, "analytics@example.com", "analytics"),
		"product_improvement": newUser(t, bdb, "improve@example.com", "product_improvement"),
		"marketing_email":     newUser(t, bdb, "marketing@example.com", "marketing_email"),
	}
	r := usage.New(bdb, quietLog(), usage.Config{Enabled: true})
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, id := range users {
		r.Record(usage.Event{UserID: id, Feature: "generateImage", Operation: "Generate", Client: "Firefox/Linux", At: at})
	}
	if _, err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for objection, want := range map[string]int{"none": 1, "analytics": 0, "product_improvement": 0, "marketing_email": 1} {
		if got := countEvents(t, bdb, users[objection]); got != want {
			t.Errorf("user objecting to %s: %d events, want %d", objection, got, want)
		}
	}

	var row struct {
		Feature, Operation, Client string
		CreatedAt                  time.Time
		ForwardedAt                *time.Time
	}
	if err := bdb.NewRaw("SELECT feature, operation, client, created_at, forwarded_at FROM usage_events WHERE user_id = ?", users["none"]).
		Scan(ctx, &row); err != nil {
		t.Fatal(err)
	}
	if row.Feature != "generateImage" || row.Operation != "Generate" || row.Client != "Firefox/Linux" || !row.CreatedAt.Equal(at) || row.ForwardedAt != nil {
		t.Errorf("stored %+v", row)
	}
}

func TestRunWritesInBatchesAndAtStop(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	ada := newUser(t, bdb, "ada@example.com")
	r := usage.New(bdb, quietLog(), usage.Config{Enabled: true, Batch: 3, FlushEvery: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()

	// A full batch is written at once, without waiting for the tick.
	for range 3 {
		r.Record(usage.Event{UserID: ada, Feature: "viewer"})
	}
	deadline := time.Now().Add(5 * time.Second)
	for countEvents(t, bdb, ada) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("a full batch was not written within 5s (%d stored)", countEvents(t, bdb, ada))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// What is queued when Run stops is written before it returns.
	r.Record(usage.Event{UserID: ada, Feature: "works"})
	r.Record(usage.Event{UserID: ada, Feature: "works"})
	cancel()
	<-done
	if got := countEvents(t, bdb, ada); got != 5 {
		t.Errorf("%d events after stop, want 5", got)
	}
	if got := r.Written(); got != 5 {
		t.Errorf("Written = %d, want 5", got)
	}
}

func TestFullQueueDropsEvents(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	ada := newUser(t, bdb, "ada@example.com")
	r := usage.New(bdb, quietLog(), usage.Config{Enabled: true, Queue: 2})
	for range 5 {
		r.Record(usage.Event{UserID: ada, Feature: "viewer"})
	}
	if got := r.Dropped(); got != 3 {
		t.Errorf("Dropped = %d, want 3", got)
	}
	if n, err := r.Flush(context.Background()); err != nil || n != 2 {
		t.Errorf("Flush = %d, %v; want 2, nil", n, err)
	}
}

func TestLongValuesAreCut(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	ada := newUser(t, bdb, "ada@example.com")
	r := usage.New(bdb, quietLog(), usage.Config{Enabled: true})
	long := make([]byte, 1000)
	for i := range long {
		long[i] = 'a'
	}
	r.Record(usage.Event{UserID: ada, Feature: string(long), Operation: string(long)})
	if _, err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var feature, operation string
	if err := bdb.NewRaw("SELECT feature, operation FROM usage_events WHERE user_id = ?", ada).Scan(context.Background(), &feature, &operation); err != nil {
		t.Fatal(err)
	}
	if len(feature) != usage.MaxFeatureBytes || len(operation) != usage.MaxOperationBytes {
		t.Errorf("stored %d and %d bytes, want %d and %d", len(feature), len(operation), usage.MaxFeatureBytes, usage.MaxOperationBytes)
	}
}

func TestPurge(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	ctx := context.Background()
	ada := newUser(t, bdb, "ada@example.com")
	r := usage.New(bdb, quietLog(), usage.Config{Enabled: true})
	now := time.Now()
	for _, age := range []time.Duration{100 * 24 * time.Hour, 91 * 24 * time.Hour, 89 * 24 * time.Hour, time.Hour} {
		r.Record(usage.Event{UserID: ada, Feature: "viewer", At: now.Add(-age)})
	}
	if _, err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{2, 0} { // a second run finds nothing more
		n, err := usage.Purge(ctx, bdb, now.Add(-90*24*time.Hour))
		if err != nil || n != want {
			t.Errorf("run %d: Purge = %d, %v; want %d", i+1, n, err, want)
		}
	}
	if got := countEvents(t, bdb, ada); got != 2 {
		t.Errorf("%d events left, want 2", got)
	}
}

// BenchmarkRecord is what analytics adds to an operation: one event queued
// (with the writer running beside it; events it could not keep up with are
// reported as dropped).
func BenchmarkRecord(b *testing.B) {
	bdb := dbtest.New(b)
	var id uuid.UUID
	if err := bdb.NewRaw("INSERT INTO users (email, password_hash) VALUES ('bench@example.com', 'x') RETURNING id").Scan(context.Background(), &id); err != nil {
		b.Fatal(err)
	}
	r := usage.New(bdb, quietLog(), usage.Config{Enabled: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	b.ReportAllocs()
	for b.Loop() {
		r.Record(usage.Event{UserID: id, Feature: "generateImage", Operation: "Generate", Client: "Chrome/Windows"})
	}
	cancel()
	<-done
	b.ReportMetric(float64(r.Dropped())/float64(b.N), "dropped/op")
}

// BenchmarkWrite is the writer's side: events stored a batch (one INSERT)
// at a time, reported as events a second.
func BenchmarkWrite(b *testing.B) {
	bdb := dbtest.New(b)
	var id uuid.UUID
	if err := bdb.NewRaw("INSERT INTO users (email, password_hash) VALUES ('bench@example.com', 'x') RETURNING id").Scan(context.Background(), &id); err != nil {
		b.Fatal(err)
	}
	const batch = 500
	r := usage.New(bdb, quietLog(), usage.Config{Enabled: true, Queue: batch, Batch: batch})
	start := time.Now()
	for b.Loop() {
		for range batch {
			r.Record(usage.Event{UserID: id, Feature: "generateImage", Operation: "Generate", Client: "Chrome/Windows"})
		}
		if n, err := r.Flush(context.Background()); err != nil || n != batch {
			b.Fatalf("Flush = %d, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "events/s")
}
