package generate_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/generate"
)

// A work whose generation is still queued or running stays in the bin:
// erasing it would take the generation row with it (ON DELETE CASCADE) and
// leave its credits held with nothing left to capture or release them, and a
// running worker writing images into a work that is gone. purgeWorks refuses
// it with CONFLICT; emptyBin leaves it; once the generation ends, both erase it.
func TestPurgeKeepsWorksBeingMade(t *testing.T) {
	t.Parallel()
	db, gallery, jobs := newJobs(t)
	ctx := context.Background()
	user := newUser(t, db)
	a := actor.Actor{UserID: user, Verified: true, Email: "a@example.com"}
	ledger := credit.New(db)

	g, err := jobs.Submit(ctx, a, generate.Request{Kind: generate.KindGenerate, Prompt: "a kettle", Width: 64, Height: 64})
	if err != nil {
		t.Fatal(err)
	}
	other := mustUpload(t, gallery, a)
	if _, err := gallery.Delete(ctx, a, []uuid.UUID{g.WorkID, other.ID}); err != nil {
		t.Fatal(err)
	}

	_, err = gallery.PurgeBin(ctx, a, []uuid.UUID{g.WorkID, other.ID})
	if got := apperr.CodeOf(err); got != apperr.Conflict {
		t.Fatalf("purging a work being made: got code %q (%v), want %s", got, err, apperr.Conflict)
	}
	purged, err := gallery.PurgeBin(ctx, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(purged.WorkIDs) != 1 || purged.WorkIDs[0] != other.ID || purged.More {
		t.Fatalf("emptyBin erased %v (more %v), want only the upload %v and no more", purged.WorkIDs, purged.More, other.ID)
	}
	if n := countGenerations(t, db, user); n != 1 {
		t.Fatalf("%d generations after emptying the bin, want the queued one kept", n)
	}
	b, err := ledger.BalanceOf(ctx, a, user)
	if err != nil {
		t.Fatal(err)
	}
	if b.Held == 0 {
		t.Fatalf("balance %+v: want the queued generation's hold still held", b)
	}

	if _, err := jobs.Cancel(ctx, a, g.ID); err != nil {
		t.Fatal(err)
	}
	purged, err = gallery.PurgeBin(ctx, a, []uuid.UUID{g.WorkID})
	if err != nil || len(purged.WorkIDs) != 1 {
		t.Fatalf("purging the canceled generation's work: got %+v, %v; want it erased", purged, err)
	}
	if b, err = ledger.BalanceOf(ctx, a, user); err != nil || b.Held != 0 {
		t.Fatalf("balance %+v (err %v): want nothing held once canceled", b, err)
	}
}
