package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/imaging/imagingtest"
)

const generateMutation = `mutation($in: GenerateImageInput!) { generateImage(input: $in) {
	generation { id status lastSeq queuePosition creditsPerImage count }
	work { id kind status } } }`

type submitted struct {
	GenerateImage struct {
		Generation struct {
			ID, Status      string
			LastSeq         int
			QueuePosition   *int
			CreditsPerImage int
			Count           int
		}
		Work struct{ ID, Kind, Status string }
	}
}

type genEvent struct {
	Seq        int
	Kind       string
	Fraction   *float64
	PreviewURL *string
	OutputURL  *string
	ErrorCode  *string
	Cost       *int
}

const eventsSubscription = `subscription($id: ID!, $after: Int) { generationEvents(id: $id, afterSeq: $after) {
	seq kind fraction previewUrl outputUrl errorCode cost } }`

// eventStream is a real WebSocket client following one generation.
type eventStream struct {
	t *testing.T
	c *websocket.Conn
}

func subscribeEvents(t *testing.T, s *testServer, token, genID string, afterSeq *int) *eventStream {
	t.Helper()
	c := wsAckAs(t, s.URL, "graphql-transport-ws", token)
	vars := map[string]any{"id": genID}
	if afterSeq != nil {
		vars["after"] = *afterSeq
	}
	wsSend(t, c, wsMessage{ID: "g", Type: "subscribe", Payload: mustJSON(map[string]any{"query": eventsSubscription, "variables": vars})})
	return &eventStream{t: t, c: c}
}

// next returns the next event, or nil when the subscription completed.
func (e *eventStream) next() *genEvent {
	e.t.Helper()
	m := wsNext(e.t, e.c, 20*time.Second)
	switch m.Type {
	case "complete":
		return nil
	case "next":
		var p struct {
			Data   struct{ GenerationEvents genEvent }
			Errors []gqlError
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) > 0 {
			e.t.Fatalf("event payload %s (%v)", m.Payload, p.Errors)
		}
		return &p.Data.GenerationEvents
	default:
		e.t.Fatalf("unexpected %s %s", m.Type, m.Payload)
		return nil
	}
}

// rest reads events until the subscription completes.
func (e *eventStream) rest() []genEvent {
	var out []genEvent
	for ev := e.next(); ev != nil; ev = e.next() {
		out = append(out, *ev)
	}
	return out
}

func kinds(evs []genEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Kind
	}
	return out
}

func checkSequence(t *testing.T, evs []genEvent, from int) {
	t.Helper()
	for i, e := range evs {
		if e.Seq != from+i {
			t.Fatalf("event %d has seq %d, want %d (kinds %v)", i, e.Seq, from+i, kinds(evs))
		}
	}
}

func creditsOf(t *testing.T, c *client) struct{ Balance, Available, Held int } {
	t.Helper()
	var v creditsView
	c.must(creditsQuery, nil, &v)
	return v.Viewer.Credits
}

func TestGenerateEndToEnd(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	me, _ := mustSignUp(t, s, "maker@example.com")
	if got := creditsOf(t, me); got.Balance != 25 {
		t.Fatalf("sign-up bonus: %+v", got)
	}
	var sub submitted
	me.must(generateMutation, map[string]any{"in": map[string]any{"prompt": "a lighthouse at dusk, oil painting", "count": 2, "width": 512, "height": 384}}, &sub)
	g := sub.GenerateImage.Generation
	if g.Status != "QUEUED" || g.LastSeq != 1 || sub.GenerateImage.Work.Kind != "GENERATION" || g.CreditsPerImage != 4 {
		t.Fatalf("submitted %+v", sub.GenerateImage)
	}

	evs := subscribeEvents(t, s, me.token, g.ID, nil).rest()
	checkSequence(t, evs, 1)
	ks := kinds(evs)
	if ks[0] != "QUEUED" || ks[1] != "STARTED" || ks[len(ks)-1] != "SUCCEEDED" {
		t.Fatalf("event kinds %v", ks)
	}
	var progress, outputs int
	last := 0.0
	for _, e := range evs {
		switch e.Kind {
		case "PROGRESS":
			progress++
			if *e.Fraction < last {
				t.Errorf("progress went back from %v to %v", last, *e.Fraction)
			}
			last = *e.Fraction
		case "OUTPUT":
			outputs++
			resp, body := get(t, *e.OutputURL)
			if resp.StatusCode != 200 || len(body) == 0 {
				t.Errorf("output URL: %d", resp.StatusCode)
			}
		}
	}
	if progress == 0 || outputs != 2 || *evs[len(evs)-1].Cost != 8 {
		t.Fatalf("%d progress and %d output events, cost %v; kinds %v", progress, outputs, evs[len(evs)-1].Cost, ks)
	}

	// The images are in My Works, downloadable; the credits were captured once.
	var w struct {
		Work struct {
			Status string
			Images []struct {
				Role, URL     string
				Width, Height int
			}
		}
	}
	me.must(`query($id: ID!) { work(id: $id) { status images { role url width height } } }`, map[string]any{"id": sub.GenerateImage.Work.ID}, &w)
	if w.Work.Status != "SUCCEEDED" || len(w.Work.Images) != 2 || w.Work.Images[0].Role != "OUTPUT" || w.Work.Images[0].Width != 512 {
		t.Fatalf("work %+v", w.Work)
	}
	if resp, _ := get(t, w.Work.Images[1].URL); resp.StatusCode != 200 {
		t.Errorf("image download: %d", resp.StatusCode)
	}
	if got := creditsOf(t, me); got.Balance != 17 || got.Held != 0 {
		t.Fatalf("credits after the generation: %+v, want 17 and nothing held", got)
	}
	var spends int
	if err := s.db.NewRaw("SELECT count(*) FROM credit_entries WHERE kind = 'SPEND'").Scan(context.Background(), &spends); err != nil {
		t.Fatal(err)
	}
	if spends != 1 {
		t.Fatalf("%d SPEND entries, want 1", spends)
	}
	var snap struct {
		Generation struct {
			Status      string
			Progress    float64
			OutputCount int
			Cost        int
			Attempts    int
			Metrics     struct {
				QueueMs int
				RunMs   *int
			}
		}
	}
	me.must(`query($id: ID!) { generation(id: $id) { status progress outputCount cost attempts metrics { queueMs runMs } } }`, map[string]any{"id": g.ID}, &snap)
	if sn := snap.Generation; sn.Status != "SUCCEEDED" || sn.Progress != 1 || sn.OutputCount != 2 || sn.Cost != 8 || sn.Attempts != 1 || sn.Metrics.RunMs == nil {
		t.Errorf("snapshot %+v", sn)
	}
}

// A client that drops its socket mid-generation and comes back with the
// last seq it saw gets every later event exactly once, also when the job
// finished while it was away.
func TestResumeAfterDisconnect(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Generate.LocalStepDelay = 40 * time.Millisecond
	s := start(t, cfg)
	me, _ := mustSignUp(t, s, "resume@example.com")
	var sub submitted
	me.must(generateMutation, map[string]any{"in": map[string]any{"prompt": "a fox in the snow", "width": 256, "height": 256}}, &sub)
	id := sub.GenerateImage.Generation.ID

	first := subscribeEvents(t, s, me.token, id, nil)
	var seen []genEvent
	for len(seen) < 4 {
		seen = append(seen, *first.next())
	}
	first.c.Close() // the socket drops
	lastSeen := seen[len(seen)-1].Seq

	time.Sleep(100 * time.Millisecond)
	rest := subscribeEvents(t, s, me.token, id, &lastSeen).rest()
	all := append(seen, rest...)
	checkSequence(t, all, 1)
	if all[len(all)-1].Kind != "SUCCEEDED" {
		t.Fatalf("no final event after resuming: %v", kinds(all))
	}

	// After the end: resuming replays what is missing and completes.
	mid := 2
	replay := subscribeEvents(t, s, me.token, id, &mid).rest()
	checkSequence(t, replay, 3)
	if len(replay) != len(all)-2 {
		t.Fatalf("replay after the end: %d events, want %d", len(replay), len(all)-2)
	}
}

// Two replicas on one database: a subscriber on one sees every event of a
// job run by the other's worker.
func TestEventsCrossReplicas(t *testing.T) {
	t.Parallel()
	dbURL := dbtestURL(t)
	apiCfg := testConfig()
	apiCfg.Generate.Workers = 0
	api := startWithDB(t, apiCfg, dbURL)
	workerCfg := testConfig()
	workerCfg.Generate.LocalStepDelay = 20 * time.Millisecond
	startWithDB(t, workerCfg, dbURL)

	me, _ := mustSignUp(t, api, "replicas@example.com")
	var sub submitted
	me.must(generateMutation, map[string]any{"in": map[string]any{"prompt": "two servers", "width": 128, "height": 128}}, &sub)
	evs := subscribeEvents(t, api, me.token, sub.GenerateImage.Generation.ID, nil).rest()
	checkSequence(t, evs, 1)
	if evs[len(evs)-1].Kind != "SUCCEEDED" {
		t.Fatalf("kinds %v", kinds(evs))
	}
}

// A worker that dies mid-job keeps its lease; once it expires another worker
// finishes the job, and the credits are captured exactly once.
func TestCrashedWorkerIsTakenOver(t *testing.T) {
	t.Parallel()
	dbURL := dbtestURL(t)
	apiCfg := testConfig()
	apiCfg.Generate.Workers = 0
	api := startWithDB(t, apiCfg, dbURL)
	me, _ := mustSignUp(t, api, "crash@example.com")
	var sub submitted
	me.must(generateMutation, map[string]any{"in": map[string]any{"prompt": "survives crashes", "width": 128, "height": 128}}, &sub)
	id := uuidOfGlobal(t, sub.GenerateImage.Generation.ID)
	// A worker claims it, writes STARTED, and dies: nothing gives the lease back.
	if _, err := api.db.ExecContext(context.Background(), `UPDATE generations SET status = 'running', lease_owner = 'dead-worker',
		lease_expires_at = now() + interval '1 second', attempts = 1, started_at = now() WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	startWithDB(t, testConfig(), dbURL) // a healthy replica with workers
	evs := subscribeEvents(t, api, me.token, sub.GenerateImage.Generation.ID, nil).rest()
	if evs[len(evs)-1].Kind != "SUCCEEDED" {
		t.Fatalf("kinds %v", kinds(evs))
	}
	var attempts, spends int
	if err := api.db.NewRaw("SELECT attempts FROM generations WHERE id = ?", id).Scan(context.Background(), &attempts); err != nil {
		t.Fatal(err)
	}
	if err := api.db.NewRaw("SELECT count(*) FROM credit_entries WHERE kind = 'SPEND'").Scan(context.Background(), &spends); err != nil {
		t.Fatal(err)
	}
	if attempts != 2 || spends != 1 {
		t.Fatalf("attempts %d, SPEND entries %d; want 2 and 1", attempts, spends)
	}
	if got := creditsOf(t, me); got.Balance != 21 || got.Held != 0 {
		t.Fatalf("credits %+v, want 21 with nothing held", got)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	// Queued: no worker runs here.
	cfg := testConfig()
	cfg.Generate.Workers = 0
	s := start(t, cfg)
	me, _ := mustSignUp(t, s, "cancel@example.com")
	var sub submitted
	me.must(generateMutation, map[string]any{"in": map[string]any{"prompt": "never mind", "count": 3, "width": 128, "height": 128}}, &sub)
	if got := creditsOf(t, me); got.Held != 12 || got.Available != 13 {
		t.Fatalf("credits while queued: %+v", got)
	}
	cancel := `mutation($id: ID!) { cancelGeneration(input: {generationId: $id}) { generation { status } work { status } } }`
	var out struct {
		CancelGeneration struct{ Generation struct{ Status string } }
	}
	me.must(cancel, map[string]any{"id": sub.GenerateImage.Generation.ID}, &out)
	if out.CancelGeneration.Generation.Status != "CANCELED" {
		t.Fatalf("status %q", out.CancelGeneration.Generation.Status)
	}
	me.must(cancel, map[string]any{"id": sub.GenerateImage.Generation.ID}, &out) // idempotent
	if got := creditsOf(t, me); got.Held != 0 || got.Balance != 25 {
		t.Fatalf("credits after cancel: %+v", got)
	}
	evs := subscribeEvents(t, s, me.token, sub.GenerateImage.Generation.ID, nil).rest()
	if k := kinds(evs); len(k) != 2 || k[1] != "CANCELED" {
		t.Fatalf("kinds %v", k)
	}

	// Running: a slow provider, canceled after it started.
	slow := testConfig()
	slow.Generate.LocalStepDelay = 500 * time.Millisecond
	s2 := start(t, slow)
	me2, _ := mustSignUp(t, s2, "cancel2@example.com")
	me2.must(generateMutation, map[string]any{"in": map[string]any{"prompt": "slow one", "width": 128, "height": 128}}, &sub)
	stream := subscribeEvents(t, s2, me2.token, sub.GenerateImage.Generation.ID, nil)
	for ev := stream.next(); ev.Kind != "STARTED"; ev = stream.next() {
	}
	started := time.Now()
	me2.must(cancel, map[string]any{"id": sub.GenerateImage.Generation.ID}, nil)
	rest := stream.rest()
	if rest[len(rest)-1].Kind != "CANCELED" {
		t.Fatalf("kinds after cancel %v", kinds(rest))
	}
	if waited := time.Since(started); waited > 3*time.Second {
		t.Errorf("a running job took %v to stop", waited)
	}
	if got := creditsOf(t, me2); got.Held != 0 || got.Balance != 25 {
		t.Fatalf("credits after canceling a running job: %+v", got)
	}
}

func TestSubmitRules(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Generate.Workers = 0
	s := start(t, cfg)
	me, _ := mustSignUp(t, s, "rules@example.com")

	// 50 parallel submits with one key: one generation, one hold.
	in := map[string]any{"prompt": "once only", "width": 256, "height": 256, "idempotencyKey": "key-1"}
	ids := make([]string, 50)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			var sub submitted
			out := me.do(generateMutation, map[string]any{"in": in})
			if len(out.Errors) > 0 {
				t.Errorf("submit: %v", out.Errors)
				return
			}
			json.Unmarshal(out.Data, &sub)
			ids[i] = sub.GenerateImage.Generation.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("one key gave several generations: %s and %s", ids[0], id)
		}
	}
	var gens, holds int
	if err := s.db.NewRaw("SELECT (SELECT count(*) FROM generations), (SELECT count(*) FROM credit_holds)").Scan(context.Background(), &gens, &holds); err != nil {
		t.Fatal(err)
	}
	if gens != 1 || holds != 1 {
		t.Fatalf("%d generations and %d holds for one key", gens, holds)
	}
	other := map[string]any{"prompt": "something else", "width": 256, "height": 256, "idempotencyKey": "key-1"}
	me.fails("IDEMPOTENCY_KEY_REUSED", generateMutation, map[string]any{"in": other})

	me.fails("INSUFFICIENT_CREDITS", generateMutation, map[string]any{"in": map[string]any{"prompt": "too many", "count": 4, "width": 2048, "height": 2048}})
	me.fails("VALIDATION", generateMutation, map[string]any{"in": map[string]any{"prompt": "  "}})
	me.fails("VALIDATION", generateMutation, map[string]any{"in": map[string]any{"prompt": "x", "count": 9}})
	me.fails("VALIDATION", generateMutation, map[string]any{"in": map[string]any{"prompt": "x", "aspectRatio": "5:1"}})

	var est struct {
		EstimateGeneration struct{ CreditsPerImage, TotalCredits, Width, Height int }
	}
	me.must(`{ estimateGeneration(input: {prompt: "x", aspectRatio: "16:9", count: 3}) { creditsPerImage totalCredits width height } }`, nil, &est)
	if e := est.EstimateGeneration; e.CreditsPerImage != 4 || e.TotalCredits != 12 || e.Width != 1344 || e.Height != 768 {
		t.Errorf("estimate %+v", e)
	}
	// The editor shows the cost before a prompt is typed.
	me.must(`{ estimateGeneration(input: {prompt: "", aspectRatio: "16:9", count: 3}) { creditsPerImage totalCredits width height } }`, nil, &est)
	if e := est.EstimateGeneration; e.TotalCredits != 12 {
		t.Errorf("estimate without a prompt %+v, want 12 credits", e)
	}

	// Unverified users, and other users' generations.
	s.client(t).must(signUpMutation, map[string]any{"email": "unverified@example.com", "password": goodPassword}, nil)
	unverified, _ := signIn(t, s, "unverified@example.com", goodPassword)
	unverified.fails("EMAIL_NOT_VERIFIED", generateMutation, map[string]any{"in": map[string]any{"prompt": "x"}})
	other2, _ := mustSignUp(t, s, "other@example.com")
	other2.fails("NOT_FOUND", `query($id: ID!) { generation(id: $id) { status } }`, map[string]any{"id": ids[0]})
	other2.fails("NOT_FOUND", `mutation($id: ID!) { cancelGeneration(input: {generationId: $id}) { generation { status } } }`, map[string]any{"id": ids[0]})
	c, _, err := wsDial(t, s.URL, "graphql-transport-ws", "")
	if err != nil {
		t.Fatal(err)
	}
	wsSend(t, c, wsMessage{Type: "connection_init", Payload: mustJSON(map[string]any{"token": other2.token})})
	wsNext(t, c, 5*time.Second)
	wsSend(t, c, wsMessage{ID: "x", Type: "subscribe", Payload: mustJSON(map[string]any{"query": eventsSubscription, "variables": map[string]any{"id": ids[0]}})})
	if m := wsNext(t, c, 5*time.Second); !containsCode(m.Payload, "NOT_FOUND") {
		t.Fatalf("subscribing to another user's generation: %s %s, want NOT_FOUND", m.Type, m.Payload)
	}
}

func containsCode(payload json.RawMessage, code string) bool {
	return strings.Contains(string(payload), `"code":"`+code+`"`)
}

// The OpenAI-compatible provider's failures release the hold.
func TestProviderFailureReleasesCredits(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"message":"Your request was rejected by the safety system.","type":"invalid_request_error","code":"content_policy_violation"}}`)
	}))
	t.Cleanup(peer.Close)
	cfg := testConfig()
	cfg.Generate.Provider = "openai"
	cfg.Generate.OpenAIBaseURL = peer.URL
	cfg.Generate.OpenAIKey = "sk-test"
	cfg.Generate.OpenAIModel = "gpt-image-1"
	cfg.Generate.OpenAITimeout = 5 * time.Second
	s := start(t, cfg)
	me, _ := mustSignUp(t, s, "refused@example.com")
	var sub submitted
	me.must(generateMutation, map[string]any{"in": map[string]any{"prompt": "something the provider refuses", "width": 1024, "height": 1024}}, &sub)
	evs := subscribeEvents(t, s, me.token, sub.GenerateImage.Generation.ID, nil).rest()
	final := evs[len(evs)-1]
	if final.Kind != "FAILED" || final.ErrorCode == nil || *final.ErrorCode != "CONTENT_REJECTED" {
		t.Fatalf("final event %+v (kinds %v)", final, kinds(evs))
	}
	if got := creditsOf(t, me); got.Held != 0 || got.Balance != 25 {
		t.Fatalf("credits after a refusal: %+v", got)
	}
	if calls.Load() != 1 {
		t.Errorf("a content refusal was retried: %d calls", calls.Load())
	}
}

func TestViewerEventsFeed(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	me, _ := mustSignUp(t, s, "feed@example.com")
	c, _, err := wsDial(t, s.URL, "graphql-ws", "")
	if err != nil {
		t.Fatal(err)
	}
	wsSend(t, c, wsMessage{Type: "connection_init", Payload: mustJSON(map[string]any{"token": me.token})})
	wsNext(t, c, 5*time.Second)
	wsSend(t, c, wsMessage{ID: "f", Type: "start", Payload: mustJSON(map[string]any{"query": `subscription { viewerEvents { seq kind status credits { balance held } } }`})})
	var sub submitted
	me.must(generateMutation, map[string]any{"in": map[string]any{"prompt": "feed me", "width": 128, "height": 128}}, &sub)
	var got []string
	lastSeq := 0
	for {
		m := wsNext(t, c, 20*time.Second)
		var p struct {
			Data struct {
				ViewerEvents struct {
					Seq     int
					Kind    string
					Status  *string
					Credits *struct{ Balance, Held int }
				}
			}
		}
		json.Unmarshal(m.Payload, &p)
		ev := p.Data.ViewerEvents
		if ev.Seq <= lastSeq {
			t.Fatalf("feed seq %d after %d", ev.Seq, lastSeq)
		}
		lastSeq = ev.Seq
		if ev.Status != nil {
			got = append(got, ev.Kind+":"+*ev.Status)
		} else if ev.Credits != nil {
			got = append(got, fmt.Sprintf("%s:%d/%d", ev.Kind, ev.Credits.Balance, ev.Credits.Held))
		}
		if ev.Status != nil && *ev.Status == "SUCCEEDED" {
			break
		}
	}
	want := []string{"CREDITS:25/0", "CREDITS:25/4", "GENERATION:QUEUED", "GENERATION:RUNNING", "CREDITS:21/0", "GENERATION:SUCCEEDED"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("feed %v, want %v", got, want)
	}
	// A client reads the state and the feed's head in one query, then
	// follows from there.
	var head struct {
		Viewer struct{ LastViewerEventSeq int }
	}
	me.must(`{ viewer { lastViewerEventSeq } }`, nil, &head)
	if head.Viewer.LastViewerEventSeq != lastSeq {
		t.Errorf("lastViewerEventSeq = %d, want %d (the last entry streamed)", head.Viewer.LastViewerEventSeq, lastSeq)
	}
	other, _ := mustSignUp(t, s, "feed-other@example.com")
	var fresh struct {
		Viewer struct{ LastViewerEventSeq int }
	}
	other.must(`{ viewer { lastViewerEventSeq } }`, nil, &fresh)
	if fresh.Viewer.LastViewerEventSeq >= lastSeq {
		t.Errorf("another user's lastViewerEventSeq = %d, want their own (below %d)", fresh.Viewer.LastViewerEventSeq, lastSeq)
	}
}

func TestProviderTimeoutReleasesCredits(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select { // never answers in time
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(peer.Close)
	cfg := testConfig()
	cfg.Generate.Provider = "openai"
	cfg.Generate.OpenAIBaseURL = peer.URL
	cfg.Generate.OpenAIKey = "sk-test"
	cfg.Generate.OpenAITimeout = 200 * time.Millisecond
	cfg.Generate.OpenAIPartials = 0
	s := start(t, cfg)
	me, _ := mustSignUp(t, s, "slowpeer@example.com")
	var sub submitted
	me.must(generateMutation, map[string]any{"in": map[string]any{"prompt": "takes forever", "width": 1024, "height": 1024}}, &sub)
	evs := subscribeEvents(t, s, me.token, sub.GenerateImage.Generation.ID, nil).rest()
	final := evs[len(evs)-1]
	if final.Kind != "FAILED" || final.ErrorCode == nil || *final.ErrorCode != "PROVIDER_TIMEOUT" {
		t.Fatalf("final event %+v (kinds %v)", final, kinds(evs))
	}
	if calls.Load() != 3 {
		t.Errorf("%d calls to the provider, want 3 attempts", calls.Load())
	}
	if got := creditsOf(t, me); got.Held != 0 || got.Balance != 25 {
		t.Fatalf("credits after a time-out: %+v", got)
	}
}

func TestQueueRules(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Generate.Workers = 0
	cfg.Generate.QueueCap = 3
	s := start(t, cfg)
	me, _ := mustSignUp(t, s, "queue@example.com")
	ids := make([]string, 3)
	for i := range ids {
		var sub submitted
		me.must(generateMutation, map[string]any{"in": map[string]any{"prompt": fmt.Sprint("job ", i), "width": 128, "height": 128}}, &sub)
		ids[i] = sub.GenerateImage.Generation.ID
	}
	for i, id := range ids {
		var g struct{ Generation struct{ QueuePosition *int } }
		me.must(`query($id: ID!) { generation(id: $id) { queuePosition } }`, map[string]any{"id": id}, &g)
		if g.Generation.QueuePosition == nil || *g.Generation.QueuePosition != i+1 {
			t.Errorf("job %d: queue position %v, want %d", i, g.Generation.QueuePosition, i+1)
		}
	}
	e := me.fails("QUEUE_FULL", generateMutation, map[string]any{"in": map[string]any{"prompt": "one too many", "width": 128, "height": 128}})
	if e.Extensions["retryAfter"] == nil {
		t.Errorf("QUEUE_FULL without retryAfter: %v", e.Extensions)
	}
	var list struct {
		Viewer struct {
			Generations struct {
				TotalCount int
				Edges      []struct{ Node struct{ Prompt string } }
			}
		}
	}
	me.must(`{ viewer { generations(first: 2, status: QUEUED) { totalCount edges { node { prompt } } } } }`, nil, &list)
	if list.Viewer.Generations.TotalCount != 3 || len(list.Viewer.Generations.Edges) != 2 || list.Viewer.Generations.Edges[0].Node.Prompt != "job 2" {
		t.Errorf("generations list %+v", list.Viewer.Generations)
	}
	// A job tried too often (its workers kept dying) fails and gives the credits back.
	id := uuidOfGlobal(t, ids[0])
	if _, err := s.db.ExecContext(context.Background(), `UPDATE generations SET status = 'running', attempts = max_attempts,
		lease_owner = 'dead', lease_expires_at = now() - interval '1 second' WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	startWithDB(t, testConfig(), s.dbURL)
	evs := subscribeEvents(t, s, me.token, ids[0], nil).rest()
	final := evs[len(evs)-1]
	if final.Kind != "FAILED" || *final.ErrorCode != "WORKER_LOST" {
		t.Fatalf("final %+v", final)
	}
}

func TestRetryAndShutdownGivesLeasesBack(t *testing.T) {
	t.Parallel()
	slow := testConfig()
	slow.Generate.LocalStepDelay = 300 * time.Millisecond
	s := start(t, slow)
	me, _ := mustSignUp(t, s, "handover@example.com")
	var sub submitted
	me.must(generateMutation, map[string]any{"in": map[string]any{"prompt": "hand me over", "width": 128, "height": 128}}, &sub)
	stream := subscribeEvents(t, s, me.token, sub.GenerateImage.Generation.ID, nil)
	for ev := stream.next(); ev.Kind != "STARTED"; ev = stream.next() {
	}
	if err := s.stop(); err != nil { // SIGTERM while the job runs
		t.Fatal(err)
	}
	var status string
	var attempts int
	id := uuidOfGlobal(t, sub.GenerateImage.Generation.ID)
	// The server stopped; read through a fresh replica's database handle.
	other := startWithDB(t, noWorkers(), s.dbURL)
	if err := other.db.NewRaw("SELECT status, attempts FROM generations WHERE id = ?", id).Scan(context.Background(), &status, &attempts); err != nil {
		t.Fatal(err)
	}
	if status != "queued" || attempts != 0 {
		t.Fatalf("after shutdown the job is %s with %d attempts; want it queued again, the attempt not counted", status, attempts)
	}
	startWithDB(t, testConfig(), s.dbURL) // a replica with workers finishes it
	evs := subscribeEvents(t, other, me.token, sub.GenerateImage.Generation.ID, nil).rest()
	if evs[len(evs)-1].Kind != "SUCCEEDED" {
		t.Fatalf("kinds %v", kinds(evs))
	}

	var retried struct {
		RetryGeneration struct {
			Generation struct {
				ID, Status string
				RetryOf    struct{ ID string }
			}
		}
	}
	me = other.client(t).as(me.token) // the first server is gone
	me.must(`mutation($id: ID!) { retryGeneration(input: {generationId: $id}) { generation { id status retryOf { id } } } }`,
		map[string]any{"id": sub.GenerateImage.Generation.ID}, &retried)
	if r := retried.RetryGeneration.Generation; r.ID == sub.GenerateImage.Generation.ID || r.RetryOf.ID != sub.GenerateImage.Generation.ID {
		t.Fatalf("retry %+v", r)
	}
}

func TestGenerationEventsOverSSE(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	me, _ := mustSignUp(t, s, "sse@example.com")
	var sub submitted
	me.must(generateMutation, map[string]any{"in": map[string]any{"prompt": "server-sent", "width": 128, "height": 128}}, &sub)
	body := mustJSON(map[string]any{"query": eventsSubscription, "variables": map[string]any{"id": sub.GenerateImage.Generation.ID}})
	req, _ := http.NewRequest("POST", s.URL+"/graphql", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+me.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body) // the stream ends after the final event
	var seqs []int
	for _, line := range strings.Split(string(raw), "\n") {
		if data, ok := strings.CutPrefix(line, "data: "); ok && strings.Contains(data, "generationEvents") {
			var p struct {
				Data struct{ GenerationEvents genEvent }
			}
			json.Unmarshal([]byte(data), &p)
			seqs = append(seqs, p.Data.GenerationEvents.Seq)
		}
	}
	if len(seqs) < 4 || seqs[0] != 1 || !strings.Contains(string(raw), "SUCCEEDED") {
		t.Fatalf("SSE events %v", seqs)
	}
	for i, seq := range seqs {
		if seq != i+1 {
			t.Fatalf("SSE seqs %v", seqs)
		}
	}
}

func noWorkers() *config.Serve {
	c := testConfig()
	c.Generate.Workers = 0
	return c
}

func TestEditImage(t *testing.T) {
	t.Parallel()
	s := start(t, worksCfg())
	me, _ := mustSignUp(t, s, "editor@example.com")
	src := me.mustUpload("photo.jpg", imagingtest.JPEG(320, 200), "holiday")
	edit := `mutation($in: EditImageInput!) { editImage(input: $in) { generation { id status width height } work { id kind } } }`
	var out struct {
		EditImage struct {
			Generation struct {
				ID, Status    string
				Width, Height int
			}
			Work struct{ ID, Kind string }
		}
	}
	me.must(edit, map[string]any{"in": map[string]any{"sourceWorkId": src.ID, "instruction": "make it look like winter", "strength": 0.8}}, &out)
	g := out.EditImage.Generation
	if g.Width != 320 || g.Height != 200 || out.EditImage.Work.Kind != "EDIT" {
		t.Fatalf("edit submitted as %+v", out.EditImage)
	}
	evs := subscribeEvents(t, s, me.token, g.ID, nil).rest()
	if evs[len(evs)-1].Kind != "SUCCEEDED" {
		t.Fatalf("kinds %v", kinds(evs))
	}
	var w struct {
		Work struct {
			SourceWork struct{ ID string }
			Images     []struct{ Width, Height int }
		}
	}
	me.must(`query($id: ID!) { work(id: $id) { sourceWork { id } images { width height } } }`, map[string]any{"id": out.EditImage.Work.ID}, &w)
	if w.Work.SourceWork.ID != src.ID || len(w.Work.Images) != 1 || w.Work.Images[0].Width != 320 {
		t.Fatalf("edited work %+v", w.Work)
	}
	other, _ := mustSignUp(t, s, "thief@example.com")
	other.fails("NOT_FOUND", edit, map[string]any{"in": map[string]any{"sourceWorkId": src.ID, "instruction": "mine now"}})
}

// One user's jobs run at most USER_RUNNING_LIMIT at a time; another user's
// job is not held up by them.
func TestUserRunningLimit(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Generate.UserRunningLimit = 1
	cfg.Generate.LocalStepDelay = 150 * time.Millisecond
	s := start(t, cfg)
	busy, _ := mustSignUp(t, s, "busy@example.com")
	calm, _ := mustSignUp(t, s, "calm@example.com")
	var a, b, c submitted
	busy.must(generateMutation, map[string]any{"in": map[string]any{"prompt": "first", "width": 64, "height": 64}}, &a)
	busy.must(generateMutation, map[string]any{"in": map[string]any{"prompt": "second", "width": 64, "height": 64}}, &b)
	calm.must(generateMutation, map[string]any{"in": map[string]any{"prompt": "other user", "width": 64, "height": 64}}, &c)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var st struct{ A, B, C string }
		if err := s.db.NewRaw(`SELECT (SELECT status FROM generations WHERE id = ?), (SELECT status FROM generations WHERE id = ?), (SELECT status FROM generations WHERE id = ?)`,
			uuidOfGlobal(t, a.GenerateImage.Generation.ID), uuidOfGlobal(t, b.GenerateImage.Generation.ID), uuidOfGlobal(t, c.GenerateImage.Generation.ID)).
			Scan(context.Background(), &st.A, &st.B, &st.C); err != nil {
			t.Fatal(err)
		}
		if st.A == "running" && st.B == "running" {
			t.Fatal("two jobs of one user ran at once")
		}
		if st.C == "running" && (st.A == "running" || st.B == "running") {
			return // the other user's job ran beside the busy user's
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the other user's job never ran beside the busy user's")
}
