package server_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// verifyStandardWebhook checks a delivery as the Standard Webhooks
// specification tells receivers to: a recent webhook-timestamp, and a v1
// signature among webhook-signature's equal to base64(HMAC-SHA256(key,
// "id.timestamp.body")), the key being the secret after "whsec_",
// base64-decoded.
func verifyStandardWebhook(secret string, h http.Header, body []byte) error {
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || id == "" {
		return errors.New("missing webhook-id or webhook-timestamp")
	}
	if d := time.Since(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return errors.New("stale timestamp")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if v, b64, _ := strings.Cut(sig, ","); v == "v1" {
			if got, err := base64.StdEncoding.DecodeString(b64); err == nil && hmac.Equal(got, mac.Sum(nil)) {
				return nil
			}
		}
	}
	return errors.New("no valid signature")
}

// hookReceiver answers 500 to the first two tries of every message, then
// 204; it keeps the messages it accepted, verified with the secret of the
// path they came to.
type hookReceiver struct {
	mu       sync.Mutex
	secrets  map[string]string // by path
	tries    map[string]int    // by webhook-id
	accepted []hookMessage
	bad      []string
}

type hookMessage struct {
	Path, WebhookID string
	Type            string
	Data            struct {
		GenerationID, WorkID, Status string
		ImageIDs                     []string
		Cost                         *int
	}
}

func (r *hookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := verifyStandardWebhook(r.secrets[req.URL.Path], req.Header, body); err != nil {
		r.bad = append(r.bad, req.URL.Path+": "+err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	id := req.Header.Get("webhook-id")
	if r.tries[id]++; r.tries[id] <= 2 {
		http.Error(w, "busy, try later", http.StatusInternalServerError)
		return
	}
	m := hookMessage{Path: req.URL.Path, WebhookID: id}
	_ = json.Unmarshal(body, &m)
	r.accepted = append(r.accepted, m)
	w.WriteHeader(http.StatusNoContent)
}

func (r *hookReceiver) got() ([]hookMessage, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookMessage(nil), r.accepted...), append([]string(nil), r.bad...)
}

const deliveriesQuery = `{ viewer { webhookDeliveries(first: 10) { totalCount edges { node {
	id endpointId url eventType webhookId status attemptCount deliveredAt payload
	attempts { at statusCode response error durationMs } } } } } }`

type deliveryList struct {
	Viewer struct {
		WebhookDeliveries struct {
			TotalCount int
			Edges      []struct {
				Node struct {
					ID, URL, EventType, WebhookID, Status, Payload string
					EndpointID                                     *string
					AttemptCount                                   int
					DeliveredAt                                    *string
					Attempts                                       []struct {
						StatusCode *int
						Response   *string
						Error      *string
						DurationMs int
					}
				}
			}
		}
	}
}

// TestGenerationWebhooks: a generation submitted with a webhookUrl, by a
// user with an endpoint, ends; both receivers get exactly one verified
// message despite answering 500 twice first; the deliveries are listed
// with their tries; a redelivery arrives with the same webhook-id.
func TestGenerationWebhooks(t *testing.T) {
	s := start(t, testConfig())
	c, _ := mustSignUp(t, s, "partner@example.com")
	recv := &hookReceiver{secrets: map[string]string{}, tries: map[string]int{}}
	hooks := httptest.NewServer(recv)
	defer hooks.Close()

	var made struct {
		CreateWebhookEndpoint struct {
			Endpoint struct {
				ID, URL         string
				Events          []string
				CreatedByAPIKey bool
			}
			Secret string
		}
	}
	c.must(`mutation($url: String!) { createWebhookEndpoint(input: {url: $url, events: ["generation.succeeded", "generation.failed"]}) {
		endpoint { id url events createdByApiKey } secret } }`, map[string]any{"url": hooks.URL + "/endpoint"}, &made)
	ep := made.CreateWebhookEndpoint
	if !strings.HasPrefix(ep.Secret, "whsec_") || ep.Endpoint.CreatedByAPIKey || len(ep.Endpoint.Events) != 2 {
		t.Fatalf("created %+v", ep)
	}
	var v struct {
		Viewer struct {
			WebhookRequestSecret string
			WebhookEndpoints     []struct{ ID, URL string }
		}
	}
	c.must(`{ viewer { webhookRequestSecret webhookEndpoints { id url } } }`, nil, &v)
	if len(v.Viewer.WebhookEndpoints) != 1 || v.Viewer.WebhookEndpoints[0].ID != ep.Endpoint.ID || !strings.HasPrefix(v.Viewer.WebhookRequestSecret, "whsec_") {
		t.Fatalf("viewer %+v", v.Viewer)
	}
	recv.mu.Lock()
	recv.secrets["/endpoint"], recv.secrets["/request"] = ep.Secret, v.Viewer.WebhookRequestSecret
	recv.mu.Unlock()

	var sub submitted
	c.must(generateMutation, map[string]any{"in": map[string]any{"prompt": "a lighthouse", "width": 64, "height": 64, "count": 2,
		"webhookUrl": hooks.URL + "/request"}}, &sub)
	genID := sub.GenerateImage.Generation.ID
	if evs := subscribeEvents(t, s, c.token, genID, nil).rest(); evs[len(evs)-1].Kind != "SUCCEEDED" {
		t.Fatalf("generation ended with %v", kinds(evs))
	}

	deadline := time.Now().Add(15 * time.Second)
	var msgs []hookMessage
	for time.Now().Before(deadline) {
		if msgs, _ = recv.got(); len(msgs) >= 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a duplicate would have come by now
	msgs, bad := recv.got()
	if len(bad) > 0 || len(msgs) != 2 {
		t.Fatalf("receiver accepted %d messages (want 2), refused %v", len(msgs), bad)
	}
	paths := map[string]bool{}
	for _, m := range msgs {
		paths[m.Path] = true
		if m.Type != "generation.succeeded" || m.Data.GenerationID != genID || m.Data.WorkID != sub.GenerateImage.Work.ID ||
			m.Data.Status != "SUCCEEDED" || len(m.Data.ImageIDs) != 2 || m.Data.Cost == nil {
			t.Errorf("message %+v", m)
		}
		var img struct{ Node *struct{ ID string } }
		c.must(`query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": m.Data.ImageIDs[0]}, &img)
		if img.Node == nil {
			t.Errorf("image id %s of the message names nothing", m.Data.ImageIDs[0])
		}
	}
	if !paths["/endpoint"] || !paths["/request"] {
		t.Fatalf("messages came to %v, want the endpoint and the request URL", paths)
	}

	var list deliveryList
	c.must(deliveriesQuery, nil, &list)
	if list.Viewer.WebhookDeliveries.TotalCount != 2 {
		t.Fatalf("%d deliveries listed, want 2", list.Viewer.WebhookDeliveries.TotalCount)
	}
	var requestDelivery string
	for _, e := range list.Viewer.WebhookDeliveries.Edges {
		d := e.Node
		if d.Status != "SUCCEEDED" || d.AttemptCount != 3 || len(d.Attempts) != 3 || d.DeliveredAt == nil || d.EventType != "generation.succeeded" {
			t.Fatalf("delivery %+v", d)
		}
		for i, want := range []int{500, 500, 204} {
			if a := d.Attempts[i]; a.StatusCode == nil || *a.StatusCode != want {
				t.Errorf("try %d of %s: %+v, want HTTP %d", i+1, d.URL, a, want)
			}
		}
		if r := d.Attempts[0].Response; r == nil || !strings.Contains(*r, "busy, try later") {
			t.Errorf("first try's response %v", r)
		}
		if strings.HasSuffix(d.URL, "/request") {
			requestDelivery = d.ID
			if d.EndpointID != nil {
				t.Errorf("per-request delivery has endpoint %s", *d.EndpointID)
			}
		} else if d.EndpointID == nil || *d.EndpointID != ep.Endpoint.ID {
			t.Errorf("endpoint delivery's endpoint %v", d.EndpointID)
		}
	}
	var byEndpoint deliveryList
	c.must(`query($ep: ID) { viewer { webhookDeliveries(endpointId: $ep) { totalCount edges { node { id } } } } }`, map[string]any{"ep": ep.Endpoint.ID}, &byEndpoint)
	if byEndpoint.Viewer.WebhookDeliveries.TotalCount != 1 {
		t.Errorf("%d deliveries of the endpoint, want 1", byEndpoint.Viewer.WebhookDeliveries.TotalCount)
	}

	// Redelivery: the same message again, at once.
	var redone struct {
		RedeliverWebhook struct {
			Delivery struct{ Status, WebhookID string }
		}
	}
	c.must(`mutation($id: ID!) { redeliverWebhook(input: {deliveryId: $id}) { delivery { status webhookId } } }`, map[string]any{"id": requestDelivery}, &redone)
	if redone.RedeliverWebhook.Delivery.Status != "PENDING" {
		t.Fatalf("redelivered delivery is %s", redone.RedeliverWebhook.Delivery.Status)
	}
	for time.Now().Before(deadline) {
		if msgs, _ = recv.got(); len(msgs) >= 3 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(msgs) != 3 || msgs[2].WebhookID != redone.RedeliverWebhook.Delivery.WebhookID || msgs[2].Path != "/request" {
		t.Fatalf("after redelivery the receiver has %d messages: %+v", len(msgs), msgs)
	}

	// Another user sees none of it.
	other, _ := mustSignUp(t, s, "stranger@example.com")
	other.fails("NOT_FOUND", `mutation($id: ID!) { redeliverWebhook(input: {deliveryId: $id}) { delivery { id } } }`, map[string]any{"id": requestDelivery})
	other.fails("NOT_FOUND", `mutation($id: ID!) { deleteWebhookEndpoint(input: {endpointId: $id}) { deletedEndpointId } }`, map[string]any{"id": ep.Endpoint.ID})
	other.fails("NOT_FOUND", `mutation($id: ID!) { rotateWebhookSecret(input: {endpointId: $id}) { secret } }`, map[string]any{"id": ep.Endpoint.ID})
	other.fails("NOT_FOUND", `query($ep: ID) { viewer { webhookDeliveries(endpointId: $ep) { totalCount } } }`, map[string]any{"ep": ep.Endpoint.ID})
	var theirs deliveryList
	other.must(deliveriesQuery, nil, &theirs)
	if theirs.Viewer.WebhookDeliveries.TotalCount != 0 {
		t.Fatalf("a stranger lists %d deliveries", theirs.Viewer.WebhookDeliveries.TotalCount)
	}

	// Rotation shows a new secret once; deleting removes the endpoint.
	var rotated struct {
		RotateWebhookSecret struct{ Secret string }
	}
	c.must(`mutation($id: ID!) { rotateWebhookSecret(input: {endpointId: $id}) { secret } }`, map[string]any{"id": ep.Endpoint.ID}, &rotated)
	if s := rotated.RotateWebhookSecret.Secret; !strings.HasPrefix(s, "whsec_") || s == ep.Secret {
		t.Fatalf("rotated secret %q", s)
	}
	c.must(`mutation($id: ID!) { deleteWebhookEndpoint(input: {endpointId: $id}) { deletedEndpointId } }`, map[string]any{"id": ep.Endpoint.ID}, nil)
	c.must(`{ viewer { webhookRequestSecret webhookEndpoints { id url } } }`, nil, &v)
	if len(v.Viewer.WebhookEndpoints) != 0 {
		t.Fatalf("endpoints after delete: %+v", v.Viewer.WebhookEndpoints)
	}
}

// TestWebhookURLValidation: bad URLs are VALIDATION at registration and
// at submission, naming the field.
func TestWebhookURLValidation(t *testing.T) {
	s := start(t, noWorkers())
	c, _ := mustSignUp(t, s, "partner@example.com")
	e := c.fails("VALIDATION", `mutation { createWebhookEndpoint(input: {url: "ftp://example.com/x", events: ["generation.succeeded"]}) { secret } }`, nil)
	if e.Extensions["field"] != "url" {
		t.Errorf("error %+v, want field url", e)
	}
	c.fails("VALIDATION", `mutation { createWebhookEndpoint(input: {url: "http://127.0.0.1:9/x", events: ["generation.exploded"]}) { secret } }`, nil)
	c.fails("VALIDATION", `mutation { createWebhookEndpoint(input: {url: "http://169.254.169.254/latest", events: ["generation.failed"]}) { secret } }`, nil)
	e = c.fails("VALIDATION", generateMutation, map[string]any{"in": map[string]any{"prompt": "x", "webhookUrl": "http://169.254.169.254/"}})
	if e.Extensions["field"] != "webhookUrl" {
		t.Errorf("error %+v, want field webhookUrl", e)
	}
}

// TestCanceledGenerationWebhook: canceling a queued generation (no worker
// runs here) enqueues generation.canceled in the cancel's transaction;
// it arrives once, verified, after two 500s.
func TestCanceledGenerationWebhook(t *testing.T) {
	s := start(t, noWorkers())
	c, _ := mustSignUp(t, s, "partner@example.com")
	recv := &hookReceiver{secrets: map[string]string{}, tries: map[string]int{}}
	hooks := httptest.NewServer(recv)
	defer hooks.Close()
	var made struct {
		CreateWebhookEndpoint struct{ Secret string }
	}
	c.must(`mutation($url: String!) { createWebhookEndpoint(input: {url: $url, events: ["generation.canceled"]}) { secret } }`,
		map[string]any{"url": hooks.URL + "/endpoint"}, &made)
	recv.mu.Lock()
	recv.secrets["/endpoint"] = made.CreateWebhookEndpoint.Secret
	recv.mu.Unlock()

	var sub submitted
	c.must(generateMutation, map[string]any{"in": map[string]any{"prompt": "never made", "width": 64, "height": 64}}, &sub)
	genID := sub.GenerateImage.Generation.ID
	var list deliveryList
	c.must(deliveriesQuery, nil, &list)
	if n := list.Viewer.WebhookDeliveries.TotalCount; n != 0 {
		t.Fatalf("%d deliveries before the generation ended", n)
	}
	c.must(`mutation($id: ID!) { cancelGeneration(input: {generationId: $id}) { generation { status } } }`, map[string]any{"id": genID}, nil)

	var msgs []hookMessage
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if msgs, _ = recv.got(); len(msgs) >= 1 {
			break
		}
	}
	time.Sleep(200 * time.Millisecond)
	msgs, bad := recv.got()
	if len(msgs) != 1 || len(bad) != 0 {
		t.Fatalf("receiver accepted %+v, refused %v", msgs, bad)
	}
	if m := msgs[0]; m.Type != "generation.canceled" || m.Data.GenerationID != genID || m.Data.Status != "CANCELED" || len(m.Data.ImageIDs) != 0 {
		t.Fatalf("message %+v", m)
	}
	c.must(deliveriesQuery, nil, &list)
	if e := list.Viewer.WebhookDeliveries.Edges; len(e) != 1 || e[0].Node.Status != "SUCCEEDED" || e[0].Node.AttemptCount != 3 {
		t.Fatalf("deliveries %+v", e)
	}
}
