package usage_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/usage"
	"github.com/fastimage/api/internal/usage/endpoint"
)

// collector is an httptest analytics endpoint that refuses the next
// `failing` deliveries with 503 and keeps the events of the rest.
type collector struct {
	mu         sync.Mutex
	failing    int
	deliveries int
	bodies     []string
	ids        map[uuid.UUID]int // times each event was received
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	c.deliveries++
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "want a JSON POST", http.StatusBadRequest)
		return
	}
	if c.failing > 0 {
		c.failing--
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	var b usage.Batch
	if err := json.Unmarshal(body, &b); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.bodies = append(c.bodies, string(body))
	for _, ev := range b.Events {
		c.ids[ev.ID]++
	}
	w.WriteHeader(http.StatusAccepted)
}

func (c *collector) received() (events, deliveries int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids), c.deliveries
}

func unforwarded(t *testing.T, bdb *bun.DB) int {
	t.Helper()
	var n int
	if err := bdb.NewRaw("SELECT count(*) FROM usage_events WHERE forwarded_at IS NULL").Scan(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestForwardDeliversBatchesAndRetriesFailures(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	ctx := context.Background()
	ada := newUser(t, bdb, "ada@example.com")
	r := usage.New(bdb, quietLog(), usage.Config{Enabled: true})
	for range 5 {
		r.Record(usage.Event{UserID: ada, Feature: "generateImage", Operation: "Generate", Client: "Safari/macOS"})
	}
	if _, err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	peer := &collector{failing: 1, ids: map[uuid.UUID]int{}}
	srv := httptest.NewServer(peer)
	defer srv.Close()
	f := usage.NewForwarder(bdb, endpoint.New(srv.URL+"/collect?key=secret-key", time.Second), 2, 10)

	// The endpoint fails: nothing is marked sent.
	n, err := f.Forward(ctx)
	if err == nil || n != 0 {
		t.Fatalf("Forward against a failing endpoint = %d, %v; want 0 and an error", n, err)
	}
	if strings.Contains(err.Error(), "secret-key") {
		t.Errorf("the error names the endpoint's key: %v", err)
	}
	if got := unforwarded(t, bdb); got != 5 {
		t.Fatalf("%d events unforwarded after a failed delivery, want 5", got)
	}

	// The next run sends them all, two a batch.
	n, err = f.Forward(ctx)
	if err != nil || n != 5 {
		t.Fatalf("Forward = %d, %v; want 5, nil", n, err)
	}
	events, deliveries := peer.received()
	if events != 5 || deliveries != 1+3 {
		t.Errorf("endpoint received %d events in %d deliveries, want 5 in 1 failed + 3", events, deliveries)
	}
	if got := unforwarded(t, bdb); got != 0 {
		t.Errorf("%d events unforwarded, want 0", got)
	}
	// Nothing is sent twice, and nothing names the user.
	if n, err := f.Forward(ctx); err != nil || n != 0 {
		t.Errorf("a second Forward = %d, %v; want 0, nil", n, err)
	}
	peer.mu.Lock()
	defer peer.mu.Unlock()
	for id, times := range peer.ids {
		if times != 1 {
			t.Errorf("event %s received %d times", id, times)
		}
	}
	for _, body := range peer.bodies {
		if strings.Contains(body, ada.String()) || strings.Contains(body, "ada@example.com") {
			t.Errorf("a delivery names the user: %s", body)
		}
		if !strings.Contains(body, `"feature":"generateImage"`) || !strings.Contains(body, `"client":"Safari/macOS"`) {
			t.Errorf("a delivery lacks the event: %s", body)
		}
	}
}

func TestForwardSurvivesAnUnreachableEndpoint(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	ctx := context.Background()
	ada := newUser(t, bdb, "ada@example.com")
	r := usage.New(bdb, quietLog(), usage.Config{Enabled: true})
	r.Record(usage.Event{UserID: ada, Feature: "viewer"})
	if _, err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// A server that hangs past the client's timeout, then one that is gone.
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer hang.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	for _, url := range []string{hang.URL, gone.URL} {
		f := usage.NewForwarder(bdb, endpoint.New(url, 200*time.Millisecond), 10, 1)
		if n, err := f.Forward(ctx); err == nil || n != 0 {
			t.Errorf("Forward to %s = %d, %v; want 0 and an error", url, n, err)
		}
	}
	if got := unforwarded(t, bdb); got != 1 {
		t.Errorf("%d events unforwarded, want 1", got)
	}
}

func TestForwardSkipsUsersWhoObjectedSince(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	ctx := context.Background()
	ada := newUser(t, bdb, "ada@example.com")
	bob := newUser(t, bdb, "bob@example.com")
	r := usage.New(bdb, quietLog(), usage.Config{Enabled: true})
	r.Record(usage.Event{UserID: ada, Feature: "viewer"})
	r.Record(usage.Event{UserID: bob, Feature: "viewer"})
	if _, err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := bdb.ExecContext(ctx, "INSERT INTO processing_objections (user_id, purpose) VALUES (?, 'analytics')", bob); err != nil {
		t.Fatal(err)
	}
	peer := &collector{ids: map[uuid.UUID]int{}}
	srv := httptest.NewServer(peer)
	defer srv.Close()
	if n, err := usage.NewForwarder(bdb, endpoint.New(srv.URL, time.Second), 10, 1).Forward(ctx); err != nil || n != 1 {
		t.Errorf("Forward = %d, %v; want 1 (Ada's only), nil", n, err)
	}
}
