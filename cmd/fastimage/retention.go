package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/fastimage/api/internal/app"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/logging"
)

// retention runs the retention job once, with the settings of serve, and
// prints what it removed. The periodic job (RETENTION_INTERVAL) does the
// same in every serve and worker process.
func retention(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := config.ParseServe(args, stderr)
	if err != nil {
		return err
	}
	log := logging.New(stderr, cfg.Log)
	bdb, _, err := openDatabase(ctx, cfg, "fastimage-retention", log)
	if err != nil {
		return err
	}
	defer bdb.Close()
	a, err := app.New(ctx, cfg, bdb, log, app.Overrides{})
	if err != nil {
		return err
	}
	defer a.Close()
	started := time.Now()
	rep, err := a.Retain(ctx)
	printRetentionReport(stdout, cfg.Privacy.Retention, rep, time.Since(started))
	return err
}

func printRetentionReport(w io.Writer, r config.Retention, rep app.RetentionReport, took time.Duration) {
	kept := func(d time.Duration) string {
		if d <= 0 {
			return "kept (setting 0)"
		}
		return "older than " + d.String()
	}
	fmt.Fprintf(w, "Retention run in %s:\n", took.Round(time.Millisecond))
	fmt.Fprintf(w, "  %6d ended sessions deleted (%s after they ended)\n", rep.Sessions, kept(r.Sessions))
	fmt.Fprintf(w, "  %6d spent email links deleted (%s after they ended)\n", rep.EmailTokens, kept(r.EmailTokens))
	fmt.Fprintf(w, "  %6d security events deleted (%s)\n", rep.SecurityEvents, kept(r.SecurityEvents))
	fmt.Fprintf(w, "  %6d usage events deleted (%s)\n", rep.UsageEvents, kept(r.UsageEvents))
	fmt.Fprintf(w, "  %6d security event IP addresses cut to /24 or /48 (%s)\n", rep.IPsTruncated, kept(r.IPTruncateAfter))
}
