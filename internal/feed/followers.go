package feed

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// followers are this process's subscribers to one user's feed. They share
// one doorbell subscription and one safety-net poll, which reads only the
// feed's last seq and wakes the followers behind it; their reads of entries
// are shared too (sharedAfter). So idle followers cost one cheap statement
// per poll interval together, however many tabs the user has open.
type followers struct {
	svc     *Service
	id      uint64 // unique in the process, unlike userID
	userID  uuid.UUID
	members map[*follower]struct{} // guarded by svc.mu
	stop    context.CancelFunc
	// rings counts wake-ups. A read shared under a count began after the
	// wake-up that made it: a follower woken by a doorbell never joins a
	// read that began before the entry it announces had committed.
	rings atomic.Int64
}

// follower is one subscriber: how to wake it and how far it has read.
type follower struct {
	users *followers
	ring  func() // must not block: it is called under svc.mu
	seen  atomic.Int64
}

// join adds a follower of userID's feed that has read up to afterSeq and is
// woken by ring, starting the user's shared doorbell and poll if it is the
// first.
func (s *Service) join(userID uuid.UUID, afterSeq int64, ring func()) *follower {
	s.mu.Lock()
	defer s.mu.Unlock()
	fs := s.following[userID]
	if fs == nil {
		ctx, cancel := context.WithCancel(context.Background())
		s.lastID++
		fs = &followers{svc: s, id: s.lastID, userID: userID, members: make(map[*follower]struct{}), stop: cancel}
		s.following[userID] = fs
		// Subscribed before the follower's first read, so that nothing
		// committed after that read goes unannounced.
		rang, stop := s.bus.Subscribe(Topic(userID))
		go fs.run(ctx, rang, stop)
	}
	f := &follower{users: fs, ring: ring}
	f.seen.Store(afterSeq)
	fs.members[f] = struct{}{}
	return f
}

// leave removes f, stopping its user's doorbell and poll after the last.
func (s *Service) leave(f *follower) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fs := f.users
	delete(fs.members, f)
	if len(fs.members) == 0 {
		fs.stop()
		delete(s.following, fs.userID)
	}
}

// read returns the user's entries after afterSeq, shared with the followers
// reading from there since the same wake-up, and records how far f has read.
func (f *follower) read(ctx context.Context, afterSeq int64) ([]Entry, error) {
	fs := f.users
	key := strconv.FormatUint(fs.id, 10) + ":" + strconv.FormatInt(fs.rings.Load(), 10) + ":" + strconv.FormatInt(afterSeq, 10)
	rows, err := fs.svc.sharedAfter(ctx, key, fs.userID, afterSeq)
	if len(rows) > 0 {
		afterSeq = rows[len(rows)-1].Seq
	}
	f.seen.Store(afterSeq)
	return rows, err
}

// run rings every follower when the doorbell rings (or the bus reconnects),
// and every poll interval wakes those behind the feed's last seq, until ctx
// ends; then it stops the doorbell.
func (fs *followers) run(ctx context.Context, rang <-chan struct{}, stop func()) {
	defer stop()
	t := time.NewTicker(fs.svc.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-rang:
			fs.ring(-1)
		case <-t.C:
			head, err := fs.svc.lastSeq(ctx, fs.userID)
			if err != nil {
				if ctx.Err() == nil {
					fs.svc.log.WarnContext(ctx, "follow feed", "user", fs.userID, "err", err)
				}
				continue
			}
			fs.ring(head)
		}
	}
}

// ring wakes the followers that have read less than head; all of them when
// head is negative.
func (fs *followers) ring(head int64) {
	fs.rings.Add(1)
	fs.svc.mu.Lock()
	defer fs.svc.mu.Unlock()
	for f := range fs.members {
		if head < 0 || f.seen.Load() < head {
			f.ring()
		}
	}
}

// lastSeq returns the seq of the user's last entry (0 when there is none).
func (s *Service) lastSeq(ctx context.Context, userID uuid.UUID) (int64, error) {
	var seq int64
	if err := s.db.NewRaw("SELECT coalesce(max(last_seq), 0) FROM viewer_feeds WHERE user_id = ?", userID).Scan(ctx, &seq); err != nil {
		return 0, fmt.Errorf("read feed head: %w", err)
	}
	return seq, nil
}

// sharedAfter is after with one query for every caller of this process that
// asks under the same key at once: a doorbell that wakes a thousand tabs
// costs one read, not a thousand. Readers only range over the shared slice.
func (s *Service) sharedAfter(ctx context.Context, key string, userID uuid.UUID, afterSeq int64) ([]Entry, error) {
	return s.reads.Do(ctx, key, func(ctx context.Context) ([]Entry, error) { return s.after(ctx, userID, afterSeq) })
}
