package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/fastimage/api/graph"
	"github.com/fastimage/api/graph/fanout"
	"github.com/fastimage/api/internal/events"
)

// wsOp is one operation running on a socket under the client's id. The
// read loop forgets it (deletes it from wsSocket.ops) when the client
// completes it or reuses its id; from then on nothing more is sent for it,
// so a client may reuse an id at once without hearing the old operation.
type wsOp struct {
	id   string
	stop context.CancelFunc // ends ctx; see cancel
	push *events.Push       // ctx's: runs what waits for the end (events.AtEnd)

	// A subscription whose stream pushes (events.WithPush) has no goroutine
	// of its own: the stream's goroutine takes each response as it tells
	// of it (pump). Set before the first pump, never changed after.
	sock      *wsSocket
	ctx       context.Context
	rc        *graphql.OperationContext
	cost      *graph.CostSlot
	responses graphql.ResponseHandler
	failed    *opErrors

	mu      sync.Mutex
	pending int  // values the stream told of and no pump has taken yet
	started bool // responses is set: pumps may run
	ending  bool // ctx ended: the next pump takes the end
	pumping bool // a goroutine is pumping; others leave the work to it
	over    bool // the end was taken: nothing more is pumped
}

// wsOps are a socket's running operations, each under its own id: a
// slice, not a map, because a socket runs few (see socketOps and
// limitSubscriptions) and every idle socket holds one for hours.
type wsOps []*wsOp

func (ops wsOps) index(op *wsOp) int { return slices.Index(ops, op) }

func (ops wsOps) byID(id string) *wsOp {
	for _, op := range ops {
		if op.id == id {
			return op
		}
	}
	return nil
}

func (ops *wsOps) remove(op *wsOp) {
	if i := ops.index(op); i >= 0 {
		*ops = slices.Delete(*ops, i, i+1)
	}
}

// current reports whether op is still the operation of its id.
func (s *wsSocket) current(op *wsOp) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ops.index(op) >= 0
}

// running reports whether an operation runs under id.
func (s *wsSocket) running(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ops.byID(id) != nil
}

// stop cancels the operation of id; forget also drops it at once, so that
// nothing more is sent for it (graphql-transport-ws wants nothing after the
// client's complete; legacy clients expect a complete after their stop).
func (s *wsSocket) stop(id string, forget bool) {
	s.mu.Lock()
	op := s.ops.byID(id)
	if op != nil && forget {
		s.ops.remove(op)
	}
	s.mu.Unlock()
	if op != nil {
		op.cancel()
	}
}

// start runs the operation payload describes under id, in a goroutine of
// its own, until it ends or is stopped.
func (s *wsSocket) start(id string, payload json.RawMessage, read graphql.TraceTiming) {
	ctx, cost := graph.WithCostSlot(graphql.StartOperationTrace(s.ctx))
	params := &graphql.RawParams{}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(params); err != nil {
		s.endWith(id, gqlerror.List{{Message: "invalid json"}})
		return
	}
	read.End = graphql.Now()
	params.ReadTime = read

	rc, errs := s.exec.CreateOperationContext(ctx, params)
	if errs != nil {
		resp := s.exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs)
		if errcode.GetErrorKind(errs) == errcode.KindProtocol {
			s.endWith(id, resp.Errors)
			return
		}
		s.sendResponse(nil, id, &graphql.Response{Errors: errs})
		s.sendComplete(id)
		return
	}
	// Every end of an operation goes through its cancel (the socket's end
	// cancels each, see finish), which also runs what waits for it
	// (events.AtEnd): each part of the operation that waits for its end
	// would cost a context.AfterFunc otherwise.
	ctx, stop := context.WithCancel(graphql.WithOperationContext(ctx, rc))
	failed := &opErrors{}
	op := &wsOp{id: id, stop: stop, sock: s, rc: rc, cost: cost, failed: failed}
	ctx = context.WithValue(ctx, wsOpKey{}, op)
	ctx, op.push = events.WithPush(ctx, op.notify)
	s.mu.Lock()
	if old := s.ops.byID(id); old != nil { // a legacy start under a running id stopped it
		s.ops.remove(old)
	}
	s.ops = append(s.ops, op)
	s.mu.Unlock()
	// The operation starts (its middleware and root resolver run) here, on
	// the message's short-lived goroutine. A subscription whose stream
	// pushes then needs no goroutine while it waits; any other operation
	// gets one that waits for its responses.
	responses, ctx, ok := s.dispatch(ctx, rc, failed)
	if ok && op.push.Claimed() {
		op.begin(ctx, responses)
		return
	}
	go s.run(ctx, op, rc, responses, ok, failed)
}

// cancel ends the operation's context, then runs what waits for that
// (its pump, the release of its slots, its stream's end).
func (op *wsOp) cancel() {
	op.stop()
	op.push.End()
}

// halt ends the operation's context and has its end pumped, but leaves
// what waits for the end until the operation has reported it (end cancels
// it then): the session's end halts each operation, and waits for them all
// to report before the socket closes (see sessionEnd).
func (op *wsOp) halt() {
	op.stop()
	go op.wake()
}

// wake has the end of the operation pumped once it has begun.
func (op *wsOp) wake() {
	op.mu.Lock()
	op.ending = true
	op.mu.Unlock()
	op.pump()
}

// wsOpFrom returns the WebSocket operation ctx runs under; nil outside one.
func wsOpFrom(ctx context.Context) *wsOp {
	op, _ := ctx.Value(wsOpKey{}).(*wsOp)
	return op
}

type wsOpKey struct{}

// notify is the pushing stream's word that a value waits: the caller's
// goroutine takes it (and any that follow) unless another already pumps.
func (op *wsOp) notify() {
	op.mu.Lock()
	op.pending++
	op.mu.Unlock()
	op.pump()
}

// begin lets pumps run once the operation has started, takes what the
// stream told of meanwhile, and has the end of ctx pumped too.
func (op *wsOp) begin(ctx context.Context, responses graphql.ResponseHandler) {
	op.mu.Lock()
	op.ctx, op.responses, op.started = ctx, responses, true
	op.mu.Unlock()
	events.AtEnd(ctx, op.wake)
	op.pump()
}

// pump sends the responses the stream has told of, one at a time, then
// the operation's end once its stream closes or ctx ends. Only one
// goroutine pumps an operation at once (gqlgen's handler is not safe for
// more); the others leave their work to it.
func (op *wsOp) pump() {
	op.mu.Lock()
	if op.pumping || !op.started || op.over {
		op.mu.Unlock()
		return
	}
	op.pumping = true
	for op.pending > 0 || op.ending {
		if op.pending > 0 {
			op.pending--
		}
		op.mu.Unlock()
		ok := op.step()
		op.mu.Lock()
		if !ok {
			op.over = true
			break
		}
	}
	op.pumping = false
	over := op.over
	op.mu.Unlock()
	if over {
		op.sock.end(op, op.failed)
	}
}

// step takes one response and sends it; false at the end of the
// operation (its stream closed, its ctx ended, or it panicked: the pumping
// goroutine is the stream's, which a panic must not take down).
func (op *wsOp) step() (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			op.failed.add(recovered(op.ctx, op.rc, r))
			ok = false
		}
	}()
	resp := op.responses(op.ctx)
	if resp == nil {
		return false
	}
	op.sock.sendResponse(op, op.id, resp)
	return true
}

// dispatch starts the operation; it reports false, with the error in
// failed, if that panicked.
func (s *wsSocket) dispatch(ctx context.Context, rc *graphql.OperationContext, failed *opErrors) (responses graphql.ResponseHandler, rctx context.Context, ok bool) {
	rctx = ctx
	defer func() {
		if r := recover(); r != nil {
			failed.add(recovered(ctx, rc, r))
		}
	}()
	responses, rctx = s.exec.DispatchOperation(ctx, rc)
	return responses, rctx, true
}

func recovered(ctx context.Context, rc *graphql.OperationContext, r any) *gqlerror.Error {
	err := rc.Recover(ctx, r)
	var gerr *gqlerror.Error
	if !errors.As(err, &gerr) {
		gerr = &gqlerror.Error{}
		if err != nil {
			gerr.Message = err.Error()
		}
	}
	return gerr
}

// run waits for the operation's responses and sends them, then its end
// (see end), on a goroutine of its own: a query, a mutation, or a
// subscription whose stream does not push.
func (s *wsSocket) run(ctx context.Context, op *wsOp, rc *graphql.OperationContext, responses graphql.ResponseHandler, started bool, failed *opErrors) {
	defer func() {
		if r := recover(); r != nil {
			failed.add(recovered(ctx, rc, r))
		}
		s.end(op, failed)
	}()
	for started {
		resp := responses(ctx)
		if resp == nil {
			return
		}
		s.sendResponse(op, op.id, resp)
	}
}

// end sends the end of an operation whose responses are over, and forgets
// it: an `error` message if it failed, else a `complete` (unless the socket
// is closing, when neither is sent: a complete would tell the client that
// all went well). Its context ends first, which frees its subscription
// slots (see slot), and it is forgotten before the message goes out (see
// writeLast): the client may start another at once.
func (s *wsSocket) end(op *wsOp, failed *opErrors) {
	op.stop()
	var last []byte
	if errs := failed.list(); len(errs) > 0 {
		last = encodeFrame(op.id, msgError, errorsJSON(errs))
	} else if !s.closed.Load() {
		last = encodeFrame(op.id, msgComplete, nil)
	}
	s.writeLast(op, last)
	op.cancel()
}

// endWith ends the operation of id, which never ran, with errs.
func (s *wsSocket) endWith(id string, errs gqlerror.List) {
	s.sendErrors(nil, id, errs)
	if s.legacy {
		s.sendComplete(id)
	}
}

// sendResponse sends one result of an operation. The frame is written by
// graph/fanout's encoders, which copy the data the executor wrote instead of
// having encoding/json check and re-encode it, twice, for every subscriber
// of an event; the bytes are the same. The frame is built in a pooled
// buffer, which gorilla copies before write returns. The operation's cost
// is written here when it is the response's only extension (see
// queryLimits.InterceptResponse).
func (s *wsSocket) sendResponse(op *wsOp, id string, resp *graphql.Response) {
	typ := msgNext
	if s.legacy {
		typ = legacyData
	}
	var cost fanout.Extension
	if op != nil {
		if c := op.cost.Cost(); c != nil {
			cost = fanout.Extension{Name: graph.CostExtension, Value: c}
		}
	}
	buf := framePool.Get().(*[]byte)
	frame, err := fanout.AppendResponseMessage((*buf)[:0], id, typ, resp, cost)
	if err != nil {
		panic(err)
	}
	_ = s.write(op, frame)
	if cap(frame) <= maxPooledFrame {
		*buf = frame[:0]
		framePool.Put(buf)
	}
}

// framePool holds the buffers response frames are built in; one bigger
// than maxPooledFrame (a rare, large result) is left to the collector.
var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

const maxPooledFrame = 64 << 10

func (s *wsSocket) sendErrors(op *wsOp, id string, errs gqlerror.List) {
	_ = s.send(op, id, msgError, errorsJSON(errs))
}

// errorsJSON is the payload of an `error` message.
func errorsJSON(errs gqlerror.List) []byte {
	b, err := json.Marshal(errs)
	if err != nil {
		panic(err)
	}
	return b
}

func (s *wsSocket) sendComplete(id string) {
	_ = s.send(nil, id, msgComplete, nil)
}

// opErrors are the errors an operation on a WebSocket ends with instead of
// a normal end; the operation middleware adds them (addOperationError).
type opErrors struct {
	mu   sync.Mutex
	errs gqlerror.List
}

func (e *opErrors) add(err *gqlerror.Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errs = append(e.errs, err)
}

func (e *opErrors) list() gqlerror.List {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.errs
}

// addOperationError makes the WebSocket operation of ctx end with an `error`
// message carrying err once its responses end. It reports false outside a
// WebSocket operation.
func addOperationError(ctx context.Context, err *gqlerror.Error) bool {
	op := wsOpFrom(ctx)
	if op != nil {
		op.failed.add(err)
	}
	return op != nil
}

// readTiming starts the trace timing of a message read at start.
func readTiming(start time.Time) graphql.TraceTiming {
	return graphql.TraceTiming{Start: start}
}
