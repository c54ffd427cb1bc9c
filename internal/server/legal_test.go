package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

const (
	legalDocumentsQuery = `{ legalDocuments { kind version effectiveAt url inEffect } }`
	pendingQuery        = `{ viewer { pendingLegalDocuments { kind version url } } }`
	acceptMutation      = `mutation($docs: [LegalDocumentVersionInput!]!) {
		acceptLegalDocuments(input: {documents: $docs}) { pendingLegalDocuments { kind version } } }`
)

type legalDoc struct {
	Kind, Version, URL string
	EffectiveAt        time.Time
	InEffect           bool
}

func pending(t *testing.T, c *client) []legalDoc {
	t.Helper()
	var out struct {
		Viewer struct{ PendingLegalDocuments []legalDoc }
	}
	c.must(pendingQuery, nil, &out)
	return out.Viewer.PendingLegalDocuments
}

func acceptances(t *testing.T, s *testServer, userID string) []string {
	t.Helper()
	var out []string
	if err := s.db.NewRaw("SELECT kind || '@' || version FROM legal_acceptances WHERE user_id = ? ORDER BY 1", uuidOfGlobal(t, userID)).
		Scan(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Signing up accepts the versions in effect; a new version shows as
// pending at the next sign-in until it is accepted.
func TestLegalDocumentsAndAcceptance(t *testing.T) {
	t.Parallel()
	dbURL := dbtestURL(t)
	s := startWithDB(t, testConfig(), dbURL)

	// Anyone may read what is in effect: the built-in versions.
	var docs struct{ LegalDocuments []legalDoc }
	s.client(t).must(legalDocumentsQuery, nil, &docs)
	if len(docs.LegalDocuments) != 2 || docs.LegalDocuments[0].Kind != "PRIVACY_POLICY" || docs.LegalDocuments[1].Kind != "TERMS" ||
		docs.LegalDocuments[0].URL != testOrigin+"/privacy" || !docs.LegalDocuments[0].InEffect {
		t.Fatalf("legalDocuments = %+v", docs.LegalDocuments)
	}
	builtIn := docs.LegalDocuments[0].Version

	ada, adaID := mustSignUp(t, s, "ada@example.com")
	if got, want := acceptances(t, s, adaID), []string{"privacy_policy@" + builtIn, "terms@" + builtIn}; !slices.Equal(got, want) {
		t.Errorf("acceptances at sign-up %v, want %v", got, want)
	}
	if p := pending(t, ada); len(p) != 0 {
		t.Errorf("pending right after sign-up: %+v", p)
	}
	// Signing up again with a taken address accepts nothing for its owner.
	if _, err := s.db.ExecContext(context.Background(), "DELETE FROM legal_acceptances"); err != nil {
		t.Fatal(err)
	}
	s.client(t).must(signUpMutation, map[string]any{"email": "ada@example.com", "password": goodPassword}, nil)
	if got := acceptances(t, s, adaID); len(got) != 0 {
		t.Errorf("a sign-up for Ada's taken address recorded %v for her", got)
	}
	ada.must(acceptMutation, map[string]any{"docs": []map[string]any{
		{"kind": "PRIVACY_POLICY", "version": builtIn}, {"kind": "TERMS", "version": builtIn},
	}}, nil)
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	// The operator publishes a new privacy policy, in effect now, and
	// announces new terms for next month.
	file := filepath.Join(t.TempDir(), "legal.json")
	now := time.Now().UTC()
	content := fmt.Sprintf(`[
		{"kind": "privacy_policy", "version": %q, "effectiveAt": "2026-11-27T00:00:00Z", "url": "https://fastimage.example/privacy/1"},
		{"kind": "privacy_policy", "version": "2", "effectiveAt": %q, "url": "https://fastimage.example/privacy/2"},
		{"kind": "terms", "version": %q, "effectiveAt": "2026-11-27T00:00:00Z", "url": "https://fastimage.example/terms/1"},
		{"kind": "terms", "version": "2", "effectiveAt": %q, "url": "https://fastimage.example/terms/2"}]`,
		builtIn, now.Add(-time.Minute).Format(time.RFC3339), builtIn, now.Add(30*24*time.Hour).Format(time.RFC3339))
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Privacy.LegalDocumentsFile = file
	s = startWithDB(t, cfg, dbURL)
	ada, _ = signIn(t, s, "ada@example.com", goodPassword)
	p := pending(t, ada)
	if len(p) != 1 || p[0].Kind != "PRIVACY_POLICY" || p[0].Version != "2" || p[0].URL != "https://fastimage.example/privacy/2" {
		t.Fatalf("pending at the next sign-in = %+v, want privacy policy 2", p)
	}
	s.client(t).must(legalDocumentsQuery, nil, &docs)
	var listed []string
	for _, d := range docs.LegalDocuments {
		listed = append(listed, fmt.Sprintf("%s@%s:%v", d.Kind, d.Version, d.InEffect))
	}
	if want := []string{"PRIVACY_POLICY@2:true", "TERMS@" + builtIn + ":true", "TERMS@2:false"}; !slices.Equal(listed, want) {
		t.Errorf("legalDocuments = %v, want %v", listed, want)
	}

	ada.fails("VALIDATION", acceptMutation, map[string]any{"docs": []map[string]any{{"kind": "PRIVACY_POLICY", "version": "3"}}})
	ada.fails("VALIDATION", acceptMutation, map[string]any{"docs": []map[string]any{}})
	var out struct {
		AcceptLegalDocuments struct{ PendingLegalDocuments []legalDoc }
	}
	ada.must(acceptMutation, map[string]any{"docs": []map[string]any{{"kind": "PRIVACY_POLICY", "version": "2"}}}, &out)
	if len(out.AcceptLegalDocuments.PendingLegalDocuments) != 0 || len(pending(t, ada)) != 0 {
		t.Errorf("still pending after accepting: %+v", out)
	}
	s.client(t).fails("UNAUTHENTICATED", acceptMutation, map[string]any{"docs": []map[string]any{{"kind": "PRIVACY_POLICY", "version": "2"}}})
}

// serverInfo shows live chat and the processors only as the settings say.
func TestServerInfoProcessorsAndLiveChat(t *testing.T) {
	t.Parallel()
	const q = `{ serverInfo {
		integrations { liveChat { enabled provider widgetId } analytics { enabled provider } }
		processors { name role host purpose dataCategories } } }`
	type info struct {
		ServerInfo struct {
			Integrations struct {
				LiveChat struct {
					Enabled            bool
					Provider, WidgetID *string
				}
				Analytics struct {
					Enabled  bool
					Provider *string
				}
			}
			Processors []struct {
				Name, Role, Purpose string
				Host                *string
				DataCategories      []string
			}
		}
	}
	var off info
	start(t, testConfig()).client(t).must(q, nil, &off)
	if lc := off.ServerInfo.Integrations.LiveChat; lc.Enabled || lc.Provider != nil || lc.WidgetID != nil {
		t.Errorf("live chat by default: %+v", lc)
	}
	if ps := off.ServerInfo.Processors; len(ps) != 0 {
		t.Errorf("processors by default: %+v, want none (local AI, local storage, mail kept in the outbox)", ps)
	}

	cfg := testConfig()
	cfg.Privacy.LiveChatProvider, cfg.Privacy.LiveChatWidgetID = "crisp", "widget-123"
	cfg.Privacy.AnalyticsEnabled, cfg.Privacy.AnalyticsForwardURL = true, "https://collect.example.org/events"
	cfg.Privacy.AnalyticsForwardInterval = time.Hour
	cfg.Captcha.Provider, cfg.Captcha.Secret, cfg.Captcha.Hostnames = "turnstile", "s", []string{"localhost"}
	var on info
	start(t, cfg).client(t).must(q, nil, &on)
	if lc := on.ServerInfo.Integrations.LiveChat; !lc.Enabled || lc.Provider == nil || *lc.Provider != "crisp" || lc.WidgetID == nil || *lc.WidgetID != "widget-123" {
		t.Errorf("live chat = %+v", lc)
	}
	var roles []string
	for _, p := range on.ServerInfo.Processors {
		roles = append(roles, p.Role)
		if p.Name == "" || p.Purpose == "" || len(p.DataCategories) == 0 {
			t.Errorf("processor %+v lacks a name, purpose or data", p)
		}
		if p.Role == "ANALYTICS" && (p.Host == nil || *p.Host != "collect.example.org" || !slices.Equal(p.DataCategories, []string{"USAGE"})) {
			t.Errorf("analytics processor %+v", p)
		}
		if p.Role == "LIVE_CHAT" && p.Host != nil {
			t.Errorf("live chat processor has host %q", *p.Host)
		}
	}
	if want := []string{"ANALYTICS", "LIVE_CHAT", "CAPTCHA"}; !slices.Equal(roles, want) {
		t.Errorf("processors %v, want %v", roles, want)
	}
}
