package drills

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/relay"
)

const password = "correct horse battery staple"

// client is a GraphQL caller over HTTP with an optional session token.
type client struct {
	base  string // http://host:port
	token string
	http  *http.Client
}

func newClient(base string) *client {
	return &client{base: base, http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

func (c *client) as(token string) *client {
	return &client{base: c.base, token: token, http: c.http}
}

type gqlError struct {
	Message    string
	Extensions struct {
		Code string
	}
}

type gqlResponse struct {
	Data   json.RawMessage
	Errors []gqlError
}

// code is the first error's code, "" when there is none.
func (r gqlResponse) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	if r.Errors[0].Extensions.Code == "" {
		return "NO_CODE"
	}
	return r.Errors[0].Extensions.Code
}

// post runs one operation; the error is for a request that got no GraphQL
// answer at all (connection refused, a body that is not JSON).
func (c *client) post(ctx context.Context, query string, vars map[string]any) (gqlResponse, error) {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return gqlResponse{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/graphql", bytes.NewReader(body))
	if err != nil {
		return gqlResponse{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.send(req)
}

func (c *client) send(req *http.Request) (gqlResponse, error) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return gqlResponse{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return gqlResponse{}, err
	}
	var out gqlResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return gqlResponse{}, fmt.Errorf("status %d, body %.200q: %w", resp.StatusCode, b, err)
	}
	return out, nil
}

// must runs an operation that has to succeed and decodes its data into out.
func (c *client) must(t *testing.T, query string, vars map[string]any, out any) {
	t.Helper()
	r, err := c.post(context.Background(), query, vars)
	if err != nil {
		t.Fatalf("%.60s: %v", query, err)
	}
	if len(r.Errors) > 0 {
		t.Fatalf("%.60s: %s %s", query, r.code(), r.Errors[0].Message)
	}
	if out != nil {
		if err := json.Unmarshal(r.Data, out); err != nil {
			t.Fatalf("%.60s: decode %s: %v", query, r.Data, err)
		}
	}
}

// ready reports whether /readyz answers 200.
func (c *client) ready() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

var verifyLink = regexp.MustCompile(`token=([A-Za-z0-9_-]{43})`)

// user is a verified, signed-in account.
type user struct {
	id    uuid.UUID
	email string
	api   *client
}

// signUp makes a verified account through the API — signUp, the link from
// the mail outbox (read from the database, as the development outbox page
// shows it), verifyEmail, signIn — and forgets the rate-limit events it
// left, since a drill signs up many users from one address.
func signUp(t *testing.T, api *client, vdb *bun.DB) user {
	t.Helper()
	email := fmt.Sprintf("drill-%s@example.com", uuid.NewString()[:12])
	api.must(t, `mutation($email: String!, $password: String!) { signUp(input: {email: $email, name: "Drill", password: $password}) { message } }`,
		map[string]any{"email": email, "password": password}, nil)
	var text string
	if err := vdb.NewRaw(`SELECT text_body FROM mail_outbox WHERE to_address = ? AND kind = 'verify_email' ORDER BY created_at DESC LIMIT 1`, email).
		Scan(context.Background(), &text); err != nil {
		t.Fatalf("the verification mail to %s: %v", email, err)
	}
	m := verifyLink.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("the verification mail has no link:\n%s", text)
	}
	api.must(t, `mutation($token: String!) { verifyEmail(input: {token: $token}) { user { id } } }`, map[string]any{"token": m[1]}, nil)
	forgetRateLimits(t, vdb)
	var out struct {
		SignIn struct {
			Token string
			User  struct{ ID string }
		}
	}
	api.must(t, `mutation($email: String!, $password: String!) { signIn(input: {email: $email, password: $password}) { token user { id } } }`,
		map[string]any{"email": email, "password": password}, &out)
	forgetRateLimits(t, vdb)
	key, err := relay.KeyOf(out.SignIn.User.ID, "User")
	if err != nil {
		t.Fatalf("user id %q: %v", out.SignIn.User.ID, err)
	}
	return user{id: uuid.MustParse(key), email: email, api: api.as(out.SignIn.Token)}
}

func forgetRateLimits(t *testing.T, vdb *bun.DB) {
	t.Helper()
	if _, err := vdb.ExecContext(context.Background(), "DELETE FROM rate_events"); err != nil {
		t.Fatal(err)
	}
}

const generateMutation = `mutation($prompt: String!, $key: String!) {
	generateImage(input: {prompt: $prompt, width: 64, height: 64, count: 1, idempotencyKey: $key}) { generation { id } } }`

// submit asks for one small image and returns the generation's global id;
// the error is the one the API answered (with its code) or the transport's.
func (u user) submit(ctx context.Context, prompt, key string) (string, error) {
	r, err := u.api.post(ctx, generateMutation, map[string]any{"prompt": prompt, "key": key})
	if err != nil {
		return "", err
	}
	if len(r.Errors) > 0 {
		return "", fmt.Errorf("%s: %s", r.code(), r.Errors[0].Message)
	}
	var out struct {
		GenerateImage struct{ Generation struct{ ID string } }
	}
	if err := json.Unmarshal(r.Data, &out); err != nil {
		return "", err
	}
	return out.GenerateImage.Generation.ID, nil
}

// mustSubmit submits a generation that has to be accepted.
func (u user) mustSubmit(t *testing.T, prompt string) string {
	t.Helper()
	id, err := u.submit(context.Background(), prompt, uuid.NewString())
	if err != nil {
		t.Fatalf("generateImage: %v", err)
	}
	return id
}

// generationKey is the database id of a generation's global id.
func generationKey(t *testing.T, id string) uuid.UUID {
	t.Helper()
	key, err := relay.KeyOf(id, "Generation")
	if err != nil {
		t.Fatalf("generation id %q: %v", id, err)
	}
	return uuid.MustParse(key)
}

// wsMessage is one graphql-transport-ws message.
type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// socket is a graphql-transport-ws connection past its connection_ack.
type socket struct {
	conn *websocket.Conn
	wmu  sync.Mutex
}

// dialSocket opens a socket, authenticated with token when it is set.
func dialSocket(ctx context.Context, base, token string, dialer *websocket.Dialer) (*socket, error) {
	if dialer == nil {
		dialer = &websocket.Dialer{HandshakeTimeout: 20 * time.Second}
	}
	d := *dialer
	d.Subprotocols = []string{"graphql-transport-ws"}
	c, resp, err := d.DialContext(ctx, "ws"+strings.TrimPrefix(base, "http")+"/graphql", nil)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
			return nil, fmt.Errorf("dial: %w (status %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	s := &socket{conn: c}
	init := wsMessage{Type: "connection_init"}
	if token != "" {
		init.Payload, _ = json.Marshal(map[string]string{"token": token})
	}
	if err := s.write(init); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var ack wsMessage
	if err := c.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		c.Close()
		return nil, fmt.Errorf("connection_init: got %q (%v), want connection_ack", ack.Type, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return s, nil
}

func (s *socket) write(m wsMessage) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(20 * time.Second))
	return s.conn.WriteJSON(m)
}

func (s *socket) subscribe(id, query string, vars map[string]any) error {
	payload, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	return s.write(wsMessage{ID: id, Type: "subscribe", Payload: payload})
}

func (s *socket) close() { s.conn.Close() }

const eventsSubscription = `subscription($id: ID!, $after: Int) { generationEvents(id: $id, afterSeq: $after) { seq kind } }`

// genEvent is one generationEvents item as the drills select it.
type genEvent struct {
	Seq  int
	Kind string
}

func (e genEvent) final() bool {
	return e.Kind == "SUCCEEDED" || e.Kind == "FAILED" || e.Kind == "CANCELED"
}

// decodeEvent reads a "next" payload of eventsSubscription.
func decodeEvent(payload json.RawMessage) (genEvent, error) {
	var out struct {
		Data struct {
			GenerationEvents *genEvent
		}
		Errors []gqlError
	}
	if err := json.Unmarshal(payload, &out); err != nil {
		return genEvent{}, err
	}
	if len(out.Errors) > 0 || out.Data.GenerationEvents == nil {
		return genEvent{}, fmt.Errorf("next carries errors %+v", out.Errors)
	}
	return *out.Data.GenerationEvents, nil
}

// follower watches one generation as the editor does: subscribes, and when
// the socket breaks or the subscription ends with an error, subscribes
// again after the last seq it saw (on whichever server base returns).
type follower struct {
	gen   string
	token string
	base  func() string

	mu       sync.Mutex
	events   []genEvent
	resumes  int
	problems []string
	done     chan struct{}
}

func follow(ctx context.Context, gen, token string, base func() string) *follower {
	f := &follower{gen: gen, token: token, base: base, done: make(chan struct{})}
	go f.run(ctx)
	return f
}

func (f *follower) lastSeq() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.events) == 0 {
		return 0
	}
	return f.events[len(f.events)-1].Seq
}

func (f *follower) note(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.problems) < 20 {
		f.problems = append(f.problems, fmt.Sprintf(format, args...))
	}
}

func (f *follower) run(ctx context.Context) {
	defer close(f.done)
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			f.mu.Lock()
			f.resumes++
			f.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
		if f.once(ctx) {
			return
		}
	}
}

// once follows until the final event (true) or until the socket or the
// subscription fails (false).
func (f *follower) once(ctx context.Context) bool {
	s, err := dialSocket(ctx, f.base(), f.token, nil)
	if err != nil {
		return false
	}
	defer s.close()
	stop := context.AfterFunc(ctx, s.close)
	defer stop()
	vars := map[string]any{"id": f.gen}
	if last := f.lastSeq(); last > 0 {
		vars["after"] = last
	}
	if err := s.subscribe("1", eventsSubscription, vars); err != nil {
		return false
	}
	for {
		var m wsMessage
		if err := s.conn.ReadJSON(&m); err != nil {
			return false
		}
		switch m.Type {
		case "next":
			e, err := decodeEvent(m.Payload)
			if err != nil {
				f.note("%v", err)
				return false
			}
			f.mu.Lock()
			f.events = append(f.events, e)
			f.mu.Unlock()
			if e.final() {
				return true
			}
		case "error":
			f.note("error %s", m.Payload)
			return false
		case "complete":
			return false
		case "ping":
			_ = s.write(wsMessage{Type: "pong"})
		}
	}
}

// seen returns what the follower received.
func (f *follower) seen() []genEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]genEvent(nil), f.events...)
}

// finished reports whether the final event arrived.
func (f *follower) finished() bool {
	select {
	case <-f.done:
		ev := f.seen()
		return len(ev) > 0 && ev[len(ev)-1].final()
	default:
		return false
	}
}

// compare counts what a subscriber received against the record: events
// missing, received twice, or out of order.
func compare(got []genEvent, record []genEvent) (missing, dup, disorder int) {
	have := map[int]int{}
	for i, e := range got {
		have[e.Seq]++
		if i > 0 && e.Seq <= got[i-1].Seq {
			disorder++
		}
	}
	for _, e := range record {
		switch n := have[e.Seq]; {
		case n == 0:
			missing++
		case n > 1:
			dup += n - 1
		}
	}
	return missing, dup, disorder
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
