package fanout

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// event is what a shared stream sends: one pointer per event for every
// subscriber.
type event struct{ n int }

// fakeSchema stands in for gqlgen's generated schema: its subscription
// resolver opens the stream of the test's source through Share, and each
// response is the event marshalled by hand, counting executions.
type fakeSchema struct {
	graphql.ExecutableSchema
	source func(ctx context.Context) <-chan *event
	runs   atomic.Int64
	fail   func(ev *event) bool // an execution that records a field error
}

func (s *fakeSchema) Exec(ctx context.Context) graphql.ResponseHandler {
	in := Share(ctx, s.source(ctx))
	return func(ctx context.Context) *graphql.Response {
		select {
		case ev, ok := <-in:
			if !ok {
				return nil
			}
			s.runs.Add(1)
			if s.fail != nil && s.fail(ev) {
				graphql.AddError(ctx, gqlerror.Errorf("field failed"))
			}
			return &graphql.Response{Data: fmt.Appendf(nil, `{"n":%d}`, ev.n)}
		case <-ctx.Done():
			return nil
		}
	}
}

// subscribe runs one subscription under x as a transport does, returning
// its responses until the stream ends.
func subscribe(t *testing.T, x *Executor, class, query string) func() *graphql.Response {
	t.Helper()
	ctx := context.WithValue(context.Background(), classKey{}, class)
	ctx = graphql.WithOperationContext(ctx, &graphql.OperationContext{
		RawQuery:  query,
		Variables: map[string]any{"id": "g1"},
		Operation: &ast.OperationDefinition{Operation: ast.Subscription},
	})
	ctx = graphql.WithResponseContext(ctx, graphql.DefaultErrorPresenter, nil)
	next := x.Exec(ctx)
	return func() *graphql.Response {
		rctx := graphql.WithResponseContext(ctx, graphql.DefaultErrorPresenter, nil)
		resp := next(rctx)
		if resp != nil {
			resp.Errors = append(resp.Errors, graphql.GetErrors(rctx)...)
		}
		return resp
	}
}

type classKey struct{}

func classOf(ctx context.Context) string { s, _ := ctx.Value(classKey{}).(string); return s }

// broadcast sends each of evs to every subscriber's channel, then closes
// them: a shared source, as generate's watchers give.
type broadcast struct {
	mu   sync.Mutex
	subs []chan *event
}

func (b *broadcast) open(context.Context) <-chan *event {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan *event, 16)
	b.subs = append(b.subs, ch)
	return ch
}

func (b *broadcast) send(evs ...*event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ev := range evs {
		for _, ch := range b.subs {
			ch <- ev
		}
	}
}

func (b *broadcast) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ch := range b.subs {
		close(ch)
	}
}

func TestSubscribersOfOneClassShareEachExecution(t *testing.T) {
	var src broadcast
	schema := &fakeSchema{source: src.open}
	x := Wrap(schema, classOf)
	const n = 50
	subs := make([]func() *graphql.Response, n)
	for i := range subs {
		subs[i] = subscribe(t, x, "user-1", "subscription { e }")
	}
	evs := []*event{{n: 1}, {n: 2}, {n: 3}}
	src.send(evs...)
	src.close()
	var wg sync.WaitGroup
	got := make([][]string, n)
	for i, next := range subs {
		wg.Go(func() {
			for resp := next(); resp != nil; resp = next() {
				if len(resp.Errors) > 0 {
					t.Errorf("subscriber %d: errors %v", i, resp.Errors)
				}
				got[i] = append(got[i], string(resp.Data))
			}
		})
	}
	wg.Wait()
	for i := range got {
		if fmt.Sprint(got[i]) != `[{"n":1} {"n":2} {"n":3}]` {
			t.Errorf("subscriber %d got %v, want the three events in order", i, got[i])
		}
	}
	if runs := schema.runs.Load(); runs != int64(len(evs)) {
		t.Errorf("got %d executions, want %d (one per event)", runs, len(evs))
	}
}

func TestSharingFollowsClassAndOperation(t *testing.T) {
	tests := []struct {
		name           string
		class1, class2 string
		query1, query2 string
		wantRuns       int64
	}{
		{"same class and operation", "u1", "u1", "q", "q", 1},
		{"another class", "u1", "u2", "q", "q", 2},
		{"another operation", "u1", "u1", "q", "q2", 2},
		{"no class shares nothing", "", "", "q", "q", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var src broadcast
			schema := &fakeSchema{source: src.open}
			x := Wrap(schema, classOf)
			a := subscribe(t, x, tc.class1, tc.query1)
			b := subscribe(t, x, tc.class2, tc.query2)
			src.send(&event{n: 7})
			for _, next := range []func() *graphql.Response{a, b} {
				if resp := next(); resp == nil || string(resp.Data) != `{"n":7}` {
					t.Fatalf("got %v, want the event", resp)
				}
			}
			if got := schema.runs.Load(); got != tc.wantRuns {
				t.Errorf("got %d executions, want %d", got, tc.wantRuns)
			}
		})
	}
}

func TestAnEventThatErroredIsNotShared(t *testing.T) {
	var src broadcast
	failed := atomic.Bool{}
	schema := &fakeSchema{source: src.open, fail: func(*event) bool { return !failed.Swap(true) }} // the first execution fails
	x := Wrap(schema, classOf)
	a := subscribe(t, x, "u1", "q")
	b := subscribe(t, x, "u1", "q")
	src.send(&event{n: 1})
	ra := a()
	rb := b()
	if len(ra.Errors) != 1 {
		t.Errorf("first subscriber: got errors %v, want its own field error", ra.Errors)
	}
	if len(rb.Errors) != 0 || string(rb.Data) != `{"n":1}` {
		t.Errorf("second subscriber: got %s %v, want its own clean execution", rb.Data, rb.Errors)
	}
	if got := schema.runs.Load(); got != 2 {
		t.Errorf("got %d executions, want 2", got)
	}
}

func TestValuesThatOnlyLookAlikeAreNotShared(t *testing.T) {
	var src broadcast
	schema := &fakeSchema{source: src.open}
	x := Wrap(schema, classOf)
	a := subscribe(t, x, "u1", "q")
	b := subscribe(t, x, "u1", "q")
	src.mu.Lock()
	src.subs[0] <- &event{n: 1}
	src.subs[1] <- &event{n: 1} // equal, but another value
	src.mu.Unlock()
	a()
	b()
	if got := schema.runs.Load(); got != 2 {
		t.Errorf("got %d executions, want 2", got)
	}
}

func TestQueriesPassThrough(t *testing.T) {
	in := make(chan *event, 1)
	schema := &fakeSchema{source: func(ctx context.Context) <-chan *event {
		if _, ok := ctx.Value(tapKey{}).(*tap); ok {
			t.Error("a query's resolver was tapped")
		}
		return in
	}}
	x := Wrap(schema, classOf)
	ctx := graphql.WithOperationContext(context.Background(), &graphql.OperationContext{Operation: &ast.OperationDefinition{Operation: ast.Query}})
	next := x.Exec(ctx)
	in <- &event{n: 5}
	if resp := next(graphql.WithResponseContext(ctx, graphql.DefaultErrorPresenter, nil)); resp == nil || string(resp.Data) != `{"n":5}` {
		t.Fatalf("got %v, want the schema's own response", resp)
	}
}

func TestStreamEndEndsEverySubscriber(t *testing.T) {
	var src broadcast
	schema := &fakeSchema{source: src.open}
	x := Wrap(schema, classOf)
	a := subscribe(t, x, "u1", "q")
	src.close()
	done := make(chan *graphql.Response, 1)
	go func() { done <- a() }()
	select {
	case resp := <-done:
		if resp != nil {
			t.Fatalf("got %s, want the end of the stream", resp.Data)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end")
	}
}

func TestRecentBoundsAndExpires(t *testing.T) {
	r := NewRecent[int, int](3, time.Minute)
	now := time.Unix(0, 0)
	r.now = func() time.Time { return now }
	made := 0
	mk := func(v int) func() (int, bool) { return func() (int, bool) { made++; return v, true } }
	for i := range 5 {
		r.Do(i, mk(i))
	}
	if got := r.Len(); got > 3 {
		t.Errorf("got %d entries, want at most 3", got)
	}
	if v, _ := r.Do(4, mk(-1)); v != 4 {
		t.Errorf("got %d, want the value kept for 4", v)
	}
	now = now.Add(2 * time.Minute)
	if v, _ := r.Do(4, mk(40)); v != 40 {
		t.Errorf("got %d after the time to live, want a fresh value", v)
	}
	if _, ok := r.Do(9, func() (int, bool) { return 0, false }); ok {
		t.Error("a value made not good was reported good")
	}
	if v, ok := r.Do(9, mk(9)); !ok || v != 9 {
		t.Errorf("got %d %v, want a value not good to be made again", v, ok)
	}
	if made != 7 {
		t.Errorf("made %d values, want 7", made)
	}
}

func TestRecentMakesOnceForOverlappingCallers(t *testing.T) {
	r := NewRecent[string, int](10, time.Minute)
	release := make(chan struct{})
	var made atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			v, ok := r.Do("k", func() (int, bool) { made.Add(1); <-release; return 42, true })
			if !ok || v != 42 {
				t.Errorf("got %d %v, want 42", v, ok)
			}
		})
	}
	close(release)
	wg.Wait()
	if made.Load() != 1 {
		t.Errorf("made %d times, want once", made.Load())
	}
}
