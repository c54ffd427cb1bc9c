package account

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/db"
)

// EventKind says what a security event records.
type EventKind string

// Kinds of security events.
const (
	EventSignUp            EventKind = "SIGN_UP"
	EventEmailVerified     EventKind = "EMAIL_VERIFIED"
	EventSignIn            EventKind = "SIGN_IN"
	EventSignInFailed      EventKind = "SIGN_IN_FAILED"
	EventSignOut           EventKind = "SIGN_OUT"
	EventResetRequested    EventKind = "PASSWORD_RESET_REQUESTED"
	EventResetCompleted    EventKind = "PASSWORD_RESET_COMPLETED"
	EventPasswordChanged   EventKind = "PASSWORD_CHANGED"
	EventEmailChangeAsked  EventKind = "EMAIL_CHANGE_REQUESTED"
	EventEmailChanged      EventKind = "EMAIL_CHANGED"
	EventSessionRevoked    EventKind = "SESSION_REVOKED"
	EventRateLimited       EventKind = "RATE_LIMITED"
	EventCaptchaFailed     EventKind = "CAPTCHA_FAILED"
	EventSuspended         EventKind = "SUSPENDED"
	EventUnsuspended       EventKind = "UNSUSPENDED"
	EventProfileUpdated    EventKind = "PROFILE_UPDATED"
	EventPasswordRehashed  EventKind = "PASSWORD_HASH_UPGRADED"
	EventSignUpExisting    EventKind = "SIGN_UP_ATTEMPT_EXISTING"
	EventVerificationAsked EventKind = "VERIFICATION_REQUESTED"
)

// SecurityEvent is one entry of a user's security record. Detail never
// holds a secret.
type SecurityEvent struct {
	bun.BaseModel `bun:"table:security_events"`

	ID     uuid.UUID  `bun:"id,pk,type:uuid,default:uuidv7()"`
	UserID *uuid.UUID `bun:"user_id,type:uuid"`
	Kind   EventKind  `bun:"kind"`
	IP     string     `bun:"ip"`
	// IPTruncated is set once retention cut IP to its network.
	IPTruncated bool           `bun:"ip_truncated"`
	UserAgent   string         `bun:"user_agent"`
	SessionID   *uuid.UUID     `bun:"session_id,type:uuid"`
	Detail      map[string]any `bun:"detail,type:jsonb"`
	CreatedAt   time.Time      `bun:"created_at,nullzero,default:now()"`
}

// maxDetailString bounds each string of an event's detail.
const maxDetailString = 256

// record appends a security event for userID (nil for an unknown account)
// with the caller's IP and user agent (bounded by WithClient).
func record(ctx context.Context, idb bun.IDB, userID *uuid.UUID, sessionID *uuid.UUID, kind EventKind, detail map[string]any) error {
	c := ClientFrom(ctx)
	if detail == nil {
		detail = map[string]any{}
	}
	for k, v := range detail {
		if str, ok := v.(string); ok {
			detail[k] = Truncate(str, maxDetailString)
		}
	}
	ev := &SecurityEvent{UserID: userID, Kind: kind, IP: c.IP, UserAgent: c.UserAgent, SessionID: sessionID, Detail: detail}
	// The ids are given even when nil, so that the statement is the same for
	// an unknown account (see mailLink).
	if _, err := idb.NewInsert().Model(ev).Value("user_id", "?", userID).Value("session_id", "?", sessionID).
		Returning("id, created_at").Exec(ctx); err != nil {
		return fmt.Errorf("record %s: %w", kind, err)
	}
	return nil
}

// recordBestEffort records an event outside a transaction; a failure is
// logged, never shown to the user, who did nothing wrong. These are the
// events that strangers trigger (failed sign-ins, refusals), so each client
// IP may write at most Limits.EventsPerIP of them; beyond that they are
// dropped, as the flood they would record is already on file.
func (s *Service) recordBestEffort(ctx context.Context, userID *uuid.UUID, sessionID *uuid.UUID, kind EventKind, detail map[string]any) {
	d, err := s.limiter.Take(ctx, "event-ip:"+ClientFrom(ctx).IP, s.cfg.Limits.EventsPerIP)
	if err == nil && !d.Allowed {
		return
	}
	if err == nil {
		err = record(ctx, s.db, userID, sessionID, kind, detail)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "security event not recorded", "kind", kind, "err", err)
	}
}

// SecurityEvents returns up to first events of userID older than the event
// after (nil for the newest), newest first.
// Returns FORBIDDEN unless the actor is that user.
func (s *Service) SecurityEvents(ctx context.Context, a actor.Actor, userID uuid.UUID, first int, after *uuid.UUID) (*db.Page[SecurityEvent], error) {
	if err := a.RequireSession(); err != nil {
		return nil, err
	}
	if err := a.OwnAccount(userID); err != nil {
		return nil, err
	}
	return db.ListPage[SecurityEvent](ctx, s.db, "security_event.id", func(q *bun.SelectQuery) *bun.SelectQuery {
		return q.Where("security_event.user_id = ?", userID)
	}, first, after)
}

// SecurityEventsByIDs returns the actor's security events among ids, in no
// order; anyone else's are left out.
func (s *Service) SecurityEventsByIDs(ctx context.Context, a actor.Actor, ids []uuid.UUID) ([]SecurityEvent, error) {
	if err := a.RequireSession(); err != nil {
		return nil, err
	}
	var out []SecurityEvent
	if err := s.db.NewSelect().Model(&out).Where("user_id = ? AND id IN (?)", a.UserID, bun.In(ids)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find security events: %w", err)
	}
	return out, nil
}
