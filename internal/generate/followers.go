package generate

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/events"
)

// watchers are this process's subscribers to one generation's events.
// They share one doorbell subscription and their reads of the table: one
// commit that wakes a thousand of them costs one query, not a thousand.
// The safety-net poll is the process's (see pollFollowed): one statement
// per interval for every generation followed, however many there are.
type watchers struct {
	svc     *Service
	id      uint64 // unique in the process, unlike genID
	genID   uuid.UUID
	members []*watcher // guarded by svc.following.mu
	stop    func()     // stops the doorbell
	// rings counts wake-ups. A read shared under a count began after the
	// wake-up that made it: a watcher woken by a doorbell never takes rows
	// read before the event it announces had committed.
	rings atomic.Int64

	// last is the latest completed read, kept for the watchers that ask for
	// the same rows after it ended (they are woken one after another).
	lastMu   sync.Mutex
	lastKey  string
	lastRows []Event
	// pushed is the newest event a doorbell carried (see eventNews), as a
	// read's rows: watchers that have read up to the one before it take it
	// without reading the table. Guarded by lastMu.
	pushed []Event

	// polledHead is the generation's last seq at the previous poll; only
	// pollFollowed uses it.
	polledHead int64
}

// watcher is one subscriber: how to wake it and how far it has read.
type watcher struct {
	group *watchers
	ring  func() // must not block: it is called under following.mu
	seen  atomic.Int64
}

// following is the process's registry of watched generations.
type following struct {
	mu      sync.Mutex
	lastID  uint64
	byGen   map[uuid.UUID]*watchers
	polling bool
}

// watch adds a subscriber of genID's events that has read up to afterSeq
// and is woken by ring, starting the generation's shared doorbell if it is the first, and the
// process's poll if it is the first generation followed.
func (s *Service) watch(genID uuid.UUID, afterSeq int64, ring func()) *watcher {
	f := &s.following
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byGen == nil {
		f.byGen = make(map[uuid.UUID]*watchers)
	}
	ws := f.byGen[genID]
	if ws == nil {
		f.lastID++
		ws = &watchers{svc: s, id: f.lastID, genID: genID}
		f.byGen[genID] = ws
		// Subscribed before the watcher's first read, so that nothing
		// committed after that read goes unannounced. (The bus calls
		// news unlocked, so taking following.mu there cannot deadlock
		// with this.)
		ws.stop = s.bus.SubscribeNews(events.GenerationTopic(genID.String()), ws.news)
	}
	if !f.polling {
		f.polling = true
		go s.pollFollowed()
	}
	w := &watcher{group: ws, ring: ring}
	w.seen.Store(afterSeq)
	ws.members = append(ws.members, w)
	return w
}

// unwatch removes w, stopping its generation's doorbell after the last.
func (s *Service) unwatch(w *watcher) {
	f := &s.following
	f.mu.Lock()
	defer f.mu.Unlock()
	ws := w.group
	if i := slices.Index(ws.members, w); i >= 0 {
		ws.members = slices.Delete(ws.members, i, i+1)
	}
	if len(ws.members) == 0 {
		ws.stop()
		delete(f.byGen, ws.genID)
	}
}

// read returns the generation's events after afterSeq: the event the
// doorbell carried when it is the next one, else the rows of a read shared
// with the watchers reading from there since the same wake-up. It records
// how far w has read.
func (w *watcher) read(ctx context.Context, afterSeq int64) ([]Event, error) {
	ws := w.group
	key := strconv.FormatUint(ws.id, 10) + ":" + strconv.FormatInt(ws.rings.Load(), 10) + ":" + strconv.FormatInt(afterSeq, 10)
	ws.lastMu.Lock()
	if p := ws.pushed; len(p) == 1 && int64(p[0].Seq) == afterSeq+1 {
		ws.lastMu.Unlock()
		w.seen.Store(afterSeq + 1)
		return p, nil
	}
	rows, found := ws.lastRows, ws.lastKey == key
	ws.lastMu.Unlock()
	if !found {
		var err error
		rows, err = ws.svc.reads.Do(ctx, key, func(ctx context.Context) ([]Event, error) {
			return ws.svc.EventsAfter(ctx, ws.genID, int(afterSeq))
		})
		if err != nil {
			return nil, err
		}
		ws.lastMu.Lock()
		ws.lastKey, ws.lastRows = key, rows
		ws.lastMu.Unlock()
	}
	if len(rows) > 0 {
		afterSeq = int64(rows[len(rows)-1].Seq)
	}
	w.seen.Store(afterSeq)
	return rows, nil
}

// news is the doorbell: it keeps the event the notification carried, if
// it is newer than the one kept, and wakes every watcher.
func (ws *watchers) news(news string) {
	if e, ok := parseNews(ws.genID, news); ok {
		ws.lastMu.Lock()
		if len(ws.pushed) == 0 || e.Seq > ws.pushed[0].Seq {
			ws.pushed = []Event{*e}
		}
		ws.lastMu.Unlock()
	}
	ws.ring(-1)
}

// ring wakes the watchers that have read less than head; all of them when
// head is negative.
func (ws *watchers) ring(head int64) {
	ws.rings.Add(1)
	ws.svc.following.mu.Lock()
	defer ws.svc.following.mu.Unlock()
	for _, w := range ws.members {
		if head < 0 || w.seen.Load() < head {
			w.ring()
		}
	}
}

// pollFollowed is the safety net behind the doorbells (events.PollHeads):
// a lost doorbell is made good within two intervals. It stops when no
// generation is followed.
func (s *Service) pollFollowed() {
	events.PollHeads(s.cfg.PollInterval, s.log, "generations", s.followedGenerations, s.lastSeqs, s.polled)
}

// followedGenerations returns the generations followed here; none, once
// the poll is to stop.
func (s *Service) followedGenerations() []uuid.UUID {
	f := &s.following
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.byGen) == 0 {
		f.polling = false
		return nil
	}
	ids := make([]uuid.UUID, 0, len(f.byGen))
	for id := range f.byGen {
		ids = append(ids, id)
	}
	return ids
}

// polled wakes the watchers of genID still behind what had committed by
// the previous poll: their doorbell was lost. Those behind an event that
// has just committed will hear its doorbell in a moment; ringing them now
// would have every watcher of a busy moment read the table at once.
func (s *Service) polled(genID uuid.UUID, head int64) {
	f := &s.following
	f.mu.Lock()
	ws := f.byGen[genID]
	f.mu.Unlock()
	if ws == nil {
		return
	}
	if behind := ws.polledHead; behind > 0 {
		ws.ring(behind)
	}
	ws.polledHead = head
}

// lastSeqs returns the seq of the last event of each generation in ids.
func (s *Service) lastSeqs(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]int64, error) {
	var rows []struct {
		ID      uuid.UUID `bun:"id"`
		LastSeq int64     `bun:"last_seq"`
	}
	if err := s.db.NewRaw("SELECT id, last_seq FROM generations WHERE id IN (?)", bun.In(ids)).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("read generation heads: %w", err)
	}
	heads := make(map[uuid.UUID]int64, len(rows))
	for _, r := range rows {
		heads[r.ID] = r.LastSeq
	}
	return heads, nil
}
