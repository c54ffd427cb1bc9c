package credit_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/db/dbtest"
)

// BenchmarkHoldCapture measures one hold plus its capture (two transactions,
// the path every generation takes), from many goroutines: all on one hot
// account, and spread over 1,000 accounts. ops/s is holds+captures per
// second.
func BenchmarkHoldCapture(b *testing.B) {
	for _, accounts := range []int{1, 1000} {
		name := "hot-account"
		if accounts > 1 {
			name = "1000-accounts"
		}
		b.Run(name, func(b *testing.B) {
			db := dbtest.New(b)
			l := credit.New(db)
			users := make([]uuid.UUID, accounts)
			for i := range users {
				users[i] = newUser(b, db)
				grant(b, l, users[i], 1<<40, nil)
			}
			var next atomic.Int64
			b.SetParallelism(4)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					u := users[int(next.Add(1))%len(users)]
					h, err := l.Hold(ctx, credit.HoldRequest{UserID: u, Amount: 3, TTL: time.Minute})
					if err != nil {
						b.Error(err)
						return
					}
					if _, err := l.Capture(ctx, h.ID, 2); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "holds+captures/s")
		})
	}
}
