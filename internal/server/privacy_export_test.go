package server_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/billing"
	"github.com/fastimage/api/internal/billing/stripefake"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/imaging/imagingtest"
	"github.com/fastimage/api/internal/privacy"
	"github.com/fastimage/api/internal/storage"
)

const (
	requestExportMutation = `mutation { requestDataExport { request { id status } } }`
	exportQuery           = `query($id: ID!) { node(id: $id) { ... on PrivacyRequest { status progress export { bytes sha256 expiresAt downloadUrl } } } }`
)

type exportView struct {
	Node struct {
		Status   string
		Progress int
		Export   *struct {
			Bytes       int64
			SHA256      string
			ExpiresAt   time.Time
			DownloadURL string
		}
	}
}

// requestExport asks for an export as c and follows c's feed until it is
// COMPLETED; it returns the request's global id and the progress the feed
// showed on the way.
func requestExport(t *testing.T, s *testServer, c *client) (string, []int) {
	t.Helper()
	ws, _, err := wsDial(t, s.URL, "graphql-transport-ws", "")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	wsInit(t, ws, c.token)
	var req struct {
		RequestDataExport struct{ Request struct{ ID, Status string } }
	}
	c.must(requestExportMutation, nil, &req)
	id := req.RequestDataExport.Request.ID
	if st := req.RequestDataExport.Request.Status; st != "VERIFIED" && st != "IN_PROGRESS" {
		t.Fatalf("a new export is %s", st)
	}
	// The feed replays from its start: nothing of this request is missed.
	subscribe(t, ws, "feed", `subscription { viewerEvents { seq kind privacyRequestId privacyRequestStatus progress } }`)
	var progress []int
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		m := wsNext(t, ws, time.Until(deadline))
		if m.Type != "next" {
			t.Fatalf("feed: %s %s", m.Type, m.Payload)
		}
		var p struct {
			Data struct {
				ViewerEvents struct {
					Kind                 string
					PrivacyRequestID     *string
					PrivacyRequestStatus *string
					Progress             *int
				}
			}
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Fatal(err)
		}
		ev := p.Data.ViewerEvents
		if ev.Kind != "PRIVACY_REQUEST" || ev.PrivacyRequestID == nil || *ev.PrivacyRequestID != id {
			continue
		}
		progress = append(progress, *ev.Progress)
		if *ev.PrivacyRequestStatus == "COMPLETED" {
			return id, progress
		}
	}
	t.Fatalf("the export did not complete within a minute; progress seen %v", progress)
	return "", nil
}

// exportOf reads the request's export field as c sees it.
func exportOf(t *testing.T, c *client, id string) exportView {
	t.Helper()
	var v exportView
	c.must(exportQuery, map[string]any{"id": id}, &v)
	return v
}

// download GETs u with a user agent and returns the status and body.
func download(t *testing.T, s *testServer, u, agent string) (int, []byte) {
	t.Helper()
	if tok := mustParseURL(t, u).Query().Get("token"); tok != "" {
		s.secrets.add(tok)
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", agent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func mustParseURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// serverURL points a link made for the public URL at the test server.
func serverURL(s *testServer, link string) string {
	return s.URL + strings.TrimPrefix(link, testOrigin)
}

// userRows is each exported table's rows of the user, as Postgres renders
// them: how the test finds them, independently of the exporter where it
// can (a user_id column, or the one join that leads to the user).
func userRows(t *testing.T, s *testServer, user uuid.UUID) map[string][]map[string]any {
	t.Helper()
	ctx := context.Background()
	var withUserID []string
	if err := s.db.NewRaw("SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'user_id'").Scan(ctx, &withUserID); err != nil {
		t.Fatal(err)
	}
	out := map[string][]map[string]any{}
	for _, table := range privacy.ExportedTables() {
		var from string
		switch {
		case table == "users":
			from = "users t WHERE t.id = ?0"
		case table == "generation_events":
			from = "generation_events t WHERE t.generation_id IN (SELECT id FROM generations WHERE user_id = ?0)"
		case table == "privacy_audit":
			from = "privacy_audit t WHERE t.request_id IN (SELECT id FROM privacy_requests WHERE user_id = ?0)"
		case table == "stripe_charges":
			from = `stripe_charges t WHERE EXISTS (SELECT 1 FROM purchases p WHERE p.user_id = ?0
				AND (p.payment_intent_id = t.payment_intent_id OR p.invoice_id = t.invoice_id))`
		case slices.Contains(withUserID, table):
			from = table + " t WHERE t.user_id = ?0"
		default:
			t.Fatalf("the test does not know how to find a user's rows in %s", table)
		}
		var raw []string
		if err := s.db.NewRaw("SELECT to_jsonb(t)::text FROM "+from, user).Scan(ctx, &raw); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		for _, r := range raw {
			out[table] = append(out[table], decodeRow(t, []byte(r)))
		}
	}
	return out
}

func decodeRow(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// canonical renders a row with only the given columns, keys sorted.
func canonical(row map[string]any, columns []string) string {
	kept := map[string]any{}
	for _, c := range columns {
		kept[c] = row[c]
	}
	b, _ := json.Marshal(kept)
	return string(b)
}

// A user with rows in every table that refers to a user exports: the ZIP,
// downloaded through the link, holds every row (without credentials) and
// every image byte for byte, its manifest's hashes match its files, the
// progress reached viewerEvents, and nothing of another user is in it.
// The rows are made through the API wherever one exists (accounts,
// uploads, a generation, purchases and a plan through Stripe's webhooks, a
// refund, privacy requests, an earlier export downloaded), and by SQL
// only where none does yet (support messages, usage events, legal
// acceptances).
func TestDataExportHoldsEveryRowAndBlob(t *testing.T) {
	t.Parallel()
	fake := stripefake.New(t)
	for _, it := range billing.DefaultCatalog().Items {
		fake.AddPrice(it.LookupKey, it.Price, it.Currency, string(it.Interval))
	}
	cfg := worksCfg()
	cfg.Payments = config.Payments{SecretKey: "sk_test_fake", WebhookSecret: fake.WebhookSecret, APIBase: fake.URL, WebhookMaxBytes: 256 << 10}
	s := start(t, cfg)
	ctx := context.Background()
	me, myGID := mustSignUp(t, s, "exporter@example.com")
	meID := uuidOfGlobal(t, myGID)
	other, otherGID := mustSignUp(t, s, "bystander@example.com")
	otherID := uuidOfGlobal(t, otherGID)
	other.mustUpload("theirs.png", imagingtest.PNG(40, 30), "not yours")

	// Works: an upload (with thumbnails), a direct upload begun, a generation.
	me.mustUpload("holiday.png", imagingtest.NoisyPNG(320, 200), "holiday")
	me.must(`mutation { createUpload(input: {filename: "later.png", contentType: "image/png", bytes: 1000, title: "later"}) { uploadId } }`, nil, nil)
	// Webhooks: an endpoint, and the delivery the generation's end makes,
	// delivered (so that its row no longer changes), and the request secret.
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer receiver.Close()
	me.must(`mutation($url: String!) { createWebhookEndpoint(input: {url: $url, events: ["generation.succeeded"]}) { secret } }`,
		map[string]any{"url": receiver.URL + "/export-hook"}, nil)
	me.must(`{ viewer { webhookRequestSecret } }`, nil, nil)
	var sub submitted
	me.must(generateMutation, map[string]any{"in": map[string]any{"prompt": "a lighthouse at dusk, for the export", "width": 256, "height": 256}}, &sub)
	if evs := subscribeEvents(t, s, me.token, sub.GenerateImage.Generation.ID, nil).rest(); evs[len(evs)-1].Kind != "SUCCEEDED" {
		t.Fatalf("the generation ended %s", evs[len(evs)-1].Kind)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var d struct {
			Viewer struct {
				WebhookDeliveries struct {
					Edges []struct{ Node struct{ Status string } }
				}
			}
		}
		me.must(`{ viewer { webhookDeliveries { edges { node { status } } } } }`, nil, &d)
		if e := d.Viewer.WebhookDeliveries.Edges; len(e) == 1 && e[0].Node.Status == "SUCCEEDED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhook was not delivered: %+v", d)
		}
	}

	// An API key for a partner app (its secret's hash stays out of the export).
	makeKey(t, me, "export partner", "works:read")

	// Payments: a credit pack, partly refunded, and a plan.
	hook := func(typ, id string) {
		t.Helper()
		body := fake.Event(typ, id)
		if code := postWebhook(t, s, body, fake.Sign(body)); code != http.StatusOK {
			t.Fatalf("webhook %s: %d", typ, code)
		}
	}
	checkout := func(plan string) string {
		var c struct {
			CreateCheckoutSession struct{ SessionID string }
		}
		me.must(`mutation($plan: String!, $key: String!) { createCheckoutSession(input: {planCode: $plan, idempotencyKey: $key, successPath: "/done", cancelPath: "/"}) { sessionId } }`,
			map[string]any{"plan": plan, "key": "export-" + plan}, &c)
		return c.CreateCheckoutSession.SessionID
	}
	pack := fake.PayCheckout(checkout("pack-100"))
	hook("checkout.session.completed", pack.SessionID)
	fake.Refund(pack.ChargeID, 100)
	hook("charge.refunded", pack.ChargeID)
	plan := fake.PayCheckout(checkout("pro-monthly"))
	hook("checkout.session.completed", plan.SessionID)
	hook("customer.subscription.created", plan.SubscriptionID)
	hook("invoice.paid", plan.InvoiceID)

	// Privacy: an objection, a correction, and an earlier export, downloaded.
	me.must(`mutation { objectToProcessing(input: {purpose: MARKETING_EMAIL}) { request { id } } }`, nil, nil)
	me.must(`mutation { requestCorrection(input: {field: "a purchase record", value: "my company name", note: "for invoices"}) { request { id } } }`, nil, nil)
	first, _ := requestExport(t, s, me)
	if code, _ := download(t, s, serverURL(s, exportOf(t, me, first).Node.Export.DownloadURL), "first-download/1.0"); code != http.StatusOK {
		t.Fatalf("downloading the first export: %d", code)
	}

	// What has no API yet in this part of the issue.
	for _, q := range []string{
		"INSERT INTO support_messages (user_id, email, subject, message, ip) VALUES (?0, 'exporter@example.com', 'Invoice', 'Please send my invoice.', '198.51.100.4')",
		"INSERT INTO usage_events (user_id, feature, operation, client) VALUES (?0, 'generate', 'generateImage', 'web')",
		"INSERT INTO legal_documents (kind, version, effective_at, url) VALUES ('privacy_policy', '2026-01', '2026-01-01', 'https://example.com/privacy/2026-01')",
		"INSERT INTO legal_acceptances (user_id, kind, version) VALUES (?0, 'privacy_policy', '2026-01')",
	} {
		if _, err := s.db.NewRaw(q, meID).Exec(ctx); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	// The fixture is complete: every table that refers to a user, and is
	// not exempt, has a row of this user's.
	want := userRows(t, s, meID)
	tables, err := privacy.UserTables(ctx, s.db)
	if err != nil {
		t.Fatal(err)
	}
	exempt := privacy.ExemptTables()
	for _, ut := range tables {
		if _, ok := exempt[ut.Name]; !ok && len(want[ut.Name]) == 0 {
			t.Errorf("the fixture has no row of the user in %s (%s)", ut.Name, ut.Why)
		}
	}
	if len(want["stripe_charges"]) == 0 {
		t.Error("the fixture has no charge of the user's purchases")
	}
	var keys []string
	if err := s.db.NewRaw("SELECT storage_key FROM assets WHERE user_id = ? ORDER BY id", meID).Scan(ctx, &keys); err != nil {
		t.Fatal(err)
	}
	if len(keys) < 4 { // the upload, its thumbnails, the generated image
		t.Fatalf("the user has %d images, want the upload's, its thumbnails and the generation's", len(keys))
	}

	// The export, with its progress in viewerEvents.
	id, progress := requestExport(t, s, me)
	if len(progress) < 5 || progress[len(progress)-1] != 100 || !slices.IsSorted(progress[1:]) {
		t.Errorf("progress in the feed: %v, want it rising to 100", progress)
	}
	ex := exportOf(t, me, id).Node.Export
	if ex == nil || ex.DownloadURL == "" {
		t.Fatal("the completed export has no download")
	}
	code, body := download(t, s, serverURL(s, ex.DownloadURL), "export-test/1.0")
	if code != http.StatusOK {
		t.Fatalf("download: %d %s", code, body)
	}
	sum := sha256.Sum256(body)
	if int64(len(body)) != ex.Bytes || hex.EncodeToString(sum[:]) != ex.SHA256 {
		t.Fatalf("downloaded %d bytes, SHA-256 %x; the API says %d, %s", len(body), sum, ex.Bytes, ex.SHA256)
	}
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}

	// The manifest matches the files.
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc) // checks the CRC-32 too
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		files[f.Name] = b
	}
	var m privacy.Manifest
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if m.FormatVersion != privacy.ExportFormatVersion || m.RequestID != uuidOfGlobal(t, id) || m.UserID != meID {
		t.Errorf("manifest header: %+v", m)
	}
	listed := map[string]privacy.ManifestEntry{}
	for _, e := range m.Files {
		listed[e.Name] = e
		b, ok := files[e.Name]
		sum := sha256.Sum256(b)
		if !ok || int64(len(b)) != e.Bytes || hex.EncodeToString(sum[:]) != e.SHA256 {
			t.Errorf("manifest entry %s (%d bytes, %s) does not match the file (%v, %d bytes, %x)", e.Name, e.Bytes, e.SHA256, ok, len(b), sum)
		}
	}
	if len(listed) != len(files)-1 {
		t.Errorf("the manifest lists %d files, the ZIP has %d besides it", len(listed), len(files)-1)
	}

	// Every row the user had is there, as it is in the database, without
	// the credentials. A session's last_seen_at moves with each request.
	omitted := map[string]bool{"password_hash": true, "token_hash": true, "secret_hash": true, "secret": true, "previous_secret": true}
	volatile := map[string]map[string]bool{"sessions": {"last_seen_at": true}}
	for table, rows := range want {
		file := privacy.ExportFileOf(table)
		got := map[string][]map[string]any{}
		if err := jsonUseNumber(files[file], &got); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if n := listed[file].Rows[table]; n != int64(len(got[table])) {
			t.Errorf("%s: the manifest counts %d rows of %s, the file holds %d", file, n, table, len(got[table]))
		}
		var columns []string
		for c := range rows[0] {
			if !omitted[c] && !volatile[table][c] {
				columns = append(columns, c)
			}
		}
		have := map[string]bool{}
		for _, g := range got[table] {
			for c := range omitted {
				if _, ok := g[c]; ok {
					t.Errorf("%s: a row of %s holds %s", file, table, c)
				}
			}
			if uid, ok := g["user_id"]; ok && uid != meID.String() {
				t.Errorf("%s: a row of %s belongs to %v", file, table, uid)
			}
			have[canonical(g, columns)] = true
		}
		for _, r := range rows {
			if !have[canonical(r, columns)] {
				t.Errorf("%s: a row of %s is missing or differs: %s", file, table, canonical(r, columns))
			}
		}
	}
	if got := len(want["export_downloads"]); got != 1 {
		t.Errorf("the first export's download: %d rows, want 1", got)
	}

	// Every image, byte for byte.
	for _, key := range keys {
		name := path.Join("images", strings.TrimPrefix(key, storage.UserPrefix(meID)))
		rc, _, err := s.bucket.Open(ctx, key, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		blob, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(files[name], blob) {
			t.Errorf("image %s: %d bytes in the ZIP as %s, %d in storage", key, len(files[name]), name, len(blob))
		}
	}

	// Nothing of the other user.
	for name, b := range files {
		if bytes.Contains(b, []byte(otherID.String())) || bytes.Contains(b, []byte("bystander@example.com")) {
			t.Errorf("%s names the other user", name)
		}
	}
}

// The download link: each download is recorded with its IP and browser;
// another user's link, a tampered or missing token, or an unknown request
// all get the same 404; once expired, 410 EXPORT_EXPIRED, and the API no
// longer offers it.
func TestExportDownloadLinks(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	ctx := context.Background()
	me, _ := mustSignUp(t, s, "downloader@example.com")
	them, _ := mustSignUp(t, s, "someone@example.com")
	mine, _ := requestExport(t, s, me)
	theirs, _ := requestExport(t, s, them)
	myLink := exportOf(t, me, mine).Node.Export.DownloadURL
	theirLink := exportOf(t, them, theirs).Node.Export.DownloadURL
	if exportOf(t, them, mine).Node.Export != nil {
		t.Error("another user sees my export")
	}

	for i, agent := range []string{"browser/1", "browser/2"} {
		code, body := download(t, s, serverURL(s, myLink), agent)
		if code != http.StatusOK || !bytes.HasPrefix(body, []byte("PK")) {
			t.Fatalf("download %d: %d %.100s", i+1, code, body)
		}
	}
	var rows []struct {
		IP        string `bun:"ip"`
		UserAgent string `bun:"user_agent"`
	}
	if err := s.db.NewRaw("SELECT ip, user_agent FROM export_downloads WHERE request_id = ? ORDER BY id", uuidOfGlobal(t, mine)).Scan(ctx, &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].IP != "127.0.0.1" || rows[0].UserAgent != "browser/1" || rows[1].UserAgent != "browser/2" {
		t.Errorf("recorded downloads: %+v, want both, with IP and user agent", rows)
	}

	myID, theirID := uuidOfGlobal(t, mine).String(), uuidOfGlobal(t, theirs).String()
	myToken := mustParseURL(t, myLink).Query().Get("token")
	theirToken := mustParseURL(t, theirLink).Query().Get("token")
	flipped := []byte(myToken)
	flipped[len(flipped)-3] ^= 1
	base := s.URL + privacy.ExportPath
	var notFound []string
	for name, u := range map[string]string{
		"their token on my export": base + myID + "?token=" + theirToken,
		"my token on theirs":       base + theirID + "?token=" + myToken,
		"a tampered token":         base + myID + "?token=" + string(flipped),
		"a later expiry":           base + myID + "?token=" + strings.Replace(myToken, ".", "9.", 1),
		"no token":                 base + myID,
		"an unknown request":       base + uuid.NewString() + "?token=" + myToken,
		"not an id":                base + "nothing?token=" + myToken,
	} {
		code, body := download(t, s, u, "probe")
		if code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", name, code)
		}
		notFound = append(notFound, string(body))
	}
	for _, b := range notFound[1:] {
		if b != notFound[0] {
			t.Errorf("refusals differ, telling what exists: %s vs %s", b, notFound[0])
		}
	}
	var n int
	if err := s.db.NewRaw("SELECT count(*) FROM export_downloads").Scan(ctx, &n); err != nil || n != 2 {
		t.Errorf("refused downloads were recorded: %d rows, %v", n, err)
	}

	s.clock.Advance(7*24*time.Hour + time.Second)
	code, body := download(t, s, serverURL(s, myLink), "late")
	if code != http.StatusGone || !strings.Contains(string(body), `"EXPORT_EXPIRED"`) || !strings.Contains(string(body), "requestDataExport") {
		t.Errorf("an expired export: %d %s, want 410 EXPORT_EXPIRED saying how to get a new one", code, body)
	}
	if v := exportOf(t, me, mine); v.Node.Status != "COMPLETED" || v.Node.Export != nil {
		t.Errorf("an expired export is still offered: %+v", v.Node)
	}
}

func jsonUseNumber(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}
