package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/apperr"
)

// fakeCheck is a batch recheck that answers what answer says, and counts
// its calls and the ids they carried.
type fakeCheck struct {
	mu     sync.Mutex
	calls  int
	ids    int
	answer func(ids []uuid.UUID) (map[uuid.UUID]error, error)
}

func (f *fakeCheck) check(_ context.Context, ids []uuid.UUID) (map[uuid.UUID]error, error) {
	f.mu.Lock()
	f.calls++
	f.ids += len(ids)
	answer := f.answer
	f.mu.Unlock()
	if answer == nil {
		return nil, nil
	}
	return answer(ids)
}

func (f *fakeCheck) count() (calls, ids int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.ids
}

func sessionViewer() *account.Viewer {
	return &account.Viewer{User: &account.User{ID: uuid.New()}, Session: &account.Session{ID: uuid.New()}}
}

// watched is one connection joined to a watcher.
type watched struct {
	end   *sessionEnd
	ended atomic.Bool
	stop  func()
}

func watch(w *sessionWatcher, v *account.Viewer) *watched {
	c := &watched{end: sessionEndFrom(withSessionEnd(context.Background(), true))}
	c.stop = w.join(v, c.end, func() { c.ended.Store(true) })
	return c
}

func (w *sessionWatcher) state() (groups int, running bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.groups), w.running
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Connections of one session share a group; the watcher's goroutine runs
// while any group is left and stops with the last, so that a server
// nothing streams from holds none.
func TestSessionWatcherRunsOnlyWhileWatching(t *testing.T) {
	f := &fakeCheck{}
	w := newSessionWatcher(time.Hour, f.check, f.check, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	v := sessionViewer()
	a, b := watch(w, v), watch(w, v)
	if groups, running := w.state(); groups != 1 || !running {
		t.Fatalf("two connections of one session: got %d groups, running %v; want 1, true", groups, running)
	}
	a.stop()
	if groups, _ := w.state(); groups != 1 {
		t.Fatalf("after one left: got %d groups, want 1", groups)
	}
	b.stop()
	b.stop() // twice is harmless
	eventually(t, "the goroutine to stop", func() bool { groups, running := w.state(); return groups == 0 && !running })

	c := watch(w, sessionViewer())
	if _, running := w.state(); !running {
		t.Fatal("a new connection did not start the goroutine again")
	}
	c.stop()
	eventually(t, "the goroutine to stop again", func() bool { _, running := w.state(); return !running })
	if calls, _ := f.count(); calls != 0 {
		t.Errorf("got %d checks, want none (no tick, no ring)", calls)
	}
}

// A ring checks its group alone, in one query; rings while that check
// runs add one more check, not one each.
func TestSessionWatcherCoalescesRings(t *testing.T) {
	started, release := make(chan struct{}, 10), make(chan struct{})
	f := &fakeCheck{answer: func([]uuid.UUID) (map[uuid.UUID]error, error) {
		started <- struct{}{}
		<-release
		return nil, nil
	}}
	w := newSessionWatcher(time.Hour, f.check, f.check, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	v := sessionViewer()
	c := watch(w, v)
	defer c.stop()
	defer watch(w, sessionViewer()).stop() // another group, not to be checked
	g := w.groups[watchKey{id: v.Session.ID}]

	w.ring(g)
	<-started
	for range 5 {
		w.ring(g)
	}
	close(release)
	eventually(t, "the second check", func() bool { calls, _ := f.count(); return calls == 2 })
	time.Sleep(50 * time.Millisecond)
	if calls, ids := f.count(); calls != 2 || ids != 2 {
		t.Errorf("got %d checks of %d ids, want 2 of 1 each", calls, ids)
	}
}

// A check the database cannot answer ends nothing and is logged; a
// verdict ends every connection of that session, and only those.
func TestSessionWatcherEndsOnlyOnAVerdict(t *testing.T) {
	var logs strings.Builder
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil))
	v, other := sessionViewer(), sessionViewer()
	var outage atomic.Bool
	outage.Store(true)
	f := &fakeCheck{}
	f.answer = func([]uuid.UUID) (map[uuid.UUID]error, error) {
		if outage.Load() {
			return nil, fmt.Errorf("check sessions: %w", errors.New("connection refused"))
		}
		return map[uuid.UUID]error{v.Session.ID: apperr.Errorf(apperr.Unauthenticated, "Your session has ended.")}, nil
	}
	w := newSessionWatcher(time.Hour, f.check, f.check, nil, log)
	a, b, c := watch(w, v), watch(w, v), watch(w, other)
	defer c.stop()
	g := w.groups[watchKey{id: v.Session.ID}]

	w.ring(g)
	eventually(t, "the check", func() bool { calls, _ := f.count(); return calls == 1 })
	eventually(t, "the warning", func() bool {
		logMu.Lock()
		defer logMu.Unlock()
		return strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "could not recheck sessions")
	})
	if a.ended.Load() || b.ended.Load() || a.end.err() != nil {
		t.Fatal("a check that failed for want of the database ended a connection")
	}

	outage.Store(false)
	w.ring(g)
	eventually(t, "both connections of the session to end", func() bool { return a.ended.Load() && b.ended.Load() })
	for _, x := range []*watched{a, b} {
		if got := apperr.CodeOf(x.end.err()); got != apperr.Unauthenticated {
			t.Errorf("got %q, want UNAUTHENTICATED", got)
		}
	}
	if c.ended.Load() || c.end.err() != nil {
		t.Error("the other session's connection ended too")
	}
	if groups, _ := w.state(); groups != 1 {
		t.Errorf("got %d groups, want 1 (the other session's)", groups)
	}
	a.stop() // after its group ended: harmless
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
