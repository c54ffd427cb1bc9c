package privacy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/events"
	"github.com/fastimage/api/internal/feed"
	"github.com/fastimage/api/internal/mail"
)

// Kind is what a request asks for.
type Kind string

// The kinds of requests.
const (
	KindExport     Kind = "export"
	KindCorrection Kind = "correction"
	KindDeletion   Kind = "deletion"
	KindObjection  Kind = "objection"
	KindWithdrawal Kind = "withdrawal" // of an objection
)

// Status is where a request stands.
type Status string

// The statuses of a request.
const (
	StatusReceived   Status = "received"
	StatusVerified   Status = "verified"
	StatusInProgress Status = "in_progress"
	StatusCompleted  Status = "completed"
	StatusRejected   Status = "rejected"
	StatusCanceled   Status = "canceled"
)

// next lists the statuses each status may move to.
var next = map[Status][]Status{
	StatusReceived:   {StatusVerified, StatusRejected, StatusCanceled},
	StatusVerified:   {StatusInProgress, StatusCompleted, StatusRejected, StatusCanceled},
	StatusInProgress: {StatusCompleted, StatusRejected, StatusVerified}, // back to verified: a job given back
}

// open are the statuses of a request not yet ended.
var open = []Status{StatusReceived, StatusVerified, StatusInProgress}

// Purpose is a processing a user may object to.
type Purpose string

// The purposes.
const (
	PurposeAnalytics          Purpose = "analytics"
	PurposeProductImprovement Purpose = "product_improvement"
	PurposeMarketingEmail     Purpose = "marketing_email"
)

// Purposes lists every purpose, in the order to show them.
var Purposes = []Purpose{PurposeAnalytics, PurposeProductImprovement, PurposeMarketingEmail}

// Request is one privacy request.
type Request struct {
	bun.BaseModel `bun:"table:privacy_requests,alias:req"`

	ID              uuid.UUID  `bun:"id,pk,type:uuid,default:uuidv7()"`
	UserID          uuid.UUID  `bun:"user_id,type:uuid"`
	Kind            Kind       `bun:"kind"`
	Status          Status     `bun:"status"`
	Field           *string    `bun:"field"`
	Value           *string    `bun:"value"`
	Note            *string    `bun:"note"`
	Purpose         *Purpose   `bun:"purpose"`
	RejectionReason *string    `bun:"rejection_reason"`
	DueAt           time.Time  `bun:"due_at"`
	ExtendedAt      *time.Time `bun:"extended_at"`
	ExtensionReason *string    `bun:"extension_reason"`
	Progress        int        `bun:"progress"`
	Attempts        int        `bun:"attempts"`
	LeaseOwner      *string    `bun:"lease_owner"`
	LeaseExpiresAt  *time.Time `bun:"lease_expires_at"`
	Error           *string    `bun:"error"`
	ResultKey       *string    `bun:"result_key"`
	ResultBytes     *int64     `bun:"result_bytes"`
	ResultSHA256    *string    `bun:"result_sha256"`
	ResultExpiresAt *time.Time `bun:"result_expires_at"`
	CreatedAt       time.Time  `bun:"created_at,nullzero,default:now()"`
	UpdatedAt       time.Time  `bun:"updated_at,nullzero,default:now()"`
	CompletedAt     *time.Time `bun:"completed_at"`
}

// AuditEntry is one step of a request, as the audit trail keeps it.
type AuditEntry struct {
	bun.BaseModel `bun:"table:privacy_audit,alias:audit"`

	ID        uuid.UUID `bun:"id,pk,type:uuid,default:uuidv7()"`
	Seq       int64     `bun:"seq,scanonly"`
	RequestID uuid.UUID `bun:"request_id,type:uuid"`
	Action    string    `bun:"action"`
	Actor     string    `bun:"actor"`
	Detail    *string   `bun:"detail"`
	CreatedAt time.Time `bun:"created_at,nullzero,default:now()"`
}

// Codes of refusals particular to privacy requests.
const (
	// ReauthenticationRequired: the password must be proved again
	// (confirmPassword) before this.
	ReauthenticationRequired = apperr.ReauthenticationRequired
)

// actorName is how the audit trail names who acted.
func actorName(a actor.Actor, userID uuid.UUID) string {
	if a.UserID == userID {
		return "user"
	}
	if a.Admin() {
		return "admin:" + a.UserID.String()
	}
	return "system"
}

// System is the actor of steps nobody asked for (jobs, retention).
const System = "system"

// create records a new request of the actor's, verified at once (the actor
// is signed in with a verified email), with its first audit steps.
func (s *Service) create(ctx context.Context, a actor.Actor, r *Request, then Status) (*Request, error) {
	now := s.clock.Now()
	r.UserID, r.Status, r.DueAt = a.UserID, StatusReceived, DueDate(now)
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(r).Returning("*").Exec(ctx); err != nil {
			if db.UniqueViolation(err) {
				return apperr.Errorf(apperr.Conflict, "You already have a %s request in progress; wait for it or cancel it first.", r.Kind)
			}
			return fmt.Errorf("record request: %w", err)
		}
		if err := audit(ctx, tx, r.ID, "received", "user", describe(r)); err != nil {
			return err
		}
		return s.moveTx(ctx, tx, r, then, "user", "signed in with a verified email")
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

func describe(r *Request) string {
	switch r.Kind {
	case KindCorrection:
		return "field: " + deref(r.Field)
	case KindObjection, KindWithdrawal:
		return "purpose: " + string(*r.Purpose)
	}
	return string(r.Kind)
}

// moveTx moves r to status inside tx, if the lifecycle allows it, and
// records the step: the audit trail, the user's feed and an email.
func (s *Service) moveTx(ctx context.Context, tx bun.Tx, r *Request, to Status, by, detail string) error {
	allowed := false
	for _, st := range next[r.Status] {
		allowed = allowed || st == to
	}
	if !allowed {
		return apperr.Errorf(apperr.Conflict, "This request is %s; it cannot become %s.", r.Status, to)
	}
	q := tx.NewUpdate().Model(r).Set("status = ?", to).Set("updated_at = now()").
		Where("id = ? AND status = ?", r.ID, r.Status)
	if to == StatusRejected {
		// In the statement that rejects: a CHECK ties the two together.
		if r.RejectionReason == nil {
			return fmt.Errorf("privacy: a rejection without a reason")
		}
		q = q.Set("rejection_reason = ?", *r.RejectionReason)
	}
	if to == StatusCompleted || to == StatusRejected || to == StatusCanceled {
		q = q.Set("completed_at = now()").Set("lease_owner = NULL, lease_expires_at = NULL")
	}
	res, err := q.Returning("*").Exec(ctx)
	if err != nil {
		return fmt.Errorf("move request: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return apperr.Errorf(apperr.Conflict, "This request changed meanwhile; reload it.")
	}
	if err := audit(ctx, tx, r.ID, string(to), by, detail); err != nil {
		return err
	}
	if to == StatusVerified && (r.Kind == KindExport || r.Kind == KindDeletion) {
		if err := events.Ring(ctx, tx, Topic); err != nil { // a job for the workers
			return err
		}
	}
	return s.tell(ctx, tx, r)
}

// tell puts r's state in its user's feed and, for steps the user did not
// take themselves, in an email.
func (s *Service) tell(ctx context.Context, tx bun.Tx, r *Request) error {
	if err := feedAppend(ctx, tx, r); err != nil {
		return err
	}
	var email string
	err := tx.NewRaw("SELECT email FROM users WHERE id = ? AND status <> 'deleted'", r.UserID).Scan(ctx, &email)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // erased: the final email went before
	}
	if err != nil {
		return fmt.Errorf("read email: %w", err)
	}
	return s.outbox.Enqueue(ctx, tx, statusMessage(email, r, s.cfg.PublicURL.String()))
}

func feedAppend(ctx context.Context, idb bun.IDB, r *Request) error {
	return feed.AppendTx(ctx, idb, r.UserID, feed.PrivacyRequestChanged{
		RequestID: r.ID, RequestKind: string(r.Kind), Status: string(r.Status), Progress: r.Progress,
	})
}

func statusMessage(to string, r *Request, site string) mail.Message {
	what := map[Kind]string{
		KindExport: "export of your data", KindCorrection: "correction of your data", KindDeletion: "deletion of your account",
		KindObjection: "objection to processing", KindWithdrawal: "withdrawal of an objection",
	}[r.Kind]
	state := map[Status]string{
		StatusReceived: "has been received", StatusVerified: "has been verified and is queued",
		StatusInProgress: "is in progress", StatusCompleted: "is complete", StatusRejected: "was rejected",
		StatusCanceled: "was canceled",
	}[r.Status]
	text := fmt.Sprintf("Your request for the %s %s.\n", what, state)
	if r.Status == StatusRejected && r.RejectionReason != nil {
		text += "Reason: " + *r.RejectionReason + "\n"
	}
	if r.Status == StatusCompleted && r.Kind == KindExport {
		text += "Download it from your account's privacy page at " + site + " before the link expires.\n"
	}
	if r.Status != StatusCompleted && r.Status != StatusRejected && r.Status != StatusCanceled {
		text += fmt.Sprintf("We will answer by %s.\n", r.DueAt.UTC().Format("2 January 2006"))
	}
	text += "Request id: " + r.ID.String() + "\n"
	return mail.Message{Kind: "privacy_request", To: to, Subject: "Your privacy request " + state, Text: text}
}

// audit appends one step to the trail.
func audit(ctx context.Context, idb bun.IDB, requestID uuid.UUID, action, by, detail string) error {
	e := &AuditEntry{RequestID: requestID, Action: action, Actor: by}
	if detail != "" {
		e.Detail = &detail
	}
	if _, err := idb.NewInsert().Model(e).Exec(ctx); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// RequestExport asks for a ZIP of everything held about the actor.
// Returns EMAIL_NOT_VERIFIED or CONFLICT (one in progress already).
func (s *Service) RequestExport(ctx context.Context, a actor.Actor) (*Request, error) {
	if err := a.RequireSession(); err != nil {
		return nil, err
	}
	if err := a.RequireVerified(); err != nil {
		return nil, err
	}
	return s.create(ctx, a, &Request{Kind: KindExport}, StatusVerified)
}

// RequestDeletion asks to delete the actor's account and everything in it.
// The password must have been proved on this session within ReauthWindow.
// Returns EMAIL_NOT_VERIFIED, REAUTHENTICATION_REQUIRED or CONFLICT.
func (s *Service) RequestDeletion(ctx context.Context, a actor.Actor) (*Request, error) {
	if err := a.RequireSession(); err != nil {
		return nil, err
	}
	if err := a.RequireVerified(); err != nil {
		return nil, err
	}
	if err := account.RequireRecentPassword(ctx, s.db, a, "Deleting your account"); err != nil {
		return nil, err
	}
	return s.create(ctx, a, &Request{Kind: KindDeletion}, StatusVerified)
}

// Self-service fields: corrections of these are made by the user directly.
var selfService = map[string]string{
	"name":  "Change your name yourself with updateProfile.",
	"email": "Change your email yourself with changeEmail.",
}

// RequestCorrection asks support to correct field (anything but what the
// user can change themselves) to value, with a note.
// Returns EMAIL_NOT_VERIFIED or VALIDATION.
func (s *Service) RequestCorrection(ctx context.Context, a actor.Actor, field, value, note string) (*Request, error) {
	if err := a.RequireSession(); err != nil {
		return nil, err
	}
	if err := a.RequireVerified(); err != nil {
		return nil, err
	}
	field, value, note = strings.TrimSpace(field), strings.TrimSpace(value), strings.TrimSpace(note)
	if hint, ok := selfService[strings.ToLower(field)]; ok {
		return nil, apperr.Errorf(apperr.Validation, "%s", hint).With("field", "field")
	}
	switch {
	case field == "" || utf8.RuneCountInString(field) > 100:
		return nil, apperr.Errorf(apperr.Validation, "Say which data is wrong in 1 to 100 characters.").With("field", "field")
	case utf8.RuneCountInString(value) > 2000:
		return nil, apperr.Errorf(apperr.Validation, "The correct value may be at most 2000 characters.").With("field", "value")
	case utf8.RuneCountInString(note) > 2000:
		return nil, apperr.Errorf(apperr.Validation, "The note may be at most 2000 characters.").With("field", "note")
	}
	return s.create(ctx, a, &Request{Kind: KindCorrection, Field: &field, Value: &value, Note: &note}, StatusVerified)
}

// Cancel cancels one of the actor's requests that has not started.
// Returns NOT_FOUND or CONFLICT (started or over).
func (s *Service) Cancel(ctx context.Context, a actor.Actor, id uuid.UUID) (*Request, error) {
	if err := a.RequireSession(); err != nil {
		return nil, err
	}
	var r Request
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewSelect().Model(&r).Where("id = ? AND user_id = ?", id, a.UserID).For("UPDATE").Scan(ctx); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return apperr.Errorf(apperr.NotFound, "No such privacy request.")
			}
			return fmt.Errorf("find request: %w", err)
		}
		if r.Status == StatusInProgress {
			return apperr.Errorf(apperr.Conflict, "This request is being carried out and can no longer be canceled.")
		}
		return s.moveTx(ctx, tx, &r, StatusCanceled, "user", "")
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// Requests returns up to first of userID's requests older than after (nil:
// the newest), newest first. Returns FORBIDDEN unless the actor is that
// user or an admin.
func (s *Service) Requests(ctx context.Context, a actor.Actor, userID uuid.UUID, first int, after *uuid.UUID) (*db.Page[Request], error) {
	if err := a.RequireSession(); err != nil {
		return nil, err
	}
	if err := a.ReadAccount(userID); err != nil {
		return nil, err
	}
	return db.ListPage[Request](ctx, s.db, "req.id", func(q *bun.SelectQuery) *bun.SelectQuery {
		return q.Where("req.user_id = ?", userID)
	}, first, after)
}

// RequestsByIDs returns the actor's requests among ids (an admin's: any),
// in no order.
func (s *Service) RequestsByIDs(ctx context.Context, a actor.Actor, ids []uuid.UUID) ([]Request, error) {
	if err := a.RequireSession(); err != nil {
		return nil, err
	}
	var rs []Request
	q := s.db.NewSelect().Model(&rs).Where("id IN (?)", bun.In(ids))
	if !a.Admin() {
		q = q.Where("user_id = ?", a.UserID)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("find requests: %w", err)
	}
	return rs, nil
}

// Audit returns the audit trail of a request the actor may see, oldest
// first. Returns NOT_FOUND.
func (s *Service) Audit(ctx context.Context, a actor.Actor, requestID uuid.UUID) ([]AuditEntry, error) {
	if err := a.RequireSession(); err != nil {
		return nil, err
	}
	rs, err := s.RequestsByIDs(ctx, a, []uuid.UUID{requestID})
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, apperr.Errorf(apperr.NotFound, "No such privacy request.")
	}
	var es []AuditEntry
	if err := s.db.NewSelect().Model(&es).Where("request_id = ?", requestID).Order("seq").Scan(ctx); err != nil {
		return nil, fmt.Errorf("read audit trail: %w", err)
	}
	return es, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
