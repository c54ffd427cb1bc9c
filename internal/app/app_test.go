package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fastimage/api/internal/app"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/mail"
	"github.com/fastimage/api/internal/persisted"
)

// defaults is what `fastimage serve` runs with no flags, its blobs kept in a
// folder of the test's.
func defaults(t *testing.T) *config.Serve {
	t.Helper()
	cfg, err := config.ParseServe([]string{"--storage-dir", t.TempDir()}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestNewBuildsWhatServeRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bdb := dbtest.New(t)
	a, err := app.New(ctx, defaults(t), bdb, quietLog(), app.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	for name, missing := range map[string]bool{
		"Accounts": a.Accounts == nil, "Ledger": a.Ledger == nil, "Limiter": a.Limiter == nil,
		"Bucket": a.Bucket == nil, "Gallery": a.Gallery == nil, "Jobs": a.Jobs == nil, "Bus": a.Bus == nil,
		// The defaults keep blobs in a local folder and mail in the outbox.
		"Blobs": a.Blobs == nil, "Outbox": a.Outbox == nil,
	} {
		if missing {
			t.Errorf("%s is nil", name)
		}
	}
	if got, want := a.Jobs.ProviderName(), "local"; got != want {
		t.Errorf("provider %q, want %q", got, want)
	}

	m, err := db.NewMigrator(bdb)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	a.Server(m, "test-1").Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("/readyz: status %d, want 200: %s", rec.Code, rec.Body)
	}
}

func TestNewRefusesProductionWithoutSMTP(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	cfg := defaults(t)
	cfg.Env = config.Production
	_, err := app.New(context.Background(), cfg, bdb, quietLog(), app.Overrides{})
	var settings *config.Error
	if !errors.As(err, &settings) {
		t.Fatalf("got %v, want a *config.Error", err)
	}

	// A test that reads the mail may keep it in the outbox all the same.
	outbox := mail.NewOutbox(bdb)
	a, err := app.New(context.Background(), cfg, bdb, quietLog(), app.Overrides{Mailer: outbox})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Outbox != outbox {
		t.Errorf("Outbox %p, want the override %p", a.Outbox, outbox)
	}
}

// A manifest that names a field the schema lacks stops the start, as does
// the allow-list mode without a manifest.
func TestNewRefusesAStaleManifest(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	cfg := defaults(t)
	const stale = `query Old { serverInfo { uptime } }`
	cfg.PersistedQueries.File = filepath.Join(t.TempDir(), "manifest.json")
	manifest := fmt.Sprintf(`{%q: %q}`, persisted.Hash(stale), stale)
	if err := os.WriteFile(cfg.PersistedQueries.File, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := app.New(context.Background(), cfg, bdb, quietLog(), app.Overrides{})
	var settings *config.Error
	if !errors.As(err, &settings) || !strings.Contains(err.Error(), "PERSISTED_QUERIES_FILE") || !strings.Contains(err.Error(), "uptime") {
		t.Fatalf("got %v, want a *config.Error naming the setting and the unknown field", err)
	}

	_, err = config.ParseServe([]string{"--persisted-queries-only"}, io.Discard)
	if !errors.As(err, &settings) || !strings.Contains(err.Error(), "PERSISTED_QUERIES_FILE") {
		t.Errorf("allow-list mode without a manifest: %v, want a *config.Error naming PERSISTED_QUERIES_FILE", err)
	}
}

// TestBackgroundStopsCleanly runs the event listener, the workers, the
// maintenance loop and the mail worker (in the middle of a delivery to an
// SMTP server that never answers), and checks that stop leaves no goroutine
// behind.
func TestBackgroundStopsCleanly(t *testing.T) {
	// Not parallel: it counts the process's goroutines.
	ctx := context.Background()
	bdb := dbtest.New(t)
	cfg := defaults(t)
	cfg.MaintenanceInterval = 10 * time.Millisecond // several rounds before stop
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	cfg.Mail.SMTPURL = fmt.Sprintf("smtp://%s?from=no-reply%%40example.com&tls=none&timeout=1m", silent.Addr())
	a, err := app.New(ctx, cfg, bdb, quietLog(), app.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Mail == nil {
		t.Fatal("no mail worker with SMTP configured")
	}
	if err := a.Outbox.Send(ctx, mail.Message{Kind: "test", To: "ada@example.com", Subject: "Hi", Text: "Hello."}); err != nil {
		t.Fatal(err)
	}

	before := runtime.NumGoroutine()
	stop := a.Background(ctx)
	time.Sleep(100 * time.Millisecond)
	if n := runtime.NumGoroutine(); n < before+cfg.Generate.Workers {
		t.Errorf("%d goroutines while running, want at least %d", n, before+cfg.Generate.Workers)
	}
	stop()

	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after stop, want %d:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
