package ratelimit_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastimage/api/internal/clock"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/ratelimit"
)

func TestExactlyMaxPassUnderConcurrency(t *testing.T) {
	t.Parallel()
	l := ratelimit.New(dbtest.New(t), nil)
	w := ratelimit.Window{Max: 5, Period: time.Hour}
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			d, err := l.Take(context.Background(), "email:a@example.com", w)
			if err != nil {
				t.Error(err)
				return
			}
			if d.Allowed {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != 5 {
		t.Fatalf("got %d allowed, want 5", got)
	}
	d, err := l.Take(context.Background(), "email:a@example.com", w)
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed || d.RetryAfterSeconds() < 3590 || d.RetryAfterSeconds() > 3600 {
		t.Fatalf("sixth: %+v, want refused for about an hour", d)
	}
	if other, _ := l.Take(context.Background(), "email:b@example.com", w); !other.Allowed {
		t.Fatal("one key's limit blocked another key")
	}
}

func TestSeveralWindowsAndExpiry(t *testing.T) {
	t.Parallel()
	// Whole seconds, so that Postgres's microseconds keep every time exact.
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	l := ratelimit.New(dbtest.New(t), clk)
	ctx := context.Background()
	short := ratelimit.Window{Max: 1, Period: time.Minute}
	long := ratelimit.Window{Max: 3, Period: time.Hour}
	for i := range 3 {
		d, err := l.Take(ctx, "k", short, long)
		if err != nil || !d.Allowed {
			t.Fatalf("take %d: %+v %v", i, d, err)
		}
		clk.Advance(59 * time.Second)
		want := time.Second
		if i == 2 {
			want = 57*time.Minute + time.Second // the long window is full too
		}
		if d, _ := l.Take(ctx, "k", short, long); d.Allowed || d.RetryAfter != want {
			t.Fatalf("take %d, a second before the short window ends: got %+v, want refused for %v", i, d, want)
		}
		clk.Advance(time.Second)
	}
	if d, _ := l.Take(ctx, "k", short, long); d.Allowed || d.RetryAfter != 57*time.Minute {
		t.Fatalf("fourth within the hour: got %+v, want refused by the long window for 57m", d)
	}
	clk.Advance(57 * time.Minute)
	if d, err := l.Take(ctx, "k", short, long); err != nil || !d.Allowed {
		t.Fatalf("once the first event left the long window: got %+v %v, want allowed", d, err)
	}
	if err := l.Reset(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if d, _ := l.Check(ctx, "k", short, long); !d.Allowed {
		t.Fatal("after Reset the key is still limited")
	}
}
