// Command fastimage is the FastImage API service: one binary with the
// subcommands serve, worker, migrate, billing, retention and version. Run `fastimage
// help` for usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/app"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/logging"
	"github.com/fastimage/api/internal/metrics"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

const usage = `fastimage — the FastImage API service

Usage:
  fastimage serve [flags]            run the HTTP API and, unless --workers=0, generation workers
  fastimage worker [flags]           run generation workers only (same flags as serve)
  fastimage migrate up|down|status   apply, roll back (development only) or list migrations
  fastimage billing sync-catalog [flags]
                                     create or update the catalog's Products and Prices in Stripe
                                     (same flags as serve; a second run changes nothing)
  fastimage billing reconcile [--since 72h] [flags]
                                     apply the paid Checkout Sessions and invoices of the last
                                     --since (default BILLING_RECONCILE_WINDOW) that no webhook
                                     delivered (same flags as serve; a second run applies nothing)
  fastimage retention [flags]        apply the retention settings once and print what was removed
                                     (same flags as serve; the periodic job does the same)
  fastimage version                  print the version

Every flag has an environment variable of the same meaning; the flag wins.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one subcommand and returns the process exit code: 0 on
// success, 2 for bad usage or settings, 1 for any other failure.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr)
	case "worker":
		err = worker(ctx, args[1:], stderr)
	case "migrate":
		err = migrate(ctx, args[1:], stdout, stderr)
	case "billing":
		err = billingCommand(ctx, args[1:], stdout, stderr)
	case "retention":
		err = retention(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, buildVersion())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "fastimage: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	command := args[0]
	if command == "billing" && len(args) > 1 {
		command += " " + args[1]
	}
	var settings *config.Error
	switch {
	case err == nil, config.IsHelp(err):
		return 0
	case errors.As(err, &settings):
		fmt.Fprintf(stderr, "fastimage %s: %v\n", command, err)
		return 2
	default:
		fmt.Fprintf(stderr, "fastimage %s: %v\n", command, err)
		return 1
	}
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := config.ParseServe(args, stderr)
	if err != nil {
		return err
	}
	log := logging.New(stderr, cfg.Log)
	bdb, migrator, err := openDatabase(ctx, cfg, "fastimage-serve", log)
	if err != nil {
		return err
	}
	defer bdb.Close()

	a, err := app.New(ctx, cfg, bdb, log, app.Overrides{})
	if err != nil {
		return err
	}
	defer a.Close()
	srv := a.Server(migrator, buildVersion())
	stopBackground := a.Background(ctx)
	defer stopBackground()
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	metricsURL, stopMetrics, err := serveMetrics(ctx, cfg, a, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopMetrics()
	base := "http://" + ln.Addr().String()
	if metricsURL == "" {
		metricsURL = base + "/metrics"
	}
	graphiql := base + "/graphiql"
	if cfg.DisableGraphiQL {
		graphiql = "off (GRAPHIQL=false)"
	}
	log.Info("FastImage API listening",
		"addr", ln.Addr().String(), "version", buildVersion(), "env", string(cfg.Env),
		"graphql", base+"/graphql", "graphiql", graphiql, "ready", base+"/readyz", "metrics", metricsURL, "public_url", cfg.PublicURL.String())
	fmt.Fprintf(stdout, "FastImage API is up.\n  Editor:   %s/\n  GraphQL:  %s/graphql\n  GraphiQL: %s\n  Ready:    %s/readyz\n  Metrics:  %s\n", base, base, graphiql, base, metricsURL)
	if err := srv.Serve(ctx, ln); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// openDatabase opens the database of cfg, naming the connections appName,
// and prepares it (see prepareDatabase).
func openDatabase(ctx context.Context, cfg *config.Serve, appName string, log *slog.Logger) (*bun.DB, *db.Migrator, error) {
	bdb, err := db.Open(ctx, cfg.DB, appName)
	if err != nil {
		return nil, nil, err
	}
	migrator, err := prepareDatabase(ctx, bdb, cfg.Migrate, log)
	if err != nil {
		bdb.Close()
		return nil, nil, err
	}
	return bdb, migrator, nil
}

// prepareDatabase applies pending migrations when asked to, and otherwise
// refuses to go on while any are pending, naming them.
func prepareDatabase(ctx context.Context, bdb *bun.DB, apply bool, log *slog.Logger) (*db.Migrator, error) {
	migrator, err := db.NewMigrator(bdb)
	if err != nil {
		return nil, err
	}
	if apply {
		applied, err := migrator.Up(ctx)
		if err != nil {
			return nil, fmt.Errorf("apply migrations: %w", err)
		}
		if len(applied) > 0 {
			log.Info("applied migrations", "migrations", applied)
		}
		return migrator, nil
	}
	pending, err := migrator.Pending(ctx)
	if err != nil {
		return nil, err
	}
	if len(pending) > 0 {
		return nil, fmt.Errorf("the database has %d pending migration(s): %s.\nApply them with `fastimage migrate up`, or start with --migrate (MIGRATE=true)",
			len(pending), strings.Join(pending, ", "))
	}
	return migrator, nil
}

// worker runs generation workers and the periodic jobs, without the HTTP API.
func worker(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := config.ParseServe(args, stderr)
	if err != nil {
		return err
	}
	if cfg.Generate.Workers == 0 {
		return &config.Error{Problems: []string{"--workers must be at least 1 for `fastimage worker`"}}
	}
	log := logging.New(stderr, cfg.Log)
	bdb, _, err := openDatabase(ctx, cfg, "fastimage-worker", log)
	if err != nil {
		return err
	}
	defer bdb.Close()
	a, err := app.New(ctx, cfg, bdb, log, app.Overrides{})
	if err != nil {
		return err
	}
	defer a.Close()
	metricsURL, stopMetrics, err := serveMetrics(ctx, cfg, a, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	log.Info("FastImage workers running", "workers", cfg.Generate.Workers, "provider", a.Jobs.ProviderName(), "metrics", metricsURL)
	stop := a.Background(ctx)
	<-ctx.Done()
	stop()
	log.Info("stopped")
	return nil
}

// serveMetrics serves the App's metrics on METRICS_ADDR, when it is set,
// and returns their URL ("" when it is not set) and a function that stops
// that listener and waits for it.
func serveMetrics(ctx context.Context, cfg *config.Serve, a *app.App, log *slog.Logger) (string, func(), error) {
	if cfg.MetricsAddr == "" {
		return "", func() {}, nil
	}
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return "", nil, fmt.Errorf("listen on %s (METRICS_ADDR): %w", cfg.MetricsAddr, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := metrics.Serve(ctx, ln, a.Metrics, log); err != nil {
			log.Error("metrics listener stopped", "addr", cfg.MetricsAddr, "err", err)
		}
	}()
	return "http://" + ln.Addr().String() + "/metrics", func() { cancel(); <-done }, nil
}

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, rest, err := config.ParseMigrate(args, stderr)
	if err != nil {
		return err
	}
	if len(rest) != 1 || (rest[0] != "up" && rest[0] != "down" && rest[0] != "status") {
		return &config.Error{Problems: []string{"say what to do: fastimage migrate up | down | status"}}
	}
	if rest[0] == "down" && cfg.Env == config.Production {
		return &config.Error{Problems: []string{"migrations are forward-only in production: write a new migration that undoes the change instead of `migrate down`"}}
	}
	bdb, err := db.Open(ctx, cfg.DB, "fastimage-migrate")
	if err != nil {
		return err
	}
	defer bdb.Close()
	m, err := db.NewMigrator(bdb)
	if err != nil {
		return err
	}
	switch rest[0] {
	case "up":
		applied, err := m.Up(ctx)
		for _, name := range applied {
			fmt.Fprintln(stdout, "applied", name)
		}
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			fmt.Fprintln(stdout, "nothing to apply: the database is up to date")
		}
	case "down":
		undone, err := m.Down(ctx)
		for _, name := range undone {
			fmt.Fprintln(stdout, "rolled back", name)
		}
		if err != nil {
			return err
		}
		if len(undone) == 0 {
			fmt.Fprintln(stdout, "nothing to roll back")
		}
	case "status":
		status, err := m.Status(ctx)
		if err != nil {
			return err
		}
		for _, s := range status {
			state := "pending"
			if s.Applied {
				state = "applied"
			}
			fmt.Fprintf(stdout, "%-8s %s\n", state, s.Name)
		}
	}
	return nil
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}
