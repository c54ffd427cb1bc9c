// Package events is the doorbell of the live streams. Rows in Postgres are
// the truth (generation_events, viewer_events, the queue); a NOTIFY after
// each commit only says "look again". Postgres delivers NOTIFY on commit,
// loses what arrives while a listener reconnects, and Bun's listener drops
// past its buffer, so every waiter re-reads the table when woken, when the
// listener reconnects, and on a slow timer as a safety net.
package events

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/driver/pgdriver"
)

// Channel is the one Postgres channel every doorbell rings on. Payloads are
// "<topic>:<id>[:<seq>]", e.g. "gen:<uuid>:7", "user:<uuid>:12", "queue".
const Channel = "fastimage_events"

// Bus fans notifications out to waiters in this process.
type Bus struct {
	db  *bun.DB
	log *slog.Logger

	// pause waits between reconnection attempts; tests shorten it and
	// watch it to know that the listener is down.
	pause func(ctx context.Context, d time.Duration)

	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{}
	calls   map[string][]*call // a slice: a topic has one or two (a group's)
}

// call is a waiter that is a function (see SubscribeNews).
type call struct{ f func(news string) }

// Pauses of the listener after connection trouble.
const (
	listenRetryPause = time.Second            // after LISTEN (or connecting) failed
	connLostPause    = 200 * time.Millisecond // after an established connection broke
)

// New returns a Bus; Run must be running for it to ring.
func New(db *bun.DB, log *slog.Logger) *Bus {
	return &Bus{db: db, log: log, pause: sleep, waiters: make(map[string]map[chan struct{}]struct{}), calls: make(map[string][]*call)}
}

// Topic keys.
func GenerationTopic(id string) string { return "gen:" + id }

// UserTopic is the key of a user's feed.
func UserTopic(id string) string { return "user:" + id }

// QueueTopic is rung when a job is queued or a worker slot frees up.
const QueueTopic = "queue"

// SessionsTopic is rung when sessions of a user end (sign-out, revocation,
// password change or reset, suspension), so that their open subscriptions
// stop at once.
func SessionsTopic(userID string) string { return "sessions:" + userID }

// MailTopic is rung when mail is enqueued for the mail worker.
const MailTopic = "mail"

// CancelTopic is rung when a running job is asked to stop.
func CancelTopic(id string) string { return "cancel:" + id }

// Subscribe returns a channel that receives (without blocking the bus; one
// pending wake-up is kept) whenever topic may have news, and a function that
// stops it.
func (b *Bus) Subscribe(topic string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	set := b.waiters[topic]
	if set == nil {
		set = make(map[chan struct{}]struct{})
		b.waiters[topic] = set
	}
	set[ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.waiters[topic], ch)
		if len(b.waiters[topic]) == 0 {
			delete(b.waiters, topic)
		}
	}
}

// SubscribeFunc calls f whenever topic may have news, until the function it
// returns is called. Unlike Subscribe's channel, it needs no goroutine
// waiting on it, which matters to a waiter held by every open WebSocket. f
// runs on the bus's own goroutine: it must return at once (start a
// goroutine for anything slow). It may be called once more just after its
// subscription stopped.
func (b *Bus) SubscribeFunc(topic string, f func()) func() {
	return b.SubscribeNews(topic, func(string) { f() })
}

// SubscribeNews is SubscribeFunc for a waiter that also wants what the
// ringer said (RingNews): f gets it, or "" when nothing was said, as when
// the bus rings every topic after its connection came back.
func (b *Bus) SubscribeNews(topic string, f func(news string)) func() {
	c := &call{f: f}
	b.mu.Lock()
	b.calls[topic] = append(b.calls[topic], c)
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		calls := b.calls[topic]
		if i := slices.Index(calls, c); i >= 0 {
			calls = slices.Delete(calls, i, i+1)
		}
		if len(calls) == 0 {
			delete(b.calls, topic)
		} else {
			b.calls[topic] = calls
		}
	}
}

// Waiters returns how many waiters are subscribed, for metrics.
func (b *Bus) Waiters() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, set := range b.waiters {
		n += len(set)
	}
	for _, set := range b.calls {
		n += len(set)
	}
	return n
}

// wake rings topic's waiters. The functions are called after the bus is
// unlocked, so that they may take locks under which their owners
// subscribe and unsubscribe.
func (b *Bus) wake(topic, news string) {
	b.mu.Lock()
	for ch := range b.waiters[topic] {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
	calls := slices.Clone(b.calls[topic])
	b.mu.Unlock()
	for _, c := range calls {
		c.f(news)
	}
}

func (b *Bus) wakeAll() {
	b.mu.Lock()
	for _, set := range b.waiters {
		for ch := range set {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	var calls []*call
	for _, set := range b.calls {
		calls = append(calls, set...)
	}
	b.mu.Unlock()
	for _, c := range calls {
		c.f("")
	}
}

// Run listens until ctx ends. After any connection trouble it wakes every
// waiter, since notifications may have been lost meanwhile.
func (b *Bus) Run(ctx context.Context) {
	ln := pgdriver.NewListener(b.db)
	// Closing the listener is what interrupts a read in progress; pgdriver
	// does not watch ctx while it waits for a notification.
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	defer ln.Close()
	for ctx.Err() == nil {
		if err := ln.Listen(ctx, Channel); err != nil {
			b.log.WarnContext(ctx, "events: listen failed; retrying", "err", err)
			b.pause(ctx, listenRetryPause)
			continue
		}
		b.wakeAll()
		b.receive(ctx, ln)
	}
}

func (b *Bus) receive(ctx context.Context, ln *pgdriver.Listener) {
	for ctx.Err() == nil {
		_, payload, err := ln.ReceiveTimeout(ctx, 30*time.Second)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if ctx.Err() == nil {
				b.log.WarnContext(ctx, "events: listener lost its connection; catching up", "err", err)
				b.pause(ctx, connLostPause)
			}
			return
		}
		b.wake(splitPayload(payload))
	}
}

// splitPayload splits a notification "<kind>:<id>[:<news>]" into its
// topic and news ("queue" is a topic of its own).
func splitPayload(payload string) (topic, news string) {
	parts := strings.SplitN(payload, ":", 3)
	if len(parts) == 3 {
		return parts[0] + ":" + parts[1], parts[2]
	}
	return payload, ""
}

func topicOf(payload string) string {
	topic, _ := splitPayload(payload)
	return topic
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Ring notifies every process's waiters of topic once the transaction idb
// belongs to commits (at once outside a transaction).
func Ring(ctx context.Context, idb bun.IDB, topic string) error {
	_, err := idb.ExecContext(ctx, "SELECT pg_notify(?, ?)", Channel, topic)
	return err
}

// MaxNews bounds what RingNews may say: Postgres refuses a notification of
// 8000 bytes or more, and with it the transaction.
const MaxNews = 7000

// RingNews is Ring saying news to the topic's SubscribeNews waiters (at
// most MaxNews bytes, or nothing is said). The table stays the truth:
// news is only what a waiter may use instead of reading it again.
func RingNews(ctx context.Context, idb bun.IDB, topic, news string) error {
	if len(news) > MaxNews {
		news = ""
	}
	if news == "" {
		return Ring(ctx, idb, topic)
	}
	return Ring(ctx, idb, topic+":"+news)
}
