package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/events"
	"github.com/fastimage/api/internal/webhook"
)

const waitFor = 10 * time.Second

// verify checks a request the way a Standard Webhooks receiver does: the
// timestamp within five minutes, and one of the space-separated v1
// signatures equal to the HMAC-SHA256 of "id.timestamp.body" keyed with
// the base64-decoded secret (without its whsec_ prefix). It is written
// from the specification, not from the package, so that it checks it.
func verify(secret string, h http.Header, body []byte) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook headers")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return err
	}
	if d := time.Since(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %s too far from now", ts)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := mac.Sum(nil)
	for _, s := range strings.Split(sigs, " ") {
		version, sig, _ := strings.Cut(s, ",")
		got, err := base64.StdEncoding.DecodeString(sig)
		if version == "v1" && err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no signature matches")
}

// fixture is a database with a user, an event bus and a service whose
// worker runs until the test ends.
type fixture struct {
	db   *bun.DB
	svc  *webhook.Service
	user actor.Actor
}

func newFixture(t *testing.T, cfg webhook.Config) *fixture {
	t.Helper()
	bdb := dbtest.New(t)
	ctx := context.Background()
	var uid uuid.UUID
	if err := bdb.NewRaw("INSERT INTO users (email, password_hash) VALUES ('partner@example.com', 'x') RETURNING id").Scan(ctx, &uid); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	bus := events.New(bdb, log)
	if cfg.Backoff == 0 {
		cfg.Backoff = 20 * time.Millisecond
	}
	cfg.Poll = 100 * time.Millisecond
	svc := webhook.New(bdb, bus, log, cfg)
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { bus.Run(runCtx) })
	wg.Go(func() { svc.Run(runCtx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return &fixture{db: bdb, svc: svc, user: actor.Actor{UserID: uid, Role: actor.RoleUser, Verified: true}}
}

// enqueue writes the deliveries of a generation's end, as generate does in
// its transaction.
func (f *fixture) enqueue(t *testing.T, e webhook.GenerationEnded) {
	t.Helper()
	e.UserID = f.user.UserID
	err := f.db.RunInTx(context.Background(), nil, func(ctx context.Context, tx bun.Tx) error {
		return webhook.GenerationEndedTx(ctx, tx, e)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitDelivery waits until the user's only delivery is no longer pending.
func (f *fixture) waitDelivery(t *testing.T) webhook.Delivery {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		page, err := f.svc.Deliveries(context.Background(), f.user, f.user.UserID, nil, 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) == 1 && page.Items[0].Status != webhook.StatusPending {
			return page.Items[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the delivery did not finish")
	return webhook.Delivery{}
}

func TestGuardRefusesPrivateAddresses(t *testing.T) {
	prod, dev := &webhook.Guard{}, &webhook.Guard{AllowPrivate: true}
	for _, ip := range []string{
		"127.0.0.1", "::1", "::ffff:127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "fd12::1",
		"169.254.1.1", "fe80::1", "100.64.0.1", "224.0.0.1", "ff02::1", "0.0.0.0", "::", "255.255.255.255",
		"169.254.169.254", "fd00:ec2::254",
	} {
		if prod.Allowed(netip.MustParseAddr(ip)) {
			t.Errorf("production allows %s", ip)
		}
	}
	for _, ip := range []string{"169.254.169.254", "fd00:ec2::254"} {
		if dev.Allowed(netip.MustParseAddr(ip)) {
			t.Errorf("development allows the metadata address %s", ip)
		}
	}
	for _, ip := range []string{"8.8.8.8", "2606:4700:4700::1111", "93.184.215.14"} {
		if !prod.Allowed(netip.MustParseAddr(ip)) {
			t.Errorf("production refuses the public address %s", ip)
		}
	}
	for _, ip := range []string{"127.0.0.1", "::1", "192.168.1.1"} {
		if !dev.Allowed(netip.MustParseAddr(ip)) {
			t.Errorf("development refuses %s", ip)
		}
	}
}

// TestGuardRefusesIPv4HiddenInIPv6 checks the IPv6 forms that carry an
// IPv4 address a gateway or tunnel turns back into IPv4: NAT64 (a NAT
// gateway translates 64:ff9b::/96 to any IPv4 address, private ones
// included), 6to4 and IPv4-compatible addresses. The guard judges the IPv4
// address inside, so that metadata and private hosts stay out of reach.
func TestGuardRefusesIPv4HiddenInIPv6(t *testing.T) {
	prod, dev := &webhook.Guard{}, &webhook.Guard{AllowPrivate: true}
	for _, ip := range []string{
		"64:ff9b::127.0.0.1", "64:ff9b::10.0.0.5", "64:ff9b::169.254.169.254", "64:ff9b::192.168.0.1",
		"2002:7f00:1::1", "2002:a00:5::1", "2002:a9fe:a9fe::1",
		"::127.0.0.1", "::10.0.0.5", "::169.254.169.254",
	} {
		if prod.Allowed(netip.MustParseAddr(ip)) {
			t.Errorf("production allows %s", ip)
		}
	}
	for _, ip := range []string{"64:ff9b::169.254.169.254", "2002:a9fe:a9fe::1", "::169.254.169.254"} {
		if dev.Allowed(netip.MustParseAddr(ip)) {
			t.Errorf("development allows the metadata address %s", ip)
		}
	}
	// The same forms around a public IPv4 address stay allowed.
	for _, ip := range []string{"64:ff9b::8.8.8.8", "2002:808:808::1"} {
		if !prod.Allowed(netip.MustParseAddr(ip)) {
			t.Errorf("production refuses %s, a public address", ip)
		}
	}
}

// TestGuardChecksAtConnectTime dials a receiver on loopback by IP and by a
// name that resolves to it: the production client refuses both before
// any byte is sent, whatever validated the URL earlier.
func TestGuardChecksAtConnectTime(t *testing.T) {
	var hits int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	prod := (&webhook.Guard{}).Client(2 * time.Second)
	for _, u := range []string{srv.URL, "http://localhost:" + port + "/"} {
		resp, err := prod.Post(u, "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
			t.Fatalf("production client reached %s", u)
		}
		if !strings.Contains(err.Error(), "not allowed for webhooks") {
			t.Errorf("%s: %v, want the guard's refusal", u, err)
		}
	}
	if hits != 0 {
		t.Fatalf("the receiver was reached %d times", hits)
	}
	resp, err := (&webhook.Guard{AllowPrivate: true}).Client(2*time.Second).Post("http://localhost:"+port+"/", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("development client: %v", err)
	}
	resp.Body.Close()
}

// TestGuardFollowsNoRedirects: a receiver's 3xx is its answer, not a new
// target (which could be private).
func TestGuardFollowsNoRedirects(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
	}))
	defer srv.Close()
	resp, err := (&webhook.Guard{AllowPrivate: true}).Client(2*time.Second).Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d, want the 302 itself", resp.StatusCode)
	}
}

func TestCheckURL(t *testing.T) {
	ctx := context.Background()
	prod, dev := &webhook.Guard{}, &webhook.Guard{AllowPrivate: true}
	for _, u := range []string{
		"http://example.com/hook",         // https only
		"https://127.0.0.1/hook",          // loopback
		"https://localhost/hook",          // a name resolving to loopback
		"https://[::1]/hook",              // loopback v6
		"https://10.0.0.8/hook",           // private
		"https://169.254.169.254/latest/", // metadata
		"https://user:pw@example.com/",    // credentials
		"ftp://example.com/",              // not http
		"/relative",                       // not absolute
		"https://no-such-host.invalid/",   // does not resolve
	} {
		err := prod.CheckURL(ctx, "url", u)
		if apperr.CodeOf(err) != apperr.Validation {
			t.Errorf("production CheckURL(%q) = %v, want VALIDATION", u, err)
		}
	}
	if err := prod.CheckURL(ctx, "url", "https://93.184.215.14/hook"); err != nil {
		t.Errorf("production refuses a public https URL: %v", err)
	}
	for _, u := range []string{"http://127.0.0.1:8080/hook", "http://localhost:9/hook", "https://[::1]/x"} {
		if err := dev.CheckURL(ctx, "url", u); err != nil {
			t.Errorf("development CheckURL(%q) = %v", u, err)
		}
	}
	if err := dev.CheckURL(ctx, "url", "http://169.254.169.254/"); apperr.CodeOf(err) != apperr.Validation {
		t.Errorf("development allows the metadata address: %v", err)
	}
}

// TestProductionRefusesPrivateDelivery: a delivery whose URL names a
// loopback receiver (as after DNS rebinding: the row skips registration's
// check) is refused by the production worker at connect time, recorded as
// such on the try, and never reaches the receiver.
func TestProductionRefusesPrivateDelivery(t *testing.T) {
	var hits int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	// Retries stop after a short window, so the delivery fails quickly.
	f := newFixture(t, webhook.Config{Development: false, RetryFor: 200 * time.Millisecond})
	ctx := context.Background()
	if _, err := f.svc.CreateEndpoint(ctx, f.user, "https://localhost:"+port+"/", []string{webhook.GenerationSucceeded}); apperr.CodeOf(err) != apperr.Validation {
		t.Fatalf("registering a loopback URL in production: %v, want VALIDATION", err)
	}
	f.enqueue(t, webhook.GenerationEnded{GenerationID: uuid.New(), WorkID: uuid.New(), Status: "succeeded", WebhookURL: "https://localhost:" + port + "/hook"})
	d := f.waitDelivery(t)
	if d.Status != webhook.StatusFailed || d.Attempts < 1 {
		t.Fatalf("delivery %s after %d tries, want failed", d.Status, d.Attempts)
	}
	for _, a := range d.AttemptLog {
		if !strings.Contains(a.Error, "not allowed for webhooks") || a.StatusCode != nil {
			t.Errorf("try %+v, want the guard's refusal", a)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 {
		t.Fatalf("the private receiver was reached %d times", hits)
	}
}

// receiver is a Standard Webhooks receiver that fails the first tries of
// each message.
type receiver struct {
	t       *testing.T
	secret  func() string
	failFor int

	mu       sync.Mutex
	tries    map[string]int    // by webhook-id
	accepted map[string][]byte // verified bodies, by webhook-id
	bad      int
}

func newReceiver(t *testing.T, failFor int) (*receiver, *httptest.Server) {
	r := &receiver{t: t, failFor: failFor, tries: map[string]int{}, accepted: map[string][]byte{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := verify(r.secret(), req.Header, body); err != nil {
		r.bad++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	id := req.Header.Get("webhook-id")
	r.tries[id]++
	if r.tries[id] <= r.failFor {
		http.Error(w, "try again later", http.StatusInternalServerError)
		return
	}
	r.accepted[id] = body
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) snapshot() (accepted map[string][]byte, tries map[string]int, bad int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	accepted, tries = map[string][]byte{}, map[string]int{}
	for k, v := range r.accepted {
		accepted[k] = v
	}
	for k, v := range r.tries {
		tries[k] = v
	}
	return accepted, tries, r.bad
}

func TestEndpointDeliveryRetriesThenSucceedsOnce(t *testing.T) {
	recv, srv := newReceiver(t, 2)
	f := newFixture(t, webhook.Config{Development: true})
	ctx := context.Background()
	ep, err := f.svc.CreateEndpoint(ctx, f.user, srv.URL+"/hooks", []string{webhook.GenerationSucceeded, webhook.GenerationFailed})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ep.Secret, "whsec_") {
		t.Fatalf("secret %q, want whsec_…", ep.Secret)
	}
	recv.secret = func() string { return ep.Secret }
	gen, work, img := uuid.New(), uuid.New(), uuid.New()
	f.enqueue(t, webhook.GenerationEnded{GenerationID: gen, WorkID: work, Status: "succeeded", ImageIDs: []uuid.UUID{img}, Cost: 4})
	// Canceled is not among the endpoint's events: no delivery.
	f.enqueue(t, webhook.GenerationEnded{GenerationID: uuid.New(), WorkID: uuid.New(), Status: "canceled"})

	d := f.waitDelivery(t)
	if d.Status != webhook.StatusSucceeded || d.Attempts != 3 || len(d.AttemptLog) != 3 {
		t.Fatalf("delivery %s after %d tries (%d logged), want succeeded after 3", d.Status, d.Attempts, len(d.AttemptLog))
	}
	for i, want := range []int{500, 500, 204} {
		a := d.AttemptLog[i]
		if a.StatusCode == nil || *a.StatusCode != want {
			t.Errorf("try %d: %+v, want HTTP %d", i+1, a, want)
		}
	}
	if !strings.Contains(d.AttemptLog[0].Response, "try again later") || d.DeliveredAt == nil {
		t.Errorf("first try's response %q, delivered at %v", d.AttemptLog[0].Response, d.DeliveredAt)
	}
	time.Sleep(100 * time.Millisecond) // a duplicate would arrive by now
	accepted, tries, bad := recv.snapshot()
	if len(accepted) != 1 || bad != 0 || tries[d.WebhookID] != 3 {
		t.Fatalf("receiver accepted %d messages (%d unverified), tries %v", len(accepted), bad, tries)
	}
	var msg struct {
		Type string
		Data struct {
			GenerationID, WorkID, Status string
			ImageIDs                     []string
			Cost                         int
		}
	}
	if err := json.Unmarshal(accepted[d.WebhookID], &msg); err != nil {
		t.Fatal(err)
	}
	if msg.Type != "generation.succeeded" || msg.Data.Status != "SUCCEEDED" || len(msg.Data.ImageIDs) != 1 || msg.Data.Cost != 4 ||
		!strings.Contains(decode(msg.Data.GenerationID), gen.String()) || !strings.Contains(decode(msg.Data.ImageIDs[0]), img.String()) {
		t.Fatalf("message %+v", msg)
	}

	// Redelivery sends the same message again, with the same webhook-id.
	if _, err := f.svc.Redeliver(ctx, f.user, d.ID); err != nil {
		t.Fatal(err)
	}
	d = f.waitDelivery(t)
	_, tries, _ = recv.snapshot()
	if d.Status != webhook.StatusSucceeded || d.Attempts != 4 || tries[d.WebhookID] != 4 {
		t.Fatalf("after redelivery: %s, %d tries, receiver saw %d", d.Status, d.Attempts, tries[d.WebhookID])
	}

	// A rotated secret signs at once; the old one still signs alongside.
	old := ep.Secret
	rotated, err := f.svc.RotateSecret(ctx, f.user, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.Secret == old || !strings.HasPrefix(rotated.Secret, "whsec_") {
		t.Fatalf("rotated secret %q", rotated.Secret)
	}
	for _, secret := range []string{old, rotated.Secret} {
		recv.mu.Lock()
		recv.secret = func() string { return secret }
		recv.mu.Unlock()
		if _, err := f.svc.Redeliver(ctx, f.user, d.ID); err != nil {
			t.Fatal(err)
		}
		if d = f.waitDelivery(t); d.Status != webhook.StatusSucceeded {
			t.Fatalf("with the %s secret: %s, last error %v", map[bool]string{true: "old", false: "new"}[secret == old], d.Status, d.LastError)
		}
	}
}

func TestDeliveryGivenUpAfterItsWindow(t *testing.T) {
	recv, srv := newReceiver(t, 1000)
	f := newFixture(t, webhook.Config{Development: true, RetryFor: 300 * time.Millisecond})
	secret, err := f.svc.RequestSecret(context.Background(), f.user, f.user.UserID)
	if err != nil {
		t.Fatal(err)
	}
	recv.secret = func() string { return secret }
	f.enqueue(t, webhook.GenerationEnded{GenerationID: uuid.New(), WorkID: uuid.New(), Status: "failed", ErrorCode: "CONTENT_REJECTED", WebhookURL: srv.URL})
	d := f.waitDelivery(t)
	if d.Status != webhook.StatusFailed || d.Attempts < 2 || d.LastStatusCode == nil || *d.LastStatusCode != 500 {
		t.Fatalf("delivery %s after %d tries (last %v), want failed after retries", d.Status, d.Attempts, d.LastStatusCode)
	}
	if !d.PerRequest || d.EventType != webhook.GenerationFailed {
		t.Fatalf("delivery %+v", d)
	}
}

func TestOwnership(t *testing.T) {
	f := newFixture(t, webhook.Config{Development: true})
	ctx := context.Background()
	ep, err := f.svc.CreateEndpoint(ctx, f.user, "http://127.0.0.1:9/hook", []string{webhook.GenerationSucceeded})
	if err != nil {
		t.Fatal(err)
	}
	f.enqueue(t, webhook.GenerationEnded{GenerationID: uuid.New(), WorkID: uuid.New(), Status: "succeeded"})
	page, err := f.svc.Deliveries(ctx, f.user, f.user.UserID, &ep.ID, 10, nil)
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("deliveries: %v, %v", page, err)
	}
	var other uuid.UUID
	if err := f.db.NewRaw("INSERT INTO users (email, password_hash) VALUES ('other@example.com', 'x') RETURNING id").Scan(ctx, &other); err != nil {
		t.Fatal(err)
	}
	b := actor.Actor{UserID: other, Role: actor.RoleUser, Verified: true}
	if err := f.svc.DeleteEndpoint(ctx, b, ep.ID); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("B deletes A's endpoint: %v", err)
	}
	if _, err := f.svc.RotateSecret(ctx, b, ep.ID); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("B rotates A's secret: %v", err)
	}
	if _, err := f.svc.Redeliver(ctx, b, page.Items[0].ID); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("B redelivers A's delivery: %v", err)
	}
	if _, err := f.svc.Deliveries(ctx, b, other, &ep.ID, 10, nil); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("B lists A's endpoint's deliveries: %v", err)
	}
	if _, err := f.svc.Endpoints(ctx, b, f.user.UserID); apperr.CodeOf(err) != apperr.Forbidden {
		t.Errorf("B lists A's endpoints: %v", err)
	}
	key := actor.Actor{UserID: f.user.UserID, Scopes: []actor.Scope{actor.ScopeGenerate}, APIKeyID: uuid.New()}
	if _, err := f.svc.Endpoints(ctx, key, f.user.UserID); apperr.CodeOf(err) != apperr.Forbidden {
		t.Errorf("a key without the webhooks scope lists endpoints: %v", err)
	}
	var keyID uuid.UUID
	if err := f.db.NewRaw(`INSERT INTO api_keys (user_id, name, prefix, secret_hash, scopes)
		VALUES (?, 'partner', 'testprefix', sha256('x'), '{webhooks}') RETURNING id`, f.user.UserID).Scan(ctx, &keyID); err != nil {
		t.Fatal(err)
	}
	withScope := actor.Actor{UserID: f.user.UserID, Scopes: []actor.Scope{actor.ScopeWebhooks}, APIKeyID: keyID}
	made, err := f.svc.CreateEndpoint(ctx, withScope, "http://127.0.0.1:9/other", []string{webhook.GenerationCanceled})
	if err != nil || made.APIKeyID == nil || *made.APIKeyID != withScope.APIKeyID {
		t.Fatalf("a key with the webhooks scope registers: %+v, %v", made, err)
	}
	// Revoking the key stops the endpoints it registered.
	if n, err := webhook.DisableKeyEndpointsTx(ctx, f.db, withScope.APIKeyID); err != nil || n != 1 {
		t.Fatalf("disable the key's endpoints: %d, %v", n, err)
	}
	if eps, err := f.svc.Endpoints(ctx, f.user, f.user.UserID); err != nil || len(eps) != 1 || eps[0].ID != ep.ID {
		t.Fatalf("endpoints after the key's revocation: %+v, %v", eps, err)
	}
	f.enqueue(t, webhook.GenerationEnded{GenerationID: uuid.New(), WorkID: uuid.New(), Status: "canceled"})
	if page, err := f.svc.Deliveries(ctx, f.user, f.user.UserID, nil, 10, nil); err != nil || page.TotalCount != 1 {
		t.Fatalf("a disabled endpoint got a delivery: %+v, %v", page, err)
	}
	// Deleting gives up the endpoint's pending deliveries; they stay listed.
	if err := f.svc.DeleteEndpoint(ctx, f.user, ep.ID); err != nil {
		t.Fatal(err)
	}
	d := f.waitDelivery(t)
	if d.Status != webhook.StatusFailed || d.EndpointID != nil {
		t.Fatalf("after deleting its endpoint: %+v", d)
	}
	if _, err := f.svc.Redeliver(ctx, f.user, d.ID); apperr.CodeOf(err) != apperr.Validation {
		t.Errorf("redelivering to a deleted endpoint: %v", err)
	}
}

func decode(id string) string {
	b, _ := base64.RawURLEncoding.DecodeString(id)
	return string(b)
}

// TestOutboxFollowsItsTransaction: deliveries written in a transaction
// that rolls back (an end that was not recorded) are never sent.
func TestOutboxFollowsItsTransaction(t *testing.T) {
	f := newFixture(t, webhook.Config{Development: true})
	ctx := context.Background()
	if _, err := f.svc.CreateEndpoint(ctx, f.user, "http://127.0.0.1:9/hook", []string{webhook.GenerationFailed}); err != nil {
		t.Fatal(err)
	}
	rollback := errors.New("the end was not recorded")
	err := f.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := webhook.GenerationEndedTx(ctx, tx, webhook.GenerationEnded{GenerationID: uuid.New(), WorkID: uuid.New(), UserID: f.user.UserID,
			Status: "failed", WebhookURL: "http://127.0.0.1:9/request"}); err != nil {
			return err
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatal(err)
	}
	page, err := f.svc.Deliveries(ctx, f.user, f.user.UserID, nil, 10, nil)
	if err != nil || page.TotalCount != 0 {
		t.Fatalf("after a rollback: %+v, %v", page, err)
	}
	f.enqueue(t, webhook.GenerationEnded{GenerationID: uuid.New(), WorkID: uuid.New(), Status: "failed", WebhookURL: "http://127.0.0.1:9/request"})
	if page, err = f.svc.Deliveries(ctx, f.user, f.user.UserID, nil, 10, nil); err != nil || page.TotalCount != 2 {
		t.Fatalf("after a commit: %d deliveries (want the endpoint's and the request's), %v", page.TotalCount, err)
	}
}

// TestCreditsLowNeedsCreditsRead: credits.low carries the user's available
// credits, which a key reads only with credits:read; the webhooks scope
// alone must not open them by registering for the event.
func TestCreditsLowNeedsCreditsRead(t *testing.T) {
	f := newFixture(t, webhook.Config{Development: true})
	ctx := context.Background()
	newKey := func(scopes ...actor.Scope) actor.Actor {
		var keyID uuid.UUID
		if err := f.db.NewRaw(`INSERT INTO api_keys (user_id, name, prefix, secret_hash, scopes)
			VALUES (?, 'partner', substr(md5(random()::text), 1, 16), sha256('x'), ?) RETURNING id`, f.user.UserID, scopeArray(scopes)).Scan(ctx, &keyID); err != nil {
			t.Fatal(err)
		}
		return actor.Actor{UserID: f.user.UserID, Scopes: scopes, APIKeyID: keyID}
	}
	hooksOnly := newKey(actor.ScopeWebhooks)
	_, err := f.svc.CreateEndpoint(ctx, hooksOnly, "http://127.0.0.1:9/low", []string{webhook.GenerationSucceeded, webhook.CreditsLow})
	if apperr.CodeOf(err) != apperr.Forbidden {
		t.Errorf("a webhooks key without credits:read registers for credits.low: %v", err)
	}
	withCredits := newKey(actor.ScopeWebhooks, actor.ScopeCreditsRead)
	if _, err := f.svc.CreateEndpoint(ctx, withCredits, "http://127.0.0.1:9/low", []string{webhook.CreditsLow}); err != nil {
		t.Errorf("a webhooks + credits:read key registers for credits.low: %v", err)
	}
	if _, err := f.svc.CreateEndpoint(ctx, f.user, "http://127.0.0.1:9/low", []string{webhook.CreditsLow}); err != nil {
		t.Errorf("a session registers for credits.low: %v", err)
	}

	// Nor does a webhooks key read the credits.low deliveries of endpoints
	// the user registered.
	if err := f.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		return webhook.CreditsLowTx(ctx, tx, f.user.UserID, 3, 10)
	}); err != nil {
		t.Fatal(err)
	}
	all, err := f.svc.Deliveries(ctx, f.user, f.user.UserID, nil, 10, nil)
	if err != nil || all.TotalCount != 2 {
		t.Fatalf("the session's deliveries: %+v, %v; want the two credits.low ones", all, err)
	}
	if page, err := f.svc.Deliveries(ctx, hooksOnly, f.user.UserID, nil, 10, nil); err != nil || len(page.Items) != 0 {
		t.Errorf("a webhooks key lists credits.low deliveries: %+v, %v", page, err)
	}
	if ds, err := f.svc.DeliveriesByIDs(ctx, hooksOnly, []uuid.UUID{all.Items[0].ID}); err != nil || len(ds) != 0 {
		t.Errorf("a webhooks key finds a credits.low delivery by id: %+v, %v", ds, err)
	}
	if _, err := f.svc.Redeliver(ctx, hooksOnly, all.Items[0].ID); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("a webhooks key redelivers a credits.low delivery: %v", err)
	}
	if page, err := f.svc.Deliveries(ctx, withCredits, f.user.UserID, nil, 10, nil); err != nil || len(page.Items) != 2 {
		t.Errorf("a webhooks + credits:read key's deliveries: %+v, %v; want both", page, err)
	}
}

func scopeArray(scopes []actor.Scope) string {
	names := make([]string, len(scopes))
	for i, s := range scopes {
		names[i] = string(s)
	}
	return "{" + strings.Join(names, ",") + "}"
}
