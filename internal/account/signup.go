package account

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/password"
)

// Captcha actions, checked where the provider reports one.
const (
	actionSignUp = "signup"
	actionSignIn = "signin"
)

// SignUpInput is what a new user gives.
type SignUpInput struct {
	Email        string
	Name         string
	Password     string
	CaptchaToken string
}

// SignUp creates an unverified account and emails a verification link. Its
// answer is the same whether or not the email already has an account; that
// account's owner is told by email instead.
// Returns VALIDATION, PASSWORD_WEAK, CAPTCHA_FAILED or RATE_LIMITED.
func (s *Service) SignUp(ctx context.Context, in SignUpInput) error {
	email, err := NormalizeEmail(in.Email)
	if err != nil {
		return err
	}
	name, err := normalizeName(in.Name)
	if err != nil {
		return err
	}
	if err := checkPassword(in.Password, email); err != nil {
		return err
	}
	if err := s.checkCaptcha(ctx, in.CaptchaToken, actionSignUp, nil); err != nil {
		return err
	}
	if err := s.take(ctx, nil, "signup-ip:"+ClientFrom(ctx).IP, s.cfg.Limits.SignUpsPerIP); err != nil {
		return err
	}
	if err := s.take(ctx, nil, "mail:"+email, s.cfg.Limits.EmailsPerAddress...); err != nil {
		return err
	}
	// Hash before knowing whether the account exists, so both answers take
	// the same time.
	hash, err := s.cfg.Passwords.Hash(ctx, in.Password)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}

	// Both branches run as many statements of like cost (loading the
	// existing account stands for creating the token), so that the time the
	// answer takes does not tell either.
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		u := &User{Email: email, Name: name, PasswordHash: hash, Role: RoleUser, Status: StatusActive}
		res, err := tx.NewInsert().Model(u).On("CONFLICT (email) DO NOTHING").Returning("id, created_at").Exec(ctx)
		if err != nil {
			return fmt.Errorf("insert user: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var existing User
			if err := tx.NewSelect().Model(&existing).Where("email = ?", email).Scan(ctx); err != nil {
				return fmt.Errorf("load existing user: %w", err)
			}
			if err := s.enqueue(ctx, tx, signUpExistingMessage(email)); err != nil {
				return err
			}
			if err := s.onSignUp(ctx, tx, uuid.Nil); err != nil {
				return err
			}
			return record(ctx, tx, &existing.ID, nil, EventSignUpExisting, nil)
		}
		token, err := createEmailToken(ctx, tx, u.ID, "verify_email", nil, s.cfg.VerifyTokenTTL)
		if err != nil {
			return err
		}
		if err := s.enqueue(ctx, tx, s.verifyEmailMessage(email, token)); err != nil {
			return err
		}
		if err := s.onSignUp(ctx, tx, u.ID); err != nil {
			return err
		}
		return record(ctx, tx, &u.ID, nil, EventSignUp, nil)
	})
}

// onSignUp runs Config.OnSignUp, if any, for userID (uuid.Nil: the address
// had an account already).
func (s *Service) onSignUp(ctx context.Context, tx bun.Tx, userID uuid.UUID) error {
	if s.cfg.OnSignUp == nil {
		return nil
	}
	if err := s.cfg.OnSignUp(ctx, tx, userID); err != nil {
		return fmt.Errorf("after sign-up: %w", err)
	}
	return nil
}

// VerifyEmail marks the account of an emailed verification link verified.
// Returns TOKEN_INVALID, TOKEN_EXPIRED or TOKEN_USED.
func (s *Service) VerifyEmail(ctx context.Context, token string) (*User, error) {
	var u User
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		t, err := consumeEmailToken(ctx, tx, "verify_email", token)
		if err != nil {
			return err
		}
		if err := tx.NewUpdate().Model(&u).
			Set("email_verified_at = coalesce(email_verified_at, now())").
			Set("updated_at = now()").
			Where("id = ?", t.UserID).Returning("*").Scan(ctx); err != nil {
			return fmt.Errorf("mark verified: %w", err)
		}
		if s.cfg.OnEmailVerified != nil {
			if err := s.cfg.OnEmailVerified(ctx, tx, u.ID); err != nil {
				return fmt.Errorf("after verification: %w", err)
			}
		}
		return record(ctx, tx, &u.ID, nil, EventEmailVerified, nil)
	})
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// ResendVerification emails a new verification link, voiding older ones.
// For a signed-in viewer it uses their address; otherwise email names it,
// and the answer is the same whether or not such an unverified account
// exists. Returns VALIDATION or RATE_LIMITED.
func (s *Service) ResendVerification(ctx context.Context, email string) error {
	if v, _ := Optional(ctx); v != nil {
		email = v.User.Email
	}
	email, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	if err := s.take(ctx, nil, "mail:"+email, s.cfg.Limits.EmailsPerAddress...); err != nil {
		return err
	}
	return s.mailLink(ctx, email, "email_verified_at IS NULL", "verify_email", s.cfg.VerifyTokenTTL, EventVerificationAsked, s.verifyEmailMessage)
}

// mailLink emails a new link of kind (voiding older ones) to the active
// account of email that also meets extra (an SQL condition, or ""), and
// records event. When there is no such account it sends nothing, but runs
// the same statements (which then change nothing but the record of the
// request, kept without a user): the time the answer takes must not tell
// whether the address has an account.
func (s *Service) mailLink(ctx context.Context, email, extra, kind string, ttl time.Duration, event EventKind,
	message func(to, token string) mailMessage) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var u User
		q := tx.NewSelect().Model(&u).Where("email = ? AND status = ?", email, StatusActive)
		if extra != "" {
			q = q.Where(extra)
		}
		err := q.Scan(ctx)
		found := err == nil
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("find user: %w", err)
		}
		// Without an account u.ID is uuid.Nil, which has no tokens to void
		// and gets none.
		token, err := createEmailToken(ctx, tx, u.ID, kind, nil, ttl)
		if err != nil {
			return err
		}
		msgs := []mailMessage{message(email, token)}
		userID := &u.ID
		if !found {
			msgs, userID = nil, nil
		}
		if err := s.enqueue(ctx, tx, msgs...); err != nil {
			return err
		}
		return record(ctx, tx, userID, nil, event, nil)
	})
}

type emailToken struct {
	bun.BaseModel `bun:"table:email_tokens"`

	ID        uuid.UUID  `bun:"id,pk,type:uuid,default:uuidv7()"`
	UserID    uuid.UUID  `bun:"user_id,type:uuid"`
	Kind      string     `bun:"kind"`
	TokenHash []byte     `bun:"token_hash"`
	NewEmail  *string    `bun:"new_email"`
	CreatedAt time.Time  `bun:"created_at,nullzero,default:now()"`
	ExpiresAt time.Time  `bun:"expires_at"`
	UsedAt    *time.Time `bun:"used_at"`
	VoidedAt  *time.Time `bun:"voided_at"`
}

// Kinds of emailed links.
const (
	kindVerifyEmail   = "verify_email"
	kindPasswordReset = "password_reset"
	kindEmailChange   = "email_change"
)

// voidOpenTokens voids userID's open links of kinds. Once the owner secures
// the account (a new password, a new address, a suspension), a link sent
// earlier, perhaps to an address or a person no longer trusted, must not
// undo it.
func voidOpenTokens(ctx context.Context, idb bun.IDB, userID uuid.UUID, kinds ...string) error {
	if _, err := idb.NewUpdate().Model((*emailToken)(nil)).Set("voided_at = now()").
		Where("user_id = ? AND kind IN (?) AND used_at IS NULL AND voided_at IS NULL", userID, bun.In(kinds)).Exec(ctx); err != nil {
		return fmt.Errorf("void open links: %w", err)
	}
	return nil
}

// createEmailToken voids the user's open tokens of the same kind (a newer
// link replaces older ones) and returns a new one, in one statement. For a
// user that does not exist, such as uuid.Nil, the statement runs all the
// same and changes nothing.
func createEmailToken(ctx context.Context, tx bun.Tx, userID uuid.UUID, kind string, newEmail *string, ttl time.Duration) (string, error) {
	token, hash := newToken()
	if _, err := tx.NewRaw(`
		WITH voided AS (
			UPDATE email_tokens SET voided_at = now()
			WHERE user_id = ?0 AND kind = ?1 AND used_at IS NULL AND voided_at IS NULL
		)
		INSERT INTO email_tokens (user_id, kind, token_hash, new_email, expires_at)
		SELECT id, ?1, ?2, ?3::text, ?4::timestamptz FROM users WHERE id = ?0`,
		userID, kind, hash, newEmail, time.Now().Add(ttl)).Exec(ctx); err != nil {
		return "", fmt.Errorf("create %s token: %w", kind, err)
	}
	return token, nil
}

// consumeEmailToken marks a token used, exactly once however many callers
// race for it: the conditional UPDATE lets one through.
// Returns TOKEN_INVALID, TOKEN_EXPIRED or TOKEN_USED.
func consumeEmailToken(ctx context.Context, tx bun.Tx, kind, token string) (*emailToken, error) {
	if !validTokenShape(token) {
		return nil, apperr.Errorf(apperr.TokenInvalid, "This link is not valid. Use the newest link we emailed you, or ask for a new one.")
	}
	hash := hashToken(token)
	var t emailToken
	err := tx.NewUpdate().Model(&t).Set("used_at = now()").
		Where("token_hash = ? AND kind = ? AND used_at IS NULL AND voided_at IS NULL AND expires_at > now()", hash, kind).
		Returning("*").Scan(ctx)
	if err == nil && subtle.ConstantTimeCompare(t.TokenHash, hash) == 1 {
		return &t, nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("consume token: %w", err)
	}
	// Say why it failed.
	err = tx.NewSelect().Model(&t).Where("token_hash = ? AND kind = ?", hash, kind).Scan(ctx)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, apperr.Errorf(apperr.TokenInvalid, "This link is not valid. Use the newest link we emailed you, or ask for a new one.")
	case err != nil:
		return nil, fmt.Errorf("inspect token: %w", err)
	case t.UsedAt != nil:
		return nil, apperr.Errorf(apperr.TokenUsed, "This link was already used. Ask for a new one if you still need it.")
	case t.VoidedAt != nil:
		return nil, apperr.Errorf(apperr.TokenInvalid, "This link no longer works: a newer link replaced it, or the account's password or email changed since it was sent. Use the newest link we emailed you, or ask for a new one.")
	default:
		return nil, apperr.Errorf(apperr.TokenExpired, "This link has expired. Ask for a new one.")
	}
}

// NormalizeEmail trims and lowercases an address and checks that it is one.
// Returns VALIDATION.
func NormalizeEmail(raw string) (string, error) {
	email := strings.ToLower(strings.TrimSpace(raw))
	addr, err := mail.ParseAddress(email)
	at := strings.LastIndexByte(email, '@')
	if err != nil || addr.Address != email || addr.Name != "" || len(email) > 254 || at < 1 ||
		!strings.Contains(email[at+1:], ".") || strings.HasSuffix(email, ".") {
		return "", apperr.Errorf(apperr.Validation, "Enter an email address such as name@example.com.").With("field", "email")
	}
	return email, nil
}

func normalizeName(raw string) (string, error) {
	name := strings.TrimSpace(raw)
	if len([]rune(name)) > 100 {
		return "", apperr.Errorf(apperr.Validation, "Use a name of at most 100 characters.").With("field", "name")
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return "", apperr.Errorf(apperr.Validation, "Use a name without control characters.").With("field", "name")
		}
	}
	return name, nil
}

// checkPassword applies the password policy.
// Returns PASSWORD_WEAK with the reason.
func checkPassword(pw, email string) error {
	if err := password.Check(pw, email); err != nil {
		var weak *password.Weakness
		if errors.As(err, &weak) {
			return apperr.Errorf(apperr.PasswordWeak, "%s", weak.Message).With("reason", weak.Reason).With("field", "password")
		}
		return err
	}
	return nil
}
