package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fastimage/api/internal/billing"
	"github.com/fastimage/api/internal/billing/stripemock"
	"github.com/fastimage/api/internal/proctest"
)

// runBilling runs the built binary with args and only the Stripe and billing
// settings in env (none of the caller's), and returns its exit code and
// output.
func runBilling(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(proctest.Binary(t), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STRIPE_") && !strings.HasPrefix(kv, "BILLING_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, append([]string{"LOG_FORMAT=json"}, env...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// `fastimage billing sync-catalog` syncs the catalog with the Stripe API
// it is pointed at (stripe-mock here, so every call it makes is one Stripe
// accepts) and prints a line per catalog item. stripe-mock keeps no state, so
// that a second run changes nothing is shown by internal/billing's tests
// against a stateful fake; here both runs succeed and print the table.
func TestBillingSyncCatalogCommand(t *testing.T) {
	t.Parallel()
	env := []string{
		"STRIPE_SECRET_KEY=" + stripemock.TestKey,
		"STRIPE_WEBHOOK_SECRET=whsec_test",
		"STRIPE_API_BASE=" + stripemock.URL(t),
	}
	catalog := billing.DefaultCatalog()
	for run := 1; run <= 2; run++ {
		code, stdout, stderr := runBilling(t, env, "billing", "sync-catalog")
		if code != 0 {
			t.Fatalf("run %d: exit %d\nstdout:\n%s\nstderr:\n%s", run, code, stdout, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		if len(lines) != len(catalog.Items)+2 || !slices.Equal(strings.Fields(lines[0]), []string{"CODE", "PRODUCT", "PRICE", "AMOUNT", "LOOKUP", "KEY", "STRIPE", "PRODUCT", "STRIPE", "PRICE", "CHANGES"}) {
			t.Fatalf("run %d: want a header, a line per item and a sentence:\n%s", run, stdout)
		}
		for i, item := range catalog.Items {
			row := regexp.MustCompile(`^` + regexp.QuoteMeta(item.Code) + `\s+(created|updated|unchanged)\s+(created|updated|unchanged)\s+.*\s` +
				regexp.QuoteMeta(item.LookupKey) + `\s+` + regexp.QuoteMeta(billing.ProductID(item.Code)) + `\s+price_\w+\s`)
			if !row.MatchString(lines[i+1]) {
				t.Errorf("run %d: the line of %s is %q", run, item.Code, lines[i+1])
			}
		}
		if last := lines[len(lines)-1]; !strings.HasPrefix(last, "Stripe ") {
			t.Errorf("run %d: the last line is %q, want the sentence that sums up", run, last)
		}
		if strings.Contains(stdout+stderr, stripemock.TestKey) {
			t.Errorf("run %d printed the secret key", run)
		}
	}
}

// The billing commands refuse to run, with exit 2 and a sentence saying
// which setting to fix, when payments are off or the catalog file is bad.
func TestBillingCommandsRefuseBadSettings(t *testing.T) {
	t.Parallel()
	badCatalog := filepath.Join(t.TempDir(), "catalog.json")
	if err := os.WriteFile(badCatalog, []byte(`{"items": [{"code": "pack-10", "name": "10 credits", "kind": "pack", "credits": 10, "price": 0, "currency": "usd", "lookupKey": "pack_10"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := []string{"STRIPE_SECRET_KEY=" + stripemock.TestKey, "STRIPE_WEBHOOK_SECRET=whsec_test", "STRIPE_API_BASE=http://127.0.0.1:1"}
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"sync-catalog without a key", nil, []string{"billing", "sync-catalog"},
			[]string{"fastimage billing sync-catalog:", "payments are off", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"}},
		{"reconcile without a key", nil, []string{"billing", "reconcile", "--since", "24h"},
			[]string{"fastimage billing reconcile:", "payments are off", "STRIPE_SECRET_KEY"}},
		{"a key without the webhook secret", keys[:1], []string{"billing", "sync-catalog"},
			[]string{"STRIPE_WEBHOOK_SECRET is required"}},
		{"a bad catalog file", append(keys, "BILLING_CATALOG_FILE="+badCatalog), []string{"billing", "sync-catalog"},
			[]string{"BILLING_CATALOG_FILE", badCatalog, "price must be between"}},
		{"a bad --since", keys, []string{"billing", "reconcile", "--since=soon"},
			[]string{"--since must be a positive duration", `"soon"`}},
		{"--since without a value", keys, []string{"billing", "reconcile", "--since"},
			[]string{"--since needs a duration"}},
		{"no subcommand", keys, []string{"billing"},
			[]string{"sync-catalog | reconcile"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runBilling(t, tc.env, tc.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			for _, want := range tc.want {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr does not say %q:\n%s", want, stderr)
				}
			}
			if stdout != "" {
				t.Errorf("stdout: %q, want nothing", stdout)
			}
		})
	}
}

func TestCutSince(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		since     string
		rest      []string
		wantError bool
	}{
		{[]string{"--since", "24h", "--log-level", "debug"}, "24h", []string{"--log-level", "debug"}, false},
		{[]string{"--log-level=debug", "-since=1h"}, "1h", []string{"--log-level=debug"}, false},
		{[]string{"--migrate"}, "", []string{"--migrate"}, false},
		{[]string{"--", "--since", "1h"}, "", []string{"--", "--since", "1h"}, false},
		{[]string{"--sincere", "x"}, "", []string{"--sincere", "x"}, false},
		{[]string{"--since"}, "", nil, true},
	} {
		since, rest, err := cutSince(tc.args)
		if (err != nil) != tc.wantError || since != tc.since || !slices.Equal(rest, tc.rest) {
			t.Errorf("cutSince(%q) = %q, %q, %v; want %q, %q, error %v", tc.args, since, rest, err, tc.since, tc.rest, tc.wantError)
		}
	}
}

func TestFormatAmount(t *testing.T) {
	for _, tc := range []struct {
		minor    int64
		currency string
		want     string
	}{
		{500, "usd", "5.00 USD"},
		{20005, "eur", "200.05 EUR"},
		{500, "jpy", "500 JPY"},
		{1500, "kwd", "1.500 KWD"},
	} {
		if got := formatAmount(tc.minor, tc.currency); got != tc.want {
			t.Errorf("formatAmount(%d, %s) = %q, want %q", tc.minor, tc.currency, got, tc.want)
		}
	}
}
