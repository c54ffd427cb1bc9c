package server

import (
	"bufio"
	"net"
	"syscall"
)

// idleReader lets a socket's reader wait for the client's next message
// with a shallow stack. gorilla waits for a frame deep in its read path
// (frame parsing, bufio, net), and the runtime keeps a goroutine's stack as
// large as the depth it waits at: every idle socket would hold 4 KiB of
// stack for that alone. Waiting here first, until the kernel has bytes for
// the socket, lets the collector shrink an idle reader's stack to the
// smallest size.
type idleReader struct {
	raw syscall.RawConn // nil when the connection has no descriptor (TLS, tests)
	br  *bufio.Reader   // gorilla's read buffer; nil if it is not ours
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
	return &idleReader{raw: raw, br: br}
}

// wait returns once the connection may have something to read: bytes left
// in gorilla's buffer, bytes (or the end) in the kernel's, an error, or the
// read deadline. gorilla's read then finds them at once, or the error.
func (r *idleReader) wait() {
	if r == nil || r.raw == nil || r.br.Buffered() > 0 {
		return
	}
	_ = r.raw.Read(readable)
}

// readable peeks at the socket without taking anything: false, to be
// called again once the poller says the descriptor is readable, while the
// kernel has nothing for it.
func readable(fd uintptr) bool {
	var b [1]byte
	_, err := peek(fd, b[:])
	return err != syscall.EAGAIN
}
