package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastimage/api/internal/usage"
)

const (
	firefoxOnLinux = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
	viewerOp       = `query Viewer { viewer { id } }`
	generateOp     = `mutation Generate($p: String!) { generateImage(input: {prompt: $p}) { generation { id } } }`
	secretPrompt   = "a lighthouse painted by zq-secret-prompt"
)

type usageRow struct {
	UserID, Feature, Operation, Client string
}

func usageRows(t *testing.T, s *testServer) []usageRow {
	t.Helper()
	var rows []usageRow
	if err := s.db.NewRaw(`SELECT user_id::text, feature, operation, client FROM usage_events ORDER BY created_at, id`).
		Scan(context.Background(), &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

// useTheProduct runs what every test user does: read the viewer, and
// generate an image from a prompt.
func useTheProduct(t *testing.T, c *client) (workID string) {
	t.Helper()
	c.must(viewerOp, nil, nil)
	var out struct {
		GenerateImage struct{ Generation struct{ ID string } }
	}
	c.must(generateOp, map[string]any{"p": secretPrompt}, &out)
	return out.GenerateImage.Generation.ID
}

// With analytics off (the default), using the product writes no usage
// event.
func TestNoUsageEventsWithAnalyticsOff(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	c, _ := mustSignUp(t, s, "ada@example.com")
	c.header.Set("User-Agent", firefoxOnLinux)
	useTheProduct(t, c)
	// Off means nothing is even queued: there is nothing to wait for.
	if rows := usageRows(t, s); len(rows) != 0 {
		t.Errorf("analytics off: usage events %+v, want none", rows)
	}
	var info struct {
		ServerInfo struct {
			Integrations struct{ Analytics struct{ Enabled bool } }
		}
	}
	c.must(`{ serverInfo { integrations { analytics { enabled } } } }`, nil, &info)
	if info.ServerInfo.Integrations.Analytics.Enabled {
		t.Error("serverInfo says analytics is enabled")
	}
}

// With analytics on, a user who objects (to analytics, or to product
// improvement) gets no usage events; one who does not gets an event per
// operation naming the feature, the operation and the browser and OS
// family, and nothing else: no prompt, no id, no IP. The events reach the
// analytics endpoint without naming the user.
func TestUsageEventsWithAnalyticsOn(t *testing.T) {
	t.Parallel()
	peer := &usagePeer{}
	collector := httptest.NewServer(peer)
	defer collector.Close()
	cfg := testConfig()
	cfg.Privacy.AnalyticsEnabled = true
	cfg.Privacy.AnalyticsForwardURL = collector.URL + "/events"
	cfg.Privacy.AnalyticsForwardInterval = 100 * time.Millisecond
	s := start(t, cfg)

	objectors := map[string]string{"analytics@example.com": "ANALYTICS", "improve@example.com": "PRODUCT_IMPROVEMENT"}
	objectorIDs := map[string]bool{}
	for email, purpose := range objectors {
		c, id := mustSignUp(t, s, email)
		c.header.Set("User-Agent", firefoxOnLinux)
		c.must(`mutation($p: ProcessingPurpose!) { objectToProcessing(input: {purpose: $p}) { request { status } } }`, map[string]any{"p": purpose}, nil)
		useTheProduct(t, c)
		objectorIDs[uuidOfGlobal(t, id).String()] = true
	}
	ada, adaID := mustSignUp(t, s, "ada@example.com")
	ada.header.Set("User-Agent", firefoxOnLinux)
	genID := useTheProduct(t, ada)
	adaKey := uuidOfGlobal(t, adaID).String()

	// Events are written in batches: wait for Ada's, which were queued
	// after everyone else's.
	var rows []usageRow
	deadline := time.Now().Add(10 * time.Second)
	for {
		rows = usageRows(t, s)
		n := 0
		for _, r := range rows {
			if r.UserID == adaKey {
				n++
			}
		}
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ada's usage events were not written within 10s: %+v", rows)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var adas []usageRow
	for _, r := range rows {
		switch {
		case r.UserID == adaKey:
			adas = append(adas, r)
		case objectorIDs[r.UserID] && r.Feature != "objectToProcessing":
			// The objection itself may be written if its event was stored
			// before the objection committed; nothing after it may be.
			t.Errorf("a user who objected has a usage event %+v", r)
		}
	}
	// One batch may store both at the same instant: compare in a fixed
	// order, not in the order they were written.
	want := []usageRow{
		{adaKey, "generateImage", "Generate", "Firefox/Linux"},
		{adaKey, "viewer", "Viewer", "Firefox/Linux"},
	}
	sort.Slice(adas, func(i, j int) bool { return adas[i].Feature < adas[j].Feature })
	if len(adas) != len(want) {
		t.Fatalf("Ada's usage events %+v, want %+v", adas, want)
	}
	for i := range want {
		if adas[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, adas[i], want[i])
		}
	}
	// No content in any column of any event.
	var dump string
	if err := s.db.NewRaw(`SELECT coalesce(string_agg(row_to_json(e)::text, ' '), '') FROM usage_events AS e`).Scan(context.Background(), &dump); err != nil {
		t.Fatal(err)
	}
	for _, banned := range []string{"zq-secret-prompt", uuidOfGlobal(t, genID).String(), "127.0.0.1", "rv:133.0"} {
		if strings.Contains(dump, banned) {
			t.Errorf("usage events hold %q: %s", banned, dump)
		}
	}

	// The forwarder delivers Ada's events, naming no user.
	deadline = time.Now().Add(10 * time.Second)
	for peer.count("generateImage") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the analytics endpoint got no generateImage event within 10s; bodies: %v", peer.all())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, body := range peer.all() {
		for _, banned := range []string{adaKey, "ada@example.com", "zq-secret-prompt"} {
			if strings.Contains(body, banned) {
				t.Errorf("a forwarded batch holds %q: %s", banned, body)
			}
		}
	}

	var info struct {
		ServerInfo struct {
			Integrations struct {
				Analytics struct {
					Enabled  bool
					Provider string
				}
			}
		}
	}
	ada.must(`{ serverInfo { integrations { analytics { enabled provider } } } }`, nil, &info)
	if got := info.ServerInfo.Integrations.Analytics; !got.Enabled || got.Provider != "127.0.0.1" {
		t.Errorf("serverInfo analytics = %+v, want enabled, forwarded to 127.0.0.1", got)
	}
}

// usagePeer is the analytics endpoint: it keeps every batch it receives.
type usagePeer struct {
	mu     sync.Mutex
	bodies []string
	events []usage.Forwarded
}

func (p *usagePeer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var b usage.Batch
	if err := json.Unmarshal(body, &b); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bodies = append(p.bodies, string(body))
	p.events = append(p.events, b.Events...)
}

func (p *usagePeer) count(feature string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, e := range p.events {
		if e.Feature == feature {
			n++
		}
	}
	return n
}

func (p *usagePeer) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.bodies...)
}
