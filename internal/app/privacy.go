package app

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/usage"
)

// RetentionReport counts what one run of the retention job removed or
// changed.
type RetentionReport struct {
	Sessions       int // ended sessions deleted
	EmailTokens    int // spent email links deleted
	SecurityEvents int // old security events deleted
	UsageEvents    int // old usage events deleted
	IPsTruncated   int // security events whose IP address was cut to its network
}

// Total is everything the run removed or changed.
func (r RetentionReport) Total() int {
	return r.Sessions + r.EmailTokens + r.SecurityEvents + r.UsageEvents + r.IPsTruncated
}

// LogValue lists the counts in the log.
func (r RetentionReport) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("sessions", r.Sessions), slog.Int("email_tokens", r.EmailTokens),
		slog.Int("security_events", r.SecurityEvents), slog.Int("usage_events", r.UsageEvents),
		slog.Int("ips_truncated", r.IPsTruncated))
}

// Retain applies the retention settings once: it deletes the sessions and
// email links that ended, and the security and usage events that are older
// than their settings allow, and cuts the IP addresses of old security
// events to their networks. A setting of 0 keeps those records. It is
// idempotent: a second run right after finds nothing to do. Expired exports
// are purged by the privacy export job, not here.
func (a *App) Retain(ctx context.Context) (RetentionReport, error) {
	r := a.Config.Privacy.Retention
	now := a.clock.Now()
	var rep RetentionReport
	steps := []struct {
		keep time.Duration
		n    *int
		run  func(cutoff time.Time) (int, error)
	}{
		{r.Sessions, &rep.Sessions, func(c time.Time) (int, error) {
			return account.PurgeEndedSessions(ctx, a.DB, c, a.Config.Accounts.SessionIdleTimeout)
		}},
		{r.EmailTokens, &rep.EmailTokens, func(c time.Time) (int, error) { return account.PurgeSpentEmailTokens(ctx, a.DB, c) }},
		// Deleting first spares cutting the IPs of events about to go.
		{r.SecurityEvents, &rep.SecurityEvents, func(c time.Time) (int, error) { return account.PurgeSecurityEvents(ctx, a.DB, c) }},
		{r.IPTruncateAfter, &rep.IPsTruncated, func(c time.Time) (int, error) { return account.TruncateSecurityEventIPs(ctx, a.DB, c) }},
		{r.UsageEvents, &rep.UsageEvents, func(c time.Time) (int, error) { return usage.Purge(ctx, a.DB, c) }},
	}
	for _, st := range steps {
		if st.keep <= 0 {
			continue
		}
		n, err := st.run(now.Add(-st.keep))
		*st.n += n
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// retain runs Retain and logs what it removed.
func (a *App) retain(ctx context.Context) (int, error) {
	rep, err := a.Retain(ctx)
	if rep.Total() > 0 {
		a.Log.InfoContext(ctx, "retention removed old records", "removed", rep)
	}
	return rep.Total(), err
}

// registerUsageMetrics reports in /metrics the usage events this process
// stored and those it dropped because its queue was full.
func registerUsageMetrics(r *prometheus.Registry, u *usage.Recorder) {
	reg := promauto.With(r)
	reg.NewCounterFunc(prometheus.CounterOpts{Name: "fastimage_usage_events_written_total", Help: "Usage events stored (only with ANALYTICS_ENABLED)."},
		func() float64 { return float64(u.Written()) })
	reg.NewCounterFunc(prometheus.CounterOpts{Name: "fastimage_usage_events_dropped_total", Help: "Usage events dropped because the queue to the database was full."},
		func() float64 { return float64(u.Dropped()) })
}

// runPrivacy starts, beside requests, the usage recorder's writer and the
// forwarder of usage events, after publishing the legal documents; wg
// waits for them.
func (a *App) runPrivacy(ctx context.Context, wg *sync.WaitGroup) {
	// Published before requests are served, so that the first sign-up
	// accepts them. A database not migrated yet (the server then refuses
	// to be ready) is logged and tried again at the next start.
	if n, err := a.Legal.Publish(ctx); err != nil {
		a.Log.ErrorContext(ctx, "legal documents not published", "err", err)
	} else if n > 0 {
		a.Log.InfoContext(ctx, "legal documents published", "count", n)
	}
	if a.Usage.Enabled() {
		wg.Go(func() { a.Usage.Run(ctx) })
	}
	if a.Forwarder != nil {
		every := a.Config.Privacy.AnalyticsForwardInterval
		if every <= 0 {
			every = time.Minute
		}
		wg.Go(func() { runMaintenance(ctx, every, a.Log, task{"forward usage events", a.Forwarder.Forward}) })
	}
}
