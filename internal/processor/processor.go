// Package processor lists the third parties that receive personal data
// under the running configuration: the AI provider, payments, email,
// storage and CDN, analytics, live chat and CAPTCHA. The list is worked out
// from the same settings that switch those integrations on, so the
// published list cannot drift from what the service does.
package processor

import (
	"net/url"
	"strings"

	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/mail"
)

// Role is what a processor does for the service.
type Role string

// The roles.
const (
	RoleAIProvider Role = "ai_provider"
	RolePayments   Role = "payments"
	RoleEmail      Role = "email"
	RoleStorage    Role = "storage"
	RoleAnalytics  Role = "analytics"
	RoleLiveChat   Role = "live_chat"
	RoleCaptcha    Role = "captcha"
)

// Category is a kind of personal data, as the privacy policy names them.
type Category string

// The categories.
const (
	Account  Category = "account"  // email address, name
	Security Category = "security" // IP address, user agent
	Content  Category = "content"  // uploaded images, prompts, outputs
	Usage    Category = "usage"    // features used
	Payment  Category = "payment"  // customer ids, plans, transactions
	Support  Category = "support"  // messages to support
)

// Processor is one third party that receives data.
type Processor struct {
	// Name is who it is, e.g. "Stripe".
	Name string
	Role Role
	// Host is where the data goes, e.g. "api.stripe.com"; "" when the
	// browser talks to it directly (live chat).
	Host string
	// Purpose says why, in a sentence.
	Purpose    string
	Categories []Category
}

// List returns the processors cfg sends data to, in the order of the
// privacy policy.
func List(cfg *config.Serve) []*Processor {
	var out []*Processor
	if g := cfg.Generate; g.Provider == "openai" {
		out = append(out, &Processor{
			Name: "OpenAI-compatible image API", Role: RoleAIProvider, Host: hostOf(g.OpenAIBaseURL),
			Purpose:    "Generates and edits images from your prompts and uploaded images.",
			Categories: []Category{Content},
		})
	}
	if cfg.Payments.Enabled() {
		host := "api.stripe.com"
		if cfg.Payments.APIBase != "" {
			host = hostOf(cfg.Payments.APIBase)
		}
		out = append(out, &Processor{
			Name: "Stripe", Role: RolePayments, Host: host,
			Purpose:    "Processes purchases and subscriptions and manages billing.",
			Categories: []Category{Account, Payment},
		})
	}
	if cfg.Mail.SMTPURL != "" {
		// The URL holds a password: only its host is read, through the
		// parser that keeps the password out of errors.
		host := ""
		if sc, err := mail.ParseSMTPURL(cfg.Mail.SMTPURL); err == nil {
			host = sc.Host
		}
		out = append(out, &Processor{
			Name: "Email delivery (SMTP)", Role: RoleEmail, Host: host,
			Purpose:    "Sends verification, password reset, account and support email.",
			Categories: []Category{Account, Support},
		})
	}
	if cfg.Storage.Backend == "gcs" {
		out = append(out, &Processor{
			Name: "Google Cloud Storage", Role: RoleStorage, Host: "storage.googleapis.com",
			Purpose:    "Stores and delivers uploaded and generated images.",
			Categories: []Category{Content},
		})
	}
	if p := cfg.Privacy; p.AnalyticsForwarding() {
		out = append(out, &Processor{
			Name: "Analytics endpoint", Role: RoleAnalytics, Host: hostOf(p.AnalyticsForwardURL),
			Purpose:    "Receives usage events (feature, time, browser and OS family; no user id) to understand product use.",
			Categories: []Category{Usage},
		})
	}
	if p := cfg.Privacy; p.LiveChatEnabled() {
		out = append(out, &Processor{
			Name: "Live chat (" + p.LiveChatProvider + ")", Role: RoleLiveChat,
			Purpose:    "Lets you chat with support from the web app.",
			Categories: []Category{Support, Security},
		})
	}
	switch cfg.Captcha.Provider {
	case "turnstile", "hcaptcha":
		name, host := "Cloudflare Turnstile", "challenges.cloudflare.com"
		if cfg.Captcha.Provider == "hcaptcha" {
			name, host = "hCaptcha", "api.hcaptcha.com"
		}
		if cfg.Captcha.VerifyURL != "" {
			host = hostOf(cfg.Captcha.VerifyURL)
		}
		out = append(out, &Processor{
			Name: name, Role: RoleCaptcha, Host: host,
			Purpose:    "Tells people from bots at sign-up, repeated sign-in failures and signed-out support messages.",
			Categories: []Category{Security},
		})
	}
	return out
}

// hostOf returns the host (without port) of a URL; "" when it has none.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}
