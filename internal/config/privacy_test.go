package config_test

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/fastimage/api/internal/config"
)

func TestPrivacyDefaults(t *testing.T) {
	cfg, err := config.ParseServe([]string{"--public-url", "https://fastimage.example"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Privacy
	if p.AnalyticsEnabled || p.AnalyticsForwarding() || p.LiveChatEnabled() {
		t.Errorf("analytics or live chat on by default: %+v", p)
	}
	if p.SupportEmail != "support@fastimage.example" {
		t.Errorf("support email %q, want support@ the public host", p.SupportEmail)
	}
	want := config.Retention{
		Interval: time.Hour, Sessions: 30 * 24 * time.Hour, EmailTokens: 7 * 24 * time.Hour,
		SecurityEvents: 365 * 24 * time.Hour, UsageEvents: 90 * 24 * time.Hour, IPTruncateAfter: 30 * 24 * time.Hour,
	}
	if p.Retention != want {
		t.Errorf("retention %+v, want %+v", p.Retention, want)
	}
}

func TestPrivacySettingsFromTheEnvironment(t *testing.T) {
	t.Setenv("ANALYTICS_ENABLED", "true")
	t.Setenv("ANALYTICS_FORWARD_URL", "https://collect.example.org/e")
	t.Setenv("SUPPORT_EMAIL", "help@fastimage.example")
	t.Setenv("LIVE_CHAT_PROVIDER", "crisp")
	t.Setenv("LIVE_CHAT_WIDGET_ID", "abc-123")
	t.Setenv("RETENTION_USAGE_EVENTS", "0")
	cfg, err := config.ParseServe(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Privacy
	if !p.AnalyticsForwarding() || p.SupportEmail != "help@fastimage.example" || !p.LiveChatEnabled() || p.LiveChatWidgetID != "abc-123" || p.Retention.UsageEvents != 0 {
		t.Errorf("privacy settings %+v", p)
	}
}

func TestPrivacySettingsAreChecked(t *testing.T) {
	_, err := config.ParseServe([]string{
		"--analytics-forward-url", "ftp://x", "--support-email", "Support <s@example.com>",
		"--live-chat-provider", "Crisp Chat", "--retention-sessions", "5m",
		"--retention-security-events", "24h", "--retention-ip-truncate-after", "48h",
	}, io.Discard)
	var settings *config.Error
	if !errors.As(err, &settings) {
		t.Fatalf("got %v, want *config.Error", err)
	}
	for _, want := range []string{"ANALYTICS_FORWARD_URL", "SUPPORT_EMAIL", "LIVE_CHAT_PROVIDER", "LIVE_CHAT_WIDGET_ID", "--retention-sessions", "--retention-ip-truncate-after"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems do not name %s:\n%v", want, err)
		}
	}
}
