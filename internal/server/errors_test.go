package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/logging"
)

func TestPresentError(t *testing.T) {
	var logs bytes.Buffer
	log := logging.New(&logs, config.Log{Level: slog.LevelInfo, Format: "json"})
	present := presentError(log)
	ctx := logging.WithRequestID(context.Background(), "req-42")

	got := present(ctx, apperr.Errorf(apperr.NotFound, "No such work.").With("retryAfter", 3))
	if got.Message != "No such work." || got.Extensions["code"] != "NOT_FOUND" || got.Extensions["retryAfter"] != 3 {
		t.Errorf("apperr: got %q %v", got.Message, got.Extensions)
	}

	wrapped := fmt.Errorf("load work: %w", apperr.Errorf(apperr.Forbidden, "Not yours."))
	if got := present(ctx, wrapped); got.Extensions["code"] != "FORBIDDEN" || got.Message != "Not yours." {
		t.Errorf("wrapped apperr: got %q %v", got.Message, got.Extensions)
	}

	secret := errors.New("dial tcp 10.0.0.5:5432: password authentication failed for user app")
	got = present(ctx, secret)
	if got.Extensions["code"] != "INTERNAL" || got.Extensions["requestId"] != "req-42" || !strings.Contains(got.Message, "req-42") {
		t.Errorf("plain error: got %q %v, want INTERNAL with the request id", got.Message, got.Extensions)
	}
	if strings.Contains(got.Message, "password") || strings.Contains(got.Message, "10.0.0.5") {
		t.Errorf("the cause leaked to the client: %q", got.Message)
	}
	if !strings.Contains(logs.String(), "password authentication failed") || !strings.Contains(logs.String(), `"request_id":"req-42"`) {
		t.Errorf("the cause was not logged: %s", logs.String())
	}

	// The database did not answer (a restart, a failover): try again.
	down := fmt.Errorf("authenticate: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	got = present(ctx, down)
	if got.Extensions["code"] != "UNAVAILABLE" || got.Extensions["retryAfter"] != unavailableRetryAfter || !strings.Contains(got.Message, "req-42") {
		t.Errorf("database down: got %q %v, want UNAVAILABLE with retryAfter and the request id", got.Message, got.Extensions)
	}
	if strings.Contains(got.Message, "dial") {
		t.Errorf("the cause leaked to the client: %q", got.Message)
	}

	protocol := gqlerror.Errorf("Unexpected token")
	if got := present(ctx, protocol); got.Extensions["code"] != "BAD_REQUEST" {
		t.Errorf("request error without a code: got %v, want BAD_REQUEST", got.Extensions)
	}
}

func TestPanicIsLoggedOnceAndShownAsInternal(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	ctx := logging.WithRequestID(context.Background(), "req-7")
	err := recoverPanic(log)(ctx, "boom")
	got := presentError(log)(ctx, err)
	if got.Extensions["code"] != "INTERNAL" {
		t.Fatalf("panic shown as %v", got.Extensions)
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), "boom") || !strings.Contains(logs.String(), "stack") {
		t.Errorf("want one log line with the panic and its stack, got %d:\n%s", n, logs.String())
	}
}
