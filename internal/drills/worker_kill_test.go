package drills

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/db/dbtest"
)

// A worker process killed with SIGKILL in the middle of its jobs: once its
// lease runs out another worker process takes them over, and every
// generation ends SUCCEEDED exactly once, is charged once, and its
// subscribers (on the API process, which stayed up) see events 1, 2, 3 …
// with nothing missing or repeated.
func TestDrillWorkerKilled(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.NewURL(t)
	vdb, err := db.Open(context.Background(), dbtest.Config(dbURL), "drills")
	if err != nil {
		t.Fatal(err)
	}
	defer vdb.Close()
	env := []string{"DATABASE_URL=" + dbURL}
	flags := settings(t.TempDir(), "--local-step-delay", "300ms")
	api := startServe(t, "api", env, append(flags, "--workers", "0")...)
	workers := size(2, 4)
	doomed := startWorker(t, "worker A", env, append(flags, "--workers", fmt.Sprint(workers))...)

	u := signUp(t, newClient(api.url), vdb)
	ctx, stop := stopper(t)
	jobs := size(2, 4) * workers
	var gens []string
	var fs []*follower
	for i := range jobs {
		id := u.mustSubmit(t, fmt.Sprintf("drill: worker killed %d", i))
		gens = append(gens, id)
		fs = append(fs, follow(ctx, id, u.api.token, func() string { return api.url }))
	}
	// Kill worker A once it has started a full round of jobs and is in the
	// middle of them.
	waitFor(t, time.Minute, "worker A to be running its jobs", func() bool {
		var n int
		if err := vdb.NewRaw(`SELECT count(*) FROM generations WHERE status = 'running' AND progress > 0.2`).Scan(ctx, &n); err != nil {
			t.Fatal(err)
		}
		return n == workers
	})
	var running []uuid.UUID
	if err := vdb.NewRaw(`SELECT id FROM generations WHERE status = 'running'`).Scan(ctx, &running); err != nil {
		t.Fatal(err)
	}
	doomed.kill()
	killed := time.Now()
	startWorker(t, "worker B", env, append(flags, "--workers", fmt.Sprint(workers))...)

	if !eventually(2*time.Minute, func() bool {
		for _, f := range fs {
			if !f.finished() {
				return false
			}
		}
		return true
	}) {
		t.Errorf("after 2m some subscribers have not seen their generation end")
	}
	// Recovery: from the kill to the end of the last job that was running
	// on the killed worker.
	var lastEnd time.Time
	if err := vdb.NewRaw(`SELECT max(finished_at) FROM generations WHERE id IN (?)`, bun.In(running)).Scan(context.Background(), &lastEnd); err != nil {
		t.Fatal(err)
	}
	recovery := lastEnd.Sub(killed)
	stop()

	keys := make([]uuid.UUID, len(gens))
	for i, g := range gens {
		keys[i] = generationKey(t, g)
	}
	a := auditGenerations(t, vdb, u.id, keys)
	lostRecv, recv := received(t, a, fs)
	var retaken int
	if err := vdb.NewRaw(`SELECT count(*) FROM generations WHERE id IN (?) AND attempts = 2`, bun.In(running)).Scan(context.Background(), &retaken); err != nil {
		t.Fatal(err)
	}
	if a.statuses["succeeded"] != jobs {
		t.Errorf("statuses %v, want all %d succeeded", a.statuses, jobs)
	}
	if retaken != len(running) {
		t.Errorf("%d of the %d jobs running on the killed worker were taken over on a second attempt", retaken, len(running))
	}
	report(t, fmt.Sprintf("kill -9 a worker (%d jobs, %d mid-run)", jobs, len(running)), a.lost()+lostRecv,
		a.summary()+"; "+recv, recovery)
}
