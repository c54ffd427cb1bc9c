// Package feed is each user's live feed: one resumable, ordered stream per
// user of what changed in their account — generation statuses, credit
// balances, and (as later domains land) purchases and privacy requests.
// Writers append typed entries inside the transaction that made the change;
// the editor follows the feed with viewerEvents(afterSeq).
package feed

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/events"
)

// Kind says what an entry is about.
type Kind string

// The kinds of entries.
const (
	KindGeneration   Kind = "GENERATION"
	KindCredits      Kind = "CREDITS"
	KindPurchase     Kind = "PURCHASE"
	KindSubscription Kind = "SUBSCRIPTION"
	KindPrivacy      Kind = "PRIVACY_REQUEST"
)

// Payload is the typed body of an entry; its kind is the type's.
type Payload interface {
	Kind() Kind
}

// GenerationChanged says that one of the user's generations moved to Status
// (a generate.Status* value).
type GenerationChanged struct {
	GenerationID uuid.UUID `json:"generationId"`
	WorkID       uuid.UUID `json:"workId"`
	Status       string    `json:"status"`
}

// Kind implements Payload.
func (GenerationChanged) Kind() Kind { return KindGeneration }

// CreditsChanged says that the user's credits changed, what they are now,
// and why.
type CreditsChanged struct {
	Balance   int64 `json:"balance"`
	Held      int64 `json:"held"`
	Available int64 `json:"available"`
	// Cause is a credit entry kind (SPEND, PURCHASE, …) or HOLD / RELEASE;
	// empty in entries written before causes were kept (by the SQL trigger
	// that migration 20261130000001 dropped).
	Cause string `json:"cause"`
	// RefType and RefID name what caused it, e.g. a Generation.
	RefType string `json:"refType,omitempty"`
	RefID   string `json:"refId,omitempty"`
}

// Kind implements Payload.
func (CreditsChanged) Kind() Kind { return KindCredits }

// PurchaseChanged says that one of the user's purchases changed: its
// payment status (a billing.Status value), a refund, or a dispute.
type PurchaseChanged struct {
	PurchaseID uuid.UUID `json:"purchaseId"`
	Status     string    `json:"status"`
}

// Kind implements Payload.
func (PurchaseChanged) Kind() Kind { return KindPurchase }

// SubscriptionChanged says that the user's subscription changed: its plan,
// its Stripe status, or whether it ends with the period.
type SubscriptionChanged struct {
	SubscriptionID    uuid.UUID `json:"subscriptionId"`
	PlanCode          string    `json:"planCode"`
	Status            string    `json:"status"`
	CancelAtPeriodEnd bool      `json:"cancelAtPeriodEnd"`
}

// Kind implements Payload.
func (SubscriptionChanged) Kind() Kind { return KindSubscription }

// PrivacyRequestChanged says that one of the user's privacy requests moved
// (a privacy.Status value) or, for an export being built, progressed.
type PrivacyRequestChanged struct {
	RequestID   uuid.UUID `json:"requestId"`
	RequestKind string    `json:"kind"`
	Status      string    `json:"status"`
	Progress    int       `json:"progress"`
}

// Kind implements Payload.
func (PrivacyRequestChanged) Kind() Kind { return KindPrivacy }

// Entry is one entry of a user's feed, numbered 1, 2, 3 … per user.
type Entry struct {
	bun.BaseModel `bun:"table:viewer_events"`

	UserID    uuid.UUID       `bun:"user_id,pk,type:uuid"`
	Seq       int64           `bun:"seq,pk"`
	Kind      Kind            `bun:"kind"`
	Payload   json.RawMessage `bun:"payload,type:jsonb"`
	CreatedAt time.Time       `bun:"created_at,nullzero,default:clock_timestamp()"`
}

// Decode returns the entry's typed payload: a GenerationChanged,
// CreditsChanged, PurchaseChanged, SubscriptionChanged or
// PrivacyRequestChanged.
func (e *Entry) Decode() (Payload, error) {
	var (
		p   Payload
		err error
	)
	switch e.Kind {
	case KindGeneration:
		p, err = decode[GenerationChanged](e.Payload)
	case KindCredits:
		p, err = decode[CreditsChanged](e.Payload)
	case KindPurchase:
		p, err = decode[PurchaseChanged](e.Payload)
	case KindSubscription:
		p, err = decode[SubscriptionChanged](e.Payload)
	case KindPrivacy:
		p, err = decode[PrivacyRequestChanged](e.Payload)
	default:
		err = fmt.Errorf("unknown kind %q", e.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("decode feed entry %d: %w", e.Seq, err)
	}
	return p, nil
}

func decode[P Payload](raw json.RawMessage) (Payload, error) {
	var v P
	err := json.Unmarshal(raw, &v)
	return v, err
}

// Topic is the doorbell of a user's feed.
func Topic(userID uuid.UUID) string { return events.UserTopic(userID.String()) }

// AppendTx appends p to the user's feed inside the caller's transaction and
// rings the feed's doorbell (delivered at commit). A per-user counter taken
// under its row lock makes sequence order commit order, so a reader that
// resumes after seq n misses nothing.
func AppendTx(ctx context.Context, idb bun.IDB, userID uuid.UUID, p Payload) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode feed entry: %w", err)
	}
	// One round trip: take the next seq under the counter's row lock, write
	// the entry, and ring the feed's doorbell with the seq.
	var seq int64
	if err := idb.NewRaw(`
		WITH s AS (
			INSERT INTO viewer_feeds (user_id, last_seq) VALUES (?0, 1)
			ON CONFLICT (user_id) DO UPDATE SET last_seq = viewer_feeds.last_seq + 1
			RETURNING last_seq
		), e AS (
			INSERT INTO viewer_events (user_id, seq, kind, payload) SELECT ?0, last_seq, ?1, ?2 FROM s RETURNING seq
		)
		SELECT seq FROM e, pg_notify(?3, ?4 || ':' || e.seq)`,
		userID, p.Kind(), string(raw), events.Channel, Topic(userID)).Scan(ctx, &seq); err != nil {
		return fmt.Errorf("append %s feed entry: %w", p.Kind(), err)
	}
	return nil
}

// Service reads and follows feeds.
type Service struct {
	db   *bun.DB
	bus  *events.Bus
	log  *slog.Logger
	poll time.Duration

	reads     events.SharedReads[Entry]
	mu        sync.Mutex
	following map[uuid.UUID]*followers
	lastID    uint64
	polling   bool // pollFollowed runs
}

// New returns a Service; poll is the safety net behind the doorbell (0: 5 s).
func New(db *bun.DB, bus *events.Bus, log *slog.Logger, poll time.Duration) *Service {
	if poll == 0 {
		poll = 5 * time.Second
	}
	return &Service{db: db, bus: bus, log: log, poll: poll, following: make(map[uuid.UUID]*followers)}
}

// after returns up to events.ReadPage of a user's entries after seq, in
// order.
func (s *Service) after(ctx context.Context, userID uuid.UUID, afterSeq int64) ([]Entry, error) {
	var out []Entry
	if err := s.db.NewSelect().Model(&out).Where("user_id = ? AND seq > ?", userID, afterSeq).
		Order("seq").Limit(events.ReadPage).Scan(ctx); err != nil {
		return nil, fmt.Errorf("read feed: %w", err)
	}
	return out, nil
}

// LastSeq returns the seq of owner's latest feed entry (0 when none), from
// which a client that has just read the state subscribes.
// Returns FORBIDDEN for a key without the events:read scope, or for an
// actor other than owner.
func (s *Service) LastSeq(ctx context.Context, a actor.Actor, owner uuid.UUID) (int64, error) {
	if err := a.RequireScope(actor.ScopeEventsRead); err != nil {
		return 0, err
	}
	if err := a.OwnAccount(owner); err != nil {
		return 0, err
	}
	return s.lastSeq(ctx, owner)
}

// Stream replays the actor's entries after afterSeq, then streams new ones
// as they commit, until ctx ends. Only the actor's own feed can be followed.
// The followers of one user in this process share their doorbell, their
// safety-net poll and their reads (see followers).
// Returns FORBIDDEN for a key without the events:read scope.
func (s *Service) Stream(ctx context.Context, a actor.Actor, afterSeq int64) (<-chan Entry, error) {
	return StreamAs(ctx, s, a, afterSeq, func(e Entry) (Entry, error) { return e, nil }, nil)
}

// StreamAs is Stream with each entry turned into what the channel carries by
// conv, on the follower's goroutine (see events.FollowAs): a GraphQL
// subscription gets its models without a goroutine of its own. An entry conv
// fails on ends the stream, after fail learns why.
func StreamAs[Out any](ctx context.Context, s *Service, a actor.Actor, afterSeq int64, conv func(Entry) (Out, error), fail func(error)) (<-chan Out, error) {
	if err := a.RequireScope(actor.ScopeEventsRead); err != nil {
		return nil, err
	}
	userID := a.UserID
	visible := func(Entry) bool { return true }
	if a.IsKey() {
		visible = visibleTo(a)
	}
	var f *follower
	return events.FollowAs(ctx, s.log, events.Stream[Entry]{
		Topic: Topic(userID),
		Read:  func(ctx context.Context, after int64) ([]Entry, error) { return f.read(ctx, after) },
		Seq:   func(e Entry) (int64, bool) { return e.Seq, false },
		Wake: func(ring func()) func() {
			f = s.join(userID, afterSeq, ring)
			return func() { s.leave(f) }
		},
	}, afterSeq, func(e Entry) (Out, bool, error) {
		if !visible(e) {
			var none Out
			return none, false, nil
		}
		m, err := conv(e)
		return m, true, err
	}, fail), nil
}

// visibleTo says which entries a key may read by their fields: events:read
// opens the stream, but balances, purchases and the subscription need
// credits:read, and privacy requests are never a key's. The others are
// skipped (their seqs just go missing, as a resuming client expects of
// entries it was not shown).
func visibleTo(a actor.Actor) func(Entry) bool {
	credits := a.RequireScope(actor.ScopeCreditsRead) == nil
	return func(e Entry) bool {
		switch e.Kind {
		case KindGeneration:
			return true
		case KindCredits, KindPurchase, KindSubscription:
			return credits
		default: // privacy requests, and kinds added later until allowed here
			return false
		}
	}
}
