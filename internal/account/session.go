package account

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/events"
)

// SignInInput is what a returning user gives.
type SignInInput struct {
	Email        string
	Password     string
	CaptchaToken string
}

// SignedIn is a new session and the secret token that stands for it; the
// token is shown once and never stored.
type SignedIn struct {
	Token   string
	Session *Session
	User    *User
}

// lastSeenGranularity bounds writes: a session's last_seen_at is moved at
// most once a minute, not on every request.
const lastSeenGranularity = time.Minute

// SignIn checks an email and password and opens a session. Unknown emails
// and wrong passwords get the same INVALID_CREDENTIALS in about the same
// time. After repeated failures for one (email, IP) a CAPTCHA is required
// (CAPTCHA_REQUIRED / CAPTCHA_FAILED) or, without CAPTCHA, the pair is
// blocked for a while (RATE_LIMITED).
// Returns VALIDATION, INVALID_CREDENTIALS, ACCOUNT_SUSPENDED, RATE_LIMITED,
// CAPTCHA_REQUIRED or CAPTCHA_FAILED.
func (s *Service) SignIn(ctx context.Context, in SignInInput) (*SignedIn, error) {
	email, err := NormalizeEmail(in.Email)
	if err != nil {
		return nil, apperr.Errorf(apperr.InvalidCredentials, "The email or password is wrong.")
	}
	client := ClientFrom(ctx)
	// The attempt is counted before the password is checked, never after.
	attempt, err := s.beginPasswordCheck(ctx, nil, "signin-fail:"+email+"|"+client.IP, &in.CaptchaToken)
	if err != nil {
		return nil, err
	}

	var u User
	err = s.db.NewSelect().Model(&u).Where("email = ?", email).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		if err := s.cfg.Passwords.DummyVerify(ctx, in.Password); err != nil {
			s.passwordUnchecked(ctx, attempt)
			return nil, fmt.Errorf("verify password: %w", err)
		}
		return nil, s.signInFailed(ctx, nil, attempt)
	}
	if err != nil {
		return nil, fmt.Errorf("find user: %w", err)
	}
	ok, err := s.cfg.Passwords.Verify(ctx, in.Password, u.PasswordHash)
	if err != nil {
		s.passwordUnchecked(ctx, attempt)
		return nil, fmt.Errorf("verify password of %s: %w", u.ID, err)
	}
	if !ok {
		return nil, s.signInFailed(ctx, &u.ID, attempt)
	}
	if u.Status == StatusDeleted {
		return nil, s.signInFailed(ctx, nil, attempt)
	}
	if err := s.passwordPassed(ctx, attempt); err != nil {
		return nil, err
	}
	if u.Status == StatusSuspended {
		return nil, suspendedError()
	}
	s.upgradeHash(ctx, &u, in.Password)

	token, hash := newToken()
	now := time.Now()
	sess := &Session{UserID: u.ID, TokenHash: hash, IP: client.IP, UserAgent: client.UserAgent, ExpiresAt: now.Add(s.cfg.SessionLifetime), New: true}
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(sess).Returning("*").Exec(ctx); err != nil {
			return fmt.Errorf("insert session: %w", err)
		}
		return record(ctx, tx, &u.ID, &sess.ID, EventSignIn, nil)
	})
	if err != nil {
		return nil, err
	}
	return &SignedIn{Token: token, Session: sess, User: &u}, nil
}

func (s *Service) signInFailed(ctx context.Context, userID *uuid.UUID, attempt passwordAttempt) error {
	if err := s.passwordFailed(ctx, attempt); err != nil {
		return err
	}
	s.recordBestEffort(ctx, userID, nil, EventSignInFailed, nil)
	return apperr.Errorf(apperr.InvalidCredentials, "The email or password is wrong.")
}

// upgradeHash re-hashes a correct password whose stored hash has older
// parameters. A failure only leaves the old hash in place.
func (s *Service) upgradeHash(ctx context.Context, u *User, pw string) {
	if !s.cfg.Passwords.NeedsRehash(u.PasswordHash) {
		return
	}
	hash, err := s.cfg.Passwords.Hash(ctx, pw)
	if err == nil {
		_, err = s.db.NewUpdate().Model(u).Set("password_hash = ?", hash).Where("id = ? AND password_hash = ?", u.ID, u.PasswordHash).Exec(ctx)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "password hash upgrade failed", "user_id", u.ID, "err", err)
		return
	}
	u.PasswordHash = hash
	s.recordBestEffort(ctx, &u.ID, nil, EventPasswordRehashed, nil)
}

func suspendedError() error {
	return apperr.Errorf(apperr.AccountSuspended, "This account is suspended. Contact support if you think this is a mistake.")
}

func sessionEnded() error {
	return apperr.Errorf(apperr.Unauthenticated, "Your session has ended. Sign in again.")
}

// Authenticate returns the viewer a session token stands for.
// Returns UNAUTHENTICATED for an unknown, revoked, expired or idle session
// and ACCOUNT_SUSPENDED for a suspended user's.
func (s *Service) Authenticate(ctx context.Context, token string) (*Viewer, error) {
	if !validTokenShape(token) {
		return nil, sessionEnded()
	}
	hash := hashToken(token)
	var sess Session
	err := s.db.NewSelect().Model(&sess).Relation("User", WithoutPasswordHash).Where("session.token_hash = ?", hash).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sessionEnded()
	}
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	u := sess.User
	if subtle.ConstantTimeCompare(sess.TokenHash, hash) != 1 {
		return nil, sessionEnded()
	}
	sess.TokenHash = nil // compared; not kept for as long as the viewer lives
	if u.Status == StatusSuspended {
		return nil, suspendedError()
	}
	now := time.Now()
	if sess.RevokedAt != nil || u.Status != StatusActive || !now.Before(sess.ExpiresAt) || now.Sub(sess.LastSeenAt) > s.cfg.SessionIdleTimeout {
		return nil, sessionEnded()
	}
	if now.Sub(sess.LastSeenAt) > lastSeenGranularity {
		if _, err := s.db.NewUpdate().Model((*Session)(nil)).Set("last_seen_at = now()").Where("id = ?", sess.ID).Exec(ctx); err != nil {
			s.log.WarnContext(ctx, "could not touch session", "err", err)
		}
		sess.LastSeenAt = now
	}
	return &Viewer{User: u, Session: &sess}, nil
}

// StillValidSessions rechecks sessions that long-lived connections
// authenticated once, all in one query: the result holds, for each of ids
// that no longer works, why — UNAUTHENTICATED (unknown, revoked, expired,
// user deleted) or ACCOUNT_SUSPENDED; ids that still work have no entry.
// The idle timeout is not checked: a connection that stays open is in use.
// Callers bound len(ids), which all go into the query.
func (s *Service) StillValidSessions(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]error, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var rows []struct {
		ID        uuid.UUID
		RevokedAt *time.Time
		ExpiresAt time.Time
		Status    string
	}
	err := s.db.NewSelect().ColumnExpr("s.id, s.revoked_at, s.expires_at, u.status").
		TableExpr("sessions AS s").Join("JOIN users AS u ON u.id = s.user_id").
		Where("s.id IN (?)", bun.In(ids)).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("check sessions: %w", err)
	}
	ended := make(map[uuid.UUID]error)
	for _, id := range ids {
		ended[id] = sessionEnded() // unless its row says otherwise, below
	}
	now := time.Now()
	for _, r := range rows {
		switch {
		case r.Status == StatusSuspended:
			ended[r.ID] = suspendedError()
		case r.RevokedAt != nil || r.Status != StatusActive || !now.Before(r.ExpiresAt):
			ended[r.ID] = sessionEnded()
		default:
			delete(ended, r.ID)
		}
	}
	return ended, nil
}

// SignOut ends the viewer's current session.
func (s *Service) SignOut(ctx context.Context, v *Viewer) error {
	if err := v.Actor().RequireSession(); err != nil {
		return err
	}
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewUpdate().Model((*Session)(nil)).Set("revoked_at = now()").Set("revoked_reason = 'signed out'").
			Where("id = ? AND revoked_at IS NULL", v.Session.ID).Exec(ctx); err != nil {
			return fmt.Errorf("sign out: %w", err)
		}
		if err := ringSessions(ctx, tx, v.User.ID); err != nil {
			return err
		}
		return record(ctx, tx, &v.User.ID, &v.Session.ID, EventSignOut, nil)
	})
}

// Sessions lists userID's sessions that still work, newest first.
// Returns FORBIDDEN unless the actor is that user.
func (s *Service) Sessions(ctx context.Context, a actor.Actor, userID uuid.UUID) ([]Session, error) {
	if err := a.RequireSession(); err != nil {
		return nil, err
	}
	if err := a.OwnAccount(userID); err != nil {
		return nil, err
	}
	var out []Session
	if err := s.liveSessions(&out).Where("user_id = ?", userID).Order("created_at DESC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}

// SessionsByIDs returns the actor's sessions among ids that still work, in
// no order; anyone else's are left out.
func (s *Service) SessionsByIDs(ctx context.Context, a actor.Actor, ids []uuid.UUID) ([]Session, error) {
	if err := a.RequireSession(); err != nil {
		return nil, err
	}
	var out []Session
	if err := s.liveSessions(&out).Where("user_id = ? AND id IN (?)", a.UserID, bun.In(ids)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find sessions: %w", err)
	}
	return out, nil
}

// liveSessions selects into out the sessions that still work.
func (s *Service) liveSessions(out *[]Session) *bun.SelectQuery {
	return s.db.NewSelect().Model(out).
		Where("revoked_at IS NULL AND expires_at > now() AND last_seen_at > now() - ?::interval",
			fmt.Sprintf("%d seconds", int(s.cfg.SessionIdleTimeout.Seconds())))
}

// RevokeSession ends one of the viewer's sessions.
// Returns NOT_FOUND for a session that is not theirs or no longer works.
func (s *Service) RevokeSession(ctx context.Context, v *Viewer, sessionID uuid.UUID) error {
	if err := v.Actor().RequireSession(); err != nil {
		return err
	}
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Model((*Session)(nil)).
			Set("revoked_at = now()").Set("revoked_reason = 'revoked by user'").
			Where("id = ? AND user_id = ? AND revoked_at IS NULL", sessionID, v.User.ID).Exec(ctx)
		if err != nil {
			return fmt.Errorf("revoke session: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return apperr.Errorf(apperr.NotFound, "No such session.")
		}
		if err := ringSessions(ctx, tx, v.User.ID); err != nil {
			return err
		}
		return record(ctx, tx, &v.User.ID, &v.Session.ID, EventSessionRevoked, map[string]any{"sessionId": sessionID.String()})
	})
}

// RevokeOtherSessions ends every session of the viewer but the current one
// and returns how many ended.
func (s *Service) RevokeOtherSessions(ctx context.Context, v *Viewer) (int, error) {
	if err := v.Actor().RequireSession(); err != nil {
		return 0, err
	}
	var n int
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if n, err = revokeOthers(ctx, tx, v.User.ID, &v.Session.ID, "revoked by user"); err != nil {
			return err
		}
		return record(ctx, tx, &v.User.ID, &v.Session.ID, EventSessionRevoked, map[string]any{"others": n})
	})
	return n, err
}

// revokeOthers ends every session of userID except keep (nil: all of them).
func revokeOthers(ctx context.Context, tx bun.IDB, userID uuid.UUID, keep *uuid.UUID, reason string) (int, error) {
	q := tx.NewUpdate().Model((*Session)(nil)).Set("revoked_at = now()").Set("revoked_reason = ?", reason).
		Where("user_id = ? AND revoked_at IS NULL", userID)
	if keep != nil {
		q = q.Where("id <> ?", *keep)
	}
	res, err := q.Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("revoke sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), ringSessions(ctx, tx, userID)
}

// ringSessions tells every replica, once the transaction commits, that
// sessions of userID ended.
func ringSessions(ctx context.Context, idb bun.IDB, userID uuid.UUID) error {
	if err := events.Ring(ctx, idb, events.SessionsTopic(userID.String())); err != nil {
		return fmt.Errorf("ring sessions: %w", err)
	}
	return nil
}
