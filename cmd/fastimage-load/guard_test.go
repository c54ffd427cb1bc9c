package main

import (
	"io"
	"strings"
	"testing"
)

func TestCheckLoopback(t *testing.T) {
	for _, raw := range []string{
		"http://127.0.0.1:8080", "http://127.1.2.3", "https://localhost:8443/", "http://LOCALHOST.",
		"http://[::1]:8080", "http://app.localhost:8080", "http://[::ffff:127.0.0.1]:80",
	} {
		if _, err := checkLoopback(raw); err != nil {
			t.Errorf("checkLoopback(%q): %v, want accepted", raw, err)
		}
	}
	for _, raw := range []string{
		"http://10.0.0.5:8080", "http://192.168.1.1", "http://0.0.0.0:8080", "http://[::]:8080",
		"http://fastimage.test", "http://localhost.fastimage.test", "http://127.0.0.1.nip.test",
		"ftp://127.0.0.1", "ws://127.0.0.1:8080", "127.0.0.1:8080", "http://user:pw@127.0.0.1",
	} {
		if _, err := checkLoopback(raw); err == nil {
			t.Errorf("checkLoopback(%q) accepted, want refused", raw)
		}
	}
}

// TestOptionsRefuseOtherMachinesAndUnboundedRuns: every refusal is named
// at once, and a run always has an end.
func TestOptionsRefuseOtherMachinesAndUnboundedRuns(t *testing.T) {
	_, err := parseOptions([]string{"-url", "http://10.1.2.3:8080", "-users", "2001", "-duration", "2h"}, io.Discard)
	if err == nil {
		t.Fatal("accepted a remote target, 2,001 users and 2 hours")
	}
	for _, want := range []string{"not a loopback address", "-users must be between 1 and 2000", "-duration must be between 0 and 1h0m0s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, err := parseOptions([]string{"-duration", "0"}, io.Discard); err == nil || !strings.Contains(err.Error(), "a run must end") {
		t.Errorf("-duration 0 without -iterations: %v, want refused", err)
	}
	if _, err := parseOptions([]string{"-metrics-url", "http://metrics.test/metrics"}, io.Discard); err == nil {
		t.Error("accepted a remote -metrics-url")
	}
	opt, err := parseOptions([]string{"-iterations", "3", "-duration", "0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if opt.duration != maxDuration || opt.metricsURL != "http://127.0.0.1:8080/metrics" {
		t.Errorf("-iterations alone: duration %s, metrics %s; want the 1h bound and <url>/metrics", opt.duration, opt.metricsURL)
	}
}

func TestLoopbackSourcesAreDistinct(t *testing.T) {
	src := loopbackSources(maxUsers)
	seen := map[string]bool{}
	for _, ip := range src {
		if !ip.IsLoopback() || ip.To4() == nil || ip.String() == "127.0.0.1" || seen[ip.String()] {
			t.Fatalf("source %s: want a distinct IPv4 loopback address other than 127.0.0.1", ip)
		}
		seen[ip.String()] = true
	}
	if len(src) != maxUsers {
		t.Errorf("%d sources, want %d", len(src), maxUsers)
	}
}
