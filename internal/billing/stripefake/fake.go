// Package stripefake is an in-memory Stripe for tests: an httptest server
// that speaks Stripe's wire format (form-encoded requests, JSON answers in
// the shape of API version 2023-10-16, which stripe-go v76 reads, and
// Stripe's error JSON) for the calls internal/billing makes, and keeps
// state, which stripe-mock does not. Tests move that state on as Stripe
// would (a customer pays, a subscription renews, a charge is refunded or
// disputed) and build the signed webhooks that tell of it.
//
// It is deliberately small: it knows the endpoints and parameters billing
// uses, and answers anything else 404 like Stripe does for an unknown URL.
package stripefake

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
)

// obj is a Stripe object as it goes over the wire. Keys starting with "_"
// are the fake's own bookkeeping and never sent.
type obj = map[string]any

// Fake is an in-memory Stripe account behind an httptest server.
type Fake struct {
	// URL is the API base to give stripe-go (billing's Config.APIBase).
	URL string
	// WebhookSecret signs the events Sign makes.
	WebhookSecret string

	tb  testing.TB
	srv *httptest.Server

	mu      sync.Mutex
	now     func() time.Time
	tag     string // keeps ids unique across fakes
	seq     int
	objects map[string]obj
	order   []string // ids in creation order
	replays map[string]replay
	calls   map[string]int
}

// replay is the answer given to an idempotency key.
type replay struct {
	route  string
	form   url.Values
	status int
	body   []byte
}

// New starts a fake Stripe that stops when the test ends.
func New(tb testing.TB) *Fake {
	tb.Helper()
	f := &Fake{
		WebhookSecret: "whsec_" + randomTag(24),
		tb:            tb,
		now:           time.Now,
		tag:           randomTag(6),
		objects:       map[string]obj{},
		replays:       map[string]replay{},
		calls:         map[string]int{},
	}
	mux := http.NewServeMux()
	for route, h := range map[string]func(*http.Request) (int, any){
		"POST /v1/customers":               f.createCustomer,
		"DELETE /v1/customers/{id}":        f.deleteCustomer,
		"GET /v1/prices":                   f.listPrices,
		"POST /v1/checkout/sessions":       f.createCheckoutSession,
		"GET /v1/checkout/sessions":        f.listCheckoutSessions,
		"GET /v1/subscriptions/{id}":       f.getSubscription,
		"POST /v1/subscriptions/{id}":      f.updateSubscription,
		"GET /v1/invoices":                 f.listInvoices,
		"POST /v1/refunds":                 f.createRefund,
		"POST /v1/billing_portal/sessions": f.createPortalSession,
	} {
		mux.Handle(route, f.api(route, h))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, stripeError("invalid_request_error", "", "", "Unrecognized request URL ("+r.Method+": "+r.URL.Path+")."))
	})
	f.srv = httptest.NewServer(mux)
	f.URL = f.srv.URL
	tb.Cleanup(f.srv.Close)
	return f
}

// SetClock makes the fake read the time from now (default time.Now): the
// created and period timestamps it hands out.
func (f *Fake) SetClock(now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = now
}

// Calls returns how many requests a route ("POST /v1/customers") served,
// replays of an idempotency key included.
func (f *Fake) Calls(route string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[route]
}

// Count returns how many objects of a type ("customer", "checkout.session")
// the fake holds.
func (f *Fake) Count(object string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, o := range f.objects {
		if o["object"] == object {
			n++
		}
	}
	return n
}

// Object returns a copy of the object with id as Stripe would send it, or
// nil.
func (f *Fake) Object(id string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.objects[id]
	if o == nil {
		return nil
	}
	var out map[string]any
	_ = json.Unmarshal(render(o), &out)
	return out
}

// api serves one route: the key is checked, the fake locked (requests are
// served one at a time, as one account's writes are ordered), the
// Idempotency-Key of a POST honoured, and the answer written as JSON.
func (f *Fake) api(route string, h func(*http.Request) (int, any)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer sk_") {
			writeJSON(w, http.StatusUnauthorized, stripeError("invalid_request_error", "", "", "You did not provide an API key."))
			return
		}
		if err := r.ParseForm(); err != nil {
			writeJSON(w, http.StatusBadRequest, stripeError("invalid_request_error", "", "", "Invalid request body."))
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls[route]++
		key := r.Header.Get("Idempotency-Key")
		if r.Method == http.MethodPost && key != "" {
			if prev, ok := f.replays[key]; ok {
				if prev.route != route || !reflect.DeepEqual(prev.form, r.Form) {
					writeJSON(w, http.StatusBadRequest, stripeError("idempotency_error", "", "",
						"Keys for idempotent requests can only be used with the same parameters they were first used with."))
					return
				}
				w.Header().Set("Idempotent-Replayed", "true")
				writeRaw(w, prev.status, key, prev.body)
				return
			}
		}
		status, answer := h(r)
		body := answer
		if o, ok := answer.(obj); ok {
			body = json.RawMessage(render(o))
		}
		b, err := json.Marshal(body)
		if err != nil {
			f.tb.Errorf("stripefake: encode answer to %s: %v", route, err)
			status, b = http.StatusInternalServerError, []byte(`{"error":{"type":"api_error","message":"fake failed"}}`)
		}
		if r.Method == http.MethodPost && key != "" && status < 500 {
			f.replays[key] = replay{route: route, form: r.Form, status: status, body: b}
		}
		writeRaw(w, status, key, b)
	})
}

func writeRaw(w http.ResponseWriter, status int, key string, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_"+randomTag(14))
	if key != "" {
		w.Header().Set("Idempotency-Key", key)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	b, _ := json.Marshal(body)
	writeRaw(w, status, "", b)
}

// stripeError is Stripe's error body.
func stripeError(typ, code, param, message string) obj {
	e := obj{"type": typ, "message": message}
	if code != "" {
		e["code"] = code
	}
	if param != "" {
		e["param"] = param
	}
	return obj{"error": e}
}

func invalid(param, message string) (int, any) {
	return http.StatusBadRequest, stripeError("invalid_request_error", "parameter_invalid", param, message)
}

func missing(kind, param, id string) (int, any) {
	return http.StatusNotFound, stripeError("invalid_request_error", "resource_missing", param, fmt.Sprintf("No such %s: '%s'", kind, id))
}

// render encodes an object without the fake's bookkeeping.
func render(o obj) []byte {
	clean := make(obj, len(o))
	for k, v := range o {
		if !strings.HasPrefix(k, "_") {
			clean[k] = v
		}
	}
	b, err := json.Marshal(clean)
	if err != nil {
		panic("stripefake: " + err.Error())
	}
	return b
}

// newID returns a fresh id with Stripe's prefix for the kind.
func (f *Fake) newID(prefix string) string {
	f.seq++
	return fmt.Sprintf("%s_%s%06d", prefix, f.tag, f.seq)
}

// add records a new object of type object with id and fields, stamped with
// its creation time.
func (f *Fake) add(object, id string, fields obj) obj {
	fields["id"], fields["object"], fields["livemode"] = id, object, false
	if _, ok := fields["created"]; !ok {
		fields["created"] = f.now().Unix()
	}
	f.objects[id] = fields
	f.order = append(f.order, id)
	return fields
}

// find returns the object id if it has type object.
func (f *Fake) find(object, id string) obj {
	if o := f.objects[id]; o != nil && o["object"] == object {
		return o
	}
	return nil
}

// list answers a list request over the objects of type object that keep
// says are in: newest first, limit (default 10, at most 100) from after
// starting_after, as Stripe pages.
func (f *Fake) list(r *http.Request, object, path string, keep func(obj) bool) (int, any) {
	var found []obj
	for i := len(f.order) - 1; i >= 0; i-- {
		o := f.objects[f.order[i]]
		if o["object"] == object && createdIn(r.Form, o) && keep(o) {
			found = append(found, o)
		}
	}
	// Stable, so that objects created in the same second stay newest first.
	sort.SliceStable(found, func(i, j int) bool { return found[i]["created"].(int64) > found[j]["created"].(int64) })
	if after := r.Form.Get("starting_after"); after != "" {
		at := -1
		for i, o := range found {
			if o["id"] == after {
				at = i
			}
		}
		if at < 0 {
			return missing(object, "starting_after", after)
		}
		found = found[at+1:]
	}
	limit := 10
	if l := r.Form.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100 {
			return invalid("limit", "Invalid integer: "+l+"; limit must be between 1 and 100.")
		}
		limit = n
	}
	hasMore := len(found) > limit
	if hasMore {
		found = found[:limit]
	}
	data := make([]json.RawMessage, len(found))
	for i, o := range found {
		data[i] = render(o)
	}
	return http.StatusOK, obj{"object": "list", "url": path, "has_more": hasMore, "data": data}
}

// createdIn applies created[gt|gte|lt|lte] (and created=) of a list request.
func createdIn(form url.Values, o obj) bool {
	c := o["created"].(int64)
	for op, ok := range map[string]func(int64) bool{
		"created":      func(v int64) bool { return c == v },
		"created[gt]":  func(v int64) bool { return c > v },
		"created[gte]": func(v int64) bool { return c >= v },
		"created[lt]":  func(v int64) bool { return c < v },
		"created[lte]": func(v int64) bool { return c <= v },
	} {
		if s := form.Get(op); s != "" {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil || !ok(v) {
				return false
			}
		}
	}
	return true
}

// hash reads a form's hash parameter, e.g. metadata[k] or
// subscription_data[metadata][k] under prefix.
func hash(form url.Values, prefix string) map[string]string {
	m := map[string]string{}
	for k, v := range form {
		if rest, ok := strings.CutPrefix(k, prefix+"["); ok && strings.HasSuffix(rest, "]") && !strings.Contains(rest, "[") {
			m[strings.TrimSuffix(rest, "]")] = v[0]
		}
	}
	return m
}

// array reads a form's array parameter, lookup_keys[]=a or lookup_keys[0]=a.
func array(form url.Values, name string) []string {
	var out []string
	for k, v := range form {
		if strings.HasPrefix(k, name+"[") && strings.HasSuffix(k, "]") {
			out = append(out, v...)
		}
	}
	sort.Strings(out)
	return out
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func randomTag(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

// Event returns the JSON of a webhook event of type typ about the object id
// as it is now (later changes do not alter it), in the library's API
// version, ready to Sign.
func (f *Fake) Event(typ, id string) []byte {
	f.tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.objects[id]
	if o == nil {
		f.tb.Fatalf("stripefake: Event(%s): no object %s", typ, id)
	}
	b, err := json.Marshal(obj{
		"id": f.newID("evt"), "object": "event", "api_version": stripe.APIVersion, "created": f.now().Unix(),
		"data": obj{"object": json.RawMessage(render(o))}, "livemode": false, "pending_webhooks": 1,
		"request": obj{"id": nil, "idempotency_key": nil}, "type": typ,
	})
	if err != nil {
		f.tb.Fatalf("stripefake: Event(%s): %v", typ, err)
	}
	return b
}

// Sign returns the Stripe-Signature header for payload, signed now with
// WebhookSecret.
func (f *Fake) Sign(payload []byte) string {
	return f.SignAt(payload, time.Now())
}

// SignAt returns the Stripe-Signature header for payload signed at t (the
// webhook check compares it with the machine's clock).
func (f *Fake) SignAt(payload []byte, t time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: f.WebhookSecret, Timestamp: t}).Header
}
