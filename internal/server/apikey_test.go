package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/fastimage/api/internal/imaging/imagingtest"
	"github.com/fastimage/api/internal/relay"
)

// Requirements of root fields for API keys (see scopeRules).
const (
	// anyKey fields work with every key (public, or the key's own user).
	anyKey = ""
	// sessionOnly fields are FORBIDDEN to every key, whatever its scopes:
	// account security, sessions, payments setup, privacy requests, keys,
	// legal consent and administration.
	sessionOnly = "session"
)

// scopeRules says what each root field needs of an API key: a scope, anyKey
// or sessionOnly. A field of the schema missing here fails
// TestAPIKeyScopeMatrix until one is added.
var scopeRules = map[string]string{
	// Query
	"node":                anyKey, // what it returns needs its type's scope (a Work's here: see nodeScope)
	"nodes":               anyKey,
	"serverInfo":          anyKey,
	"viewer":              anyKey,
	"plans":               anyKey,
	"legalDocuments":      anyKey,
	"work":                "works:read",
	"generation":          "works:read",
	"estimateGeneration":  "generate",
	"estimateEdit":        "generate",
	"privacyRequestQueue": sessionOnly,
	"rateLimit":           anyKey, // the caller's own bucket

	// Mutation: flows that need no signed-in user.
	"signUp":               anyKey,
	"verifyEmail":          anyKey,
	"resendVerification":   anyKey,
	"signIn":               anyKey,
	"requestPasswordReset": anyKey,
	"resetPassword":        anyKey,
	"confirmEmailChange":   anyKey,
	"contactSupport":       anyKey,
	// Account security and sessions.
	"signOut":             sessionOnly,
	"revokeSession":       sessionOnly,
	"revokeOtherSessions": sessionOnly,
	"changePassword":      sessionOnly,
	"changeEmail":         sessionOnly,
	"updateProfile":       sessionOnly,
	"confirmPassword":     sessionOnly,
	// Keys themselves.
	"createApiKey": sessionOnly,
	"revokeApiKey": sessionOnly,
	// Payments setup.
	"createCheckoutSession":      sessionOnly,
	"createBillingPortalSession": sessionOnly,
	"cancelSubscription":         sessionOnly,
	"resumeSubscription":         sessionOnly,
	// Privacy requests and legal consent.
	"requestDataExport":      sessionOnly,
	"requestCorrection":      sessionOnly,
	"requestAccountDeletion": sessionOnly,
	"objectToProcessing":     sessionOnly,
	"withdrawObjection":      sessionOnly,
	"cancelPrivacyRequest":   sessionOnly,
	"acceptLegalDocuments":   sessionOnly,
	// Administration.
	"suspendUser":          sessionOnly,
	"unsuspendUser":        sessionOnly,
	"adjustCredits":        sessionOnly,
	"refundPurchase":       sessionOnly,
	"rejectPrivacyRequest": sessionOnly,
	"extendPrivacyRequest": sessionOnly,
	"completeCorrection":   sessionOnly,
	// Webhooks.
	"createWebhookEndpoint": "webhooks",
	"deleteWebhookEndpoint": "webhooks",
	"rotateWebhookSecret":   "webhooks",
	"redeliverWebhook":      "webhooks",
	// Works.
	"uploadImage":    "works:write",
	"createUpload":   "works:write",
	"completeUpload": "works:write",
	"renameWork":     "works:write",
	"deleteWorks":    "works:write",
	"restoreWorks":   "works:write",
	"purgeWorks":     "works:write",
	"emptyBin":       "works:write",
	// Generation.
	"generateImage":    "generate",
	"editImage":        "generate",
	"cancelGeneration": "generate",
	"retryGeneration":  "generate",

	// Subscription
	"heartbeat":        anyKey,
	"viewerEvents":     "events:read",
	"generationEvents": "events:read",
}

// matrixDefaults are values of required input fields that the tenancy
// matrix never needed.
var matrixDefaults = map[string]any{
	"documents": []any{map[string]any{"kind": "PRIVACY_POLICY", "version": "2026-01"}},
}

// keyUpload sends uploadImage as a multipart request with token, selecting
// nothing that needs another scope.
func keyUpload(t *testing.T, s *testServer, token string) gqlResponse {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	ops := mustJSON(map[string]any{"query": `mutation($file: Upload!) { uploadImage(input: {file: $file}) { __typename } }`, "variables": map[string]any{"file": nil}})
	_ = mw.WriteField("operations", string(ops))
	_ = mw.WriteField("map", `{"0": ["variables.file"]}`)
	fw, _ := mw.CreateFormFile("0", "m.png")
	_, _ = fw.Write(imagingtest.PNG(8, 8))
	_ = mw.Close()
	req, _ := http.NewRequest("POST", s.URL+"/graphql", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	_, out := do(t, req)
	return out
}

// nodeScope is what node and nodes need for the ids the matrix asks with
// (works).
const nodeScope = "works:read"

var allScopes = []string{"works:read", "works:write", "generate", "credits:read", "events:read", "webhooks"}

// scopeEnum is the GraphQL enum value of a scope.
func scopeEnum(s string) string {
	return strings.ToUpper(strings.NewReplacer(":", "_").Replace(s))
}

// makeKey creates an API key with scopes through c's session and returns
// its secret.
func makeKey(t testing.TB, c *client, name string, scopes ...string) (id, secret string) {
	t.Helper()
	enums := make([]string, len(scopes))
	for i, s := range scopes {
		enums[i] = scopeEnum(s)
	}
	var out struct {
		CreateApiKey struct {
			ApiKey struct{ ID, Prefix string }
			Secret string
		}
	}
	c.must(`mutation($in: CreateApiKeyInput!) { createApiKey(input: $in) { apiKey { id prefix } secret } }`,
		map[string]any{"in": map[string]any{"name": name, "scopes": enums}}, &out)
	k := out.CreateApiKey
	if !strings.HasPrefix(k.Secret, "fi_live_") || !strings.HasPrefix(k.Secret, k.ApiKey.Prefix+"_") {
		t.Fatalf("secret %q does not start with fi_live_ and the key's prefix %q", k.Secret, k.ApiKey.Prefix)
	}
	c.s.secrets.add(k.Secret)
	return k.ApiKey.ID, k.Secret
}

// matrixOperation builds an operation calling root field f with plausible
// values: ids of the right type that name nothing (so that mutations change
// nothing), other required values as the tenancy matrix makes them. It
// selects only __typename: what the field's result holds may need other
// scopes, which their own root fields test.
func (s *introspected) matrixOperation(t *testing.T, operation string, f schemaField) (string, map[string]any) {
	t.Helper()
	fakeID := func(where, rule string, r *typeRef) any {
		typ, ok := idRules[rule]
		if !ok {
			t.Errorf("%s takes an id with no rule in idRules (tenancy_test.go)", where)
		}
		if typ == anyNode {
			typ = "Work"
		}
		id := relay.ID(typ, uuid.NewString())
		if r.isList() {
			return []string{id}
		}
		return id
	}
	vars := map[string]any{}
	var decls, args []string
	for _, arg := range f.Args {
		where := f.Name + "." + arg.Name
		var v any
		switch {
		case arg.Type.Kind != "NON_NULL":
			continue
		case s.kindOf(arg.Type) == "INPUT_OBJECT":
			in := map[string]any{}
			for _, field := range s.byName[arg.Type.named().Name].InputFields {
				switch {
				case field.Type.Kind != "NON_NULL":
				case field.Type.named().Name == "Upload": // sent as multipart (see keyUpload)
				case matrixDefaults[field.Name] != nil:
					in[field.Name] = matrixDefaults[field.Name]
				case field.Type.named().Name == "ID":
					in[field.Name] = fakeID(where+"."+field.Name, field.Name, field.Type)
				default:
					in[field.Name] = s.value(t, where+"."+field.Name, field.Name, field.Type)
				}
			}
			v = in
		case arg.Type.named().Name == "ID":
			v = fakeID(where, f.Name+"."+arg.Name, arg.Type)
		default:
			v = s.value(t, where, arg.Name, arg.Type)
		}
		vars[arg.Name] = v
		decls = append(decls, fmt.Sprintf("$%s: %s", arg.Name, arg.Type))
		args = append(args, fmt.Sprintf("%s: $%s", arg.Name, arg.Name))
	}
	sel := ""
	if k := s.kindOf(f.Type); k != "SCALAR" && k != "ENUM" {
		sel = "{ __typename }"
	}
	call := f.Name
	if len(args) > 0 {
		call += "(" + strings.Join(args, ", ") + ")"
	}
	head := operation
	if len(decls) > 0 {
		head += " Matrix(" + strings.Join(decls, ", ") + ")"
	}
	return fmt.Sprintf("%s { %s %s }", head, call, sel), vars
}

// refusal is how a call with a key ended, for the matrix: the FORBIDDEN
// error's extensions, or nil when it was not refused.
func refusal(errs []gqlError) map[string]any {
	for _, e := range errs {
		if e.Extensions["code"] == "FORBIDDEN" {
			return e.Extensions
		}
	}
	return nil
}

// subscribeAs opens a graphql-transport-ws subscription with token and
// returns its first errors, or nil when it ran (sent data, or nothing
// within a second: a feed without news).
func subscribeAs(t *testing.T, s *testServer, token, q string, vars map[string]any) []gqlError {
	t.Helper()
	c, _, err := wsDial(t, s.URL, "graphql-transport-ws", "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wsSend(t, c, wsMessage{Type: "connection_init", Payload: mustJSON(map[string]any{"token": token})})
	if m := wsNext(t, c, 5*time.Second); m.Type != "connection_ack" {
		t.Fatalf("got %s %s, want connection_ack", m.Type, m.Payload)
	}
	wsSend(t, c, wsMessage{ID: "1", Type: "subscribe", Payload: mustJSON(map[string]any{"query": q, "variables": vars})})
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	for {
		var m wsMessage
		if err := c.ReadJSON(&m); err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				return nil
			}
			if websocket.IsUnexpectedCloseError(err) {
				t.Fatalf("socket closed: %v", err)
			}
			return nil
		}
		var errs []gqlError
		switch m.Type {
		case "ka", "ping", "pong":
			continue
		case "error":
			_ = json.Unmarshal(m.Payload, &errs)
		case "next":
			var res struct{ Errors []gqlError }
			_ = json.Unmarshal(m.Payload, &res)
			errs = res.Errors
		}
		return errs
	}
}

// Every root field, called with a key of each single scope and with one of
// every scope: fields the key's scopes allow are not refused, others are
// FORBIDDEN naming the missing scope in extensions.scope, and session-only
// fields are FORBIDDEN to every key (extensions.session).
func TestAPIKeyScopeMatrix(t *testing.T) {
	t.Parallel()
	s := start(t, noWorkers())
	me, _ := mustSignUp(t, s, "matrix@example.com")
	schema := introspect(t, me)

	type keyCase struct {
		name   string
		scopes []string
		secret string
	}
	var keys []keyCase
	for _, sc := range allScopes {
		_, secret := makeKey(t, me, "only "+sc, sc)
		keys = append(keys, keyCase{sc, []string{sc}, secret})
	}
	_, all := makeKey(t, me, "every scope", allScopes...)
	keys = append(keys, keyCase{"all", allScopes, all})

	roots := []struct {
		operation string
		typ       *struct{ Name string }
	}{{"query", schema.QueryType}, {"mutation", schema.MutationType}, {"subscription", schema.SubscriptionType}}
	fields := 0
	for _, root := range roots {
		for _, f := range schema.byName[root.typ.Name].Fields {
			need, ok := scopeRules[f.Name]
			if !ok {
				t.Errorf("%s.%s has no entry in scopeRules (apikey_test.go): say which scope it needs, or anyKey, or sessionOnly", root.typ.Name, f.Name)
				continue
			}
			if f.Name == "node" || f.Name == "nodes" {
				need = nodeScope
			}
			fields++
			q, vars := schema.matrixOperation(t, root.operation, f)
			for _, k := range keys {
				t.Run(f.Name+"/"+k.name, func(t *testing.T) {
					var errs []gqlError
					switch {
					case root.operation == "subscription":
						errs = subscribeAs(t, s, k.secret, q, vars)
					case f.Name == "uploadImage":
						errs = keyUpload(t, s, k.secret).Errors
					default:
						errs = me.as(k.secret).do(q, vars).Errors
					}
					got := refusal(errs)
					switch {
					case need == sessionOnly:
						if got == nil || got["session"] != true {
							t.Errorf("got %+v, want FORBIDDEN with extensions.session for every key\n%s", errs, q)
						}
					case need == anyKey || slices.Contains(k.scopes, need):
						if got != nil {
							t.Errorf("refused with %+v, want it allowed\n%s", errs, q)
						}
					default:
						if got == nil || got["scope"] != need {
							t.Errorf("got %+v, want FORBIDDEN naming scope %q\n%s", errs, need, q)
						}
					}
				})
			}
		}
	}
	if fields < 50 {
		t.Errorf("the matrix covered %d root fields; introspection lost some", fields)
	}
}

// The acceptance: a works:read key lists works and is refused
// generateImage naming `generate`; no key can make keys or ask for the
// account's deletion; a key is never taken from a cookie.
func TestAPIKeyActsWithinItsScopes(t *testing.T) {
	t.Parallel()
	s := start(t, worksCfg())
	me, _ := mustSignUp(t, s, "partner@example.com")
	w := me.mustUpload("a.png", imagingtest.PNG(40, 30), "for the partner")
	keyID, reader := makeKey(t, me, "gallery reader", "works:read")
	app := me.as(reader)

	var works struct {
		Viewer struct {
			Email string
			Works struct {
				Edges []struct{ Node struct{ ID, Title string } }
			}
		}
	}
	app.must(`{ viewer { email works(first: 10) { edges { node { id title } } } } }`, nil, &works)
	if got := works.Viewer.Works.Edges; len(got) != 1 || got[0].Node.ID != w.ID || works.Viewer.Email != "partner@example.com" {
		t.Fatalf("the key sees %+v", works.Viewer)
	}
	e := app.fails("FORBIDDEN", generateMutation, map[string]any{"in": map[string]any{"prompt": "a lighthouse", "width": 64, "height": 64}})
	if e.Extensions["scope"] != "generate" || !strings.Contains(e.Message, "generate") {
		t.Errorf("generateImage with a works:read key: %+v, want FORBIDDEN naming generate", e)
	}
	app.fails("FORBIDDEN", `mutation { renameWork(input: {workId: "`+w.ID+`", title: "x"}) { work { title } } }`, nil)

	_, every := makeKey(t, me, "everything", allScopes...)
	for _, k := range []string{reader, every} {
		c := me.as(k)
		for _, q := range []string{
			`mutation { createApiKey(input: {name: "mine", scopes: [WORKS_READ]}) { secret } }`,
			`mutation { requestAccountDeletion { request { id } } }`,
			`mutation { revokeApiKey(input: {apiKeyId: "` + keyID + `"}) { revokedApiKeyId } }`,
			`{ viewer { apiKeys { id } } }`,
			`{ viewer { sessions { id } } }`,
			`mutation { changePassword(input: {currentPassword: "` + goodPassword + `", newPassword: "another long passphrase"}) { user { id } } }`,
		} {
			if e := c.fails("FORBIDDEN", q, nil); e.Extensions["session"] != true {
				t.Errorf("%s: %+v, want FORBIDDEN for keys", q, e)
			}
		}
	}

	// The owner lists the keys (the secrets never again), and sees when
	// each was last used.
	var list struct {
		Viewer struct {
			APIKeys []struct {
				ID, Name, Prefix string
				Scopes           []string
				LastUsedAt       *string
			} `json:"apiKeys"`
		}
	}
	out := me.do(`{ viewer { apiKeys { id name prefix scopes createdAt lastUsedAt expiresAt } } }`, nil)
	if len(out.Errors) > 0 {
		t.Fatal(out.Errors)
	}
	if strings.Contains(string(out.Data), strings.TrimPrefix(reader, reader[:strings.LastIndex(reader, "_")+1])) {
		t.Fatal("the list shows a key's secret")
	}
	_ = json.Unmarshal(out.Data, &list)
	if len(list.Viewer.APIKeys) != 2 || list.Viewer.APIKeys[1].ID != keyID || list.Viewer.APIKeys[1].Name != "gallery reader" ||
		!slices.Equal(list.Viewer.APIKeys[1].Scopes, []string{"WORKS_READ"}) || list.Viewer.APIKeys[1].LastUsedAt == nil {
		t.Errorf("keys listed %+v", list.Viewer.APIKeys)
	}

	// A key in the session cookie is refused, never taken.
	req, _ := http.NewRequest("POST", s.URL+"/graphql", strings.NewReader(`{"query":"{ viewer { id } }"}`))
	req.Header.Set("Content-Type", "application/json")
	req.AddCookie(&http.Cookie{Name: "fastimage_session", Value: reader})
	if _, res := do(t, req); res.code() != "UNAUTHENTICATED" {
		t.Errorf("a key in the cookie: %s %+v, want UNAUTHENTICATED", res.Data, res.Errors)
	}

	// Expired keys and suspended users are refused with a sentence.
	if _, err := s.db.ExecContext(context.Background(), "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = ?", uuidOfGlobal(t, keyID)); err != nil {
		t.Fatal(err)
	}
	if e := app.fails("UNAUTHENTICATED", `{ viewer { id } }`, nil); !strings.Contains(e.Message, "expired") {
		t.Errorf("expired key: %q", e.Message)
	}
	if _, err := s.db.ExecContext(context.Background(), "UPDATE users SET status = 'suspended' WHERE email = 'partner@example.com'"); err != nil {
		t.Fatal(err)
	}
	me.as(every).fails("ACCOUNT_SUSPENDED", `{ viewer { id } }`, nil)
}

// A revoked key fails on its next request, and the subscriptions it holds
// open end at once with UNAUTHENTICATED, on every transport.
func TestRevokedAPIKeyEndsItsStreams(t *testing.T) {
	t.Parallel()
	transports := []struct {
		name  string
		check func(t *testing.T, s *testServer, token string, end func(), code string, closeCode int)
	}{
		{"graphql-transport-ws", checkWebSocketEnd("graphql-transport-ws", "subscribe")},
		{"graphql-ws", checkWebSocketEnd("graphql-ws", "start")},
		{"sse", checkSSEEnd},
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, testConfig())
			me, _ := mustSignUp(t, s, "revoker@example.com")
			id, secret := makeKey(t, me, "events", "events:read")
			me.as(secret).must(`{ viewer { id } }`, nil, nil)
			tr.check(t, s, secret, func() {
				me.must(`mutation($id: ID!) { revokeApiKey(input: {apiKeyId: $id}) { revokedApiKeyId } }`, map[string]any{"id": id}, nil)
			}, "UNAUTHENTICATED", 4401)
			if e := me.as(secret).fails("UNAUTHENTICATED", `{ viewer { id } }`, nil); !strings.Contains(e.Message, "revoked") {
				t.Errorf("after revocation: %q", e.Message)
			}
			me.fails("NOT_FOUND", `mutation($id: ID!) { revokeApiKey(input: {apiKeyId: $id}) { revokedApiKeyId } }`, map[string]any{"id": id})
		})
	}
}

// A partner's page on an allowed origin calls the API cross-origin with a
// key: the preflight allows the Authorization header, and the answer
// carries the origin.
func TestAPIKeyCrossOrigin(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	me, _ := mustSignUp(t, s, "cors@example.com")
	_, secret := makeKey(t, me, "browser app", "works:read")

	pre, _ := http.NewRequest("OPTIONS", s.URL+"/graphql", nil)
	pre.Header.Set("Origin", "https://partner.example")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	resp, err := http.DefaultClient.Do(pre)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://partner.example" || !strings.Contains(allowed, "authorization") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}

	req, _ := http.NewRequest("POST", s.URL+"/graphql", strings.NewReader(`{"query":"{ viewer { email } }"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://partner.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, out := do(t, req)
	if len(out.Errors) > 0 || !strings.Contains(string(out.Data), "cors@example.com") || resp.Header.Get("Access-Control-Allow-Origin") != "https://partner.example" {
		t.Errorf("cross-origin call with a key: %s %+v %v", out.Data, out.Errors, resp.Header)
	}
}

// A key's streams also end when its user is suspended.
func TestSuspensionEndsAPIKeyStreams(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	me, userID := mustSignUp(t, s, "suspended-partner@example.com")
	_, secret := makeKey(t, me, "events", "events:read")
	checkWebSocketEnd("graphql-transport-ws", "subscribe")(t, s, secret, func() {
		suspendByAdmin(t, s, "", userID)
	}, "ACCOUNT_SUSPENDED", 4403)
	me.as(secret).fails("ACCOUNT_SUSPENDED", `{ viewer { id } }`, nil)
}
