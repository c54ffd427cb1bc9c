package server

import (
	"errors"
	"fmt"
	"testing"

	"github.com/fastimage/api/internal/apperr"
)

// A socket whose session could not be checked — the database refused the
// connection — is told to reconnect (1013), not to sign in again (4401):
// the idle-subscriptions drill (internal/drills) saw valid sessions closed
// with 4401 while Postgres had no connection to spare.
func TestCloseFrame(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"ended", apperr.Errorf(apperr.Unauthenticated, "Your session has ended."), 4401},
		{"suspended", apperr.Errorf(apperr.AccountSuspended, "Suspended."), 4403},
		{"database refused", fmt.Errorf("authenticate: %w", errors.New("FATAL: sorry, too many clients already (SQLSTATE=53300)")), closeTryAgainLater},
		{"unavailable", apperr.Errorf(apperr.Unavailable, "Try again."), closeTryAgainLater},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, reason := closeFrame(tc.err); got != tc.want || reason == "" {
				t.Errorf("closeFrame(%v): got %d %q, want %d with a reason", tc.err, got, reason, tc.want)
			}
		})
	}
}
