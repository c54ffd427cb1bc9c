package account_test

import (
	"context"
	"testing"

	"github.com/fastimage/api/internal/apperr"
)

// TestViewerCarriesNoSecrets: a viewer lives as long as its WebSocket, for
// hours, so it carries neither the password hash nor the session's token
// hash; password checks read the hash afresh, and so see a change made
// through another viewer of the same session at once.
func TestViewerCarriesNoSecrets(t *testing.T) {
	t.Parallel()
	db, outbox, svc := newAccounts(t)
	ctx := context.Background()
	v := mustSignUp(t, db, outbox, svc, "secrets@example.com", false)
	if v.User.PasswordHash != "" || v.Session.TokenHash != nil {
		t.Fatalf("viewer carries password hash %q and token hash %x; want neither", v.User.PasswordHash, v.Session.TokenHash)
	}
	// Two viewers of one session, as a WebSocket and a request would be.
	other := *v
	const next = "another correct horse battery"
	if err := svc.ChangePassword(ctx, &other, goodPassword, next); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ConfirmPassword(ctx, v, goodPassword); err == nil {
		t.Errorf("the old password still confirmed on the other viewer")
	} else if code := apperr.CodeOf(err); code == apperr.Internal {
		t.Errorf("the old password on the other viewer: %v, want it refused", err)
	}
	if _, err := svc.ConfirmPassword(ctx, v, next); err != nil {
		t.Errorf("the new password on the other viewer: %v", err)
	}
}
