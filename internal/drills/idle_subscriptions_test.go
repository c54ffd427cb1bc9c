package drills

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/db/dbtest"
)

// Ten thousand sockets, each with one generationEvents subscription to one
// of a hundred queued generations, sit idle; then a worker starts and runs
// every generation at once. Every subscriber receives every event of its
// generation exactly once, in order, through to the end.
func TestDrillIdleSubscriptionsThenBurst(t *testing.T) {
	t.Parallel()
	sockets, gensN := size(400, 10_000), size(20, 100)
	idle := span(time.Second, 30*time.Second)
	dbURL := dbtest.NewURL(t)
	vdb, err := db.Open(context.Background(), dbtest.Config(dbURL), "drills")
	if err != nil {
		t.Fatal(err)
	}
	defer vdb.Close()
	env := []string{"DATABASE_URL=" + dbURL}
	flags := settings(t.TempDir(), "--local-step-delay", "1ms")
	api := startServe(t, "api", env, append(flags, "--workers", "0")...)
	u := signUp(t, newClient(api.url), vdb)
	gens := make([]string, gensN)
	for i := range gens {
		gens[i] = u.mustSubmit(t, fmt.Sprintf("drill: burst %d", i))
	}
	baseRSS := api.rss(t)

	ctx, stop := stopper(t)
	subs := make([]*subscriber, sockets)
	var opened, redials atomic.Int64
	began := time.Now()
	var wg sync.WaitGroup
	next := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range next {
				// A client reconnects after a refusal that says "try again"
				// (1013), or a dial the busy machine did not finish.
				var s *socket
				var err error
				for try := 1; try <= 5; try++ {
					if s, err = dialSocket(ctx, api.url, u.api.token, nil); err == nil {
						break
					}
					redials.Add(1)
					time.Sleep(time.Duration(try) * 200 * time.Millisecond)
				}
				if err != nil {
					t.Errorf("socket %d, 5 tries: %v", i, err)
					continue
				}
				subs[i] = &subscriber{gen: gens[i%gensN], sock: s, done: make(chan struct{})}
				if err := s.subscribe("1", eventsSubscription, map[string]any{"id": subs[i].gen}); err != nil {
					t.Errorf("socket %d: subscribe: %v", i, err)
					continue
				}
				go subs[i].read()
				opened.Add(1)
			}
		})
	}
	for i := range sockets {
		next <- i
	}
	close(next)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	waitFor(t, 2*time.Minute, "every subscriber to get its QUEUED event", func() bool {
		for _, s := range subs {
			if s.count() == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("%d sockets subscribed in %v (%d dials tried again)", opened.Load(), time.Since(began).Round(time.Millisecond), redials.Load())
	time.Sleep(idle)
	idleRSS := api.rss(t)
	t.Logf("server RSS: %.1f MiB before, %.1f MiB with %d idle sockets (%.1f KiB each)",
		float64(baseRSS)/(1<<20), float64(idleRSS)/(1<<20), sockets, float64(idleRSS-baseRSS)/float64(sockets)/1024)

	burst := time.Now()
	startWorker(t, "worker", env, append(flags, "--workers", "16")...)
	waitFor(t, 5*time.Minute, "every subscriber to see its generation end", func() bool {
		for _, s := range subs {
			select {
			case <-s.done:
			default:
				return false
			}
		}
		return true
	})
	recovery := time.Since(burst)
	stop()

	keys := make([]uuid.UUID, gensN)
	for i, g := range gens {
		keys[i] = generationKey(t, g)
	}
	a := auditGenerations(t, vdb, u.id, keys)
	var missing, dup, disorder, broken, delivered int
	for _, s := range subs {
		got, err := s.result()
		if err != nil {
			broken++
			a.problem("%s: %v", s.gen, err)
		}
		delivered += len(got)
		m, d, o := compare(got, a.records[generationKey(t, s.gen)])
		missing, dup, disorder = missing+m, dup+d, disorder+o
	}
	report(t, fmt.Sprintf("%d idle subscriptions, then a burst", sockets), a.lost()+missing+dup+disorder+broken,
		fmt.Sprintf("%s; %d events delivered to %d subscribers: %d missing, %d twice, %d out of order, %d sockets broken",
			a.summary(), delivered, sockets, missing, dup, disorder, broken), recovery)
}

// subscriber is one socket with one generationEvents subscription.
type subscriber struct {
	gen  string
	sock *socket

	mu     sync.Mutex
	events []genEvent
	err    error
	done   chan struct{}
}

func (s *subscriber) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

func (s *subscriber) result() ([]genEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.events, s.err
}

// read takes messages until the final event, or until the socket fails.
func (s *subscriber) read() {
	defer close(s.done)
	defer s.sock.close()
	for {
		var m wsMessage
		if err := s.sock.conn.ReadJSON(&m); err != nil {
			s.mu.Lock()
			s.err = fmt.Errorf("read after %d events: %w", len(s.events), err)
			s.mu.Unlock()
			return
		}
		switch m.Type {
		case "next":
			e, err := decodeEvent(m.Payload)
			s.mu.Lock()
			if err != nil {
				s.err = err
			} else {
				s.events = append(s.events, e)
			}
			s.mu.Unlock()
			if err != nil || e.final() {
				return
			}
		case "ping":
			_ = s.sock.write(wsMessage{Type: "pong"})
		case "error", "complete":
			s.mu.Lock()
			s.err = fmt.Errorf("%s before the final event: %s", m.Type, m.Payload)
			s.mu.Unlock()
			return
		}
	}
}
