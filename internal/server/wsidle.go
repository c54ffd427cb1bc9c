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
// Control frames between messages are taken here: a pong, the client's
// answer to our ping, is reported to pong; a ping of the client's (many
// native clients send their own) to ping, with its payload, to be
// answered. gorilla would take either inside its wait for the next
// message, deep in its read path, where the socket would then wait until
// its next message.
func (r *idleReader) wait(pong func(), ping func(payload []byte), resume func()) (parked bool) {
	if r == nil || r.raw == nil {
		return false
	}
	for {
		if r.br.Buffered() == 0 && !r.kernelHasBytes() {
			if r.poller != nil && r.poller.park(r, resume) {
				return true
			}
			_ = r.raw.Read(readable)
		}
		switch op, payload := r.takeControl(); op {
		case websocket.PongMessage:
			pong()
		case websocket.PingMessage:
			ping(payload)
		default:
			return false
		}
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

// Control frames as a client sends them: final, masked, with at most 125
// bytes of payload (RFC 6455, 5.5).
const (
	finPing       = 0x80 | websocket.PingMessage
	finPong       = 0x80 | websocket.PongMessage
	maskBit       = 0x80
	maxControlLen = 125
)

// takeControl takes the next frame from gorilla's buffer if it is a whole
// ping or pong, and returns its opcode and (unmasked) payload; anything
// else (a message, a close, a malformed frame, an error) is left for
// gorilla, and the opcode is 0.
func (r *idleReader) takeControl() (op int, payload []byte) {
	h, err := r.br.Peek(2)
	if err != nil || (h[0] != finPong && h[0] != finPing) || h[1]&maskBit == 0 || int(h[1]&^maskBit) > maxControlLen {
		return 0, nil
	}
	op, size := int(h[0]&0x0f), int(h[1]&^maskBit)
	frame, err := r.br.Peek(2 + 4 + size) // header, mask, payload
	if err != nil {
		return 0, nil
	}
	if op == websocket.PingMessage {
		mask := frame[2:6]
		payload = make([]byte, size)
		for i, b := range frame[6:] {
			payload[i] = b ^ mask[i%4]
		}
	}
	_, _ = r.br.Discard(len(frame))
	return op, payload
}

// readable peeks at the socket without taking anything: false, to be
// called again once the poller says the descriptor is readable, while the
// kernel has nothing for it.
func readable(fd uintptr) bool {
	var b [1]byte
	_, err := peek(fd, b[:])
	return err != syscall.EAGAIN
}
