package server_test

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/billing"
	"github.com/fastimage/api/internal/billing/stripefake"
	"github.com/fastimage/api/internal/imaging/imagingtest"
	"github.com/fastimage/api/internal/privacy"
	"github.com/fastimage/api/internal/privacy/privacytest"
	"github.com/fastimage/api/internal/storage"
)

const requestDeletionMutation = `mutation { requestAccountDeletion { request { id kind status } } }`

// signUpNamed is mustSignUp with a name of the test's.
func signUpNamed(t *testing.T, s *testServer, email, name string) (*client, string) {
	t.Helper()
	s.client(t).must(`mutation($email: String!, $name: String!, $password: String!) {
		signUp(input: {email: $email, name: $name, password: $password}) { message } }`,
		map[string]any{"email": email, "name": name, "password": goodPassword}, nil)
	s.client(t).must(verifyMutation, map[string]any{"token": s.linkToken(t, email, "verify_email")}, nil)
	s.forgetRateLimits(t)
	c, id := signIn(t, s, email, goodPassword)
	s.forgetRateLimits(t)
	return c, id
}

// A user with rows in every table asks, through the API, for their
// account's deletion. It needs a recent password; then the job erases the
// account while its subscription is open (which ends as a revoked session
// does), and nothing of the user is left in any table but the accounting
// rows under a tombstone and the final email; their storage prefix is
// empty; the audit trail shows the request to its completion; the ledger
// still adds up; and the address signs up again as a new account.
func TestAccountDeletionEndToEnd(t *testing.T) {
	t.Parallel()
	f := stripefake.New(t)
	for _, it := range billing.DefaultCatalog().Items {
		f.AddPrice(it.LookupKey, it.Price, it.Currency, string(it.Interval))
	}
	cfg := testConfig()
	cfg.Payments.SecretKey, cfg.Payments.WebhookSecret, cfg.Payments.APIBase = "sk_test_fake", f.WebhookSecret, f.URL
	cfg.Payments.WebhookMaxBytes = 256 << 10
	s := start(t, cfg)
	ctx := context.Background()

	const email, name = "quentin.erasmo@example.com", "Quentin Erasmo-Vale"
	me, globalID := signUpNamed(t, s, email, name)
	userID := uuidOfGlobal(t, globalID)
	bystander, _ := mustSignUp(t, s, "bystander@example.com")

	// Works: uploads, a direct upload, a generation (prompt, outputs,
	// events, a charge).
	me.mustUpload("beach.jpg", imagingtest.JPEG(80, 60), name+" at the beach")
	me.mustUpload("hill.png", imagingtest.PNG(60, 80), "hill")
	photo := imagingtest.JPEG(50, 40)
	var up struct {
		CreateUpload struct{ UploadID, UploadURL string }
	}
	me.must(`mutation($n: Bytes!) { createUpload(input: {filename: "me.jpg", contentType: "image/jpeg", bytes: $n, title: "direct"}) { uploadId uploadUrl } }`,
		map[string]any{"n": len(photo)}, &up)
	req, _ := http.NewRequest(http.MethodPut, up.CreateUpload.UploadURL, bytes.NewReader(photo))
	req.Header.Set("Content-Type", "image/jpeg")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	me.must(`mutation($id: ID!) { completeUpload(input: {uploadId: $id}) { work { id } } }`, map[string]any{"id": up.CreateUpload.UploadID}, nil)
	var gen submitted
	me.must(generateMutation, map[string]any{"in": map[string]any{"prompt": "a portrait of " + name, "width": 64, "height": 64}}, &gen)
	waitFor(t, 30*time.Second, func() bool {
		var g struct{ Generation struct{ Status string } }
		me.must(`query($id: ID!) { generation(id: $id) { status } }`, map[string]any{"id": gen.GenerateImage.Generation.ID}, &g)
		return g.Generation.Status == "SUCCEEDED"
	}, "the generation to succeed")

	// Payments: a pack and a plan, paid at Stripe and told by signed
	// webhooks.
	deliver := func(typ, id string) {
		t.Helper()
		body := f.Event(typ, id)
		if code := postWebhook(t, s, body, f.Sign(body)); code != http.StatusOK {
			t.Fatalf("webhook %s: %d", typ, code)
		}
	}
	for _, code := range []string{"pack-100", "pro-monthly"} {
		var c struct{ CreateCheckoutSession struct{ SessionID string } }
		me.must(`mutation($code: String!) { createCheckoutSession(input: {planCode: $code, idempotencyKey: $code, successPath: "/ok", cancelPath: "/"}) { sessionId } }`,
			map[string]any{"code": code}, &c)
		pay := f.PayCheckout(c.CreateCheckoutSession.SessionID)
		deliver("checkout.session.completed", pay.SessionID)
		if pay.SubscriptionID != "" {
			deliver("customer.subscription.created", pay.SubscriptionID)
			deliver("invoice.paid", pay.InvoiceID)
		}
	}

	// Privacy: an objection, a correction for support, an export asked for.
	me.must(`mutation { objectToProcessing(input: {purpose: MARKETING_EMAIL}) { request { id } } }`, nil, nil)
	me.must(`mutation($v: String!) { requestCorrection(input: {field: "invoice address", value: $v, note: "moved"}) { request { id } } }`,
		map[string]any{"v": "1 " + name + " Road"}, nil)
	me.must(`mutation { requestDataExport { request { id } } }`, nil, nil)

	// Rows of the other parts of issue 12, whose API is not on this branch.
	for _, q := range []string{
		"INSERT INTO support_messages (user_id, email, subject, message) VALUES (?0, ?1, 'Help', 'my name is ' || ?2)",
		"INSERT INTO usage_events (user_id, feature, operation) VALUES (?0, 'generate', 'generateImage')",
		"INSERT INTO legal_documents (kind, version, effective_at, url) VALUES ('terms', 't1', now(), 'https://example.test/terms') ON CONFLICT DO NOTHING",
		"INSERT INTO legal_acceptances (user_id, kind, version) VALUES (?0, 'terms', 't1')",
		"INSERT INTO export_downloads (request_id, user_id) SELECT id, user_id FROM privacy_requests WHERE user_id = ?0 AND kind = 'export'",
	} {
		if _, err := s.db.NewRaw(q, userID, email, name).Exec(ctx); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	var customer string
	if err := s.db.NewRaw("SELECT stripe_customer_id FROM users WHERE id = ?", userID).Scan(ctx, &customer); err != nil || customer == "" {
		t.Fatalf("no Stripe customer: %v", err)
	}
	needles := []string{email, name, userID.String(), customer}
	traces, err := privacytest.Traces(ctx, s.db, needles...)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for _, tr := range traces {
		if !slices.Contains(tables, tr.Table) {
			tables = append(tables, tr.Table)
		}
	}
	t.Logf("before the deletion the user is in %d tables: %v", len(tables), tables)
	if len(tables) < 25 {
		t.Errorf("before the deletion the user is in %d tables (%v), want the 25 and more this test fills", len(tables), tables)
	}
	prefix := storage.UserPrefix(userID)
	if objs, err := s.bucket.List(ctx, prefix); err != nil || len(objs) < 8 {
		t.Fatalf("before the deletion: %d blobs (%v), want the uploads, outputs and thumbnails", len(objs), err)
	}
	ledger := privacytest.LedgerOf(t, s.db, userID)

	// Deleting needs the password proved within 10 minutes.
	if _, err := s.db.ExecContext(ctx, "UPDATE sessions SET password_confirmed_at = now() - interval '20 minutes' WHERE user_id = ?", userID); err != nil {
		t.Fatal(err)
	}
	e := me.fails("REAUTHENTICATION_REQUIRED", requestDeletionMutation, nil)
	if e.Message == "" {
		t.Error("REAUTHENTICATION_REQUIRED without a sentence")
	}
	me.fails("INVALID_CREDENTIALS", `mutation($p: String!) { confirmPassword(input: {password: $p}) { confirmedAt } }`, map[string]any{"p": "not my password at all"})
	s.forgetRateLimits(t)
	me.must(`mutation($p: String!) { confirmPassword(input: {password: $p}) { confirmedAt } }`, map[string]any{"p": goodPassword}, nil)

	// The deletion, while the user's live feed is open: it ends as a
	// revoked session's does.
	var requestID string
	checkWebSocketEnd("graphql-transport-ws", "subscribe")(t, s, me.token, func() {
		var out struct {
			RequestAccountDeletion struct {
				Request struct{ ID, Kind, Status string }
			}
		}
		me.must(requestDeletionMutation, nil, &out)
		r := out.RequestAccountDeletion.Request
		if r.Kind != "DELETION" || r.Status != "VERIFIED" {
			t.Errorf("the request: %+v", r)
		}
		requestID = r.ID
	}, "UNAUTHENTICATED", 4401)
	reqUUID := uuidOfGlobal(t, requestID)
	waitFor(t, 60*time.Second, func() bool {
		var st string
		_ = s.db.NewRaw("SELECT status FROM privacy_requests WHERE id = ?", reqUUID).Scan(ctx, &st)
		return st == "completed"
	}, "the deletion to complete")

	// Gone: the session, the password, the data.
	me.fails("UNAUTHENTICATED", viewerQuery, nil)
	s.client(t).fails("INVALID_CREDENTIALS", signInMutation, map[string]any{"email": email, "password": goodPassword})
	s.forgetRateLimits(t)
	var finals int
	if err := s.db.NewRaw("SELECT count(*) FROM mail_outbox WHERE to_address = ? AND kind = 'account_deleted'", email).Scan(ctx, &finals); err != nil || finals != 1 {
		t.Errorf("final emails: %d (%v), want 1", finals, err)
	}
	privacytest.AssertNoTraces(t, s.db, func(tr privacytest.Trace) bool {
		// The final email keeps the address until it is delivered.
		return tr.Table == "mail_outbox" && tr.Column == "to_address" && tr.Value == email
	}, needles...)
	if objs, err := s.bucket.List(ctx, prefix); err != nil || len(objs) != 0 {
		t.Errorf("after the deletion: %d blobs under the user's prefix (%v)", len(objs), err)
	}
	if n := f.Count("customer"); n != 0 {
		t.Errorf("%d customers left at Stripe", n)
	}

	// Kept: the request, its audit trail, the ledger and payments, under
	// the tombstone.
	var tomb uuid.UUID
	if err := s.db.NewRaw("SELECT user_id FROM privacy_requests WHERE id = ?", reqUUID).Scan(ctx, &tomb); err != nil {
		t.Fatal(err)
	}
	var tombEmail string
	if err := s.db.NewRaw("SELECT email FROM users WHERE id = ? AND status = 'deleted' AND name = ''", tomb).Scan(ctx, &tombEmail); err != nil || tombEmail != privacy.TombstoneEmail(tomb) {
		t.Errorf("the tombstone: %q, %v", tombEmail, err)
	}
	after := privacytest.LedgerOf(t, s.db, tomb)
	after.AddsUp(t)
	if after.Balance != ledger.Balance || after.Entries != ledger.Entries || after.Lots != ledger.Lots {
		t.Errorf("the tombstone's ledger %+v, the user's was %+v", after, ledger)
	}
	var purchases int
	if err := s.db.NewRaw("SELECT count(*) FROM purchases WHERE user_id = ? AND status = 'paid'", tomb).Scan(ctx, &purchases); err != nil || purchases != 2 {
		t.Errorf("paid purchases kept: %d (%v), want 2", purchases, err)
	}

	admin, _ := mustSignUp(t, s, "admin@example.com")
	if _, err := s.db.ExecContext(ctx, "UPDATE users SET role = 'admin' WHERE email = 'admin@example.com'"); err != nil {
		t.Fatal(err)
	}
	var queue struct {
		PrivacyRequestQueue struct {
			Edges []struct {
				Node struct {
					ID, Kind   string
					AuditTrail []struct{ Action, Actor string }
				}
			}
		}
	}
	admin.must(`{ privacyRequestQueue(status: COMPLETED, first: 50) { edges { node { id kind auditTrail { action actor } } } } }`, nil, &queue)
	var trail []string
	for _, edge := range queue.PrivacyRequestQueue.Edges {
		if edge.Node.ID == requestID {
			for _, a := range edge.Node.AuditTrail {
				trail = append(trail, a.Action)
			}
		}
	}
	if len(trail) == 0 || trail[0] != "received" || trail[len(trail)-1] != "completed" || !slices.Contains(trail, "account erased") {
		t.Errorf("the deletion's audit trail: %v, want received … account erased … completed", trail)
	}

	// The bystander is untouched.
	bystander.must(viewerQuery, nil, nil)

	// The address signs up again: a new, empty account.
	again, againID := signUpNamed(t, s, email, name)
	if uuidOfGlobal(t, againID) == userID {
		t.Error("the new account has the old id")
	}
	var v struct {
		Viewer struct {
			Email   string
			Credits struct{ Balance int }
			Works   struct{ TotalCount int }
		}
	}
	again.must(`{ viewer { email credits { balance } works { totalCount } } }`, nil, &v)
	if v.Viewer.Email != email || v.Viewer.Credits.Balance != 25 || v.Viewer.Works.TotalCount != 0 {
		t.Errorf("the new account: %+v", v.Viewer)
	}
}
