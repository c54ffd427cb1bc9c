package feed

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/events"
)

// followers are this process's subscribers to one user's feed. They share
// one doorbell subscription and their reads of entries (sharedAfter). The
// safety-net poll is the process's (see pollFollowed): one statement per
// interval for every user followed, however many there are, and no
// goroutine or timer per user.
type followers struct {
	svc     *Service
	id      uint64 // unique in the process, unlike userID
	userID  uuid.UUID
	members []*follower // guarded by svc.mu; a slice: a user has a few tabs
	stop    func()      // stops the doorbell
	// rings counts wake-ups. A read shared under a count began after the
	// wake-up that made it: a follower woken by a doorbell never joins a
	// read that began before the entry it announces had committed.
	rings atomic.Int64

	// polledHead is the feed's last seq at the previous poll; only
	// pollFollowed uses it.
	polledHead int64
}

// follower is one subscriber: how to wake it and how far it has read.
type follower struct {
	users *followers
	ring  func() // must not block: it is called under svc.mu
	seen  atomic.Int64
}

// join adds a follower of userID's feed that has read up to afterSeq and is
// woken by ring, starting the user's shared doorbell if it is the first,
// and the process's poll if it is the first user followed.
func (s *Service) join(userID uuid.UUID, afterSeq int64, ring func()) *follower {
	s.mu.Lock()
	defer s.mu.Unlock()
	fs := s.following[userID]
	if fs == nil {
		s.lastID++
		fs = &followers{svc: s, id: s.lastID, userID: userID}
		s.following[userID] = fs
		// Subscribed before the follower's first read, so that nothing
		// committed after that read goes unannounced. The bus rings every
		// follower after it reconnects too, and calls ring unlocked, so
		// taking s.mu there cannot deadlock with this.
		fs.stop = s.bus.SubscribeFunc(Topic(userID), func() { fs.ring(-1) })
	}
	if !s.polling {
		s.polling = true
		go s.pollFollowed()
	}
	f := &follower{users: fs, ring: ring}
	f.seen.Store(afterSeq)
	fs.members = append(fs.members, f)
	return f
}

// leave removes f, stopping its user's doorbell after the last.
func (s *Service) leave(f *follower) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fs := f.users
	if i := slices.Index(fs.members, f); i >= 0 {
		fs.members = slices.Delete(fs.members, i, i+1)
	}
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

// pollFollowed is the safety net behind the doorbells (events.PollHeads):
// a lost doorbell is made good within two intervals. It stops when no feed
// is followed.
func (s *Service) pollFollowed() {
	events.PollHeads(s.poll, s.log, "feeds", s.followedUsers, s.lastSeqs, s.polled)
}

// followedUsers returns the users whose feeds are followed here; none, once
// the poll is to stop.
func (s *Service) followedUsers() []uuid.UUID {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.following) == 0 {
		s.polling = false
		return nil
	}
	users := make([]uuid.UUID, 0, len(s.following))
	for id := range s.following {
		users = append(users, id)
	}
	return users
}

// polled wakes the followers of user still behind what had committed by
// the previous poll: their doorbell was lost. Those behind an entry that
// has just committed will hear its doorbell in a moment.
func (s *Service) polled(user uuid.UUID, head int64) {
	s.mu.Lock()
	fs := s.following[user]
	s.mu.Unlock()
	if fs == nil {
		return
	}
	if behind := fs.polledHead; behind > 0 {
		fs.ring(behind)
	}
	fs.polledHead = head
}

// lastSeqs returns the seq of the last entry of each feed of users that
// has one.
func (s *Service) lastSeqs(ctx context.Context, users []uuid.UUID) (map[uuid.UUID]int64, error) {
	var rows []struct {
		UserID  uuid.UUID `bun:"user_id"`
		LastSeq int64     `bun:"last_seq"`
	}
	if err := s.db.NewRaw("SELECT user_id, last_seq FROM viewer_feeds WHERE user_id IN (?)", bun.In(users)).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("read feed heads: %w", err)
	}
	heads := make(map[uuid.UUID]int64, len(rows))
	for _, r := range rows {
		heads[r.UserID] = r.LastSeq
	}
	return heads, nil
}

// ring wakes the followers that have read less than head; all of them when
// head is negative.
func (fs *followers) ring(head int64) {
	fs.rings.Add(1)
	fs.svc.mu.Lock()
	defer fs.svc.mu.Unlock()
	for _, f := range fs.members {
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
