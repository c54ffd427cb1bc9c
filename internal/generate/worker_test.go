package generate_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/feed"
	"github.com/fastimage/api/internal/generate"
	"github.com/fastimage/api/internal/generate/provider"
	localprovider "github.com/fastimage/api/internal/generate/provider/local"
)

// deadline bounds every wait for a worker to do something.
const deadline = 10 * time.Second

// lease is short so that heartbeats (every lease/3) come quickly.
const lease = 600 * time.Millisecond

// blocker stands in for an AI provider that is still working: it works
// until its context ends, and says when it started and why it stopped.
type blocker struct {
	started chan struct{}
	stopped chan error
}

func newBlocker() *blocker {
	return &blocker{started: make(chan struct{}, 8), stopped: make(chan error, 8)}
}

func (b *blocker) Name() string { return "blocker" }

func (b *blocker) Generate(ctx context.Context, _ provider.Request, _ func(provider.Progress), _ func(provider.Output) error) error {
	b.started <- struct{}{}
	<-ctx.Done()
	b.stopped <- context.Cause(ctx)
	return ctx.Err()
}

// workers builds replicas that share one fresh database and bucket.
type workers struct {
	db       *bun.DB
	replicas *replicas
}

func newWorkers(t *testing.T) *workers {
	t.Helper()
	db := dbtest.New(t)
	return &workers{db: db, replicas: newReplicas(t, db)}
}

// service returns a replica's generation service with p as its provider.
func (w *workers) service(t *testing.T, gen config.Generate, p provider.Provider) *generate.Service {
	t.Helper()
	if gen.Lease == 0 {
		gen.Lease = lease
	}
	return w.replicas.start(t, gen, p, 20*time.Millisecond).Jobs
}

// fast is a provider that makes its images at once.
func fast() provider.Provider {
	return localprovider.New(localprovider.Config{Steps: 2, StepDelay: -1})
}

// runWorkers runs svc's workers as owner until the returned stop is called;
// stop waits for them to return.
func runWorkers(t *testing.T, svc *generate.Service, owner string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.RunWorkers(ctx, owner)
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(deadline):
			t.Fatalf("workers %s did not stop after their context ended", owner)
		}
	}
	t.Cleanup(stop)
	return stop
}

func submit(t *testing.T, svc *generate.Service, user uuid.UUID) *generate.Generation {
	t.Helper()
	g, err := svc.Submit(context.Background(), actor.Actor{UserID: user, Verified: true, Email: "u@example.com"},
		generate.Request{Kind: generate.KindGenerate, Prompt: "a lighthouse at dusk", Width: 64, Height: 64})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func exec(t *testing.T, db *bun.DB, query string, args ...any) {
	t.Helper()
	res, err := db.ExecContext(context.Background(), query, args...)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("%s: got %d rows (%v), want 1", query, n, err)
	}
}

// expire makes a job's lease run out, as it does when its worker dies.
func expire(t *testing.T, db *bun.DB, id uuid.UUID) {
	t.Helper()
	exec(t, db, "UPDATE generations SET lease_expires_at = now() - interval '1 second' WHERE id = ? AND status = 'running'", id)
}

func generation(t *testing.T, db *bun.DB, id uuid.UUID) *generate.Generation {
	t.Helper()
	var g generate.Generation
	if err := db.NewSelect().Model(&g).Where("id = ?", id).Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &g
}

// waitStatus polls the database until the job has status.
func waitStatus(t *testing.T, db *bun.DB, id uuid.UUID, status generate.Status) *generate.Generation {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		g := generation(t, db, id)
		if g.Status == status {
			return g
		}
		if time.Now().After(end) {
			t.Fatalf("generation status: got %q after %v, want %q", g.Status, deadline, status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(deadline):
		t.Fatalf("waited %v for %s", deadline, what)
		panic("unreachable")
	}
}

// ledger is what a job left in the events, the credits and the feed.
type ledger struct {
	Finals     []generate.EventData // final events, decoded
	Last       generate.EventKind   // kind of the last event
	HoldStatus string
	Spends     int   // SPEND entries for the job
	Spent      int64 // their total, positive
	// Causes are the causes of the owner's credit feed entries about the
	// job, in order.
	Causes []string
	// Statuses are the generation statuses the owner's feed was told.
	Statuses         []string
	WorkStatus       string
	Balance, Held    int64
	LeaseOwner       *string
	Attempts         int
	GenerationStatus generate.Status
}

func ledgerOf(t *testing.T, db *bun.DB, svc *generate.Service, id uuid.UUID) ledger {
	t.Helper()
	ctx := context.Background()
	g := generation(t, db, id)
	l := ledger{LeaseOwner: g.LeaseOwner, Attempts: g.Attempts, GenerationStatus: g.Status}

	evs, err := svc.EventsAfter(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		if e.Seq != i+1 {
			t.Errorf("event %d: got seq %d, want %d", i, e.Seq, i+1)
		}
		d, err := e.Decode()
		if err != nil {
			t.Fatal(err)
		}
		if e.Final() {
			l.Finals = append(l.Finals, d)
		}
		l.Last = e.Kind
	}
	if err := db.NewRaw("SELECT status FROM credit_holds WHERE id = ?", *g.HoldID).Scan(ctx, &l.HoldStatus); err != nil {
		t.Fatal(err)
	}
	if err := db.NewRaw(`SELECT count(*), coalesce(-sum(amount), 0) FROM credit_entries
		WHERE kind = 'SPEND' AND reference_type = 'Generation' AND reference_id = ?`, id.String()).Scan(ctx, &l.Spends, &l.Spent); err != nil {
		t.Fatal(err)
	}
	if err := db.NewRaw("SELECT balance, held FROM credit_accounts WHERE user_id = ?", g.UserID).Scan(ctx, &l.Balance, &l.Held); err != nil {
		t.Fatal(err)
	}
	if err := db.NewRaw("SELECT status FROM works WHERE id = ?", g.WorkID).Scan(ctx, &l.WorkStatus); err != nil {
		t.Fatal(err)
	}
	var entries []feed.Entry
	if err := db.NewSelect().Model(&entries).Where("user_id = ?", g.UserID).Order("seq").Scan(ctx); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p, err := e.Decode()
		if err != nil {
			t.Fatal(err)
		}
		switch p := p.(type) {
		case feed.CreditsChanged:
			if p.RefType == "Generation" && p.RefID == id.String() {
				l.Causes = append(l.Causes, p.Cause)
			}
		case feed.GenerationChanged:
			if p.GenerationID == id {
				l.Statuses = append(l.Statuses, p.Status)
			}
		}
	}
	return l
}

// untouched checks that a running job still held by owner has no end: no
// final event, its credits still held and nothing spent.
func untouched(t *testing.T, l ledger, owner string, attempts int) {
	t.Helper()
	if l.GenerationStatus != generate.StatusRunning {
		t.Errorf("status: got %q, want %q", l.GenerationStatus, generate.StatusRunning)
	}
	if l.LeaseOwner == nil || *l.LeaseOwner != owner {
		t.Errorf("lease owner: got %v, want %q", deref(l.LeaseOwner), owner)
	}
	if l.Attempts != attempts {
		t.Errorf("attempts: got %d, want %d", l.Attempts, attempts)
	}
	if len(l.Finals) != 0 {
		t.Errorf("final events: got %v, want none", l.Finals)
	}
	if l.HoldStatus != "held" {
		t.Errorf("hold: got %q, want held", l.HoldStatus)
	}
	if l.Spends != 0 {
		t.Errorf("SPEND entries: got %d, want none", l.Spends)
	}
	if !slices.Equal(l.Causes, []string{"HOLD"}) {
		t.Errorf("credit feed causes: got %v, want [HOLD]", l.Causes)
	}
	if l.WorkStatus != string(generate.StatusRunning) {
		t.Errorf("work status: got %q, want %q", l.WorkStatus, generate.StatusRunning)
	}
}

// succeededOnce checks that a job ended once, in success, and was charged
// once.
func succeededOnce(t *testing.T, l ledger, cost int64, attempts int) {
	t.Helper()
	if l.GenerationStatus != generate.StatusSucceeded || l.WorkStatus != string(generate.StatusSucceeded) {
		t.Errorf("status: got generation %q, work %q, want %q", l.GenerationStatus, l.WorkStatus, generate.StatusSucceeded)
	}
	if want := []generate.EventData{generate.Succeeded{Cost: cost, Outputs: 1}}; !slices.Equal(l.Finals, want) || l.Last != generate.EventSucceeded {
		t.Errorf("final events: got %v (last %s), want %v last", l.Finals, l.Last, want)
	}
	if l.Attempts != attempts {
		t.Errorf("attempts: got %d, want %d", l.Attempts, attempts)
	}
	if l.LeaseOwner != nil {
		t.Errorf("lease owner: got %q, want none", *l.LeaseOwner)
	}
	if l.HoldStatus != "captured" || l.Spends != 1 || l.Spent != cost {
		t.Errorf("credits: got hold %s, %d SPEND entries of %d in all; want captured, 1 of %d", l.HoldStatus, l.Spends, l.Spent, cost)
	}
	if !slices.Equal(l.Causes, []string{"HOLD", "SPEND"}) {
		t.Errorf("credit feed causes: got %v, want [HOLD SPEND]", l.Causes)
	}
	if l.Balance != 1000-cost || l.Held != 0 {
		t.Errorf("account: got balance %d, held %d; want %d, 0", l.Balance, l.Held, 1000-cost)
	}
	if n := countOf(l.Statuses, string(generate.StatusSucceeded)); n != 1 || l.Statuses[len(l.Statuses)-1] != string(generate.StatusSucceeded) {
		t.Errorf("feed statuses: got %v, want one succeeded, last", l.Statuses)
	}
}

func countOf(xs []string, x string) int {
	n := 0
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}

// claimOf names what a claim returned.
func claimOf(g *generate.Generation) string {
	if g == nil {
		return "nothing"
	}
	return fmt.Sprintf("%v at attempt %d", g.ID, g.Attempts)
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// TestWorkerThatLosesItsLeaseLeavesTheJob: while worker A runs a job,
// worker B takes it over (as after A's lease expired). A's heartbeat
// notices, its provider call ends with errLeaseLost, and it neither ends
// the job nor touches its credits; a finish by A is refused before and after
// B completes the job, which ends once and is charged once.
func TestWorkerThatLosesItsLeaseLeavesTheJob(t *testing.T) {
	t.Parallel()
	w := newWorkers(t)
	ctx := context.Background()
	user := newUser(t, w.db)
	slow := newBlocker()
	a := w.service(t, config.Generate{}, slow)
	g := submit(t, a, user)
	cost := int64(g.CreditsPerImage)

	claimed, err := a.Claim(ctx, "worker-a")
	if err != nil {
		t.Fatal(err)
	}
	if claimed == nil || claimed.ID != g.ID || claimed.Attempts != 1 {
		t.Fatalf("claim: got %s, want %v at attempt 1", claimOf(claimed), g.ID)
	}
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		a.Run(ctx, "worker-a", claimed)
	}()
	receive(t, slow.started, "worker A's provider call")

	exec(t, w.db, `UPDATE generations SET lease_owner = 'worker-b', lease_expires_at = now() + interval '1 minute',
		attempts = attempts + 1, updated_at = now() WHERE id = ?`, g.ID)
	if cause := receive(t, slow.stopped, "worker A to stop after losing its lease"); !errors.Is(cause, generate.ErrLeaseLost) {
		t.Errorf("A's run ended with %v, want %v", cause, generate.ErrLeaseLost)
	}
	receive(t, ran, "worker A's run to return")
	untouched(t, ledgerOf(t, w.db, a, g.ID), "worker-b", 2)

	t.Run("finish by the old owner is refused", func(t *testing.T) {
		a.Finish(ctx, "worker-a", claimed, generate.StatusSucceeded, nil)
		a.Finish(ctx, "worker-a", claimed, generate.StatusCanceled, nil)
		untouched(t, ledgerOf(t, w.db, a, g.ID), "worker-b", 2)
	})

	b := w.service(t, config.Generate{}, fast())
	b.Run(ctx, "worker-b", generation(t, w.db, g.ID))
	succeededOnce(t, ledgerOf(t, w.db, b, g.ID), cost, 2)

	t.Run("no finish after the job ended, by either owner", func(t *testing.T) {
		a.Finish(ctx, "worker-a", claimed, generate.StatusSucceeded, nil)
		b.Finish(ctx, "worker-b", claimed, generate.StatusSucceeded, nil)
		succeededOnce(t, ledgerOf(t, w.db, b, g.ID), cost, 2)
	})
}

// TestExpiredLeaseIsTakenOver: worker A claims a job and dies. While its
// lease lasts no one else takes the job; once it expires worker B claims it
// (attempt 2) and the job ends once, charged once.
func TestExpiredLeaseIsTakenOver(t *testing.T) {
	t.Parallel()
	w := newWorkers(t)
	ctx := context.Background()
	user := newUser(t, w.db)
	a := w.service(t, config.Generate{Lease: time.Minute}, newBlocker())
	g := submit(t, a, user)

	if claimed, err := a.Claim(ctx, "worker-a"); err != nil || claimed == nil || claimed.ID != g.ID {
		t.Fatalf("A's claim: got %s (%v), want %v", claimOf(claimed), err, g.ID)
	}
	b := w.service(t, config.Generate{Workers: 1}, fast())
	if got, err := b.Claim(ctx, "worker-b"); err != nil || got != nil {
		t.Fatalf("B's claim of a job under a live lease: got %s (%v), want nothing", claimOf(got), err)
	}

	expire(t, w.db, g.ID)
	stop := runWorkers(t, b, "worker-b")
	waitStatus(t, w.db, g.ID, generate.StatusSucceeded)
	stop()
	l := ledgerOf(t, w.db, b, g.ID)
	succeededOnce(t, l, int64(g.CreditsPerImage), 2)

	evs, err := b.EventsAfter(ctx, g.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var starts []generate.EventData
	for _, e := range evs {
		if e.Kind == generate.EventStarted {
			d, err := e.Decode()
			if err != nil {
				t.Fatal(err)
			}
			starts = append(starts, d)
		}
	}
	if want := []generate.EventData{generate.Started{Attempt: 2}}; !slices.Equal(starts, want) {
		t.Errorf("started events: got %v, want %v", starts, want)
	}
}

// TestJobFailsAfterMaxAttempts: a job whose workers keep dying is tried
// MaxAttempts times; the next worker to claim it fails it with WORKER_LOST
// and releases its credits, charging nothing.
func TestJobFailsAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	w := newWorkers(t)
	ctx := context.Background()
	user := newUser(t, w.db)
	dead := w.service(t, config.Generate{MaxAttempts: 2}, newBlocker())
	g := submit(t, dead, user)

	for attempt := 1; attempt <= 2; attempt++ {
		claimed, err := dead.Claim(ctx, "dead")
		if err != nil {
			t.Fatal(err)
		}
		if claimed == nil || claimed.ID != g.ID || claimed.Attempts != attempt {
			t.Fatalf("claim: got %s, want %v at attempt %d", claimOf(claimed), g.ID, attempt)
		}
		expire(t, w.db, g.ID)
	}

	b := w.service(t, config.Generate{Workers: 1}, fast())
	stop := runWorkers(t, b, "worker-b")
	waitStatus(t, w.db, g.ID, generate.StatusFailed)
	stop()

	l := ledgerOf(t, w.db, b, g.ID)
	if len(l.Finals) != 1 || l.Last != generate.EventFailed {
		t.Fatalf("final events: got %v (last %s), want one FAILED, last", l.Finals, l.Last)
	}
	if f, ok := l.Finals[0].(generate.Failed); !ok || f.Code != "WORKER_LOST" {
		t.Errorf("final event: got %+v, want FAILED with code WORKER_LOST", l.Finals[0])
	}
	got := generation(t, w.db, g.ID)
	if got.ErrorCode == nil || *got.ErrorCode != "WORKER_LOST" || got.Attempts != 3 || got.LeaseOwner != nil {
		t.Errorf("generation: got code %v, %d attempts, owner %v; want WORKER_LOST, 3, none", deref(got.ErrorCode), got.Attempts, deref(got.LeaseOwner))
	}
	if l.WorkStatus != string(generate.StatusFailed) {
		t.Errorf("work status: got %q, want %q", l.WorkStatus, generate.StatusFailed)
	}
	if l.HoldStatus != "released" || l.Spends != 0 {
		t.Errorf("credits: got hold %s and %d SPEND entries, want released and none", l.HoldStatus, l.Spends)
	}
	if !slices.Equal(l.Causes, []string{"HOLD", "RELEASE"}) {
		t.Errorf("credit feed causes: got %v, want [HOLD RELEASE]", l.Causes)
	}
	if l.Balance != 1000 || l.Held != 0 {
		t.Errorf("account: got balance %d, held %d; want 1000, 0", l.Balance, l.Held)
	}
}

// TestShutdownGivesTheJobBack: a worker stopped mid-run (its process shuts
// down) returns its job to the queue at once, without counting the attempt;
// the next worker runs it from there.
func TestShutdownGivesTheJobBack(t *testing.T) {
	t.Parallel()
	w := newWorkers(t)
	user := newUser(t, w.db)
	slow := newBlocker()
	a := w.service(t, config.Generate{Workers: 1}, slow)
	g := submit(t, a, user)

	stopA := runWorkers(t, a, "worker-a")
	receive(t, slow.started, "worker A's provider call")
	if got := generation(t, w.db, g.ID); got.Status != generate.StatusRunning || got.Attempts != 1 {
		t.Fatalf("before shutdown: got %q at attempt %d, want %q at 1", got.Status, got.Attempts, generate.StatusRunning)
	}
	stopA()
	if cause := receive(t, slow.stopped, "worker A's provider call to stop"); !errors.Is(cause, context.Canceled) {
		t.Errorf("A's run ended with %v, want %v", cause, context.Canceled)
	}

	l := ledgerOf(t, w.db, a, g.ID)
	got := generation(t, w.db, g.ID)
	if got.Status != generate.StatusQueued || got.Attempts != 0 || got.LeaseOwner != nil || got.LeaseExpiresAt != nil {
		t.Errorf("after shutdown: got %q, %d attempts, owner %v, lease until %v; want %q, 0, none, none",
			got.Status, got.Attempts, deref(got.LeaseOwner), got.LeaseExpiresAt, generate.StatusQueued)
	}
	if l.WorkStatus != string(generate.StatusQueued) {
		t.Errorf("work status: got %q, want %q like its generation", l.WorkStatus, generate.StatusQueued)
	}
	if len(l.Statuses) == 0 || l.Statuses[len(l.Statuses)-1] != string(generate.StatusQueued) {
		t.Errorf("feed statuses: got %v, want queued last", l.Statuses)
	}
	if len(l.Finals) != 0 || l.HoldStatus != "held" || l.Spends != 0 {
		t.Errorf("after shutdown: got final events %v, hold %s, %d SPEND entries; want none, held, none", l.Finals, l.HoldStatus, l.Spends)
	}

	b := w.service(t, config.Generate{Workers: 1}, fast())
	stopB := runWorkers(t, b, "worker-b")
	waitStatus(t, w.db, g.ID, generate.StatusSucceeded)
	stopB()
	succeededOnce(t, ledgerOf(t, w.db, b, g.ID), int64(g.CreditsPerImage), 1)
}

// A plan's running-jobs limit (user_limits, written by billing while the
// plan is in force) raises how many of the user's jobs run at once.
func TestPlanRaisesTheRunningLimit(t *testing.T) {
	t.Parallel()
	w := newWorkers(t)
	ctx := context.Background()
	user := newUser(t, w.db)
	svc := w.service(t, config.Generate{UserRunningLimit: 1}, newBlocker())
	for range 3 {
		submit(t, svc, user)
	}
	claims := func() int {
		n := 0
		for {
			g, err := svc.Claim(ctx, "worker")
			if err != nil {
				t.Fatal(err)
			}
			if g == nil {
				return n
			}
			n++
		}
	}
	if n := claims(); n != 1 {
		t.Fatalf("with the setting's limit of 1: %d jobs claimed, want 1", n)
	}
	if _, err := w.db.NewRaw("INSERT INTO user_limits (user_id, plan_code, running_jobs_limit) VALUES (?, 'pro', 3)", user).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if n := claims(); n != 2 {
		t.Fatalf("with a plan's limit of 3: %d more jobs claimed, want 2", n)
	}
}
