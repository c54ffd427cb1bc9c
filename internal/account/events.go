package account

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
)

// Kinds of security events.
const (
	EventSignUp            = "SIGN_UP"
	EventEmailVerified     = "EMAIL_VERIFIED"
	EventSignIn            = "SIGN_IN"
	EventSignInFailed      = "SIGN_IN_FAILED"
	EventSignOut           = "SIGN_OUT"
	EventResetRequested    = "PASSWORD_RESET_REQUESTED"
	EventResetCompleted    = "PASSWORD_RESET_COMPLETED"
	EventPasswordChanged   = "PASSWORD_CHANGED"
	EventEmailChangeAsked  = "EMAIL_CHANGE_REQUESTED"
	EventEmailChanged      = "EMAIL_CHANGED"
	EventSessionRevoked    = "SESSION_REVOKED"
	EventRateLimited       = "RATE_LIMITED"
	EventCaptchaFailed     = "CAPTCHA_FAILED"
	EventSuspended         = "SUSPENDED"
	EventUnsuspended       = "UNSUSPENDED"
	EventProfileUpdated    = "PROFILE_UPDATED"
	EventPasswordRehashed  = "PASSWORD_HASH_UPGRADED"
	EventSignUpExisting    = "SIGN_UP_ATTEMPT_EXISTING"
	EventVerificationAsked = "VERIFICATION_REQUESTED"
)

// SecurityEvent is one entry of a user's security record. Detail never
// holds a secret.
type SecurityEvent struct {
	bun.BaseModel `bun:"table:security_events"`

	ID        uuid.UUID      `bun:"id,pk,type:uuid,default:uuidv7()"`
	UserID    *uuid.UUID     `bun:"user_id,type:uuid"`
	Kind      string         `bun:"kind"`
	IP        string         `bun:"ip"`
	UserAgent string         `bun:"user_agent"`
	SessionID *uuid.UUID     `bun:"session_id,type:uuid"`
	Detail    map[string]any `bun:"detail,type:jsonb"`
	CreatedAt time.Time      `bun:"created_at,nullzero,default:now()"`
}

// record appends a security event for userID (nil for an unknown account)
// with the caller's IP and user agent.
func record(ctx context.Context, idb bun.IDB, userID *uuid.UUID, sessionID *uuid.UUID, kind string, detail map[string]any) error {
	c := ClientFrom(ctx)
	if detail == nil {
		detail = map[string]any{}
	}
	ev := &SecurityEvent{UserID: userID, Kind: kind, IP: c.IP, UserAgent: c.UserAgent, SessionID: sessionID, Detail: detail}
	if _, err := idb.NewInsert().Model(ev).Exec(ctx); err != nil {
		return fmt.Errorf("record %s: %w", kind, err)
	}
	return nil
}

// recordBestEffort records an event outside a transaction; a failure is
// logged, never shown to the user, who did nothing wrong.
func (s *Service) recordBestEffort(ctx context.Context, userID *uuid.UUID, sessionID *uuid.UUID, kind string, detail map[string]any) {
	if err := record(ctx, s.db, userID, sessionID, kind, detail); err != nil {
		s.log.ErrorContext(ctx, "security event not recorded", "kind", kind, "err", err)
	}
}

// SecurityEventPage is one page of a user's security events, newest first.
type SecurityEventPage struct {
	Events     []SecurityEvent
	HasNext    bool
	TotalCount int
}

// SecurityEvents returns up to first events of userID older than the event
// after (nil for the newest), newest first.
// Returns FORBIDDEN unless the actor is that user.
func (s *Service) SecurityEvents(ctx context.Context, a actor.Actor, userID uuid.UUID, first int, after *uuid.UUID) (*SecurityEventPage, error) {
	if err := a.OwnAccount(userID); err != nil {
		return nil, err
	}
	var events []SecurityEvent
	q := s.db.NewSelect().Model(&events).Where("user_id = ?", userID).Order("id DESC").Limit(int64(first + 1))
	if after != nil {
		q = q.Where("id < ?", *after)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("list security events: %w", err)
	}
	total, err := s.db.NewSelect().Model((*SecurityEvent)(nil)).Where("user_id = ?", userID).Count(ctx)
	if err != nil {
		return nil, fmt.Errorf("count security events: %w", err)
	}
	page := &SecurityEventPage{Events: events, TotalCount: int(total)}
	if len(events) > first {
		page.Events, page.HasNext = events[:first], true
	}
	return page, nil
}

// SecurityEventsByIDs returns the actor's security events among ids, in no
// order; anyone else's are left out.
func (s *Service) SecurityEventsByIDs(ctx context.Context, a actor.Actor, ids []uuid.UUID) ([]SecurityEvent, error) {
	var out []SecurityEvent
	if err := s.db.NewSelect().Model(&out).Where("user_id = ? AND id IN (?)", a.UserID, bun.In(ids)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find security events: %w", err)
	}
	return out, nil
}
