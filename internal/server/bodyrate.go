package server

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/fastimage/api/internal/apperr"
)

// limitBodyTime bounds how long a request body may take to arrive: the
// connection's read deadline is HTTPReadTimeout after the request started,
// pushed later by one second for every HTTPMinBodyRate bytes received. A
// 20 MiB upload on a slow but steady link goes through; a body that
// trickles (or stops) is cut, the request answered with 408, and the
// connection closed. http.Server's own ReadTimeout cannot do this: it is one
// fixed time for the whole request, too short for big uploads or too long
// for everything else.
//
// Once the body is read to its end the deadline is lifted, so a long
// operation or an SSE stream is not cut (net/http would cancel the request
// when its watch for a client hang-up hits the deadline). WebSocket upgrades
// are left alone: the WebSocket adapter sets its own deadlines.
func (s *Server) limitBodyTime(next http.Handler) http.Handler {
	grace, rate := s.cfg.HTTPReadTimeout, s.cfg.HTTPMinBodyRate
	if grace <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.Header.Get("Upgrade") != "" {
			next.ServeHTTP(w, r)
			return
		}
		body := &timedBody{
			body:  r.Body,
			rc:    http.NewResponseController(w),
			start: time.Now(),
			grace: grace,
			rate:  rate,
		}
		if err := body.rc.SetReadDeadline(body.deadline()); err != nil {
			// Not a connection of net/http's own (e.g. an in-process test).
			next.ServeHTTP(w, r)
			return
		}
		r.Body = body
		next.ServeHTTP(&timedBodyWriter{ResponseWriter: w, body: body}, r)
	})
}

// errBodyTooSlow is the read error of a body cut for arriving too slowly.
var errBodyTooSlow = errors.New("request body arrived too slowly")

type timedBody struct {
	body     io.ReadCloser
	rc       *http.ResponseController
	start    time.Time
	grace    time.Duration
	rate     int64
	received int64
	tooSlow  atomic.Bool
}

func (b *timedBody) deadline() time.Time {
	d := b.start.Add(b.grace)
	if b.rate > 0 {
		d = d.Add(time.Duration(float64(b.received) / float64(b.rate) * float64(time.Second)))
	}
	return d
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	b.received += int64(n)
	switch {
	case err == io.EOF:
		_ = b.rc.SetReadDeadline(time.Time{})
	case err != nil:
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			b.tooSlow.Store(true)
			return n, fmt.Errorf("%w (%d bytes in %v): %w", errBodyTooSlow, b.received, time.Since(b.start).Round(time.Millisecond), err)
		}
	case n > 0:
		_ = b.rc.SetReadDeadline(b.deadline())
	}
	return n, err
}

func (b *timedBody) Close() error { return b.body.Close() }

// timedBodyWriter answers 408 in place of whatever the handler answers to a
// body that was cut: the transports would call it malformed (400, 422).
type timedBodyWriter struct {
	http.ResponseWriter
	body     *timedBody
	wrote    bool // the handler's header went out
	answered bool // ours did
}

func (w *timedBodyWriter) WriteHeader(status int) {
	if w.wrote || w.answered {
		return
	}
	if w.body.tooSlow.Load() {
		w.answered = true
		w.Header().Set("Connection", "close")
		writeJSONError(w.ResponseWriter, http.StatusRequestTimeout, apperr.RequestTimeout,
			fmt.Sprintf("The request body arrived too slowly: after %v it must keep up at least %d bytes a second. Send it again over a faster connection.",
				w.body.grace, w.body.rate))
		return
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(status)
}

func (w *timedBodyWriter) Write(p []byte) (int, error) {
	if !w.wrote && !w.answered {
		w.WriteHeader(http.StatusOK)
	}
	if w.answered {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

func (w *timedBodyWriter) Flush() {
	if w.answered {
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *timedBodyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
