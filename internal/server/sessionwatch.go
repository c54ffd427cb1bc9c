package server

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/apikey"
	"github.com/fastimage/api/internal/events"
)

const (
	// recheckBatch bounds the ids one recheck query carries.
	recheckBatch = 1000
	// recheckTimeout bounds one recheck query, so that a database that
	// hangs delays the next checks rather than stopping them for good.
	recheckTimeout = 10 * time.Second
)

// stillValid is a batch recheck (account.Service.StillValidSessions,
// apikey.Service.StillValidKeys): for each id that no longer works, why.
type stillValid func(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]error, error)

// sessionWatcher rechecks the sessions (and API keys) of every open
// streaming connection of a server (see Server.watchSession): all of them
// every interval, a few queries of up to recheckBatch ids each, and one
// group at once when its doorbell rings. Connections of one session (one
// key) share a group, its check and its doorbells; an open connection
// costs a map entry and its stop function. A single goroutine checks, and
// it runs only while there are groups, so that a server that no longer
// streams (one a test is done with) holds none.
type sessionWatcher struct {
	every    time.Duration
	sessions stillValid
	keys     stillValid
	bus      *events.Bus // nil: no doorbells, the interval alone
	log      *slog.Logger

	mu      sync.Mutex
	groups  map[watchKey]*watchGroup
	rung    []*watchGroup // to check next; each at most once (watchGroup.rung)
	running bool          // the goroutine runs; it stops when groups is empty
	wake    chan struct{} // 1-buffered: rung grew, or groups emptied
}

// watchMember is one connection of a group: how it learns why its session
// ended, and how it is then closed.
type watchMember struct {
	end   *sessionEnd
	ended func()
}

// watchKey is what a group checks: a session, or an API key.
type watchKey struct {
	key bool
	id  uuid.UUID
}

// watchGroup is the connections of one session or key.
type watchGroup struct {
	watchKey
	members []watchMember // a slice: a session has one or a few connections
	stops   []func()      // its doorbell subscriptions
	rung    bool          // in sessionWatcher.rung
	gone    bool          // out of the registry: it failed, or emptied
}

func newSessionWatcher(every time.Duration, sessions, keys stillValid, bus *events.Bus, log *slog.Logger) *sessionWatcher {
	if every <= 0 { // a hand-made config without it; config's default
		every = time.Minute
	}
	return &sessionWatcher{
		every: every, sessions: sessions, keys: keys, bus: bus, log: log,
		groups: make(map[watchKey]*watchGroup),
		wake:   make(chan struct{}, 1),
	}
}

// join watches v's session (or key) for a connection until stop is called:
// when it stops working, end learns why and then ended is called.
func (w *sessionWatcher) join(v *account.Viewer, end *sessionEnd, ended func()) (stop func()) {
	k := watchKey{key: v.Key != nil}
	if k.key {
		k.id = v.Key.ID
	} else {
		k.id = v.Session.ID
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	g := w.groups[k]
	if g == nil {
		g = &watchGroup{watchKey: k}
		if w.bus != nil {
			// A key's streams end when it is revoked (its topic) and when
			// its user is suspended (the user's sessions topic, rung then
			// too). The bus calls these after unlocking itself, so taking
			// w.mu in ring cannot deadlock with subscribing under it.
			ring := func() { w.ring(g) }
			g.stops = append(g.stops, w.bus.SubscribeFunc(events.SessionsTopic(v.User.ID.String()), ring))
			if k.key {
				g.stops = append(g.stops, w.bus.SubscribeFunc(apikey.Topic(k.id), ring))
			}
		}
		w.groups[k] = g
		if !w.running {
			w.running = true
			go w.run()
		}
	}
	g.members = append(g.members, watchMember{end, ended})
	return func() { w.leave(g, end) }
}

// leave takes a connection out of its group, and the group out of the
// registry once it has no connection left.
func (w *sessionWatcher) leave(g *watchGroup, end *sessionEnd) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if g.gone {
		return
	}
	g.members = slices.DeleteFunc(g.members, func(m watchMember) bool { return m.end == end })
	if len(g.members) == 0 {
		w.remove(g)
	}
}

// remove takes g out of the registry and hangs up its doorbells; w.mu is
// held.
func (w *sessionWatcher) remove(g *watchGroup) {
	g.gone = true
	delete(w.groups, g.watchKey)
	for _, stop := range g.stops {
		stop()
	}
	if len(w.groups) == 0 {
		w.poke() // so that the goroutine stops now, not at its next tick
	}
}

// ring queues g for a check of its own. Rings while it waits add nothing;
// a ring while it is being checked queues one more check, since that check
// may have read the row before the change the ring announces.
func (w *sessionWatcher) ring(g *watchGroup) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if g.gone || g.rung {
		return
	}
	g.rung = true
	w.rung = append(w.rung, g)
	w.poke()
}

func (w *sessionWatcher) poke() {
	select {
	case w.wake <- struct{}{}:
	default: // already poked
	}
}

// run checks the groups whose doorbells rang, and all of them every
// interval, until there are none.
func (w *sessionWatcher) run() {
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		w.mu.Lock()
		if len(w.groups) == 0 {
			w.running = false
			w.rung = nil
			w.mu.Unlock()
			return
		}
		rung := w.rung
		w.rung = nil
		for _, g := range rung {
			g.rung = false
		}
		w.mu.Unlock()
		w.check(rung)

		select {
		case <-w.wake:
		case <-t.C:
			w.check(w.all())
		}
	}
}

func (w *sessionWatcher) all() []*watchGroup {
	w.mu.Lock()
	defer w.mu.Unlock()
	all := make([]*watchGroup, 0, len(w.groups))
	for _, g := range w.groups {
		all = append(all, g)
	}
	return all
}

// check rechecks groups, sessions and keys apart, recheckBatch at a time,
// and ends those that no longer work.
func (w *sessionWatcher) check(groups []*watchGroup) {
	var sessions, keys []*watchGroup
	for _, g := range groups {
		if g.key {
			keys = append(keys, g)
		} else {
			sessions = append(sessions, g)
		}
	}
	w.checkBatches(sessions, w.sessions)
	w.checkBatches(keys, w.keys)
}

func (w *sessionWatcher) checkBatches(groups []*watchGroup, stillValid stillValid) {
	ids := make([]uuid.UUID, 0, min(len(groups), recheckBatch))
	for len(groups) > 0 {
		batch := groups[:min(len(groups), recheckBatch)]
		groups = groups[len(batch):]
		ids = ids[:0]
		for _, g := range batch {
			ids = append(ids, g.id)
		}
		ctx, cancel := context.WithTimeout(context.Background(), recheckTimeout)
		ended, err := stillValid(ctx, ids)
		cancel()
		if err != nil {
			// Not a verdict on anyone's session: the database did not
			// answer. The rest would fare no better; the next tick retries.
			w.log.Warn("could not recheck sessions", "ids", len(ids), "err", err)
			return
		}
		for _, g := range batch {
			if err := ended[g.id]; err != nil {
				w.fail(g, err)
			}
		}
	}
}

// fail ends each connection of g with err, as its session ended.
func (w *sessionWatcher) fail(g *watchGroup, err error) {
	w.mu.Lock()
	if g.gone { // its last connection left meanwhile
		w.mu.Unlock()
		return
	}
	w.remove(g)
	members := g.members
	g.members = nil
	w.mu.Unlock()
	// Each waits for its operations to report the end (see sessionEnd.end),
	// which must hold up neither the other connections nor the checks.
	for _, m := range members {
		go func() {
			m.end.end(err)
			m.ended()
		}()
	}
}
