package privacy_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/privacy"
)

// A job that fails is tried again; its progress is kept and told; it
// completes once, with every step in the trail.
func TestJobsRetryAndComplete(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := f.user(t, 0)
	var runs atomic.Int32
	f.svc.Handle(privacy.KindExport, func(ctx context.Context, r *privacy.Request, progress func(int)) error {
		progress(40)
		if runs.Add(1) == 1 {
			return errors.New("storage hiccup")
		}
		progress(80)
		return nil
	})
	r, err := f.svc.RequestExport(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); f.svc.RunWorkers(ctx, "test", 1) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		rs, _ := f.svc.RequestsByIDs(ctx, a, []uuid.UUID{r.ID})
		if len(rs) == 1 && rs[0].Status == privacy.StatusCompleted {
			r = &rs[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the export did not complete: %+v", rs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if runs.Load() != 2 || r.Attempts != 2 || r.Progress != 100 || r.Error != nil {
		t.Errorf("after one failure: %d runs, attempts %d, progress %d, error %v", runs.Load(), r.Attempts, r.Progress, r.Error)
	}
	want := "received/user verified/user in_progress/system verified/system in_progress/system completed/system"
	if got := f.trail(t, a, r.ID); got != want {
		t.Errorf("trail:\n got %s\nwant %s", got, want)
	}
	var progressSeen int
	_ = f.db.NewRaw(`SELECT count(*) FROM viewer_events WHERE user_id = ? AND kind = 'PRIVACY_REQUEST' AND (payload->>'progress')::int IN (40, 80)`, a.UserID).
		Scan(context.Background(), &progressSeen)
	if progressSeen < 2 {
		t.Errorf("progress entries in the feed: %d, want at least 2", progressSeen)
	}
}
