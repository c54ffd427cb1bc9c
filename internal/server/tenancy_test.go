package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/imaging/imagingtest"
	"github.com/fastimage/api/internal/relay"
	"github.com/fastimage/api/internal/storage"
)

// The tenancy tests check the authorization contract of internal/actor end
// to end: another user's object is NOT_FOUND (or null), never visible. The
// matrix is built from introspection, so that a field added later that
// takes an id is probed without anyone remembering to.

// anyNode marks an argument that takes an id of any Node type.
const anyNode = "*"

// idRules names the type of object each id-taking argument refers to:
// "field.arg" for arguments of root fields, the bare name for fields of
// input objects. A field that takes an id and has no rule here fails
// TestCrossTenantMatrix until one is added.
var idRules = map[string]string{
	"node.id":             anyNode,
	"nodes.ids":           anyNode,
	"work.id":             "Work",
	"generation.id":       "Generation",
	"generationEvents.id": "Generation",

	"workId":         "Work",
	"workIds":        "Work",
	"sourceWorkId":   "Work",
	"maskWorkId":     "Work",
	"generationId":   "Generation",
	"sessionId":      "Session",
	"purchaseId":     "Purchase",
	"subscriptionId": "BillingSubscription",
	"requestId":      "PrivacyRequest",
	"userId":         "User",
	"uploadId":       "Upload", // createUpload's id; not a Node
	"apiKeyId":       "ApiKey",
	"endpointId":     "WebhookEndpoint",
	"deliveryId":     "WebhookDelivery",
}

// adminOnly are the root fields a non-admin is FORBIDDEN to use at all.
var adminOnly = map[string]bool{"suspendUser": true, "unsuspendUser": true, "adjustCredits": true, "refundPurchase": true,
	"rejectPrivacyRequest": true, "extendPrivacyRequest": true, "completeCorrection": true, "privacyRequestQueue": true}

// inputDefaults are the values of required input fields that take no id;
// other required scalars get a plausible value of their type.
var inputDefaults = map[string]any{
	"title":       "taken by B",
	"reason":      "tenancy check",
	"amount":      5,
	"instruction": "make it B's",
}

// tenant is a verified user with credits, and their objects by type.
type tenant struct {
	c     *client
	id    string
	email string
	ids   map[string][]string
	// labels tell objects of one type apart in test names.
	labels map[string]string
	// private is every string of this tenant's that no one else may see:
	// ids (global and raw), email, prompts, titles.
	private []string
}

func (tn *tenant) add(typ string, ids ...string) {
	tn.ids[typ] = append(tn.ids[typ], ids...)
}

// addAs adds one object with a label for test names.
func (tn *tenant) addAs(typ, label, id string) {
	tn.add(typ, id)
	tn.labels[id] = typ + "(" + label + ")"
}

func (tn *tenant) label(id string) string {
	if l, ok := tn.labels[id]; ok {
		return l
	}
	typ, _, _ := strings.Cut(decodeGlobalOrEmpty(id), ":")
	return typ
}

// leaks returns the first of tn's private strings in body, or "".
func (tn *tenant) leaks(body string) string {
	for _, p := range tn.private {
		if strings.Contains(body, p) {
			return p
		}
	}
	return ""
}

type tenants struct {
	s    *testServer
	a, b *tenant
	// A's objects in particular states.
	liveWork, binnedWork            string
	doneGen, queuedGen, canceledGen string
	phone                           *client // A's second session
	uploadID                        string
}

// twoTenants starts a server without workers and, on its database, a
// replica with workers that runs A's first generation to completion and
// then stops, so that A also owns a generation that stays QUEUED. A owns
// one object of every Node type; B owns a work.
func twoTenants(t *testing.T) *tenants {
	t.Helper()
	cfg := noWorkers()
	// A probe of nodes(ids:) names every id of A's and selects every field
	// of every Node type; the cost limit is tested on its own.
	cfg.MaxQueryComplexity = 100_000
	s := start(t, cfg)
	worker := startWithDB(t, testConfig(), s.dbURL)
	tt := &tenants{s: s}

	ac, aID := mustSignUp(t, s, "tenant-a@example.com")
	a := &tenant{c: ac, id: aID, email: "tenant-a@example.com", ids: map[string][]string{}, labels: map[string]string{}}
	a.add("User", aID)
	tt.a = a
	tt.phone, _ = signIn(t, s, a.email, goodPassword)
	var sessions struct {
		Viewer struct {
			Sessions []struct {
				ID      string
				Current bool
			}
		}
	}
	tt.phone.must(`{ viewer { sessions { id current } } }`, nil, &sessions)
	for _, ss := range sessions.Viewer.Sessions {
		if ss.Current {
			a.addAs("Session", "phone", ss.ID)
		} else {
			a.addAs("Session", "first", ss.ID)
		}
	}

	live := ac.mustUpload("a.png", imagingtest.PNG(40, 30), "a-private-title")
	binned := ac.mustUpload("bin.png", imagingtest.PNG(30, 40), "a-binned-title")
	ac.must(`mutation($ids: [ID!]!) { deleteWorks(input: {workIds: $ids}) { deletedWorkIds } }`, map[string]any{"ids": []string{binned.ID}}, nil)
	tt.liveWork, tt.binnedWork = live.ID, binned.ID
	a.addAs("Work", "upload", live.ID)
	a.addAs("Work", "binned", binned.ID)
	a.addAs("Image", "upload", live.Images[0].ID)

	// A direct upload whose file arrived but that is not completed yet.
	png := imagingtest.PNG(20, 20)
	var up struct {
		CreateUpload struct{ UploadID, UploadURL string }
	}
	ac.must(`mutation($n: Bytes!) { createUpload(input: {filename: "d.png", contentType: "image/png", bytes: $n, title: "a-direct-title"}) { uploadId uploadUrl } }`,
		map[string]any{"n": len(png)}, &up)
	req, _ := http.NewRequest("PUT", up.CreateUpload.UploadURL, bytes.NewReader(png))
	req.Header.Set("Content-Type", "image/png")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT of the direct upload: %d", resp.StatusCode)
	}
	tt.uploadID = up.CreateUpload.UploadID
	a.add("Upload", tt.uploadID)

	gen := func(state string) submitted {
		var sub submitted
		ac.must(generateMutation, map[string]any{"in": map[string]any{"prompt": "a-secret-prompt-" + state, "width": 64, "height": 64}}, &sub)
		a.addAs("Generation", state, sub.GenerateImage.Generation.ID)
		a.addAs("Work", state, sub.GenerateImage.Work.ID)
		return sub
	}
	// A's webhook endpoint, registered before A's generation ends so that
	// its end leaves a delivery (to a closed port: it stays pending).
	var hook struct {
		CreateWebhookEndpoint struct{ Endpoint struct{ ID string } }
	}
	ac.must(`mutation { createWebhookEndpoint(input: {url: "http://127.0.0.1:9/a-hook", events: ["generation.succeeded", "generation.canceled"]}) { endpoint { id } } }`, nil, &hook)
	a.add("WebhookEndpoint", hook.CreateWebhookEndpoint.Endpoint.ID)
	done := gen("succeeded")
	tt.doneGen = done.GenerateImage.Generation.ID
	if evs := subscribeEvents(t, s, ac.token, tt.doneGen, nil).rest(); evs[len(evs)-1].Kind != "SUCCEEDED" {
		t.Fatalf("A's generation ended with %v", kinds(evs))
	}
	if err := worker.stop(); err != nil {
		t.Fatal(err)
	}
	tt.queuedGen = gen("queued").GenerateImage.Generation.ID
	tt.canceledGen = gen("canceled").GenerateImage.Generation.ID
	ac.must(`mutation($id: ID!) { cancelGeneration(input: {generationId: $id}) { generation { status } } }`, map[string]any{"id": tt.canceledGen}, nil)

	var doneWork struct {
		Work struct{ Images []struct{ ID string } }
	}
	ac.must(`query($id: ID!) { work(id: $id) { images { id } } }`, map[string]any{"id": done.GenerateImage.Work.ID}, &doneWork)
	for _, img := range doneWork.Work.Images {
		a.addAs("Image", "output", img.ID)
	}

	var hooks struct {
		Viewer struct {
			WebhookDeliveries struct {
				Edges []struct{ Node struct{ ID string } }
			}
		}
	}
	ac.must(`{ viewer { webhookDeliveries(first: 5) { edges { node { id } } } } }`, nil, &hooks)
	for _, e := range hooks.Viewer.WebhookDeliveries.Edges {
		a.add("WebhookDelivery", e.Node.ID)
	}
	if len(a.ids["WebhookDelivery"]) == 0 {
		t.Fatal("A's generations left no webhook delivery")
	}

	var v struct {
		Viewer struct {
			SecurityEvents struct {
				Edges []struct{ Node struct{ ID string } }
			}
			CreditEntries struct {
				Edges []struct{ Node struct{ ID string } }
			}
			CreditHolds struct {
				Edges []struct{ Node struct{ ID string } }
			}
		}
	}
	ac.must(`{ viewer { securityEvents(first: 3) { edges { node { id } } } creditEntries(first: 3) { edges { node { id } } }
		creditHolds(first: 5) { edges { node { id } } } } }`, nil, &v)
	for _, e := range v.Viewer.SecurityEvents.Edges {
		a.add("SecurityEvent", e.Node.ID)
	}
	for _, e := range v.Viewer.CreditEntries.Edges {
		a.add("CreditEntry", e.Node.ID)
	}
	for _, e := range v.Viewer.CreditHolds.Edges { // newest first
		a.add("CreditHold", e.Node.ID)
	}
	if hs := a.ids["CreditHold"]; len(hs) == 3 {
		a.labels[hs[0]], a.labels[hs[1]], a.labels[hs[2]] = "CreditHold(released)", "CreditHold(held)", "CreditHold(captured)"
	}

	// A's purchase and subscription, as billing records them from Stripe's
	// webhooks (payments are off here: the API's reads and the refusals
	// of B's calls are what is probed).
	var purchaseID, subID uuid.UUID
	ctx := context.Background()
	if err := s.db.NewRaw(`INSERT INTO purchases (user_id, kind, catalog_code, credits, amount, currency, status, paid_at, payment_intent_id)
		VALUES (?, 'pack', 'pack-100', 100, 500, 'usd', 'paid', now(), 'pi_tenant_a') RETURNING id`, uuidOfGlobal(t, aID)).Scan(ctx, &purchaseID); err != nil {
		t.Fatal(err)
	}
	if err := s.db.NewRaw(`INSERT INTO subscriptions (user_id, stripe_subscription_id, plan_code, status, observed_at)
		VALUES (?, 'sub_tenant_a', 'pro-monthly', 'active', now()) RETURNING id`, uuidOfGlobal(t, aID)).Scan(ctx, &subID); err != nil {
		t.Fatal(err)
	}
	a.add("Purchase", relay.ID("Purchase", purchaseID.String()))
	a.add("BillingSubscription", relay.ID("BillingSubscription", subID.String()))
	var corr struct {
		RequestCorrection struct{ Request struct{ ID string } }
	}
	ac.must(`mutation { requestCorrection(input: {field: "a work's title", value: "a-private-correction"}) { request { id } } }`, nil, &corr)
	a.add("PrivacyRequest", corr.RequestCorrection.Request.ID)
	keyID, _ := makeKey(t, ac, "a-private-key", "works:read")
	a.add("ApiKey", keyID)

	a.private = []string{a.email, "a-private-key", "a-private-correction", "a-private-title", "a-binned-title", "a-direct-title", "a-secret-prompt"}
	for _, ids := range a.ids {
		for _, id := range ids {
			a.private = append(a.private, id, uuidOfGlobal(t, id).String())
		}
	}

	bc, bID := mustSignUp(t, s, "tenant-b@example.com")
	b := &tenant{c: bc, id: bID, email: "tenant-b@example.com", ids: map[string][]string{}, labels: map[string]string{}}
	b.add("User", bID)
	b.add("Work", bc.mustUpload("b.png", imagingtest.PNG(32, 32), "b-own").ID)
	tt.b = b
	return tt
}

// typeRef is a type as introspection shows it: wrappers down to a name.
type typeRef struct {
	Kind   string
	Name   string
	OfType *typeRef
}

func (r *typeRef) named() *typeRef {
	for r.OfType != nil {
		r = r.OfType
	}
	return r
}

func (r *typeRef) isList() bool {
	if r.Kind == "NON_NULL" {
		r = r.OfType
	}
	return r.Kind == "LIST"
}

func (r *typeRef) String() string {
	switch r.Kind {
	case "NON_NULL":
		return r.OfType.String() + "!"
	case "LIST":
		return "[" + r.OfType.String() + "]"
	}
	return r.Name
}

type inputValue struct {
	Name string
	Type *typeRef
}

type schemaField struct {
	Name string
	Args []inputValue
	Type *typeRef
}

type schemaType struct {
	Kind, Name    string
	Fields        []schemaField
	InputFields   []inputValue
	PossibleTypes []struct{ Name string }
	EnumValues    []struct{ Name string }
}

type introspected struct {
	QueryType, MutationType, SubscriptionType *struct{ Name string }
	Types                                     []schemaType
	byName                                    map[string]*schemaType
}

const schemaQuery = `{ __schema {
	queryType { name } mutationType { name } subscriptionType { name }
	types { kind name
		fields(includeDeprecated: true) { name args { name type { ...T } } type { ...T } }
		inputFields { name type { ...T } }
		possibleTypes { name }
		enumValues(includeDeprecated: true) { name } } } }
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }`

func introspect(t *testing.T, c *client) *introspected {
	t.Helper()
	var out struct {
		Schema introspected `json:"__schema"`
	}
	c.must(schemaQuery, nil, &out)
	s := &out.Schema
	s.byName = map[string]*schemaType{}
	for i := range s.Types {
		s.byName[s.Types[i].Name] = &s.Types[i]
	}
	return s
}

func (s *introspected) kindOf(r *typeRef) string {
	if n := s.byName[r.named().Name]; n != nil {
		return n.Kind
	}
	return ""
}

// selection selects every field of r's type that needs no argument, and
// those of the objects it holds, depth levels down; of an interface or a
// union, each possible type's fields too, aliased by type so that fields of
// one name and different types do not clash.
func (s *introspected) selection(r *typeRef, depth int) string {
	return s.selectionAs(r, depth, "")
}

func (s *introspected) selectionAs(r *typeRef, depth int, prefix string) string {
	n := s.byName[r.named().Name]
	if n == nil || n.Kind == "SCALAR" || n.Kind == "ENUM" {
		return ""
	}
	parts := []string{"__typename"}
	for _, pt := range n.PossibleTypes {
		parts = append(parts, "... on "+pt.Name+" "+s.selectionAs(&typeRef{Kind: "OBJECT", Name: pt.Name}, depth, pt.Name+"_"))
	}
	for _, f := range n.Fields {
		if slices.ContainsFunc(f.Args, func(a inputValue) bool { return a.Type.Kind == "NON_NULL" }) {
			continue
		}
		name := f.Name
		if prefix != "" {
			name = prefix + f.Name + ": " + f.Name
		}
		switch s.kindOf(f.Type) {
		case "SCALAR", "ENUM":
			parts = append(parts, name)
		default:
			if depth > 1 {
				parts = append(parts, name+" "+s.selection(f.Type, depth-1))
			}
		}
	}
	return "{ " + strings.Join(parts, " ") + " }"
}

// probe is one operation B sends with one of A's ids.
type probe struct {
	name      string
	field     string
	operation string
	query     string
	vars      map[string]any
}

// idSlot is one place of a root field where an id goes.
type idSlot struct {
	arg, input string // input is "" for a direct argument
	typ        string
}

func (sl idSlot) String() string {
	if sl.input == "" {
		return sl.arg
	}
	return sl.arg + "." + sl.input
}

// idSlots returns where f takes ids; it fails t for an id without a rule.
func (s *introspected) idSlots(t *testing.T, root string, f schemaField) []idSlot {
	t.Helper()
	var out []idSlot
	for _, arg := range f.Args {
		switch s.kindOf(arg.Type) {
		case "SCALAR":
			if arg.Type.named().Name != "ID" {
				continue
			}
			typ, ok := idRules[f.Name+"."+arg.Name]
			if !ok {
				t.Errorf("%s.%s(%s: %s) takes an id and tenancy_test.go has no rule for it: add %q to idRules with the type of object it names",
					root, f.Name, arg.Name, arg.Type, f.Name+"."+arg.Name)
				continue
			}
			out = append(out, idSlot{arg: arg.Name, typ: typ})
		case "INPUT_OBJECT":
			for _, in := range s.byName[arg.Type.named().Name].InputFields {
				if in.Type.named().Name != "ID" {
					continue
				}
				typ, ok := idRules[in.Name]
				if !ok {
					t.Errorf("%s.%s(%s.%s: %s) takes an id and tenancy_test.go has no rule for it: add %q to idRules with the type of object it names",
						root, f.Name, arg.Name, in.Name, in.Type, in.Name)
					continue
				}
				out = append(out, idSlot{arg: arg.Name, input: in.Name, typ: typ})
			}
		}
	}
	return out
}

// value returns a plausible value of a required argument that takes no
// id, or fails t naming it.
func (s *introspected) value(t *testing.T, where, name string, r *typeRef) any {
	t.Helper()
	if v, ok := inputDefaults[name]; ok {
		return v
	}
	n := s.byName[r.named().Name]
	var v any
	switch {
	case n == nil:
	case n.Kind == "ENUM" && len(n.EnumValues) > 0:
		v = n.EnumValues[0].Name
	case n.Name == "String":
		v = "tenancy"
	case n.Name == "Int", n.Name == "Bytes":
		v = 1
	case n.Name == "Float":
		v = 0.5
	case n.Name == "Boolean":
		v = false
	case n.Name == "DateTime":
		v = time.Now().UTC().Format(time.RFC3339)
	}
	if v == nil {
		t.Errorf("%s needs a value of type %s: add %q to inputDefaults in tenancy_test.go", where, r, name)
		return nil
	}
	if r.isList() {
		return []any{v}
	}
	return v
}

// probes builds, for each root field that takes an id, one operation per
// place it takes one and per object of A's of that type; every other id
// the operation needs is B's own, every other required value plausible.
func (s *introspected) probes(t *testing.T, a, b *tenant) []probe {
	t.Helper()
	var out []probe
	roots := []struct {
		operation string
		typ       *struct{ Name string }
	}{{"query", s.QueryType}, {"mutation", s.MutationType}, {"subscription", s.SubscriptionType}}
	for _, root := range roots {
		if root.typ == nil {
			continue
		}
		for _, f := range s.byName[root.typ.Name].Fields {
			for _, slot := range s.idSlots(t, root.typ.Name, f) {
				var targets [][]string // each probe's ids of A's
				switch {
				case slot.typ == anyNode && argOf(f, slot.arg).Type.isList():
					var all []string
					for _, typ := range sortedKeys(a.ids) {
						all = append(all, a.ids[typ]...)
					}
					targets = append(targets, all)
				case slot.typ == anyNode:
					for _, typ := range sortedKeys(a.ids) {
						for _, id := range a.ids[typ] {
							targets = append(targets, []string{id})
						}
					}
				default:
					if len(a.ids[slot.typ]) == 0 {
						t.Errorf("%s.%s(%s) takes an id of a %s and A owns none: add one to twoTenants", root.typ.Name, f.Name, slot, slot.typ)
					}
					for _, id := range a.ids[slot.typ] {
						targets = append(targets, []string{id})
					}
				}
				for _, ids := range targets {
					p := s.probe(t, root.operation, f, slot, ids, b)
					label := "all"
					if len(ids) == 1 {
						label = a.label(ids[0])
					}
					p.name = fmt.Sprintf("%s %s=%s", f.Name, slot, label)
					out = append(out, p)
				}
			}
		}
	}
	return out
}

func (s *introspected) probe(t *testing.T, operation string, f schemaField, slot idSlot, ids []string, b *tenant) probe {
	t.Helper()
	idValue := func(r *typeRef, ids []string) any {
		if r.isList() {
			return ids
		}
		return ids[0]
	}
	own := func(where, name string) []string {
		typ := idRules[name]
		if len(b.ids[typ]) == 0 {
			t.Errorf("%s needs an id of B's own %s: add one to twoTenants", where, typ)
			return []string{""}
		}
		return b.ids[typ][:1]
	}
	vars := map[string]any{}
	var decls, args []string
	for _, arg := range f.Args {
		where := f.Name + "." + arg.Name
		var v any
		switch {
		case slot.input == "" && arg.Name == slot.arg:
			v = idValue(arg.Type, ids)
		case s.kindOf(arg.Type) == "INPUT_OBJECT" && (arg.Name == slot.arg || arg.Type.Kind == "NON_NULL"):
			in := map[string]any{}
			for _, field := range s.byName[arg.Type.named().Name].InputFields {
				where := where + "." + field.Name
				switch {
				case arg.Name == slot.arg && field.Name == slot.input:
					in[field.Name] = idValue(field.Type, ids)
				case field.Type.Kind != "NON_NULL":
				case field.Type.named().Name == "ID":
					in[field.Name] = idValue(field.Type, own(where, field.Name))
				default:
					in[field.Name] = s.value(t, where, field.Name, field.Type)
				}
			}
			v = in
		case arg.Type.Kind != "NON_NULL":
			continue
		case arg.Type.named().Name == "ID":
			v = idValue(arg.Type, own(where, f.Name+"."+arg.Name))
		default:
			v = s.value(t, where, arg.Name, arg.Type)
		}
		vars[arg.Name] = v
		decls = append(decls, fmt.Sprintf("$%s: %s", arg.Name, arg.Type))
		args = append(args, fmt.Sprintf("%s: $%s", arg.Name, arg.Name))
	}
	q := fmt.Sprintf("%s Probe(%s) { %s(%s) %s }", operation, strings.Join(decls, ", "), f.Name, strings.Join(args, ", "), s.selection(f.Type, 2))
	return probe{field: f.Name, operation: operation, query: q, vars: vars}
}

func argOf(f schemaField, name string) inputValue {
	for _, a := range f.Args {
		if a.Name == name {
			return a
		}
	}
	return inputValue{}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// tenantSnapshot is what A sees of their account; no probe of B's may
// change it.
const tenantSnapshot = `{ viewer { id email status role
	sessions { id userAgent expiresAt }
	works(first: 50) { totalCount edges { node { id title status kind images { id } } } }
	generations(first: 50) { totalCount edges { node { id status prompt outputCount cost } } }
	credits { balance available held }
	creditHolds(first: 50) { totalCount edges { node { id status amount capturedAmount } } }
	creditEntries(first: 50) { totalCount edges { node { id kind amount } } } } }`

func TestCrossTenantMatrix(t *testing.T) {
	t.Parallel()
	tt := twoTenants(t)
	a, b := tt.a, tt.b
	before := a.c.do(tenantSnapshot, nil)
	if len(before.Errors) > 0 {
		t.Fatalf("A's snapshot: %v", before.Errors)
	}
	var bBefore, bAfter gqlResponse
	bBefore = b.c.do(tenantSnapshot, nil)

	schema := introspect(t, b.c)
	probes := schema.probes(t, a, b)
	covered := map[string]bool{}
	for _, p := range probes {
		covered[p.field] = true
		t.Run(p.name, func(t *testing.T) {
			want := "NOT_FOUND"
			switch {
			case p.field == "node" || p.field == "nodes":
				want = "null"
			case adminOnly[p.field]:
				want = "FORBIDDEN"
			}
			if p.operation == "subscription" {
				probeSubscription(t, tt.s, b, a, p, want)
				return
			}
			out := b.c.do(p.query, p.vars)
			body := string(out.Data) + string(mustJSON(out.Errors))
			if leak := a.leaks(body); leak != "" {
				t.Errorf("B's answer holds A's %q: %.300s", leak, body)
			}
			if want == "null" {
				checkNulls(t, p, out)
				return
			}
			codes := make([]string, len(out.Errors))
			for i, e := range out.Errors {
				codes[i], _ = e.Extensions["code"].(string)
			}
			if len(codes) == 0 || slices.ContainsFunc(codes, func(c string) bool { return c != want }) {
				t.Errorf("got codes %v (data %.300s), want %s\n%s %v", codes, out.Data, want, p.query, p.vars)
			}
		})
	}
	// The fields the contract is about must have been found: a rule table
	// that matches nothing would pass vacuously.
	for _, f := range []string{"node", "nodes", "work", "generation", "estimateEdit", "generationEvents", "editImage",
		"cancelGeneration", "retryGeneration", "renameWork", "deleteWorks", "restoreWorks", "purgeWorks",
		"completeUpload", "revokeSession", "suspendUser", "unsuspendUser", "adjustCredits"} {
		if !covered[f] {
			t.Errorf("no probe of %s: the schema or the matrix lost it", f)
		}
	}

	// A's account is exactly as it was: no work renamed, deleted, restored
	// or erased; no generation canceled or retried; no session revoked
	// (the snapshot is read through A's second session, the one B tried to
	// revoke); no credits moved.
	after := tt.phone.do(tenantSnapshot, nil)
	if len(after.Errors) > 0 {
		t.Fatalf("A's snapshot after the matrix: %v", after.Errors)
	}
	if string(after.Data) != string(before.Data) {
		t.Errorf("A's account changed under B's probes:\nbefore %s\nafter  %s", before.Data, after.Data)
	}
	var gens struct {
		Q struct{ Status string }
		C struct{ Status string }
		D struct{ Status string }
	}
	a.c.must(`query($q: ID!, $c: ID!, $d: ID!) { q: generation(id: $q) { status } c: generation(id: $c) { status } d: generation(id: $d) { status } }`,
		map[string]any{"q": tt.queuedGen, "c": tt.canceledGen, "d": tt.doneGen}, &gens)
	if gens.Q.Status != "QUEUED" || gens.C.Status != "CANCELED" || gens.D.Status != "SUCCEEDED" {
		t.Errorf("A's generations are %+v, want QUEUED, CANCELED and SUCCEEDED", gens)
	}
	// Still in A's bin, still A's upload to complete.
	a.c.must(`mutation($ids: [ID!]!) { restoreWorks(input: {workIds: $ids}) { works { id } } }`, map[string]any{"ids": []string{tt.binnedWork}}, nil)
	var done struct {
		CompleteUpload struct{ Work struct{ Title string } }
	}
	a.c.must(`mutation($id: ID!) { completeUpload(input: {uploadId: $id}) { work { title } } }`, map[string]any{"id": tt.uploadID}, &done)
	if done.CompleteUpload.Work.Title != "a-direct-title" {
		t.Errorf("A's completed upload is titled %q", done.CompleteUpload.Work.Title)
	}
	// B gained nothing either: no work, generation, hold or credit entry.
	bAfter = b.c.do(tenantSnapshot, nil)
	if len(bAfter.Errors) > 0 || string(bAfter.Data) != string(bBefore.Data) {
		t.Errorf("B's account changed under B's own probes:\nbefore %s\nafter  %s (%v)", bBefore.Data, bAfter.Data, bAfter.Errors)
	}
}

// checkNulls checks that node/nodes answered null for each of A's ids.
func checkNulls(t *testing.T, p probe, out gqlResponse) {
	t.Helper()
	if len(out.Errors) > 0 {
		t.Errorf("errors %v, want null data", out.Errors)
		return
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(out.Data, &data); err != nil {
		t.Fatalf("data %s: %v", out.Data, err)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(data[p.field], &items); err != nil {
		items = []json.RawMessage{data[p.field]}
	}
	for i, it := range items {
		if string(it) != "null" {
			t.Errorf("item %d is %.300s, want null", i, it)
		}
	}
}

// probeSubscription subscribes as b over graphql-transport-ws and expects
// the operation to end at once with code want and nothing of a's: either an
// error message, or (what gqlgen sends for an error of the resolver that
// opens the stream, as the reference graphql-ws server does) one next
// message with only errors, then complete.
func probeSubscription(t *testing.T, s *testServer, b, a *tenant, p probe, want string) {
	t.Helper()
	c, _, err := wsDial(t, s.URL, "graphql-transport-ws", "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wsSend(t, c, wsMessage{Type: "connection_init", Payload: mustJSON(map[string]any{"token": b.c.token})})
	if m := wsNext(t, c, 5*time.Second); m.Type != "connection_ack" {
		t.Fatalf("got %s %s, want connection_ack", m.Type, m.Payload)
	}
	wsSend(t, c, wsMessage{ID: "probe", Type: "subscribe", Payload: mustJSON(map[string]any{"query": p.query, "variables": p.vars})})
	m := wsNext(t, c, 5*time.Second)
	if leak := a.leaks(string(m.Payload)); leak != "" {
		t.Errorf("B's subscription got A's %q: %s %.300s", leak, m.Type, m.Payload)
	}
	var errs json.RawMessage
	switch m.Type {
	case "error":
		errs = m.Payload
	case "next":
		var res struct {
			Data   json.RawMessage
			Errors json.RawMessage
		}
		if err := json.Unmarshal(m.Payload, &res); err != nil {
			t.Fatal(err)
		}
		if len(res.Data) > 0 && string(res.Data) != "null" {
			t.Fatalf("B's subscription got data: %.300s", m.Payload)
		}
		errs = res.Errors
		if end := wsNext(t, c, 5*time.Second); end.Type != "complete" {
			t.Errorf("after the errors got %s %.300s, want complete", end.Type, end.Payload)
		}
	default:
		t.Fatalf("got %s %.300s, want an error with %s", m.Type, m.Payload, want)
	}
	codes := payloadCodes(t, errs)
	if len(codes) == 0 || slices.ContainsFunc(codes, func(c string) bool { return c != want }) {
		t.Errorf("got codes %v (%s %.300s), want %s", codes, m.Type, m.Payload, want)
	}
}

func decodeGlobalOrEmpty(id string) string {
	raw, _ := base64.RawURLEncoding.DecodeString(id)
	return string(raw)
}

// decodeGlobal returns what a global id stands for, "Type:key", for
// messages.
func decodeGlobal(t *testing.T, id string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil {
		t.Fatalf("%q is not a global id: %v", id, err)
	}
	return string(raw)
}

func TestSchemaEnumsAndNodes(t *testing.T) {
	t.Parallel()
	tt := twoTenants(t)
	a, b := tt.a, tt.b
	schema := introspect(t, a.c)

	// Kinds and statuses are enums, never free strings.
	for _, typ := range schema.Types {
		if strings.HasPrefix(typ.Name, "__") {
			continue
		}
		check := func(where, name string, r *typeRef) {
			if (name == "kind" || name == "status") && r.named().Name == "String" {
				t.Errorf("%s is a %s; kinds and statuses are enums", where, r)
			}
		}
		for _, f := range typ.Fields {
			check(typ.Name+"."+f.Name, f.Name, f.Type)
			for _, arg := range f.Args {
				check(typ.Name+"."+f.Name+"("+arg.Name+")", arg.Name, arg.Type)
			}
		}
		for _, f := range typ.InputFields {
			check(typ.Name+"."+f.Name, f.Name, f.Type)
		}
	}

	// One status field across Work and Generation validates.
	both := `query($id: ID!) { node(id: $id) { __typename ... on Work { status } ... on Generation { status } } }`
	for _, id := range []string{tt.liveWork, tt.doneGen} {
		var out struct{ Node struct{ Status string } }
		res := a.c.do(both, map[string]any{"id": id})
		if len(res.Errors) > 0 {
			t.Fatalf("status on Work and Generation in one selection: %v", res.Errors)
		}
		if err := json.Unmarshal(res.Data, &out); err != nil || out.Node.Status != "SUCCEEDED" {
			t.Errorf("node %s: %s (%v), want status SUCCEEDED", decodeGlobal(t, id), res.Data, err)
		}
	}

	// Every Node type: A's object is A's through node(id:), null to B.
	node := schema.byName["Node"]
	if node == nil || len(node.PossibleTypes) == 0 {
		t.Fatal("the schema has no Node interface with implementations")
	}
	visible := map[string]string{"Work": tt.liveWork} // the binned one is nobody's to see
	for _, pt := range node.PossibleTypes {
		t.Run(pt.Name, func(t *testing.T) {
			id, ok := visible[pt.Name]
			if !ok {
				if len(a.ids[pt.Name]) == 0 {
					t.Fatalf("no fixture of %s: add one of A's to twoTenants", pt.Name)
				}
				id = a.ids[pt.Name][0]
			}
			q := `query($id: ID!) { node(id: $id) { __typename id } }`
			var mine struct {
				Node *struct {
					Typename string `json:"__typename"`
					ID       string
				}
			}
			res := a.c.do(q, map[string]any{"id": id})
			if len(res.Errors) > 0 {
				t.Fatalf("A's node: %v", res.Errors)
			}
			if err := json.Unmarshal(res.Data, &mine); err != nil {
				t.Fatal(err)
			}
			if mine.Node == nil || mine.Node.Typename != pt.Name || mine.Node.ID != id {
				t.Errorf("A's node(%s) = %s, want the %s itself", decodeGlobal(t, id), res.Data, pt.Name)
			}
			res = b.c.do(q, map[string]any{"id": id})
			if len(res.Errors) > 0 || string(res.Data) != `{"node":null}` {
				t.Errorf("B's node(A's %s) = %s %v, want null", pt.Name, res.Data, res.Errors)
			}
		})
	}
}

func TestBinCanBeEmptied(t *testing.T) {
	t.Parallel()
	s := start(t, worksCfg())
	me, meID := mustSignUp(t, s, "binner@example.com")
	other, _ := mustSignUp(t, s, "neighbour@example.com")
	w1 := me.mustUpload("1.png", imagingtest.NoisyPNG(60, 60), "first")
	w2 := me.mustUpload("2.png", imagingtest.PNG(50, 50), "second")
	keep := me.mustUpload("3.png", imagingtest.PNG(40, 40), "kept")
	theirs := other.mustUpload("4.png", imagingtest.PNG(40, 40), "theirs")

	del := `mutation($ids: [ID!]!) { deleteWorks(input: {workIds: $ids}) { deletedWorkIds } }`
	me.must(del, map[string]any{"ids": []string{w1.ID, w2.ID}}, nil)
	other.must(del, map[string]any{"ids": []string{theirs.ID}}, nil)
	used := func(c *client) int64 {
		var st struct {
			Viewer struct{ Storage struct{ UsedBytes int64 } }
		}
		c.must(`{ viewer { storage { usedBytes } } }`, nil, &st)
		return st.Viewer.Storage.UsedBytes
	}
	bytesOf := func(id string) int64 {
		var n int64
		if err := s.db.NewRaw("SELECT coalesce(sum(bytes), 0) FROM assets WHERE work_id = ?", uuidOfGlobal(t, id)).Scan(context.Background(), &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	type purgedView struct {
		PurgedWorkIds []string
		FreedBytes    int64
		Storage       struct{ UsedBytes int64 }
	}
	purge := `mutation($ids: [ID!]!) { purgeWorks(input: {workIds: $ids}) { purgedWorkIds freedBytes storage { usedBytes } } }`
	restore := `mutation($ids: [ID!]!) { restoreWorks(input: {workIds: $ids}) { works { id } } }`

	// Someone else's ids, alone or beside their own binned work: NOT_FOUND,
	// nothing erased.
	other.fails("NOT_FOUND", purge, map[string]any{"ids": []string{w1.ID}})
	other.fails("NOT_FOUND", purge, map[string]any{"ids": []string{theirs.ID, w2.ID}})
	me.fails("NOT_FOUND", purge, map[string]any{"ids": []string{theirs.ID}})
	me.fails("NOT_FOUND", purge, map[string]any{"ids": []string{keep.ID}}) // not in the bin
	for _, w := range []workView{w1, w2, theirs} {
		if bytesOf(w.ID) == 0 {
			t.Fatalf("a refused purge erased %q", w.Title)
		}
	}

	// purgeWorks: one work, its bytes leave the storage use at once.
	before, freed := used(me), bytesOf(w1.ID)
	var p struct{ PurgeWorks purgedView }
	me.must(purge, map[string]any{"ids": []string{w1.ID}}, &p)
	if got := p.PurgeWorks; len(got.PurgedWorkIds) != 1 || got.PurgedWorkIds[0] != w1.ID || got.FreedBytes != freed || got.Storage.UsedBytes != before-freed {
		t.Fatalf("purgeWorks = %+v, want %s purged, %d bytes freed, %d used", got, w1.ID, freed, before-freed)
	}
	if now := used(me); now != before-freed {
		t.Errorf("usage %d after the purge, want %d", now, before-freed)
	}
	me.fails("NOT_FOUND", restore, map[string]any{"ids": []string{w1.ID}})
	me.fails("NOT_FOUND", `query($id: ID!) { work(id: $id) { id } }`, map[string]any{"id": w1.ID})
	blobs, err := s.bucket.List(context.Background(), storage.UserPrefix(uuidOfGlobal(t, meID))+"works/"+uuidOfGlobal(t, w1.ID).String()+"/")
	if err != nil {
		t.Fatal(err)
	}
	if len(blobs) != 0 {
		t.Errorf("%d blobs of the purged work are left", len(blobs))
	}

	// emptyBin erases the rest of my bin, and only mine.
	var e struct{ EmptyBin purgedView }
	me.must(`mutation { emptyBin { purgedWorkIds freedBytes storage { usedBytes } } }`, nil, &e)
	if got := e.EmptyBin; len(got.PurgedWorkIds) != 1 || got.PurgedWorkIds[0] != w2.ID || got.FreedBytes <= 0 || got.Storage.UsedBytes != bytesOf(keep.ID) {
		t.Fatalf("emptyBin = %+v, want %s purged and %d bytes used", got, w2.ID, bytesOf(keep.ID))
	}
	me.fails("NOT_FOUND", restore, map[string]any{"ids": []string{w2.ID}})
	me.must(`query($id: ID!) { work(id: $id) { id } }`, map[string]any{"id": keep.ID}, nil)
	me.must(`mutation { emptyBin { purgedWorkIds } }`, nil, &e)
	if len(e.EmptyBin.PurgedWorkIds) != 0 {
		t.Errorf("emptying an empty bin purged %v", e.EmptyBin.PurgedWorkIds)
	}
	other.must(restore, map[string]any{"ids": []string{theirs.ID}}, nil)
}

func TestHoldsAndCreditCausesAreVisible(t *testing.T) {
	t.Parallel()
	s := start(t, noWorkers())
	me, _ := mustSignUp(t, s, "holds@example.com")
	submit := func(prompt string) string {
		var sub submitted
		me.must(generateMutation, map[string]any{"in": map[string]any{"prompt": prompt, "width": 64, "height": 64}}, &sub)
		return sub.GenerateImage.Generation.ID
	}
	// Canceled while queued (no worker runs yet), then one that succeeds on
	// a replica with workers.
	canceled := submit("never mind")
	me.must(`mutation($id: ID!) { cancelGeneration(input: {generationId: $id}) { generation { status } } }`, map[string]any{"id": canceled}, nil)
	startWithDB(t, testConfig(), s.dbURL)
	done := submit("a harbour at night")
	evs := subscribeEvents(t, s, me.token, done, nil).rest()
	final := evs[len(evs)-1]
	if final.Kind != "SUCCEEDED" || final.Cost == nil {
		t.Fatalf("kinds %v", kinds(evs))
	}
	cost := *final.Cost

	type holdView struct {
		ID, Status     string
		Amount         int
		CapturedAmount *int
		ResolvedAt     *string
		Reference      *struct {
			Typename string `json:"__typename"`
			ID       string
			Status   string
		}
	}
	var v struct {
		Viewer struct {
			CreditHolds struct {
				TotalCount int
				Edges      []struct{ Node holdView }
			}
			Released struct{ TotalCount int }
		}
	}
	me.must(`{ viewer {
		creditHolds(first: 10) { totalCount edges { node { id status amount capturedAmount resolvedAt
			reference { __typename id ... on Generation { status } } } } }
		released: creditHolds(status: RELEASED) { totalCount } } }`, nil, &v)
	holds := map[string]holdView{}
	for _, e := range v.Viewer.CreditHolds.Edges {
		if e.Node.Reference == nil {
			t.Fatalf("hold %s has no reference", e.Node.ID)
		}
		holds[e.Node.Reference.ID] = e.Node
	}
	if h, ok := holds[done]; !ok || h.Status != "CAPTURED" || h.Reference.Typename != "Generation" || h.Reference.Status != "SUCCEEDED" ||
		h.CapturedAmount == nil || *h.CapturedAmount != cost || h.ResolvedAt == nil {
		t.Errorf("hold of the generation that succeeded: %+v, want CAPTURED %d", h, cost)
	}
	if h, ok := holds[canceled]; !ok || h.Status != "RELEASED" || h.Reference.Status != "CANCELED" || h.CapturedAmount != nil || h.ResolvedAt == nil {
		t.Errorf("hold of the canceled generation: %+v, want RELEASED", h)
	}
	if v.Viewer.CreditHolds.TotalCount != 2 || v.Viewer.Released.TotalCount != 1 {
		t.Errorf("%d holds, %d released; want 2 and 1", v.Viewer.CreditHolds.TotalCount, v.Viewer.Released.TotalCount)
	}

	// The feed from the start, replayed over graphql-transport-ws.
	c, _, err := wsDial(t, s.URL, "graphql-transport-ws", "")
	if err != nil {
		t.Fatal(err)
	}
	wsSend(t, c, wsMessage{Type: "connection_init", Payload: mustJSON(map[string]any{"token": me.token})})
	if m := wsNext(t, c, 5*time.Second); m.Type != "connection_ack" {
		t.Fatalf("got %s", m.Type)
	}
	wsSend(t, c, wsMessage{ID: "feed", Type: "subscribe", Payload: mustJSON(map[string]any{
		"query": `subscription { viewerEvents(afterSeq: 0) { seq kind cause generationId credits { balance held available } } }`})})
	var causes []string
	for lastSeq := 0; !slices.Contains(causes, "SPEND:"+done); {
		m := wsNext(t, c, 10*time.Second)
		var p struct {
			Data struct {
				ViewerEvents struct {
					Seq          int
					Kind         string
					Cause        *string
					GenerationID *string
				}
			}
			Errors []gqlError
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil || m.Type != "next" || len(p.Errors) > 0 {
			t.Fatalf("feed message %s %s (%v), after causes %v", m.Type, m.Payload, err, causes)
		}
		ev := p.Data.ViewerEvents
		if ev.Seq != lastSeq+1 {
			t.Fatalf("feed seq %d after %d", ev.Seq, lastSeq)
		}
		lastSeq = ev.Seq
		if ev.Kind != "CREDITS" {
			continue
		}
		if ev.Cause == nil {
			t.Fatalf("CREDITS event %d without a cause", ev.Seq)
		}
		gen := "-"
		if ev.GenerationID != nil {
			gen = *ev.GenerationID
		}
		causes = append(causes, *ev.Cause+":"+gen)
	}
	want := []string{"SIGNUP_BONUS:-", "HOLD:" + canceled, "RELEASE:" + canceled, "HOLD:" + done, "SPEND:" + done}
	if fmt.Sprint(causes) != fmt.Sprint(want) {
		t.Errorf("credit causes %v, want %v", causes, want)
	}

	// The ledger's SPEND entry names the generation too.
	var ledger struct {
		Viewer struct {
			CreditEntries struct {
				Edges []struct {
					Node struct {
						Kind      string
						Amount    int
						Reference *struct{ ID string }
					}
				}
			}
		}
	}
	me.must(`{ viewer { creditEntries(first: 10) { edges { node { kind amount reference { id } } } } } }`, nil, &ledger)
	top := ledger.Viewer.CreditEntries.Edges[0].Node
	if top.Kind != "SPEND" || top.Amount != -cost || top.Reference == nil || top.Reference.ID != done {
		t.Errorf("newest ledger entry %+v, want a SPEND of %d naming %s", top, cost, done)
	}
}
