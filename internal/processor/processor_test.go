package processor_test

import (
	"slices"
	"testing"

	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/processor"
)

func roles(ps []*processor.Processor) map[processor.Role]*processor.Processor {
	out := map[processor.Role]*processor.Processor{}
	for _, p := range ps {
		out[p.Role] = p
	}
	return out
}

// Each setting that sends data to a third party adds it to the list, and
// turning the setting off takes it away.
func TestListFollowsTheSettings(t *testing.T) {
	t.Parallel()
	base := func() *config.Serve {
		return &config.Serve{
			Generate: config.Generate{Provider: "local"},
			Storage:  config.Storage{Backend: "local"},
		}
	}
	if got := processor.List(base()); len(got) != 0 {
		t.Fatalf("local defaults send data to %+v, want no one", got)
	}
	for _, tc := range []struct {
		name       string
		set        func(*config.Serve)
		role       processor.Role
		host       string
		categories []processor.Category
	}{
		{"openai", func(c *config.Serve) {
			c.Generate.Provider, c.Generate.OpenAIBaseURL = "openai", "https://images.example.net:8443/v1"
		}, processor.RoleAIProvider, "images.example.net", []processor.Category{processor.Content}},
		{"stripe", func(c *config.Serve) { c.Payments.SecretKey = "sk_test_x" }, processor.RolePayments, "api.stripe.com",
			[]processor.Category{processor.Account, processor.Payment}},
		{"smtp", func(c *config.Serve) { c.Mail.SMTPURL = "smtp://u:p@smtp.mail.example:587?from=no-reply%40example.com" },
			processor.RoleEmail, "smtp.mail.example", []processor.Category{processor.Account, processor.Support}},
		{"gcs", func(c *config.Serve) { c.Storage.Backend, c.Storage.GCSBucket = "gcs", "images" }, processor.RoleStorage, "storage.googleapis.com",
			[]processor.Category{processor.Content}},
		{"analytics forwarding", func(c *config.Serve) {
			c.Privacy.AnalyticsEnabled, c.Privacy.AnalyticsForwardURL = true, "https://collect.example.org/events"
		}, processor.RoleAnalytics, "collect.example.org", []processor.Category{processor.Usage}},
		{"live chat", func(c *config.Serve) { c.Privacy.LiveChatProvider, c.Privacy.LiveChatWidgetID = "crisp", "abc" },
			processor.RoleLiveChat, "", []processor.Category{processor.Support, processor.Security}},
		{"turnstile", func(c *config.Serve) { c.Captcha.Provider, c.Captcha.Secret = "turnstile", "s" }, processor.RoleCaptcha,
			"challenges.cloudflare.com", []processor.Category{processor.Security}},
		{"hcaptcha", func(c *config.Serve) { c.Captcha.Provider, c.Captcha.Secret = "hcaptcha", "s" }, processor.RoleCaptcha,
			"api.hcaptcha.com", []processor.Category{processor.Security}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			tc.set(cfg)
			got := processor.List(cfg)
			if len(got) != 1 {
				t.Fatalf("List = %+v, want one processor", got)
			}
			p := got[0]
			if p.Role != tc.role || p.Host != tc.host || !slices.Equal(p.Categories, tc.categories) || p.Name == "" || p.Purpose == "" {
				t.Errorf("got %+v, want role %s, host %q, categories %v", p, tc.role, tc.host, tc.categories)
			}
		})
	}

	// Analytics kept in our own database has no third party.
	cfg := base()
	cfg.Privacy.AnalyticsEnabled = true
	if got := processor.List(cfg); len(got) != 0 {
		t.Errorf("analytics without forwarding sends data to %+v, want no one", got)
	}
	// Everything on at once: one of each, in the policy's order.
	cfg.Generate.Provider = "openai"
	cfg.Payments.SecretKey = "sk"
	cfg.Mail.SMTPURL = "smtps://smtp.example.com?from=no-reply%40example.com"
	cfg.Storage.Backend = "gcs"
	cfg.Privacy.AnalyticsForwardURL = "https://collect.example.org"
	cfg.Privacy.LiveChatProvider, cfg.Privacy.LiveChatWidgetID = "crisp", "abc"
	cfg.Captcha.Provider = "turnstile"
	var order []processor.Role
	for _, p := range processor.List(cfg) {
		order = append(order, p.Role)
	}
	want := []processor.Role{processor.RoleAIProvider, processor.RolePayments, processor.RoleEmail, processor.RoleStorage,
		processor.RoleAnalytics, processor.RoleLiveChat, processor.RoleCaptcha}
	if !slices.Equal(order, want) {
		t.Errorf("roles %v, want %v", order, want)
	}
	if len(roles(processor.List(cfg))) != len(want) {
		t.Error("a role is listed twice")
	}
}
