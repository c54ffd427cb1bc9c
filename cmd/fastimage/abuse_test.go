package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/relay"
)

// The bounds issue 10 sets on what anonymous requests may cost the server.
const (
	maxRSSGrowth  = 150 << 20
	maxDiskGrowth = 1 << 20
)

// Every anonymous abuse pattern of issue 10, run against the real binary
// with its default settings (local storage, workers on), raises the
// process's resident memory by at most 150 MB over its warmed-up baseline
// and the disk it uses (the database and the storage folder) by at most
// 1 MB; after each, the server still answers at once.
//
// The binary is built without -race (buildBinary), so the memory measured
// is what production would see. The peak is the kernel's VmHWM, reset
// before each pattern, so no short spike between samples goes unseen.
func TestAnonymousAbuseStaysBounded(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads the server's memory from /proc")
	}
	if testing.Short() {
		t.Skip("runs for about half a minute")
	}
	dbURL := dbtest.NewURL(t)
	storage := t.TempDir()
	// The server runs as on an 8-CPU machine, where the defaults that
	// scale with CPUs are larger than on a small test machine.
	t.Setenv("GOMAXPROCS", "8")
	// A short read timeout only so that the slow bodies are cut sooner; and
	// the anonymous cost bucket off, so that each pattern meets the defence
	// it was written for, not the bucket in front of them all (which
	// internal/server's cost tests drain). Every other setting is the
	// default.
	p := startServe(t, dbURL, "--storage-dir", storage, "--http-read-timeout", "2s", "--cost-limit-anonymous-size", "0")
	m := newMeter(t, p, dbURL, storage)
	a := &attacker{t: t, url: p.url, http: &http.Client{
		Timeout:   time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64},
	}}

	// Warm up as a day's first users would: a few queries and a sign-in.
	for range 5 {
		a.wantCode(a.post(`{ serverInfo { version limits { maxQueryComplexity } } }`, nil, nil), "")
	}
	a.wantCode(a.post(signIn, map[string]any{"email": "warm@example.com", "password": "not the password"}, nil), "INVALID_CREDENTIALS")
	a.wantCode(a.post(`{ viewer { id } }`, nil, nil), "")
	base := m.footprint()
	t.Logf("baseline: RSS %s, disk %s (database %s, storage %s); %.0f password hash slots",
		mb(base.rss), mb(base.disk()), mb(base.db), kb(base.storage), a.metric("fastimage_password_hash_slots"))

	patterns := []struct {
		name string
		run  func(t *testing.T, a *attacker)
	}{
		{"100 aliased signIn in one POST", aliasedSignIns},
		{"40 signIn over one WebSocket", webSocketSignIns},
		{"400 aliased nodes of 100 ids", aliasedNodes},
		{"throttled signIn with a 60 KB User-Agent", throttledSignIns},
		{"300 sockets and 2,000 subscriptions", manySubscriptions},
		{"300 slow bodies", slowBodies},
		{"3,000 unknown directives", unknownDirectives},
		{"NUL in anonymous text", nulText},
	}
	var report strings.Builder
	fmt.Fprintf(&report, "%-42s %10s %10s %10s %8s\n", "pattern", "peak RSS", "RSS after", "disk", "time")
	for _, pat := range patterns {
		m.resetPeak()
		started := time.Now()
		ok := t.Run(pat.name, func(t *testing.T) { pat.run(t, &attacker{t: t, url: a.url, http: a.http}) })
		took := time.Since(started)
		peak := m.peak()
		now := m.footprint()
		fmt.Fprintf(&report, "%-42s %10s %10s %10s %8s\n", pat.name, mb(peak-base.rss), mb(now.rss-base.rss), kb(now.disk()-base.disk()), took.Round(100*time.Millisecond))
		if grown := peak - base.rss; grown > maxRSSGrowth {
			t.Errorf("%s: resident memory peaked %s over the baseline, want at most %s", pat.name, mb(grown), mb(maxRSSGrowth))
		}
		if grown := now.disk() - base.disk(); grown > maxDiskGrowth {
			t.Errorf("%s: disk use grew %s (database %s, storage %s), want at most %s",
				pat.name, kb(grown), kb(now.db-base.db), kb(now.storage-base.storage), kb(maxDiskGrowth))
		}
		a.stillServes(pat.name)
		if !ok {
			break
		}
	}
	t.Logf("growth over the baseline, per pattern:\n%s", report.String())
	var rateEvents, securityEvents, users int
	if err := m.db.NewRaw(`SELECT (SELECT count(*) FROM rate_events), (SELECT count(*) FROM security_events), (SELECT count(*) FROM users)`).
		Scan(context.Background(), &rateEvents, &securityEvents, &users); err != nil {
		t.Fatal(err)
	}
	t.Logf("rows written in all: %d rate events, %d security events, %d users", rateEvents, securityEvents, users)
	if strings.Contains(p.stderr.String(), "panic") {
		t.Errorf("the server panicked:\n%s", p.stderr)
	}
}

const signIn = `mutation($email: String!, $password: String!) { signIn(input: {email: $email, password: $password}) { token } }`

// heartbeat ticks once a minute: the subscriptions held open are idle, as an
// attacker's would be.
const heartbeat = `subscription { heartbeat(intervalMs: 60000) { seq } }`

// aliasedSignIns sends 100 aliased sign-ins in one POST, from 8 clients at
// once: each POST is refused before any password is hashed.
func aliasedSignIns(t *testing.T, a *attacker) {
	var b strings.Builder
	b.WriteString("mutation {")
	for i := range 100 {
		fmt.Fprintf(&b, ` s%d: signIn(input: {email: "alias%d@example.com", password: "not the password"}) { token }`, i, i)
	}
	b.WriteString(" }")
	a.parallel(8, 32, func(int) { a.wantCode(a.post(b.String(), nil, nil), "QUERY_TOO_COMPLEX") })
}

// webSocketSignIns sends 40 sign-ins, one a message, over each of 4
// anonymous graphql-transport-ws sockets, and waits for every answer.
func webSocketSignIns(t *testing.T, a *attacker) {
	const sockets, perSocket = 4, 40
	var mu sync.Mutex
	codes := map[string]int{}
	a.parallel(sockets, sockets, func(s int) {
		c := a.dial()
		if c == nil {
			return
		}
		defer c.Close()
		if !a.initSocket(c) {
			return
		}
		for i := range perSocket {
			if !a.send(c, strconv.Itoa(i), signIn, map[string]any{"email": fmt.Sprintf("ws%d-%d@example.com", s, i), "password": "not the password"}) {
				return
			}
		}
		_ = c.SetReadDeadline(time.Now().Add(45 * time.Second))
		for done := 0; done < perSocket; {
			var msg wsMessage
			if err := c.ReadJSON(&msg); err != nil {
				t.Errorf("socket %d, after %d answers: %v", s, done, err)
				return
			}
			switch msg.Type {
			case "next":
				var out gqlResponse
				if err := json.Unmarshal(msg.Payload, &out); err != nil {
					t.Errorf("next payload: %v", err)
					return
				}
				mu.Lock()
				codes[out.code()]++
				mu.Unlock()
			case "complete":
				done++
			case "error":
				t.Errorf("socket %d: error message %s", s, msg.Payload)
				done++
			}
		}
	})
	for code, n := range codes {
		switch code {
		case "INVALID_CREDENTIALS", "RATE_LIMITED", "UNAVAILABLE":
		default:
			t.Errorf("%d sign-ins answered %q, want INVALID_CREDENTIALS, RATE_LIMITED or UNAVAILABLE", n, code)
		}
	}
	t.Logf("answers by code: %v", codes)
}

// aliasedNodes asks nodes(ids: [100 ids]) 400 times in one query, from 4
// clients at once: refused for its cost before any lookup.
func aliasedNodes(t *testing.T, a *attacker) {
	var b strings.Builder
	b.WriteString("query($ids: [ID!]!) {")
	for i := range 400 {
		fmt.Fprintf(&b, " a%d: nodes(ids: $ids) { id }", i)
	}
	b.WriteString(" }")
	vars := map[string]any{"ids": fakeIDs(100)}
	a.parallel(4, 16, func(int) { a.wantCode(a.post(b.String(), vars, nil), "QUERY_TOO_COMPLEX") })
}

// throttledSignIns signs in against an address already refused for its
// failures, 300 times from 8 clients at once, each with a 60 KB User-Agent.
func throttledSignIns(t *testing.T, a *attacker) {
	const email = "victim@example.com"
	vars := map[string]any{"email": email, "password": "not the password"}
	for i := 0; ; i++ {
		if i == 20 {
			t.Fatal("20 failed sign-ins to one address are not refused")
		}
		if a.post(signIn, vars, nil).code() == "RATE_LIMITED" {
			break
		}
	}
	ua := http.Header{"User-Agent": {strings.Repeat("A", 60<<10) + "\xff"}}
	a.parallel(8, 300, func(int) { a.wantCode(a.post(signIn, vars, ua), "RATE_LIMITED") })
}

// manySubscriptions opens one socket with 2,000 subscriptions, then 299
// more sockets from the same address, each with 100 subscriptions: at most
// MAX_STREAMS_PER_IP sockets are let in, and MAX_SUBSCRIPTIONS_PER_USER
// subscriptions over all of them (the address counts as one user); the rest
// are refused with LIMIT_EXCEEDED.
func manySubscriptions(t *testing.T, a *attacker) {
	const sockets, perSocket, onFirst = 300, 100, 2000
	var limits struct {
		ServerInfo struct {
			Limits struct{ MaxStreamsPerIP, MaxSubscriptionsPerUser int }
		}
	}
	out := a.post(`{ serverInfo { limits { maxStreamsPerIp maxSubscriptionsPerUser } } }`, nil, nil)
	if err := json.Unmarshal(out.Data, &limits); err != nil || len(out.Errors) > 0 {
		t.Fatalf("serverInfo.limits: %v %+v", err, out.Errors)
	}
	perIP, running := limits.ServerInfo.Limits.MaxStreamsPerIP, limits.ServerInfo.Limits.MaxSubscriptionsPerUser
	before := a.metric("fastimage_graphql_active_subscriptions")
	var (
		mu      sync.Mutex
		open    []*websocket.Conn
		readers sync.WaitGroup
		refused atomic.Int64 // subscriptions refused
	)
	defer func() {
		for _, c := range open {
			c.Close()
		}
		readers.Wait()
		a.waitMetric("fastimage_websocket_connections", 0)
	}()
	// read discards what the server sends a socket until it closes,
	// counting refused subscriptions.
	read := func(c *websocket.Conn) {
		defer readers.Done()
		for {
			var msg wsMessage
			if err := c.ReadJSON(&msg); err != nil {
				return
			}
			if msg.Type == "error" {
				var errs []gqlError
				if err := json.Unmarshal(msg.Payload, &errs); err != nil || len(errs) == 0 || errs[0].Extensions["code"] != "LIMIT_EXCEEDED" {
					t.Errorf("subscription %s refused with %s, want LIMIT_EXCEEDED", msg.ID, msg.Payload)
				}
				refused.Add(1)
			}
		}
	}
	subscribeAll := func(c *websocket.Conn, n int) {
		for i := range n {
			if !a.send(c, "h"+strconv.Itoa(i), heartbeat, nil) {
				return
			}
		}
	}

	first := a.dial()
	if first == nil || !a.initSocket(first) {
		return
	}
	open = append(open, first)
	readers.Add(1)
	go read(first)
	subscribeAll(first, onFirst)

	var dialRefused atomic.Int64
	a.parallel(16, sockets-1, func(int) {
		c, resp, err := a.tryDial()
		if err != nil {
			if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
				t.Errorf("dial: %v (response %v), want 429 once the address has its fill", err, resp)
				return
			}
			var out gqlResponse
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.code() != "LIMIT_EXCEEDED" {
				t.Errorf("refused socket: code %q (%v), want LIMIT_EXCEEDED", out.code(), err)
			}
			resp.Body.Close()
			dialRefused.Add(1)
			return
		}
		mu.Lock()
		open = append(open, c)
		mu.Unlock()
		if !a.initSocket(c) {
			return
		}
		readers.Add(1)
		go read(c)
		subscribeAll(c, perSocket)
	})
	accepted := len(open)
	sent := onFirst + (accepted-1)*perSocket
	waitUntil(t, 30*time.Second, func() bool { return refused.Load() >= int64(sent-running) }, fmt.Sprintf("%d of %d subscriptions to be refused", sent-running, sent))
	a.waitMetric("fastimage_graphql_active_subscriptions", before+float64(running))
	t.Logf("%d sockets accepted, %d refused; of %d subscriptions, %d run, %d refused", accepted, dialRefused.Load(), sent, running, refused.Load())
	if accepted > perIP {
		t.Errorf("%d sockets accepted from one address, want at most MAX_STREAMS_PER_IP (%d)", accepted, perIP)
	}
}

// slowBodies opens 300 POSTs whose body trickles in a byte a second; the
// server cuts each with 408.
func slowBodies(t *testing.T, a *attacker) {
	var mu sync.Mutex
	statuses := map[int]int{}
	a.parallel(300, 300, func(int) {
		c, err := net.Dial("tcp", strings.TrimPrefix(a.url, "http://"))
		if err != nil {
			t.Errorf("dial: %v", err)
			return
		}
		defer c.Close()
		if _, err := fmt.Fprint(c, "POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"); err != nil {
			t.Errorf("write: %v", err)
			return
		}
		stop := make(chan struct{})
		defer close(stop)
		go func() { // the slow client
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				if _, err := c.Write([]byte("{")); err != nil {
					return
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Errorf("no answer to a slow body: %v", err)
			return
		}
		resp.Body.Close()
		mu.Lock()
		statuses[resp.StatusCode]++
		mu.Unlock()
	})
	if len(statuses) != 1 || statuses[http.StatusRequestTimeout] == 0 {
		t.Errorf("slow bodies answered %v, want all 408", statuses)
	}
}

// unknownDirectives sends a document with 3,000 unknown directives, 4 at
// once: each answer lists 50 errors and one saying how many were left out.
func unknownDirectives(t *testing.T, a *attacker) {
	var doc strings.Builder
	doc.WriteString("{ serverInfo ")
	for i := range 3000 {
		fmt.Fprintf(&doc, "@d%d ", i)
	}
	doc.WriteString("{ version } }")
	a.parallel(4, 8, func(int) {
		out := a.post(doc.String(), nil, nil)
		if len(out.Errors) != 51 || out.code() != "GRAPHQL_VALIDATION_FAILED" {
			t.Errorf("got %d errors, the first %q; want 51, GRAPHQL_VALIDATION_FAILED", len(out.Errors), out.code())
		}
	})
}

// nulText sends a NUL character in the free text of anonymous mutations:
// refused with VALIDATION, nothing stored.
func nulText(t *testing.T, a *attacker) {
	const nul = "bad\x00text"
	tests := []struct {
		query string
		vars  map[string]any
	}{
		{`mutation($n: String!) { signUp(input: {email: "nul@example.com", name: $n, password: "correct horse battery staple"}) { message } }`, map[string]any{"n": nul}},
		{`mutation { signUp(input: {email: "nul@example.com", name: "bad\u0000text", password: "correct horse battery staple"}) { message } }`, nil},
		{`mutation($e: String!) { requestPasswordReset(input: {email: $e}) { message } }`, map[string]any{"e": "nul\x00@example.com"}},
		{`mutation { requestPasswordReset(input: {email: "nul\u0000@example.com"}) { message } }`, nil},
	}
	a.parallel(8, 100, func(i int) {
		tc := tests[i%len(tests)]
		a.wantCode(a.post(tc.query, tc.vars, nil), "VALIDATION")
	})
}

// attacker is an anonymous client of the server: no session, no cookies.
type attacker struct {
	t    *testing.T
	url  string
	http *http.Client
}

type gqlResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
}

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

// code is the first error's code, or "" without errors.
func (r gqlResponse) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// post sends one operation to /graphql; a failure to get an answer is
// reported, and returned as the code "NO_ANSWER". It may run on any
// goroutine.
func (a *attacker) post(query string, vars map[string]any, header http.Header) gqlResponse {
	noAnswer := gqlResponse{Errors: []gqlError{{Extensions: map[string]any{"code": "NO_ANSWER"}}}}
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		a.t.Errorf("request body: %v", err)
		return noAnswer
	}
	req, err := http.NewRequest(http.MethodPost, a.url+"/graphql", strings.NewReader(string(body)))
	if err != nil {
		a.t.Errorf("request: %v", err)
		return noAnswer
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		a.t.Errorf("POST /graphql: %v", err)
		return noAnswer
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Errorf("POST /graphql: %v", err)
		return noAnswer
	}
	var out gqlResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		a.t.Errorf("answer is not JSON (status %d): %.200s", resp.StatusCode, raw)
		return noAnswer
	}
	return out
}

func (a *attacker) wantCode(out gqlResponse, code string) {
	a.t.Helper()
	if got := out.code(); got != code {
		a.t.Errorf("got code %q (%.200v), want %q", got, out.Errors, code)
	}
}

// parallel runs n calls of f (given 0…n-1) on workers goroutines.
func (a *attacker) parallel(workers, n int, f func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

func (a *attacker) tryDial() (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 20 * time.Second}
	return d.Dial("ws"+strings.TrimPrefix(a.url, "http")+"/graphql", nil)
}

// dial opens an anonymous graphql-transport-ws socket, or reports why not
// and returns nil.
func (a *attacker) dial() *websocket.Conn {
	c, resp, err := a.tryDial()
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
			resp.Body.Close()
		}
		a.t.Errorf("websocket dial: %v (status %d)", err, status)
		return nil
	}
	return c
}

// initSocket sends connection_init and waits for the ack.
func (a *attacker) initSocket(c *websocket.Conn) bool {
	if err := c.WriteJSON(wsMessage{Type: "connection_init"}); err != nil {
		a.t.Errorf("connection_init: %v", err)
		return false
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	var msg wsMessage
	if err := c.ReadJSON(&msg); err != nil || msg.Type != "connection_ack" {
		a.t.Errorf("got %q (%v), want connection_ack", msg.Type, err)
		return false
	}
	return true
}

// send sends one subscribe message; it may run on any goroutine.
func (a *attacker) send(c *websocket.Conn, id, query string, vars map[string]any) bool {
	payload, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		a.t.Errorf("subscribe %s: %v", id, err)
		return false
	}
	if err := c.WriteJSON(wsMessage{ID: id, Type: "subscribe", Payload: payload}); err != nil {
		a.t.Errorf("subscribe %s: %v", id, err)
		return false
	}
	return true
}

// metric reads one unlabelled gauge from /metrics.
func (a *attacker) metric(name string) float64 {
	a.t.Helper()
	resp, err := a.http.Get(a.url + "/metrics")
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				a.t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	if err := sc.Err(); err != nil {
		a.t.Fatal(err)
	}
	a.t.Fatalf("/metrics has no %s", name)
	return 0
}

func (a *attacker) waitMetric(name string, want float64) {
	a.t.Helper()
	waitUntil(a.t, 30*time.Second, func() bool { return a.metric(name) == want }, fmt.Sprintf("%s to be %v", name, want))
}

// stillServes checks that the server answers serverInfo promptly after a
// pattern; the bound is generous, for a busy machine.
func (a *attacker) stillServes(after string) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.url+"/graphql", strings.NewReader(`{"query":"{ serverInfo { version } }"}`))
	req.Header.Set("Content-Type", "application/json")
	started := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("after %s, serverInfo: %v", after, err)
	}
	defer resp.Body.Close()
	var out gqlResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || len(out.Errors) > 0 {
		a.t.Fatalf("after %s, serverInfo: status %d, errors %+v (%v)", after, resp.StatusCode, out.Errors, err)
	}
	a.t.Logf("after %s, serverInfo answered in %v", after, time.Since(started).Round(time.Millisecond))
}

// waitUntil polls cond until it holds, failing the test after timeout.
func waitUntil(t *testing.T, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fakeIDs returns n global ids of every node type, naming nothing.
func fakeIDs(n int) []string {
	types := []string{"User", "Session", "SecurityEvent", "CreditEntry", "CreditHold", "Work", "Image", "Generation"}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = relay.ID(types[i%len(types)], uuid.NewString())
	}
	return ids
}

// meter reads what the server process uses: its memory from /proc, its
// database's size from Postgres and its storage folder's from the disk.
type meter struct {
	t       *testing.T
	pid     int
	db      *bun.DB
	storage string
}

type footprint struct{ rss, db, storage int64 }

func (u footprint) disk() int64 { return u.db + u.storage }

func newMeter(t *testing.T, p *process, dbURL, storage string) *meter {
	bdb, err := db.Open(context.Background(), dbtest.Config(dbURL), "abuse-meter")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bdb.Close() })
	return &meter{t: t, pid: p.cmd.Process.Pid, db: bdb, storage: storage}
}

func (m *meter) footprint() footprint {
	m.t.Helper()
	u := footprint{rss: m.status("VmRSS")}
	if err := m.db.NewRaw("SELECT pg_database_size(current_database())").Scan(context.Background(), &u.db); err != nil {
		m.t.Fatal(err)
	}
	err := filepath.WalkDir(m.storage, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		u.storage += info.Size()
		return nil
	})
	if err != nil {
		m.t.Fatal(err)
	}
	return u
}

// resetPeak makes the kernel forget the process's peak resident memory
// (proc(5), clear_refs: 5).
func (m *meter) resetPeak() {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", m.pid), []byte("5"), 0); err != nil {
		m.t.Fatalf("reset the peak RSS: %v", err)
	}
}

// peak is the most resident memory the process had since resetPeak.
func (m *meter) peak() int64 { return m.status("VmHWM") }

// status reads one field, in kB, of /proc/<pid>/status, in bytes.
func (m *meter) status(field string) int64 {
	m.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", m.pid))
	if err != nil {
		m.t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				m.t.Fatalf("%s: %v", field, err)
			}
			return kb << 10
		}
	}
	m.t.Fatalf("/proc/%d/status has no %s", m.pid, field)
	return 0
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }

func kb(n int64) string { return fmt.Sprintf("%d kB", n>>10) }
