package drills

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/db/dbtest"
)

// Postgres (a private cluster the drill starts, never the machine's shared
// one) is stopped and started again while users generate and follow their
// generations: the server answers /readyz again once it is back, the
// subscriptions carry on (resubscribing after the last seq seen where the
// server ended them), and no committed event or credit is lost and no
// generation is left stuck.
func TestDrillPostgresRestart(t *testing.T) {
	t.Parallel()
	down := span(time.Second, 5*time.Second)
	pg := startPostgres(t)
	vdb, err := db.Open(context.Background(), dbtest.Config(pg.url), "drills")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { vdb.Close() }()
	env := []string{"DATABASE_URL=" + pg.url}
	api := startServe(t, "api", env, settings(t.TempDir(), "--migrate", "--workers", "2", "--local-step-delay", "50ms")...)
	u := signUp(t, newClient(api.url), vdb)

	// The load stops before the drill's end; the subscribers follow on
	// until their generations end.
	ctx, stop := stopper(t)
	followCtx, stopFollowing := stopper(t)
	var (
		mu        sync.Mutex
		fs        []*follower
		refused   = map[string]int{}
		accepted  = map[string]time.Time{}
		wg        sync.WaitGroup
		submitted int
	)
	// Load: a generation every 150 ms, each followed by its own socket; a
	// refused submission is sent again with the same idempotency key, as a
	// client should.
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			key := uuid.NewString()
			for ctx.Err() == nil {
				id, err := u.submit(ctx, fmt.Sprintf("drill: postgres restart %d", i), key)
				if err != nil {
					mu.Lock()
					refused[errCode(err)]++
					mu.Unlock()
					time.Sleep(100 * time.Millisecond)
					continue
				}
				mu.Lock()
				if _, seen := accepted[id]; !seen {
					accepted[id] = time.Now()
					fs = append(fs, follow(followCtx, id, u.api.token, func() string { return api.url }))
					submitted++
				}
				mu.Unlock()
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(150 * time.Millisecond):
			}
		}
	})
	time.Sleep(span(2*time.Second, 5*time.Second))
	mu.Lock()
	before := len(fs)
	mu.Unlock()

	stopped := time.Now()
	pg.ctl(t, "stop", "-m", "fast")
	time.Sleep(down)
	pg.start(t)
	restarted := time.Now()
	readyAgain := waitFor(t, time.Minute, "/readyz to answer 200 again", func() bool { return newClient(api.url).ready() })
	// A generation submitted after the restart is accepted and runs.
	var firstAccepted time.Duration
	waitFor(t, time.Minute, "a generation submitted after the restart to be accepted", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, at := range accepted {
			if at.After(restarted) {
				firstAccepted = at.Sub(restarted)
				return true
			}
		}
		return false
	})
	time.Sleep(span(2*time.Second, 5*time.Second))
	stop()
	wg.Wait()

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
	stopFollowing()
	// The drill's own pool still holds connections the restart ended.
	vdb.Close()
	if vdb, err = db.Open(context.Background(), dbtest.Config(pg.url), "drills"); err != nil {
		t.Fatal(err)
	}
	keys := make([]uuid.UUID, len(fs))
	resumes := 0
	for i, f := range fs {
		keys[i] = generationKey(t, f.gen)
		resumes += f.resumes
	}
	a := auditGenerations(t, vdb, u.id, keys)
	lostRecv, recv := received(t, a, fs)
	var codes []string
	for c, n := range refused {
		codes = append(codes, fmt.Sprintf("%d %s", n, c))
	}
	sort.Strings(codes)
	recovery := max(readyAgain, firstAccepted)
	t.Logf("Postgres down for %v (stop at %s); ready %v after it was back", restarted.Sub(stopped).Round(time.Millisecond), stopped.Format(time.TimeOnly), readyAgain.Round(time.Millisecond))
	report(t, fmt.Sprintf("restart Postgres under load (down %v)", down), a.lost()+lostRecv,
		fmt.Sprintf("%s; %s; %d generations (%d before the restart), %d resubscriptions; submissions refused meanwhile: %v",
			a.summary(), recv, submitted, before, resumes, codes), recovery)
}

// errCode is the code at the head of an error from user.submit, or
// TRANSPORT when no GraphQL answer came.
func errCode(err error) string {
	if code, _, ok := strings.Cut(err.Error(), ":"); ok && code != "" && code == strings.ToUpper(code) && !strings.Contains(code, " ") {
		return code
	}
	return "TRANSPORT"
}

// postgres is a private cluster in a temporary folder, on a free port.
type postgres struct {
	bin, data string
	port      int
	url       string
	cred      *syscall.Credential // PostgreSQL refuses to run as root
}

// startPostgres creates and starts a private cluster with initdb and
// pg_ctl from the newest /usr/lib/postgresql/*/bin; it is stopped and
// removed when the test ends.
func startPostgres(t *testing.T) *postgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		t.Fatal("this drill starts a private PostgreSQL cluster and needs its server programs (initdb, pg_ctl) in /usr/lib/postgresql/<version>/bin: install the postgresql package (.ci/ensure-postgres does, as root)")
	}
	sort.Strings(bins)
	pg := &postgres{bin: filepath.Dir(bins[len(bins)-1]), port: freePort(t)}
	root, err := os.MkdirTemp("", "fastimage-drill-pg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	pg.data = filepath.Join(root, "data")
	if err := os.Mkdir(pg.data, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() == 0 {
		u, err := osuser.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, the drill runs PostgreSQL as the user postgres, which is missing: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		pg.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(pg.data, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	pg.run(t, "initdb", "-D", pg.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	pg.start(t)
	t.Cleanup(func() { _ = pg.command("pg_ctl", "-D", pg.data, "-m", "immediate", "-w", "stop").Run() })
	pg.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.port)
	return pg
}

func (pg *postgres) start(t *testing.T) {
	t.Helper()
	pg.ctl(t, "-l", filepath.Join(pg.data, "server.log"), "-t", "60",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off", pg.port, pg.data), "start")
}

// ctl runs pg_ctl on the cluster and waits for it to finish its job.
func (pg *postgres) ctl(t *testing.T, args ...string) {
	t.Helper()
	pg.run(t, "pg_ctl", append([]string{"-D", pg.data, "-w"}, args...)...)
}

func (pg *postgres) run(t *testing.T, program string, args ...string) {
	t.Helper()
	if out, err := pg.command(program, args...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(pg.data, "server.log"))
		t.Fatalf("%s %v: %v\n%s\nserver log:\n%s", program, args, err, out, log)
	}
}

func (pg *postgres) command(program string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(pg.bin, program), args...)
	cmd.Dir = pg.data
	if pg.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	}
	return cmd
}
