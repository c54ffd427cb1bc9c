package generate_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/generate"
	"github.com/fastimage/api/internal/generate/provider"
)

// counted is a provider that counts its calls.
type counted struct {
	provider.Provider
	calls atomic.Int32
}

func (c *counted) Generate(ctx context.Context, r provider.Request, report func(provider.Progress), emit func(provider.Output) error) error {
	c.calls.Add(1)
	return c.Provider.Generate(ctx, r, report, emit)
}

// expireHold makes a job's credits hold run past its expiry, as it does when
// the job waits in a full queue longer than the hold's lifetime.
func expireHold(t *testing.T, w *workers, id uuid.UUID) {
	t.Helper()
	exec(t, w.db, `UPDATE credit_holds SET expires_at = now() - interval '1 hour'
		WHERE id = (SELECT hold_id FROM generations WHERE id = ?) AND status = 'held'`, id)
}

// TestSweeperLeavesTheHoldsOfLiveJobs: the holds of a job still queued and
// of one running have expired, but the sweeper leaves them: a hold lives as
// long as its job. Both jobs then run once each and are charged once.
func TestSweeperLeavesTheHoldsOfLiveJobs(t *testing.T) {
	t.Parallel()
	w := newWorkers(t)
	ctx := context.Background()
	p := &counted{Provider: fast()}
	a := w.replicas.start(t, config.Generate{Workers: 1, Lease: lease}, p, 20*time.Millisecond)

	queued := submit(t, a.Jobs, newUser(t, w.db))
	running := submit(t, a.Jobs, newUser(t, w.db))
	if _, err := w.db.ExecContext(ctx, "UPDATE generations SET queued_at = queued_at - interval '1 minute' WHERE id = ?", running.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Jobs.Claim(ctx, "dead"); err != nil || got == nil || got.ID != running.ID {
		t.Fatalf("claim: got %s (%v), want %v", claimOf(got), err, running.ID)
	}
	expireHold(t, w, queued.ID)
	expireHold(t, w, running.ID)

	if n, err := a.Ledger.ReleaseExpiredHolds(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("sweeper: released %d (%v), want 0 while their jobs are queued or running", n, err)
	}
	for _, g := range []*generate.Generation{queued, running} {
		if l := ledgerOf(t, w.db, a.Jobs, g.ID); l.HoldStatus != "held" || l.Held != int64(g.CreditsPerImage) {
			t.Errorf("after the sweep: got hold %s, %d held; want held, %d", l.HoldStatus, l.Held, g.CreditsPerImage)
		}
	}

	expire(t, w.db, running.ID) // its worker died; another takes it over
	stop := runWorkers(t, a.Jobs, "worker")
	waitStatus(t, w.db, queued.ID, generate.StatusSucceeded)
	waitStatus(t, w.db, running.ID, generate.StatusSucceeded)
	stop()
	succeededOnce(t, ledgerOf(t, w.db, a.Jobs, queued.ID), int64(queued.CreditsPerImage), 1)
	succeededOnce(t, ledgerOf(t, w.db, a.Jobs, running.ID), int64(running.CreditsPerImage), 2)
	if n := p.calls.Load(); n != 2 {
		t.Errorf("provider calls: got %d, want 2 (one per job)", n)
	}
}

// TestSweeperReleasesTheHoldsOfEndedJobs: an expired hold whose job is over
// without having resolved it, or gone, is released by the sweeper.
func TestSweeperReleasesTheHoldsOfEndedJobs(t *testing.T) {
	t.Parallel()
	w := newWorkers(t)
	ctx := context.Background()
	a := w.replicas.start(t, config.Generate{}, nil, 20*time.Millisecond)
	user := newUser(t, w.db)
	ended := submit(t, a.Jobs, user)
	exec(t, w.db, "UPDATE generations SET status = 'failed', finished_at = now() WHERE id = ?", ended.ID)
	expireHold(t, w, ended.ID)
	gone, err := a.Ledger.Hold(ctx, credit.HoldRequest{
		UserID: user, Amount: 3, TTL: time.Minute, Ref: credit.Ref{Type: "Generation", ID: uuid.NewString()},
	})
	if err != nil {
		t.Fatal(err)
	}

	n, err := a.Ledger.ReleaseExpiredHolds(ctx, time.Now().Add(time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("sweeper: released %d (%v), want 2", n, err)
	}
	if l := ledgerOf(t, w.db, a.Jobs, ended.ID); l.HoldStatus != "released" || l.Held != 0 {
		t.Errorf("ended job: got hold %s, %d held; want released, 0", l.HoldStatus, l.Held)
	}
	if err := a.Ledger.Release(ctx, gone.ID); apperr.CodeOf(err) != apperr.Conflict {
		t.Errorf("release of the gone job's hold after the sweep: got %v, want %s", err, apperr.Conflict)
	}
}

// TestJobWhoseHoldWasReleasedEndsOnce: when a job's hold was released
// before it ended, the job is not run again and again: it is charged once
// from the available credits, or, when they no longer cover it, fails once
// with INSUFFICIENT_CREDITS, charging nothing.
func TestJobWhoseHoldWasReleasedEndsOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		spendMore int64 // credits spent elsewhere after the release
		want      generate.Status
	}{
		{"credits cover it", 0, generate.StatusSucceeded},
		{"credits no longer cover it", 998, generate.StatusFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorkers(t)
			ctx := context.Background()
			p := &counted{Provider: fast()}
			a := w.replicas.start(t, config.Generate{Workers: 1, Lease: lease}, p, 20*time.Millisecond)
			user := newUser(t, w.db)
			g := submit(t, a.Jobs, user)
			cost := int64(g.CreditsPerImage)
			if err := a.Ledger.Release(ctx, *g.HoldID); err != nil {
				t.Fatal(err)
			}
			if tc.spendMore > 0 {
				if _, err := a.Ledger.Post(ctx, credit.Posting{UserID: user, Amount: -tc.spendMore, Kind: credit.Spend, IdempotencyKey: "elsewhere"}); err != nil {
					t.Fatal(err)
				}
			}

			stop := runWorkers(t, a.Jobs, "worker")
			waitStatus(t, w.db, g.ID, tc.want)
			stop()
			l := ledgerOf(t, w.db, a.Jobs, g.ID)
			if n := p.calls.Load(); n != 1 || l.Attempts != 1 || len(l.Finals) != 1 {
				t.Errorf("got %d provider calls, %d attempts, final events %v; want 1, 1, one", n, l.Attempts, l.Finals)
			}
			if l.HoldStatus != "released" || l.Held != 0 {
				t.Errorf("hold: got %s, %d held; want released, 0", l.HoldStatus, l.Held)
			}
			switch tc.want {
			case generate.StatusSucceeded:
				if want := []generate.EventData{generate.Succeeded{Cost: cost, Outputs: 1}}; !slices.Equal(l.Finals, want) {
					t.Errorf("final events: got %v, want %v", l.Finals, want)
				}
				if l.Spends != 1 || l.Spent != cost || l.Balance != 1000-cost {
					t.Errorf("credits: got %d SPEND entries of %d, balance %d; want 1 of %d, %d", l.Spends, l.Spent, l.Balance, cost, 1000-cost)
				}
			default:
				if f, ok := last(l.Finals).(generate.Failed); !ok || f.Code != string(credit.InsufficientCredits) {
					t.Errorf("final event: got %+v, want FAILED with code %s", last(l.Finals), credit.InsufficientCredits)
				}
				if l.Spends != 0 || l.Balance != 1000-tc.spendMore {
					t.Errorf("credits: got %d SPEND entries, balance %d; want none, %d", l.Spends, l.Balance, 1000-tc.spendMore)
				}
			}
			if l.WorkStatus != string(tc.want) {
				t.Errorf("work status: got %q, want %q", l.WorkStatus, tc.want)
			}
		})
	}
}

func last(evs []generate.EventData) generate.EventData {
	if len(evs) == 0 {
		return nil
	}
	return evs[len(evs)-1]
}
