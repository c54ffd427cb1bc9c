package account

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
)

// ReauthWindow is how recently the password must have been proved on the
// session ("sudo mode": sign-in or ConfirmPassword) for actions that cannot
// be undone or that outlive the session: deleting the account, making an
// API key.
const ReauthWindow = 10 * time.Minute

// RequireRecentPassword returns REAUTHENTICATION_REQUIRED, saying what
// needs it, unless the actor's session proved the password within
// ReauthWindow. It compares on the database's clock, which stamped the
// proof.
func RequireRecentPassword(ctx context.Context, idb bun.IDB, a actor.Actor, what string) error {
	var recent bool
	err := idb.NewRaw("SELECT password_confirmed_at > now() - ?::interval FROM sessions WHERE id = ? AND user_id = ?",
		fmt.Sprintf("%d seconds", int(ReauthWindow.Seconds())), a.SessionID, a.UserID).Scan(ctx, &recent)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read session: %w", err)
	}
	if !recent {
		return apperr.Errorf(apperr.ReauthenticationRequired,
			"%s needs your password again: confirm it (confirmPassword), then try within %d minutes.", what, int(ReauthWindow.Minutes()))
	}
	return nil
}
