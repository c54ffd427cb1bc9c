package work_test

import (
	"context"
	"testing"

	"github.com/fastimage/api/internal/actor"
)

// emptyBin runs inside one request: on a bin of 100,000 works it must not
// erase them all (a transaction and a storage call each) before answering.
// It erases a bounded batch, oldest first, and says when more are left.
func TestEmptyBinErasesABoundedBatch(t *testing.T) {
	t.Parallel()
	db, _, svc := newGallery(t)
	ctx := context.Background()
	a := actor.Actor{UserID: newUser(t, db)}
	if _, err := db.NewRaw(`INSERT INTO works (user_id, kind, deleted_at)
		SELECT ?, 'upload', now() - g * interval '1 second' FROM generate_series(1, 101) AS g`, a.UserID).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		n    int
		more bool
	}{{100, true}, {1, false}} {
		got, err := svc.PurgeBin(ctx, a, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.WorkIDs) != want.n || got.More != want.more {
			t.Fatalf("call %d erased %d works (more %v), want %d (more %v)", i+1, len(got.WorkIDs), got.More, want.n, want.more)
		}
	}
	var left int
	if err := db.NewRaw("SELECT count(*) FROM works WHERE user_id = ?", a.UserID).Scan(ctx, &left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d works left after emptying the bin twice, want 0", left)
	}
}
