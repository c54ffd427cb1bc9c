package privacy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/app"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/billing"
	"github.com/fastimage/api/internal/billing/stripefake"
	"github.com/fastimage/api/internal/clock"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/generate"
	"github.com/fastimage/api/internal/imaging/imagingtest"
	"github.com/fastimage/api/internal/mail"
	"github.com/fastimage/api/internal/privacy"
	"github.com/fastimage/api/internal/privacy/privacytest"
	"github.com/fastimage/api/internal/storage"
	"github.com/fastimage/api/internal/storage/local"
	"github.com/fastimage/api/internal/storage/storagetest"
	"github.com/fastimage/api/internal/work"
)

const testPassword = "erasure test passphrase 42"

// env is the whole service over a fresh database and one storage backend,
// with Stripe faked, and no background work but what a test starts.
type env struct {
	app    *app.App
	db     *bun.DB
	bucket storage.Bucket
	clock  *clock.Fake
	fake   *stripefake.Fake
	hook   *httptest.Server
}

func newEnv(t *testing.T, bucket storage.Bucket) *env {
	t.Helper()
	bdb := dbtest.New(t)
	f := stripefake.New(t)
	for _, it := range billing.DefaultCatalog().Items {
		f.AddPrice(it.LookupKey, it.Price, it.Currency, string(it.Interval))
	}
	cfg, err := config.ParseServe([]string{"--storage-dir", t.TempDir()}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Generate.Workers = 1
	cfg.Generate.Lease = 2 * time.Second
	cfg.Generate.LocalStepDelay = time.Millisecond
	cfg.Payments.SecretKey, cfg.Payments.WebhookSecret, cfg.Payments.APIBase = "sk_test_fake", f.WebhookSecret, f.URL
	clk := clock.NewFake(time.Now())
	a, err := app.New(context.Background(), cfg, bdb, slog.New(slog.DiscardHandler), app.Overrides{
		Bucket: bucket, Mailer: mail.NewOutbox(bdb), WorkerID: "erase-test", PollInterval: 50 * time.Millisecond, Clock: clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	hook := httptest.NewServer(a.Billing.WebhookHandler())
	t.Cleanup(hook.Close)
	e := &env{app: a, db: bdb, bucket: bucket, clock: clk, fake: f, hook: hook}
	e.background(t, func(ctx context.Context) { a.Bus.Run(ctx) })
	return e
}

// background runs fn until the test ends, or until the returned stop.
func (e *env) background(t *testing.T, fn func(ctx context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { fn(ctx) })
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

func ctxFor() context.Context {
	return account.WithClient(context.Background(), account.Client{IP: "203.0.113.77", UserAgent: "erase-test/1"})
}

// person is a user as the test knows them.
type person struct {
	email, name string
	id          uuid.UUID
	token       string
	actor       actor.Actor
}

var tokenInLink = regexp.MustCompile(`token=([A-Za-z0-9_-]{43})`)

// signUp makes a verified user through the account service and signs them
// in.
func (e *env) signUp(t *testing.T, email, name string) *person {
	t.Helper()
	ctx := ctxFor()
	if err := e.app.Accounts.SignUp(ctx, account.SignUpInput{Email: email, Name: name, Password: testPassword}); err != nil {
		t.Fatalf("SignUp: %v", err)
	}
	msg, err := e.app.Outbox.Latest(ctx, email, "verify_email")
	if err != nil {
		t.Fatalf("verification email: %v", err)
	}
	m := tokenInLink.FindStringSubmatch(msg.Text)
	if m == nil {
		t.Fatalf("no link in %q", msg.Text)
	}
	if _, err := e.app.Accounts.VerifyEmail(ctx, m[1]); err != nil {
		t.Fatalf("VerifyEmail: %v", err)
	}
	in, err := e.app.Accounts.SignIn(ctx, account.SignInInput{Email: email, Password: testPassword})
	if err != nil {
		t.Fatalf("SignIn: %v", err)
	}
	v := &account.Viewer{User: in.User, Session: in.Session}
	return &person{email: email, name: name, id: in.User.ID, token: in.Token, actor: v.Actor()}
}

func (e *env) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	if _, err := e.db.NewRaw(query, args...).Exec(context.Background()); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func (e *env) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := e.db.NewRaw(query, args...).Scan(context.Background(), &n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (e *env) deliver(t *testing.T, typ, id string) {
	t.Helper()
	body := e.fake.Event(typ, id)
	req, _ := http.NewRequest(http.MethodPost, e.hook.URL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", e.fake.Sign(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook %s: status %d", typ, resp.StatusCode)
	}
}

// populate gives p rows in every table that refers to a user, through the
// services where this branch has them, and blobs of every kind.
func (e *env) populate(t *testing.T, p *person) {
	t.Helper()
	ctx := ctxFor()
	for i := range 3 {
		if _, err := e.app.Gallery.Upload(ctx, p.actor, work.UploadInput{
			File: bytes.NewReader(imagingtest.JPEG(64+i, 48)), Title: p.name + " on holiday",
		}); err != nil {
			t.Fatalf("Upload: %v", err)
		}
	}

	// A generation a worker carries out (outputs, thumbnails, events, a
	// charge), and one left queued, its credits held.
	done, err := e.app.Jobs.Submit(ctx, p.actor, generate.Request{
		Kind: generate.KindGenerate, Prompt: "a portrait of " + p.name, Width: 64, Height: 64, Count: 1, IdempotencyKey: "seed-done",
	})
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	stop := e.background(t, func(ctx context.Context) { e.app.Jobs.RunWorkers(ctx, "seed") })
	deadline := time.Now().Add(30 * time.Second)
	for e.count(t, "SELECT count(*) FROM generations WHERE id = ? AND status = 'succeeded'", done.ID) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the generation did not succeed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	queued, err := e.app.Jobs.Submit(ctx, p.actor, generate.Request{
		Kind: generate.KindGenerate, Prompt: p.name + " in the rain", Width: 64, Height: 64, Count: 1, IdempotencyKey: "seed-queued",
	})
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if _, err := e.app.Gallery.PutPreview(ctx, p.id, queued.WorkID, 1, imagingtest.JPEG(16, 16), "image/jpeg"); err != nil {
		t.Fatalf("PutPreview: %v", err)
	}
	// And one a worker is running (by the lease it holds).
	running, err := e.app.Jobs.Submit(ctx, p.actor, generate.Request{
		Kind: generate.KindGenerate, Prompt: p.name + " at work", Width: 64, Height: 64, Count: 1, IdempotencyKey: "seed-running",
	})
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	e.exec(t, `UPDATE generations SET status = 'running', lease_owner = 'ghost', lease_expires_at = now() + interval '1 hour',
		attempts = 1, started_at = now() WHERE id = ?`, running.ID)

	// A direct upload, open, its file PUT already.
	photo := imagingtest.JPEG(40, 30)
	up, err := e.app.Gallery.CreateUpload(ctx, p.actor, "me.jpg", "image/jpeg", int64(len(photo)), "selfie of "+p.name)
	if err != nil {
		t.Fatalf("CreateUpload: %v", err)
	}
	var staging string
	if err := e.db.NewRaw("SELECT staging_key FROM uploads WHERE id = ?", up.ID).Scan(ctx, &staging); err != nil {
		t.Fatal(err)
	}
	if _, err := e.bucket.Put(ctx, staging, bytes.NewReader(photo), storage.PutOptions{ContentType: "image/jpeg"}); err != nil {
		t.Fatal(err)
	}

	// An API key for a partner app.
	if _, err := e.app.APIKeys.Create(ctx, p.actor, p.name+"'s gallery app", []actor.Scope{actor.ScopeWorksRead}, nil); err != nil {
		t.Fatalf("Create API key: %v", err)
	}

	// A credit pack and a plan, paid at (fake) Stripe and told by signed
	// webhooks.
	for _, code := range []string{"pack-100", "pro-monthly"} {
		c, err := e.app.Billing.CreateCheckout(ctx, p.actor, billing.CheckoutRequest{
			PlanCode: code, IdempotencyKey: "buy-" + code, SuccessPath: "/billing/done", CancelPath: "/billing",
		})
		if err != nil {
			t.Fatalf("CreateCheckout(%s): %v", code, err)
		}
		pay := e.fake.PayCheckout(c.SessionID)
		e.deliver(t, "checkout.session.completed", pay.SessionID)
		if pay.SubscriptionID != "" {
			e.deliver(t, "customer.subscription.created", pay.SubscriptionID)
			e.deliver(t, "invoice.paid", pay.InvoiceID)
		}
	}

	// Privacy: an objection, a correction waiting for support, an export
	// done (its file kept outside the user's prefix, as the export job may)
	// and another one asked for.
	if _, err := e.app.Privacy.Object(ctx, p.actor, privacy.PurposeAnalytics); err != nil {
		t.Fatal(err)
	}
	if _, err := e.app.Privacy.RequestCorrection(ctx, p.actor, "postal address", "12 "+p.name+" Street", "I moved, "+p.email); err != nil {
		t.Fatal(err)
	}
	exp, err := e.app.Privacy.RequestExport(ctx, p.actor)
	if err != nil {
		t.Fatal(err)
	}
	exportKey := "exports/" + exp.ID.String() + ".zip"
	if _, err := e.bucket.Put(ctx, exportKey, strings.NewReader("PK zip of "+p.email), storage.PutOptions{ContentType: "application/zip"}); err != nil {
		t.Fatal(err)
	}
	e.exec(t, `UPDATE privacy_requests SET status = 'completed', completed_at = now(), progress = 100,
		result_key = ?, result_bytes = 42, result_sha256 = 'abc', result_expires_at = now() + interval '7 days' WHERE id = ?`, exportKey, exp.ID)
	if _, err := e.app.Privacy.RequestExport(ctx, p.actor); err != nil {
		t.Fatal(err)
	}

	// What other parts of issue 12 record, whose services are not on this
	// branch: support messages (one sent signed out from the address),
	// usage events, an accepted policy, an export's download.
	e.exec(t, "INSERT INTO support_messages (user_id, email, subject, message, ip) VALUES (?, ?, 'Help', ?, '203.0.113.77')", p.id, p.email, "I am "+p.name)
	e.exec(t, "INSERT INTO support_messages (email, subject, message) VALUES (?, 'Before I signed up', 'Hello')", p.email)
	e.exec(t, "INSERT INTO usage_events (user_id, feature, operation, client) VALUES (?, 'generate', 'submitGeneration', 'web')", p.id)
	e.exec(t, "INSERT INTO legal_documents (kind, version, effective_at, url) VALUES ('privacy_policy', '2026-01', now(), 'https://example.test/privacy') ON CONFLICT DO NOTHING")
	e.exec(t, "INSERT INTO legal_acceptances (user_id, kind, version) VALUES (?, 'privacy_policy', '2026-01')", p.id)
	e.exec(t, "INSERT INTO export_downloads (request_id, user_id, ip, user_agent) VALUES (?, ?, '203.0.113.77', 'erase-test/1')", exp.ID, p.id)
	e.exec(t, "INSERT INTO webhook_endpoints (user_id, url, events, secret) VALUES (?, 'https://hooks.example.test/a', '{generation.succeeded}', 'whsec_AAAA')", p.id)
	e.exec(t, `INSERT INTO webhook_deliveries (endpoint_id, user_id, url, event_type, payload, webhook_id)
		SELECT id, user_id, url, 'generation.succeeded', '{"type": "generation.succeeded"}', 'msg_erase_' || id FROM webhook_endpoints WHERE user_id = ?`, p.id)
	e.exec(t, "INSERT INTO webhook_user_secrets (user_id, secret) VALUES (?, 'whsec_BBBB')", p.id)
}

// needles are what must not remain of p: their email, name, ids.
func (e *env) needles(t *testing.T, p *person) []string {
	t.Helper()
	var customer string
	if err := e.db.NewRaw("SELECT stripe_customer_id FROM users WHERE id = ?", p.id).Scan(context.Background(), &customer); err != nil {
		t.Fatal(err)
	}
	if customer == "" {
		t.Fatal("the user has no Stripe customer")
	}
	return []string{p.email, p.name, p.id.String(), customer}
}

// failingBucket fails DeletePrefix the first time, as a storage outage
// would.
type failingBucket struct {
	storage.Bucket
	failed bool
}

func (b *failingBucket) DeletePrefix(ctx context.Context, prefix string) (int, error) {
	if !b.failed {
		b.failed = true
		return 0, errors.New("storage unavailable")
	}
	return b.Bucket.DeletePrefix(ctx, prefix)
}

func (e *env) request(t *testing.T, id uuid.UUID) *privacy.Request {
	t.Helper()
	var r privacy.Request
	if err := e.db.NewSelect().Model(&r).Where("id = ?", id).Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &r
}

func (e *env) objects(t *testing.T, prefix string) int {
	t.Helper()
	objs, err := e.bucket.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return len(objs)
}

// TestErasure deletes an account that has rows in every table and blobs of
// every kind, on both storage backends, through attempts that fail at each
// step and are tried again, and checks that nothing of the user remains
// but the accounting rows under a tombstone, the audit trail and the final
// email; that the ledger still adds up; and that the address can sign up
// again.
func TestErasure(t *testing.T) {
	t.Parallel()
	for name, newBucket := range map[string]func(t *testing.T) storage.Bucket{
		"local": func(t *testing.T) storage.Bucket {
			b, err := local.New(local.Config{
				Dir: t.TempDir(), SigningKey: []byte("erase-test-signing-key-0123456789"), BaseURL: "http://127.0.0.1:1/blobs", MaxPutBytes: 1 << 20,
			})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		"gcs": func(t *testing.T) storage.Bucket { return storagetest.FakeGCS(t) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testErasure(t, newBucket(t))
		})
	}
}

func testErasure(t *testing.T, bucket storage.Bucket) {
	e := newEnv(t, bucket)
	ctx := ctxFor()
	p := e.signUp(t, "zelda.quokka@example.com", "Zelda Quokkafeather")
	second, err := e.app.Accounts.SignIn(ctx, account.SignInInput{Email: p.email, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	other := e.signUp(t, "bystander@example.com", "Bystander Bob")
	e.populate(t, p)
	needles := e.needles(t, p)
	prefix := storage.UserPrefix(p.id)

	// The test is only as good as its population: every table with a
	// user_id column holds a row of p's, and blobs of every kind exist.
	before, err := privacytest.Traces(ctx, e.db, needles...)
	if err != nil {
		t.Fatal(err)
	}
	traced := map[string]bool{}
	for _, tr := range before {
		traced[tr.Table] = true
	}
	var userTables []string
	if err := e.db.NewRaw(`SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'user_id'`).
		Scan(ctx, &userTables); err != nil {
		t.Fatal(err)
	}
	for _, table := range append(userTables, "users", "generation_events", "mail_outbox", "rate_events", "privacy_requests") {
		if !traced[table] {
			t.Errorf("before the erasure, %s holds nothing of the user: the test does not cover it", table)
		}
	}
	blobs := e.objects(t, prefix)
	if blobs < 10 {
		t.Errorf("%d blobs under the user's prefix, want the uploads, thumbnails, outputs, a preview and a staged upload", blobs)
	}
	ledger := privacytest.LedgerOf(t, e.db, p.id)
	if ledger.OpenHolds != 2 || ledger.Held == 0 || ledger.Entries < 4 {
		t.Fatalf("ledger before: %+v, want two holds, a bonus, a spend and two grants", ledger)
	}
	otherBefore := e.count(t, "SELECT count(*) FROM sessions WHERE user_id = ?", other.id)

	req, err := e.app.Privacy.RequestDeletion(ctx, p.actor)
	if err != nil {
		t.Fatalf("RequestDeletion: %v", err)
	}
	job := func(bucket storage.Bucket, batch int, patience time.Duration) privacy.Job {
		return e.app.Privacy.Eraser(privacy.Erasure{Bucket: bucket, Customers: e.app.Billing, BatchSize: batch, Patience: patience})
	}
	noProgress := func(int) {}

	// Attempt 1 waits for the running generation to stop and for the open
	// upload's URL to expire, and gives up.
	err = job(bucket, 0, 300*time.Millisecond)(context.Background(), e.request(t, req.ID), noProgress)
	if err == nil || !strings.Contains(err.Error(), "1 running generation(s)") || !strings.Contains(err.Error(), "upload URLs valid until") {
		t.Fatalf("attempt 1: got %v, want it to wait for the running generation and the open upload", err)
	}
	// It asked the running generation to stop, and closed the account:
	// sessions revoked (the second one too), links gone, the queued
	// generation canceled, other requests rejected.
	if n := e.count(t, "SELECT count(*) FROM generations WHERE user_id = ? AND status = 'running' AND cancel_requested", p.id); n != 1 {
		t.Errorf("%d running generations asked to stop, want 1", n)
	}
	if _, err := e.app.Accounts.Authenticate(ctx, second.Token); apperr.CodeOf(err) != apperr.Unauthenticated {
		t.Errorf("a session after the account was closed: %v, want UNAUTHENTICATED", err)
	}
	if n := e.count(t, "SELECT count(*) FROM sessions WHERE user_id = ? AND revoked_at IS NULL", p.id); n != 0 {
		t.Errorf("%d sessions still open", n)
	}
	if n := e.count(t, "SELECT count(*) FROM generations WHERE user_id = ? AND status = 'queued'", p.id); n != 0 {
		t.Errorf("%d generations still queued", n)
	}
	if l := privacytest.LedgerOf(t, e.db, p.id); l.OpenHolds != 1 {
		t.Errorf("holds after attempt 1: %+v, want the running generation's only", l)
	}
	if n := e.count(t, "SELECT count(*) FROM privacy_requests WHERE user_id = ? AND status = 'rejected' AND rejection_reason = 'The account was deleted.'", p.id); n != 2 {
		t.Errorf("%d requests rejected, want the correction and the open export", n)
	}
	works := e.count(t, "SELECT count(*) FROM works WHERE user_id = ?", p.id)
	if works != 6 {
		t.Fatalf("%d works, want 6 still there", works)
	}

	// Attempt 2, once the generation's worker has died (its lease ran out)
	// and the upload URL has expired, dies while deleting works.
	e.exec(t, "UPDATE generations SET lease_expires_at = now() - interval '1 second' WHERE user_id = ? AND status = 'running'", p.id)
	e.clock.Advance(16 * time.Minute)
	crash, cancel := context.WithCancel(context.Background())
	err = job(bucket, 1, 0)(crash, e.request(t, req.ID), func(percent int) {
		if percent > 10 {
			cancel() // the worker dies after the first batch of works
		}
	})
	cancel()
	if err == nil {
		t.Fatal("attempt 2 succeeded, want it to die")
	}
	if n := e.count(t, "SELECT count(*) FROM works WHERE user_id = ?", p.id); n == 0 || n >= works {
		t.Errorf("after a crash among the works: %d of %d left, want some", n, works)
	}
	if l := privacytest.LedgerOf(t, e.db, p.id); l.Held != 0 || l.OpenHolds != 0 {
		t.Errorf("credits still held: %+v", l)
	}

	// Attempt 3 finds storage down.
	err = job(&failingBucket{Bucket: bucket}, 2, 0)(context.Background(), e.request(t, req.ID), noProgress)
	if err == nil || !strings.Contains(err.Error(), "storage unavailable") {
		t.Fatalf("attempt 3: got %v, want the storage error", err)
	}
	if n := e.count(t, "SELECT count(*) FROM works WHERE user_id = ?", p.id); n != 0 {
		t.Errorf("%d works left after their step", n)
	}
	if e.objects(t, prefix) == 0 || e.count(t, "SELECT count(*) FROM users WHERE id = ?", p.id) != 1 {
		t.Error("attempt 3 went past the failed step")
	}

	// Attempt 4 erases everything, and its worker dies before completing
	// the request; a worker then takes the request over and completes it.
	if err := job(bucket, 0, 0)(context.Background(), e.request(t, req.ID), noProgress); err != nil {
		t.Fatalf("attempt 4: %v", err)
	}
	r := e.request(t, req.ID)
	tomb := r.UserID
	if tomb == p.id || r.Status != privacy.StatusVerified {
		t.Fatalf("after attempt 4: request of %s in %s, want the tombstone's, still verified", tomb, r.Status)
	}
	e.background(t, func(ctx context.Context) { e.app.Privacy.RunWorkers(ctx, "erase-test", 1) })
	deadline := time.Now().Add(30 * time.Second)
	for r.Status != privacy.StatusCompleted {
		if time.Now().After(deadline) {
			t.Fatalf("the request is %s, want completed", r.Status)
		}
		time.Sleep(20 * time.Millisecond)
		r = e.request(t, req.ID)
	}
	if r.UserID != tomb {
		t.Errorf("the completed request belongs to %s, want the tombstone %s", r.UserID, tomb)
	}

	// Nothing of the user remains but the final email, which keeps the
	// address until it is delivered (and a week after, see
	// mail.ForgetDelivered).
	finals := e.count(t, "SELECT count(*) FROM mail_outbox WHERE to_address = ? AND kind = 'account_deleted'", p.email)
	if finals != 1 || e.count(t, "SELECT count(*) FROM mail_outbox WHERE to_address = ?", p.email) != 1 {
		t.Errorf("mail to the address: want exactly the final email, got %d final", finals)
	}
	privacytest.AssertNoTraces(t, e.db, func(tr privacytest.Trace) bool {
		return tr.Table == "mail_outbox" && tr.Column == "to_address" && tr.Value == p.email
	}, needles...)
	if n := e.objects(t, prefix); n != 0 {
		t.Errorf("%d blobs left under the user's prefix", n)
	}
	if objs, err := bucket.List(ctx, "exports/"); err != nil || len(objs) != 0 {
		t.Errorf("exports left: %v, %v", objs, err)
	}

	// The tombstone: no one, and no one can sign in to it.
	var tu account.User
	if err := e.db.NewSelect().Model(&tu).Where("id = ?", tomb).Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if tu.Email != privacy.TombstoneEmail(tomb) || tu.Name != "" || tu.Status != account.StatusDeleted || tu.StripeCustomerID != nil || tu.EmailVerifiedAt != nil {
		t.Errorf("tombstone: %+v", tu)
	}
	if _, err := e.app.Accounts.SignIn(ctx, account.SignInInput{Email: tu.Email, Password: testPassword}); apperr.CodeOf(err) != apperr.InvalidCredentials {
		t.Errorf("signing in to the tombstone: %v, want INVALID_CREDENTIALS", err)
	}

	// Accounting rows are the tombstone's, and add up as they did.
	after := privacytest.LedgerOf(t, e.db, tomb)
	after.AddsUp(t)
	if after.Balance != ledger.Balance || after.Entries != ledger.Entries || after.EntrySum != ledger.EntrySum ||
		after.Lots != ledger.Lots || after.Owed != ledger.Owed || after.Held != 0 {
		t.Errorf("tombstone's ledger %+v, want the user's %+v without the released hold", after, ledger)
	}
	for table, want := range map[string]int{"purchases": 2, "subscriptions": 1, "privacy_requests": 5} {
		if n := e.count(t, "SELECT count(*) FROM "+table+" WHERE user_id = ?", tomb); n != want {
			t.Errorf("%s of the tombstone: %d, want %d", table, n, want)
		}
	}
	if n := e.count(t, "SELECT count(*) FROM purchases WHERE user_id = ? AND status = 'paid' AND customer_id IS NULL AND checkout_url IS NULL AND (payment_intent_id IS NOT NULL OR invoice_id IS NOT NULL)", tomb); n != 2 {
		t.Errorf("%d paid purchases kept with their payment ids and no customer, want 2", n)
	}

	// Stripe forgot the customer and ended the plan.
	if n := e.fake.Count("customer"); n != 0 {
		t.Errorf("%d customers at Stripe, want 0", n)
	}
	if n := e.fake.Calls("DELETE /v1/customers/{id}"); n != 1 {
		t.Errorf("%d customer deletions asked of Stripe, want 1", n)
	}

	// The audit trail shows the request from its receipt to its
	// completion, and the steps between.
	trail, err := e.app.Privacy.Audit(ctx, actor.Actor{UserID: uuid.New(), Role: actor.RoleAdmin}, req.ID)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range trail {
		actions = append(actions, a.Action)
	}
	for _, want := range []string{"received", "verified", "account closed", "files deleted", "payment customer deleted", "account erased", "in_progress", "completed"} {
		if !slices.Contains(actions, want) {
			t.Errorf("audit trail %v lacks %q", actions, want)
		}
	}
	if actions[0] != "received" || actions[len(actions)-1] != "completed" {
		t.Errorf("audit trail %v, want it from received to completed", actions)
	}

	// Nobody else was touched.
	if n := e.count(t, "SELECT count(*) FROM sessions WHERE user_id = ?", other.id); n != otherBefore {
		t.Errorf("the bystander has %d sessions, had %d", n, otherBefore)
	}

	// Another attempt finds nothing to do.
	if err := job(bucket, 0, 0)(context.Background(), e.request(t, req.ID), noProgress); err != nil {
		t.Errorf("an attempt after the erasure: %v", err)
	}

	// The address signs up again, as a new, empty account.
	again := e.signUp(t, p.email, p.name)
	if again.id == p.id || again.id == tomb {
		t.Errorf("the new account has id %s", again.id)
	}
	page, err := e.app.Gallery.List(ctx, again.actor, again.id, work.Filter{}, 10, nil)
	if err != nil || len(page.Items) != 0 {
		t.Errorf("the new account's works: %v, %v", page, err)
	}
	if l := privacytest.LedgerOf(t, e.db, again.id); l.Balance != 25 || l.Entries != 1 {
		t.Errorf("the new account's ledger: %+v, want the sign-up bonus only", l)
	}
}
