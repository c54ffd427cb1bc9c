package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fastimage/api/internal/billing"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/logging"
)

// paymentsOff is why a billing command cannot run without Stripe's keys.
const paymentsOff = "payments are off: set STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET (or --stripe-secret-key and --stripe-webhook-secret) to your Stripe account's secret key and the signing secret of its webhook endpoint"

// maxReconcileSince is the longest --since: as far back as the periodic
// reconcile may look (BILLING_RECONCILE_WINDOW).
const maxReconcileSince = 720 * time.Hour

// billingCommand runs `fastimage billing sync-catalog | reconcile`, with the
// settings of serve.
func billingCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "sync-catalog" && args[0] != "reconcile") {
		return &config.Error{Problems: []string{"say what to do: fastimage billing sync-catalog | reconcile [--since 72h]"}}
	}
	what, args := args[0], args[1:]
	var since string
	if what == "reconcile" {
		var err error
		if since, args, err = cutSince(args); err != nil {
			return err
		}
	}
	cfg, err := config.ParseServe(args, stderr)
	if err != nil {
		return err
	}
	if !cfg.Payments.Enabled() {
		return &config.Error{Problems: []string{paymentsOff}}
	}
	log := logging.New(stderr, cfg.Log)

	if what == "sync-catalog" {
		// The catalog sync talks to Stripe only: it runs where the database
		// cannot be reached, such as a release pipeline.
		svc, err := billing.FromConfig(nil, cfg, log)
		if err != nil {
			return err
		}
		report, err := svc.SyncCatalog(ctx)
		printSyncReport(stdout, svc.Catalog(), report, err == nil)
		return err
	}

	window := cfg.Payments.ReconcileWindow
	if since != "" {
		d, err := time.ParseDuration(since)
		if err != nil || d <= 0 || d > maxReconcileSince {
			return &config.Error{Problems: []string{fmt.Sprintf("--since must be a positive duration of at most %s, such as 72h, not %q", maxReconcileSince, since)}}
		}
		window = d
	}
	bdb, _, err := openDatabase(ctx, cfg, "fastimage-billing", log)
	if err != nil {
		return err
	}
	defer bdb.Close()
	svc, err := billing.FromConfig(bdb, cfg, log)
	if err != nil {
		return err
	}
	started := time.Now()
	report, err := svc.Reconcile(ctx, window)
	if err != nil {
		return err
	}
	printReconcileReport(stdout, report, window, started)
	return nil
}

// cutSince takes --since (or -since, with its value after a space or an =)
// out of args, which go on to the settings of serve, where it is unknown.
func cutSince(args []string) (since string, rest []string, err error) {
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			return since, append(rest, args[i:]...), nil
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-"), "=")
		if !strings.HasPrefix(arg, "-") || name != "since" {
			rest = append(rest, arg)
			continue
		}
		if !hasValue {
			if i+1 == len(args) {
				return "", nil, &config.Error{Problems: []string{"--since needs a duration, such as --since 72h"}}
			}
			i++
			value = args[i]
		}
		since = value
	}
	return since, rest, nil
}

// printSyncReport prints what a catalog sync did, one line per item, and a
// sentence; done says whether it went through the whole catalog.
func printSyncReport(w io.Writer, catalog *billing.Catalog, report billing.SyncReport, done bool) {
	if len(report.Items) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CODE\tPRODUCT\tPRICE\tAMOUNT\tLOOKUP KEY\tSTRIPE PRODUCT\tSTRIPE PRICE\tCHANGES")
		for _, it := range report.Items {
			item, _ := catalog.Find(it.Code)
			changes := strings.Join(it.Changes, "; ")
			if it.ReplacedPriceID != "" {
				changes += " (replaces " + it.ReplacedPriceID + ")"
			}
			if changes == "" {
				changes = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", it.Code, it.Product, it.Price, itemAmount(item),
				it.LookupKey, it.ProductID, it.PriceID, changes)
		}
		tw.Flush()
	}
	if !done {
		fmt.Fprintf(w, "Stopped after %d of %d items; run it again once the error below is fixed.\n", len(report.Items), len(catalog.Items))
		return
	}
	if !report.Changed() {
		fmt.Fprintf(w, "Stripe already sells these %d items: nothing changed.\n", len(report.Items))
		return
	}
	count := map[string]int{}
	for _, it := range report.Items {
		count["product "+string(it.Product)]++
		count["price "+string(it.Price)]++
	}
	fmt.Fprintf(w, "Stripe now sells these %d items: products %d created, %d updated; prices %d created, %d replaced (a new price took the lookup key).\n",
		len(report.Items), count["product created"], count["product updated"], count["price created"], count["price updated"])
}

// printReconcileReport prints what a reconcile found and applied.
func printReconcileReport(w io.Writer, report billing.ReconcileReport, window time.Duration, started time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "WINDOW\t%s (since %s)\n", window, started.Add(-window).UTC().Format(time.RFC3339))
	fmt.Fprintf(tw, "PAID CHECKOUT SESSIONS\t%d\n", report.Sessions)
	fmt.Fprintf(tw, "PAID INVOICES\t%d\n", report.Invoices)
	fmt.Fprintf(tw, "SUBSCRIPTIONS READ AGAIN\t%d\n", report.Subscriptions)
	fmt.Fprintf(tw, "APPLIED\t%d\n", report.Applied)
	tw.Flush()
	if report.Applied == 0 {
		fmt.Fprintln(w, "Every paid session, invoice and subscription change had already been applied: nothing changed.")
	} else {
		fmt.Fprintf(w, "Applied %d that no webhook had delivered.\n", report.Applied)
	}
}

// itemAmount is an item's price as people write it: "5.00 USD", "20.00 USD
// / month".
func itemAmount(item billing.Item) string {
	s := formatAmount(item.Price, item.Currency)
	if item.Interval != "" {
		s += " / " + string(item.Interval)
	}
	return s
}

// formatAmount writes an amount in minor units in its currency's major
// unit, with the decimals Stripe gives the currency.
func formatAmount(minor int64, currency string) string {
	code := strings.ToUpper(currency)
	switch currency {
	// Stripe's zero-decimal currencies: the amount is in whole units.
	case "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf":
		return fmt.Sprintf("%d %s", minor, code)
	// Its three-decimal currencies.
	case "bhd", "jod", "kwd", "omr", "tnd":
		return fmt.Sprintf("%d.%03d %s", minor/1000, minor%1000, code)
	}
	return fmt.Sprintf("%d.%02d %s", minor/100, minor%100, code)
}
