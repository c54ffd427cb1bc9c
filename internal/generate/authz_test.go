package generate_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/generate"
	"github.com/fastimage/api/internal/imaging/imagingtest"
	"github.com/fastimage/api/internal/work"
)

// newUser inserts a user with credits to spend.
func newUser(t testing.TB, db *bun.DB) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	var id uuid.UUID
	email := fmt.Sprintf("u%s@example.com", uuid.NewString()[:8])
	if err := db.NewRaw("INSERT INTO users (email, password_hash) VALUES (?, 'x') RETURNING id", email).Scan(ctx, &id); err != nil {
		t.Fatal(err)
	}
	if _, err := credit.New(db).Post(ctx, credit.Posting{
		UserID: id, Amount: 1000, Kind: credit.Purchase, IdempotencyKey: "grant:" + id.String(),
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

// newJobs returns a generation service without workers (jobs stay queued)
// and the works service behind it, on a fresh database.
func newJobs(t testing.TB) (*bun.DB, *work.Service, *generate.Service) {
	t.Helper()
	db := dbtest.New(t)
	a := newReplicas(t, db).start(t, config.Generate{}, nil, 50*time.Millisecond)
	return db, a.Gallery, a.Jobs
}

func mustUpload(t testing.TB, gallery *work.Service, a actor.Actor) *work.Work {
	t.Helper()
	png := imagingtest.PNG(64, 48)
	w, err := gallery.Upload(context.Background(), a, work.UploadInput{File: bytes.NewReader(png), Size: int64(len(png)), Title: "Source"})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func statusOf(t testing.TB, db *bun.DB, id uuid.UUID) generate.Status {
	t.Helper()
	var status generate.Status
	if err := db.NewRaw("SELECT status FROM generations WHERE id = ?", id).Scan(context.Background(), &status); err != nil {
		t.Fatal(err)
	}
	return status
}

func countGenerations(t testing.TB, db *bun.DB, user uuid.UUID) int {
	t.Helper()
	var n int
	if err := db.NewRaw("SELECT count(*) FROM generations WHERE user_id = ?", user).Scan(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAnotherUsersGenerationsAreRefused calls the generation entry points
// with user B's (verified, funded) actor on user A's generation and works:
// each is refused inside the domain with NOT_FOUND (or FORBIDDEN for A's
// list) and nothing of A's changes, while A's own calls succeed.
func TestAnotherUsersGenerationsAreRefused(t *testing.T) {
	t.Parallel()
	db, gallery, jobs := newJobs(t)
	ctx := context.Background()
	userA, userB := newUser(t, db), newUser(t, db)
	a := actor.Actor{UserID: userA, Verified: true, Email: "a@example.com"}
	b := actor.Actor{UserID: userB, Verified: true, Email: "b@example.com"}

	source := mustUpload(t, gallery, a)
	ownOfB := mustUpload(t, gallery, b)
	g, err := jobs.Submit(ctx, a, generate.Request{Kind: generate.KindGenerate, Prompt: "a lighthouse at dusk", Width: 64, Height: 64})
	if err != nil {
		t.Fatal(err)
	}
	if g.UserID != userA {
		t.Fatalf("got generation of %v, want of %v", g.UserID, userA)
	}

	refused := []struct {
		name string
		call func() error
		want apperr.Code
	}{
		{"Get", func() error { _, err := jobs.Get(ctx, b, g.ID); return err }, apperr.NotFound},
		{"Cancel", func() error { _, err := jobs.Cancel(ctx, b, g.ID); return err }, apperr.NotFound},
		{"Stream", func() error {
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			_, err := jobs.Stream(sctx, b, g.ID, 0)
			return err
		}, apperr.NotFound},
		{"List", func() error { _, err := jobs.List(ctx, b, userA, "", 10, nil); return err }, apperr.Forbidden},
		{"Submit edit of A's work", func() error {
			_, err := jobs.Submit(ctx, b, generate.Request{Kind: generate.KindEdit, Prompt: "make it blue", SourceWorkID: &source.ID})
			return err
		}, apperr.NotFound},
		{"Submit edit with A's work as mask", func() error {
			_, err := jobs.Submit(ctx, b, generate.Request{Kind: generate.KindEdit, Prompt: "make it blue", SourceWorkID: &ownOfB.ID, MaskWorkID: &source.ID})
			return err
		}, apperr.NotFound},
		{"Estimate edit of A's work", func() error {
			_, _, _, _, err := jobs.Estimate(ctx, b, generate.Request{Kind: generate.KindEdit, Prompt: "make it blue", SourceWorkID: &source.ID})
			return err
		}, apperr.NotFound},
	}
	for _, tc := range refused {
		t.Run("B "+tc.name, func(t *testing.T) {
			if got := apperr.CodeOf(tc.call()); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("B ByIDs", func(t *testing.T) {
		gs, err := jobs.ByIDs(ctx, b, []uuid.UUID{g.ID})
		if err != nil {
			t.Fatal(err)
		}
		if len(gs) != 0 {
			t.Errorf("got %d generations, want none", len(gs))
		}
	})
	t.Run("unverified Submit", func(t *testing.T) {
		unverified := actor.Actor{UserID: userB, Email: "b@example.com"}
		_, err := jobs.Submit(ctx, unverified, generate.Request{Kind: generate.KindGenerate, Prompt: "a lighthouse", Width: 64, Height: 64})
		if got := apperr.CodeOf(err); got != apperr.EmailNotVerified {
			t.Errorf("got %q, want %q", got, apperr.EmailNotVerified)
		}
	})
	t.Run("nothing of A's changed and B made nothing", func(t *testing.T) {
		if got := statusOf(t, db, g.ID); got != generate.StatusQueued {
			t.Errorf("A's generation: got %q, want %q", got, generate.StatusQueued)
		}
		if n := countGenerations(t, db, userB); n != 0 {
			t.Errorf("B has %d generations, want none", n)
		}
	})

	t.Run("A Get", func(t *testing.T) {
		got, err := jobs.Get(ctx, a, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != g.ID || got.Prompt != "a lighthouse at dusk" {
			t.Errorf("got %v %q, want %v %q", got.ID, got.Prompt, g.ID, "a lighthouse at dusk")
		}
	})
	t.Run("A ByIDs", func(t *testing.T) {
		gs, err := jobs.ByIDs(ctx, a, []uuid.UUID{g.ID})
		if err != nil {
			t.Fatal(err)
		}
		if len(gs) != 1 || gs[0].ID != g.ID {
			t.Errorf("got %v, want only %v", gs, g.ID)
		}
	})
	t.Run("A List", func(t *testing.T) {
		page, err := jobs.List(ctx, a, userA, "", 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		if page.TotalCount != 1 || len(page.Items) != 1 || page.Items[0].ID != g.ID {
			t.Errorf("got %d generations (%v), want only %v", page.TotalCount, page.Items, g.ID)
		}
	})
	t.Run("A Estimate", func(t *testing.T) {
		perImage, total, w, h, err := jobs.Estimate(ctx, a, generate.Request{Kind: generate.KindGenerate, Prompt: "two boats", Width: 64, Height: 64, Count: 2})
		if err != nil {
			t.Fatal(err)
		}
		if perImage <= 0 || total != 2*perImage || w != 64 || h != 64 {
			t.Errorf("got %d per image, %d in all, %d×%d; want a price, twice it, 64×64", perImage, total, w, h)
		}
	})
	t.Run("A Estimate edit of own work", func(t *testing.T) {
		if _, _, _, _, err := jobs.Estimate(ctx, a, generate.Request{Kind: generate.KindEdit, Prompt: "make it blue", SourceWorkID: &source.ID}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("A Cancel", func(t *testing.T) {
		got, err := jobs.Cancel(ctx, a, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != generate.StatusCanceled {
			t.Errorf("got %q, want %q", got.Status, generate.StatusCanceled)
		}
	})

	// A's generation is final now: Retry and Stream would go through for A.
	t.Run("B Retry", func(t *testing.T) {
		_, err := jobs.Retry(ctx, b, g.ID)
		if got := apperr.CodeOf(err); got != apperr.NotFound {
			t.Errorf("got %q, want %q", got, apperr.NotFound)
		}
		if n := countGenerations(t, db, userB); n != 0 {
			t.Errorf("B has %d generations, want none", n)
		}
	})
	t.Run("B Stream of a final generation", func(t *testing.T) {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		_, err := jobs.Stream(sctx, b, g.ID, 0)
		if got := apperr.CodeOf(err); got != apperr.NotFound {
			t.Errorf("got %q, want %q", got, apperr.NotFound)
		}
	})
	t.Run("A Stream", func(t *testing.T) {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		ch, err := jobs.Stream(sctx, a, g.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []generate.Event
		for e := range ch {
			got = append(got, e)
		}
		if sctx.Err() != nil {
			t.Fatalf("stream did not end after the final event; got %d events", len(got))
		}
		if len(got) < 2 || !got[len(got)-1].Final() {
			t.Errorf("got %d events, want the queued one and a final one", len(got))
		}
	})
	t.Run("A Retry", func(t *testing.T) {
		got, err := jobs.Retry(ctx, a, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.UserID != userA || got.RetryOf == nil || *got.RetryOf != g.ID {
			t.Errorf("got generation of %v retrying %v, want of %v retrying %v", got.UserID, got.RetryOf, userA, g.ID)
		}
	})
}
