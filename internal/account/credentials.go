package account

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/apperr"
)

// ChangePassword replaces the viewer's password after checking the current
// one, signs out every other session and voids open reset and email-change
// links.
// Returns INVALID_CREDENTIALS, RATE_LIMITED or PASSWORD_WEAK.
func (s *Service) ChangePassword(ctx context.Context, v *Viewer, current, next string) error {
	if err := v.Actor().RequireSession(); err != nil {
		return err
	}
	ok, err := s.checkViewerPassword(ctx, v, current)
	if err != nil {
		return err
	}
	if !ok {
		s.recordBestEffort(ctx, &v.User.ID, &v.Session.ID, EventSignInFailed, map[string]any{"during": "change password"})
		return apperr.Errorf(apperr.InvalidCredentials, "Your current password is wrong.").With("field", "currentPassword")
	}
	if err := checkPassword(next, v.User.Email); err != nil {
		return err
	}
	hash, err := s.cfg.Passwords.Hash(ctx, next)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewUpdate().Model((*User)(nil)).Set("password_hash = ?", hash).Set("updated_at = now()").
			Where("id = ?", v.User.ID).Exec(ctx); err != nil {
			return fmt.Errorf("update password: %w", err)
		}
		if _, err := revokeOthers(ctx, tx, v.User.ID, &v.Session.ID, "password changed"); err != nil {
			return err
		}
		if err := voidOpenTokens(ctx, tx, v.User.ID, kindPasswordReset, kindEmailChange); err != nil {
			return err
		}
		if err := s.enqueue(ctx, tx, passwordChangedMessage(v.User.Email)); err != nil {
			return err
		}
		return record(ctx, tx, &v.User.ID, &v.Session.ID, EventPasswordChanged, nil)
	})
	return err
}

// RequestPasswordReset emails a one-hour, single-use reset link to the
// account of email, if there is one; the answer is the same either way.
// Returns VALIDATION or RATE_LIMITED.
func (s *Service) RequestPasswordReset(ctx context.Context, email string) error {
	email, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	if err := s.take(ctx, nil, "reset-ip:"+ClientFrom(ctx).IP, s.cfg.Limits.ResetsPerIP); err != nil {
		return err
	}
	if err := s.take(ctx, nil, "mail:"+email, s.cfg.Limits.EmailsPerAddress...); err != nil {
		return err
	}
	return s.mailLink(ctx, email, "", "password_reset", resetTokenTTL, EventResetRequested, s.resetMessage)
}

// ResetPassword sets a new password with an emailed reset token, signs out
// every session, voids open email-change links, and does not sign in. A token works once, however many
// requests race with it.
// Returns TOKEN_INVALID, TOKEN_EXPIRED, TOKEN_USED or PASSWORD_WEAK.
func (s *Service) ResetPassword(ctx context.Context, token, next string) error {
	// Check the password against the policy before spending the token, so a
	// weak choice can be corrected with the same link.
	var userID uuid.UUID
	var email string
	err := s.db.NewSelect().ColumnExpr("u.id, u.email").TableExpr("email_tokens AS t").Join("JOIN users AS u ON u.id = t.user_id").
		Where("t.token_hash = ? AND t.kind = 'password_reset'", hashToken(token)).Scan(ctx, &userID, &email)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("find reset token: %w", err)
	}
	if err == nil {
		if err := checkPassword(next, email); err != nil {
			return err
		}
	}
	hash, err := s.cfg.Passwords.Hash(ctx, next)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		t, err := consumeEmailToken(ctx, tx, "password_reset", token)
		if err != nil {
			return err
		}
		if _, err := tx.NewUpdate().Model((*User)(nil)).Set("password_hash = ?", hash).Set("updated_at = now()").
			Where("id = ?", t.UserID).Exec(ctx); err != nil {
			return fmt.Errorf("update password: %w", err)
		}
		if _, err := revokeOthers(ctx, tx, t.UserID, nil, "password reset"); err != nil {
			return err
		}
		if err := voidOpenTokens(ctx, tx, t.UserID, kindPasswordReset, kindEmailChange); err != nil {
			return err
		}
		return record(ctx, tx, &t.UserID, nil, EventResetCompleted, nil)
	})
}

// ChangeEmail asks to move the viewer's account to newEmail: the new address
// gets a confirmation link and the old one a notice; nothing changes until the
// link is used.
// Returns VALIDATION, INVALID_CREDENTIALS, CONFLICT or RATE_LIMITED.
func (s *Service) ChangeEmail(ctx context.Context, v *Viewer, newEmail, pw string) error {
	if err := v.Actor().RequireSession(); err != nil {
		return err
	}
	newEmail, err := NormalizeEmail(newEmail)
	if err != nil {
		return err
	}
	ok, err := s.checkViewerPassword(ctx, v, pw)
	if err != nil {
		return err
	}
	if !ok {
		return apperr.Errorf(apperr.InvalidCredentials, "Your password is wrong.").With("field", "password")
	}
	if newEmail == v.User.Email {
		return apperr.Errorf(apperr.Validation, "That is already your email address.").With("field", "newEmail")
	}
	if err := s.take(ctx, &v.User.ID, "mail:"+newEmail, s.cfg.Limits.EmailsPerAddress...); err != nil {
		return err
	}
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		token, err := createEmailToken(ctx, tx, v.User.ID, "email_change", &newEmail, s.cfg.EmailChangeTokenTTL)
		if err != nil {
			return err
		}
		if err := s.enqueue(ctx, tx, s.emailChangeMessage(newEmail, token), emailChangeNoticeMessage(v.User.Email, newEmail)); err != nil {
			return err
		}
		return record(ctx, tx, &v.User.ID, &v.Session.ID, EventEmailChangeAsked, nil)
	})
}

// ConfirmEmailChange applies an email change with the link sent to the new
// address, and voids every other open link: those went to the old address.
// Returns TOKEN_INVALID, TOKEN_EXPIRED, TOKEN_USED or CONFLICT when the
// address was taken meanwhile.
func (s *Service) ConfirmEmailChange(ctx context.Context, token string) (*User, error) {
	var u User
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		t, err := consumeEmailToken(ctx, tx, "email_change", token)
		if err != nil {
			return err
		}
		var taken bool
		if err := tx.NewRaw("SELECT EXISTS (SELECT 1 FROM users WHERE email = ?)", *t.NewEmail).Scan(ctx, &taken); err != nil {
			return err
		}
		if taken {
			return apperr.Errorf(apperr.Conflict, "Another account uses that address now; the change was not made.")
		}
		var old string
		if err := tx.NewSelect().Model((*User)(nil)).Column("email").Where("id = ?", t.UserID).Scan(ctx, &old); err != nil {
			return err
		}
		if err := tx.NewUpdate().Model(&u).Set("email = ?", *t.NewEmail).
			Set("email_verified_at = now()").Set("updated_at = now()").
			Where("id = ?", t.UserID).Returning("*").Scan(ctx); err != nil {
			return fmt.Errorf("change email: %w", err)
		}
		if err := voidOpenTokens(ctx, tx, u.ID, kindVerifyEmail, kindPasswordReset, kindEmailChange); err != nil {
			return err
		}
		return record(ctx, tx, &u.ID, nil, EventEmailChanged, nil)
	})
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// checkViewerPassword verifies the signed-in viewer's password. Its checks
// are counted per user like sign-in attempts, so that a session (perhaps a
// stolen one) cannot guess the password, an argon2 hash each, without bound.
// Returns RATE_LIMITED.
func (s *Service) checkViewerPassword(ctx context.Context, v *Viewer, pw string) (bool, error) {
	attempt, err := s.beginPasswordCheck(ctx, &v.User.ID, "password-check:"+v.User.ID.String(), nil)
	if err != nil {
		return false, err
	}
	// The hash is read now, not taken from the viewer: a viewer that
	// authenticated hours ago (a WebSocket's) does not carry it, and would
	// carry an old one after a change.
	var hash string
	if err := s.db.NewSelect().Model((*User)(nil)).Column("password_hash").Where("id = ?", v.User.ID).Scan(ctx, &hash); err != nil {
		s.passwordUnchecked(ctx, attempt)
		return false, fmt.Errorf("read password hash: %w", err)
	}
	ok, err := s.cfg.Passwords.Verify(ctx, pw, hash)
	if err != nil {
		s.passwordUnchecked(ctx, attempt)
		return false, fmt.Errorf("verify password: %w", err)
	}
	if !ok {
		return false, s.passwordFailed(ctx, attempt)
	}
	return true, s.passwordPassed(ctx, attempt)
}

// UpdateProfile sets the viewer's display name.
// Returns VALIDATION.
func (s *Service) UpdateProfile(ctx context.Context, v *Viewer, name string) (*User, error) {
	if err := v.Actor().RequireSession(); err != nil {
		return nil, err
	}
	name, err := normalizeName(name)
	if err != nil {
		return nil, err
	}
	var u User
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewUpdate().Model(&u).Set("name = ?", name).Set("updated_at = now()").
			Where("id = ?", v.User.ID).Returning("*").Scan(ctx); err != nil {
			return fmt.Errorf("update profile: %w", err)
		}
		return record(ctx, tx, &u.ID, &v.Session.ID, EventProfileUpdated, nil)
	})
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// ConfirmPassword proves the viewer's password again on this session
// ("sudo mode"): actions that cannot be undone, such as deleting the
// account, want a password proved within minutes, not only a session.
// Sign-in counts as a confirmation too. Wrong passwords count against the
// same limit as every password check.
// Returns INVALID_CREDENTIALS or RATE_LIMITED.
func (s *Service) ConfirmPassword(ctx context.Context, v *Viewer, password string) (time.Time, error) {
	if err := v.Actor().RequireSession(); err != nil {
		return time.Time{}, err
	}
	ok, err := s.checkViewerPassword(ctx, v, password)
	if err != nil {
		return time.Time{}, err
	}
	if !ok {
		s.recordBestEffort(ctx, &v.User.ID, &v.Session.ID, EventSignInFailed, map[string]any{"during": "confirm password"})
		return time.Time{}, apperr.Errorf(apperr.InvalidCredentials, "That password is wrong.").With("field", "password")
	}
	var at time.Time
	if err := s.db.NewRaw("UPDATE sessions SET password_confirmed_at = now() WHERE id = ? RETURNING password_confirmed_at", v.Session.ID).
		Scan(ctx, &at); err != nil {
		return time.Time{}, fmt.Errorf("confirm password: %w", err)
	}
	v.Session.PasswordConfirmedAt = at
	return at, nil
}
