package throttle_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/throttle"
)

// Concurrent charges against one bucket let exactly as many through as fit:
// the leak during the test (1 point a second) cannot make room for another
// charge of 10.
func TestChargeExactUnderConcurrency(t *testing.T) {
	t.Parallel()
	l := throttle.New(dbtest.New(t))
	b := throttle.Bucket{Size: 100, RestoreRate: 1}
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			st, err := l.Charge(context.Background(), "key:a", b, 10)
			if err != nil {
				t.Error(err)
				return
			}
			if st.Allowed {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != 10 {
		t.Fatalf("got %d charges of 10 allowed from a bucket of 100, want 10", got)
	}
	st, err := l.Charge(context.Background(), "key:a", b, 10)
	if err != nil {
		t.Fatal(err)
	}
	if st.Allowed || st.Available > 10 || st.RetryAfter <= 0 || st.RetryAfter > 10*time.Second {
		t.Fatalf("charge on an empty bucket: %+v; want refused with a retryAfter of at most 10s", st)
	}
	other, err := l.Charge(context.Background(), "key:b", b, 10)
	if err != nil || !other.Allowed || other.Available != 90 {
		t.Fatalf("another key's bucket: %+v, %v; want its own, full less 10", other, err)
	}
}

// Points leak back at the restore rate: after the wait a refusal names, the
// same charge goes through.
func TestChargeAfterRetryAfter(t *testing.T) {
	t.Parallel()
	l := throttle.New(dbtest.New(t))
	b := throttle.Bucket{Size: 40, RestoreRate: 20}
	ctx := context.Background()
	var refused throttle.Status
	for i := range 10 {
		st, err := l.Charge(ctx, "ip:192.0.2.1", b, 30)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Allowed {
			refused = st
			break
		}
		if i > 1 {
			t.Fatal("three charges of 30 passed a bucket of 40 refilling at 20/s")
		}
	}
	if refused.RetryAfter <= 0 || refused.RetryAfter > 1500*time.Millisecond {
		t.Fatalf("refused %+v; want a retryAfter of (30+30-40)/20 = 1s at most, plus the time the test took", refused)
	}
	time.Sleep(refused.RetryAfter)
	st, err := l.Charge(ctx, "ip:192.0.2.1", b, 30)
	if err != nil || !st.Allowed {
		t.Fatalf("after retryAfter: %+v, %v; want allowed", st, err)
	}
}

func TestSweepForgetsIdleBuckets(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	l := throttle.New(db)
	ctx := context.Background()
	if _, err := l.Charge(ctx, "session:x", throttle.Bucket{Size: 10, RestoreRate: 1}, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "UPDATE cost_buckets SET updated_at = now() - interval '1 hour' WHERE key = 'session:x'"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Charge(ctx, "session:y", throttle.Bucket{Size: 10, RestoreRate: 1}, 5); err != nil {
		t.Fatal(err)
	}
	n, err := l.Sweep(ctx, time.Minute)
	if err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v; want the one idle bucket", n, err)
	}
}

// BenchmarkCharge measures one charge that fits: the UPDATE alone.
func BenchmarkCharge(b *testing.B) {
	l := throttle.New(dbtest.New(b))
	bucket := throttle.Bucket{Size: 1 << 30, RestoreRate: 1 << 20}
	ctx := context.Background()
	for b.Loop() {
		if st, err := l.Charge(ctx, "key:bench", bucket, 10); err != nil || !st.Allowed {
			b.Fatal(st, err)
		}
	}
}
