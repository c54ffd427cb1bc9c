package server

import (
	"bufio"
	"net"
	"syscall"

	"github.com/gorilla/websocket"
)

// idleReader lets a socket wait for the client's next message without a
// goroutine: on Linux it is parked with the process's readPoller, and a
// new goroutine reads once the client has sent something. Elsewhere (and
// should the poller refuse it) its reader waits here, with a shallow stack:
// gorilla waits for a frame deep in its read path (frame parsing, bufio,
// net), and the runtime keeps a goroutine's stack as large as the depth it
// waits at.
type idleReader struct {
	raw syscall.RawConn // nil when the connection has no descriptor (TLS, tests)
	br  *bufio.Reader   // gorilla's read buffer; nil if it is not ours

	poller *readPoller // nil where there is none
	token  uint64      // the socket's name to the poller
}

func newIdleReader(c net.Conn, br *bufio.Reader) *idleReader {
	sc, ok := c.(syscall.Conn)
	if !ok || br == nil {
		return &idleReader{}
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return &idleReader{}
	}
	r := &idleReader{raw: raw, br: br, poller: sharedPoller()}
	if r.poller != nil {
		r.token = r.poller.token()
	}
	return r
}

// wait returns false once the connection may have something to read: bytes
// left in gorilla's buffer, bytes (or the end) in the kernel's, an error,
// or the read deadline; gorilla's read then finds them at once. It returns
// true when it parked the socket instead: resume is then called on a new
// goroutine once there is something to read (or the server closed the
// socket, see wake), and the caller must leave the socket to it.
//
// A pong, the client's answer to our ping, is taken here and reported to
// pong: gorilla would take it inside its wait for the next message, deep in
// its read path, where the socket would then wait until its next message.
func (r *idleReader) wait(pong, resume func()) (parked bool) {
	if r == nil || r.raw == nil {
		return false
	}
	for {
		if r.br.Buffered() == 0 {
			if r.poller != nil && !r.kernelHasBytes() && r.poller.park(r, resume) {
				return true
			}
			_ = r.raw.Read(readable)
		}
		if !r.skipPong() {
			return false
		}
		pong()
	}
}

// kernelHasBytes reports whether a read would not wait: the kernel holds
// bytes for the socket, or its end, or the connection is closed.
func (r *idleReader) kernelHasBytes() bool {
	has := true
	_ = r.raw.Control(func(fd uintptr) { has = readable(fd) })
	return has
}

// wake ends the wait of a parked socket whose connection the server
// closed: its resume runs, and its reader finds the close.
func (r *idleReader) wake() {
	if r != nil && r.poller != nil {
		r.poller.wake(r.token)
	}
}

// Pong frames as a client sends them: final, masked, with at most 125
// bytes of payload (RFC 6455, 5.5).
const (
	finPong       = 0x80 | websocket.PongMessage
	maskBit       = 0x80
	maxControlLen = 125
)

// skipPong takes the next frame from gorilla's buffer if it is a whole
// pong, and reports whether it did; anything else (a message, a ping, a
// close, a malformed frame, an error) is left for gorilla.
func (r *idleReader) skipPong() bool {
	h, err := r.br.Peek(2)
	if err != nil || h[0] != finPong || h[1]&maskBit == 0 || int(h[1]&^maskBit) > maxControlLen {
		return false
	}
	n := 2 + 4 + int(h[1]&^maskBit) // header, mask, payload
	if _, err := r.br.Peek(n); err != nil {
		return false
	}
	_, _ = r.br.Discard(n)
	return true
}

// readable peeks at the socket without taking anything: false, to be
// called again once the poller says the descriptor is readable, while the
// kernel has nothing for it.
func readable(fd uintptr) bool {
	var b [1]byte
	_, err := peek(fd, b[:])
	return err != syscall.EAGAIN
}
