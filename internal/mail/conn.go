package mail

import (
	"context"
	"net"
	"sync"
	"time"
)

// aLongTimeAgo is a deadline in the past, which makes blocked I/O return.
var aLongTimeAgo = time.Unix(1, 0)

// ctxConn is a connection bound to a context: no deadline set on it reaches
// past the context's, and cancelling the context interrupts whatever read or
// write is blocked. go-mail honours the context only while dialling; this
// makes it hold for the whole conversation.
type ctxConn struct {
	net.Conn
	ctx  context.Context
	stop func() bool

	// mu orders deadline changes against cancellation: whichever comes
	// second sees the other, so a cancellation is never overwritten.
	mu sync.Mutex
}

// bindConn binds c to ctx until Close.
func bindConn(ctx context.Context, c net.Conn) *ctxConn {
	cc := &ctxConn{Conn: c, ctx: ctx}
	cc.stop = context.AfterFunc(ctx, func() {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		_ = cc.Conn.SetDeadline(aLongTimeAgo)
	})
	return cc
}

// clamp returns t, or the context's deadline if that comes first, or a time
// in the past once the context is done. The zero t means no deadline.
// The caller holds mu.
func (c *ctxConn) clamp(t time.Time) time.Time {
	if c.ctx.Err() != nil {
		return aLongTimeAgo
	}
	if dl, ok := c.ctx.Deadline(); ok && (t.IsZero() || dl.Before(t)) {
		return dl
	}
	return t
}

// SetDeadline sets the read and write deadlines, never past the context's.
func (c *ctxConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetDeadline(c.clamp(t))
}

// SetReadDeadline sets the read deadline, never past the context's.
func (c *ctxConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetReadDeadline(c.clamp(t))
}

// SetWriteDeadline sets the write deadline, never past the context's.
func (c *ctxConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetWriteDeadline(c.clamp(t))
}

// Close unbinds the connection from its context and closes it.
func (c *ctxConn) Close() error {
	c.stop()
	return c.Conn.Close()
}
