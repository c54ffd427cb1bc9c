package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/fastimage/api/internal/apperr"
)

// sessionWatch rechecks the session of one streaming connection every
// interval and whenever its doorbell rings (see Server.watchSession). It
// holds a runtime timer, not a goroutine, between checks: every open
// WebSocket of a signed-in user has one.
type sessionWatch struct {
	ctx   context.Context // the connection's, once signed in
	every time.Duration
	check func(context.Context) error // nil while the session works
	ended func(error)                 // called once, when check says it stopped working
	log   *slog.Logger

	mu    sync.Mutex // one check at a time
	timer *time.Timer
}

// start arms the timer; when the connection's context ends, the timer
// stops, and so does each of stops (its doorbells).
func (w *sessionWatch) start(stops ...func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = time.AfterFunc(w.every, w.recheck)
	t := w.timer
	context.AfterFunc(w.ctx, func() {
		t.Stop()
		for _, stop := range stops {
			stop()
		}
	})
}

// recheck checks the session now, and again after the interval while it
// works. A check that fails for want of the database counts as working.
func (w *sessionWatch) recheck() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ctx.Err() != nil {
		return
	}
	err := w.check(w.ctx)
	switch {
	case err == nil:
	case apperr.CodeOf(err) == apperr.Internal:
		w.log.WarnContext(w.ctx, "could not recheck session", "err", err)
	default:
		w.ended(err)
		return
	}
	w.timer.Reset(w.every)
}
