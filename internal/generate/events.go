package generate

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/events"
	"github.com/fastimage/api/internal/feed"
)

// EventKind says what step of a generation's life an event records.
type EventKind string

// Kinds of generation events.
const (
	EventQueued    EventKind = "QUEUED"
	EventStarted   EventKind = "STARTED"
	EventProgress  EventKind = "PROGRESS"
	EventOutput    EventKind = "OUTPUT"
	EventSucceeded EventKind = "SUCCEEDED"
	EventFailed    EventKind = "FAILED"
	EventCanceled  EventKind = "CANCELED"
)

// EventData is the typed body of an event; its kind is the type's. The
// worker writes these and the API reads them back with Event.Decode.
type EventData interface {
	Kind() EventKind
}

// Queued is the first event: the job waits for a worker.
type Queued struct {
	// Cost is what is held for the job.
	Cost int `json:"cost"`
}

// Started: a worker claimed the job (again, after a lost worker).
type Started struct {
	Attempt int `json:"attempt"`
}

// Progress is a step of the provider's work.
type Progress struct {
	Fraction   float64 `json:"fraction"`
	Step       int     `json:"step"`
	TotalSteps int     `json:"totalSteps"`
	Message    string  `json:"message,omitempty"`
	// PreviewKey is where a preview image is stored, when the provider
	// gave one. Previews are deleted when the job ends; URLs are signed when
	// the event is delivered, never stored.
	PreviewKey string `json:"previewKey,omitempty"`
}

// Output is one finished image, stored as an asset of the work.
type Output struct {
	Index       int       `json:"index"`
	ImageID     uuid.UUID `json:"imageId"`
	Key         string    `json:"key"`
	Width       int       `json:"width"`
	Height      int       `json:"height"`
	ContentType string    `json:"contentType"`
}

// Succeeded is the final event of a job that made its images.
type Succeeded struct {
	Cost    int64 `json:"cost"`
	Outputs int   `json:"outputs"`
}

// Failed is the final event of a job that could not be made.
type Failed struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Canceled is the final event of a job stopped by its owner.
type Canceled struct{}

// Kind implementations.
func (Queued) Kind() EventKind    { return EventQueued }
func (Started) Kind() EventKind   { return EventStarted }
func (Progress) Kind() EventKind  { return EventProgress }
func (Output) Kind() EventKind    { return EventOutput }
func (Succeeded) Kind() EventKind { return EventSucceeded }
func (Failed) Kind() EventKind    { return EventFailed }
func (Canceled) Kind() EventKind  { return EventCanceled }

// Event is one step in a generation's life, numbered 1, 2, 3 … per
// generation.
type Event struct {
	bun.BaseModel `bun:"table:generation_events,alias:e"`

	GenerationID uuid.UUID       `bun:"generation_id,pk,type:uuid"`
	Seq          int             `bun:"seq,pk"`
	Kind         EventKind       `bun:"kind"`
	Payload      json.RawMessage `bun:"payload,type:jsonb"`
	CreatedAt    time.Time       `bun:"created_at,nullzero,default:clock_timestamp()"`

	// GenerationEnded is true when the generation had ended when the event
	// was read: its previews are gone by then.
	GenerationEnded bool `bun:"generation_ended,scanonly"`
}

// Final reports whether no event follows this one.
func (e *Event) Final() bool {
	return e.Kind == EventSucceeded || e.Kind == EventFailed || e.Kind == EventCanceled
}

// Decode returns the event's typed body (Queued, Started, Progress, Output,
// Succeeded, Failed or Canceled).
func (e *Event) Decode() (EventData, error) {
	var (
		d   EventData
		err error
	)
	switch e.Kind {
	case EventQueued:
		d, err = decode[Queued](e.Payload)
	case EventStarted:
		d, err = decode[Started](e.Payload)
	case EventProgress:
		d, err = decode[Progress](e.Payload)
	case EventOutput:
		d, err = decode[Output](e.Payload)
	case EventSucceeded:
		d, err = decode[Succeeded](e.Payload)
	case EventFailed:
		d, err = decode[Failed](e.Payload)
	case EventCanceled:
		d, err = decode[Canceled](e.Payload)
	default:
		err = fmt.Errorf("unknown kind %q", e.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("decode event %s/%d: %w", e.GenerationID, e.Seq, err)
	}
	return d, nil
}

func decode[D EventData](raw json.RawMessage) (EventData, error) {
	var v D
	err := json.Unmarshal(raw, &v)
	return v, err
}

// appendEvent writes the next event of a generation in tx and rings its
// doorbell (delivered at commit). The sequence number comes from an UPDATE
// of the generation row, whose lock makes sequence order commit order: a
// reader resuming after seq n can never miss a later-committed smaller one.
func appendEvent(ctx context.Context, tx bun.Tx, genID uuid.UUID, data EventData) (*Event, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	ev := &Event{GenerationID: genID, Kind: data.Kind(), Payload: raw}
	if err := tx.NewRaw("UPDATE generations SET last_seq = last_seq + 1, updated_at = now() WHERE id = ? RETURNING last_seq", genID).
		Scan(ctx, &ev.Seq); err != nil {
		return nil, fmt.Errorf("next event seq: %w", err)
	}
	if _, err := tx.NewInsert().Model(ev).Returning("created_at").Exec(ctx); err != nil {
		return nil, fmt.Errorf("write %s event: %w", ev.Kind, err)
	}
	if err := events.RingNews(ctx, tx, events.GenerationTopic(genID.String()), eventNews(ev)); err != nil {
		return nil, fmt.Errorf("ring: %w", err)
	}
	return ev, nil
}

// An event rides in its own notification, "<seq>:<JSON>", so that the
// watchers of a generation, however many, need not read the table to learn
// it (see watchers.news); an event too big to ride says only its seq.
type newsEvent struct {
	Kind      EventKind       `json:"k"`
	Payload   json.RawMessage `json:"p"`
	CreatedAt time.Time       `json:"t"`
}

func eventNews(ev *Event) string {
	seq := strconv.Itoa(ev.Seq)
	b, err := json.Marshal(newsEvent{Kind: ev.Kind, Payload: ev.Payload, CreatedAt: ev.CreatedAt})
	if err != nil || len(seq)+1+len(b) > events.MaxNews {
		return seq
	}
	return seq + ":" + string(b)
}

// parseNews returns the event a notification of genID carried, if it did.
// The generation has ended after its event only when that one is final:
// an event read later from the table says whether it had ended by then.
func parseNews(genID uuid.UUID, news string) (*Event, bool) {
	seqText, body, ok := strings.Cut(news, ":")
	if !ok {
		return nil, false
	}
	seq, err := strconv.Atoi(seqText)
	if err != nil {
		return nil, false
	}
	var n newsEvent
	if err := json.Unmarshal([]byte(body), &n); err != nil {
		return nil, false
	}
	e := &Event{GenerationID: genID, Seq: seq, Kind: n.Kind, Payload: n.Payload, CreatedAt: n.CreatedAt}
	e.GenerationEnded = e.Final()
	return e, true
}

// feedStatus tells the owner's live feed that a generation changed status.
func feedStatus(ctx context.Context, tx bun.Tx, g *Generation, status Status) error {
	return feed.AppendTx(ctx, tx, g.UserID, feed.GenerationChanged{GenerationID: g.ID, WorkID: g.WorkID, Status: string(status)})
}

// EventsAfter returns up to events.ReadPage of a generation's events after
// seq, in order, each marked with whether the generation has ended.
// Internal: callers have authorized the generation (see Stream).
func (s *Service) EventsAfter(ctx context.Context, genID uuid.UUID, afterSeq int) ([]Event, error) {
	var evs []Event
	if err := s.db.NewSelect().Model(&evs).ColumnExpr("e.*").
		ColumnExpr("g.status IN (?, ?, ?) AS generation_ended", StatusSucceeded, StatusFailed, StatusCanceled).
		Join("JOIN generations AS g ON g.id = e.generation_id").
		Where("e.generation_id = ? AND e.seq > ?", genID, afterSeq).
		Order("e.seq").Limit(events.ReadPage).Scan(ctx); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return evs, nil
}
