package server

import (
	"log/slog"
	"sync"
	"syscall"
	"unsafe"
)

// peek is recv(2) with MSG_PEEK|MSG_DONTWAIT: it never blocks, and leaves
// what it sees in the kernel's buffer.
func peek(fd uintptr, b []byte) (int, error) {
	n, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// readPoller waits for every parked socket of the process on one epoll
// instance and one goroutine, so that an idle socket holds no goroutine
// (and no stack) at all: a goroutine waiting for each, however shallow,
// costs 2 KiB of stack and its share of the heap the collector lets grow
// around it. Each socket is registered one-shot: it reports once, and is
// parked again only after its reader has taken what came.
//
// The runtime's own poller keeps the descriptor too (edge-triggered, for
// reads and writes); the two do not interfere, and reads still go through
// net.Conn.
type readPoller struct {
	epfd int

	mu     sync.Mutex
	next   uint64            // the last token given
	parked map[uint64]func() // token → resume, for each socket parked now
}

var sharedPoller = sync.OnceValue(func() *readPoller {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		// Sockets then wait on goroutines of their own, as elsewhere.
		slog.Warn("websocket read poller unavailable; idle sockets each keep a goroutine", "err", err)
		return nil
	}
	p := &readPoller{epfd: epfd, parked: make(map[uint64]func())}
	go p.loop()
	return p
})

// token names one socket to the poller for as long as it is open (a
// descriptor's number is reused once it closes; a token is not).
func (p *readPoller) token() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	return p.next
}

// park has resume called, on a new goroutine, once r's connection is
// readable (bytes, the peer's close or an error) or r is woken. It reports
// false when it could not park r (a closed connection, a full epoll set):
// the caller then waits for itself. Nothing of r may be touched by the
// caller after a true: resume may be running already.
func (p *readPoller) park(r *idleReader, resume func()) bool {
	p.mu.Lock()
	p.parked[r.token] = resume
	p.mu.Unlock()
	var ctlErr error
	err := r.raw.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT}
		*(*uint64)(unsafe.Pointer(&ev.Fd)) = r.token // Fd and Pad: the 64 bits of epoll_data
		// Parked before (the usual case): re-arm; else add.
		ctlErr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
		if ctlErr == syscall.ENOENT {
			ctlErr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
		}
	})
	if err == nil && ctlErr == nil {
		return true
	}
	p.mu.Lock()
	_, still := p.parked[r.token]
	delete(p.parked, r.token)
	p.mu.Unlock()
	return !still // woken meanwhile: resume runs on the waker's goroutine
}

// wake has the resume of the socket of token called now if it is parked:
// after the server closed the connection, whose descriptor then left the
// epoll set without a word, its reader finds the close and ends.
func (p *readPoller) wake(token uint64) {
	p.mu.Lock()
	resume, ok := p.parked[token]
	delete(p.parked, token)
	p.mu.Unlock()
	if ok {
		go resume()
	}
}

func (p *readPoller) loop() {
	events := make([]syscall.EpollEvent, 256)
	resumes := make([]func(), 0, len(events))
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			// Nothing else can fail for a valid descriptor and buffer.
			panic("websocket read poller: epoll_wait: " + err.Error())
		}
		p.mu.Lock()
		for i := range events[:n] {
			token := *(*uint64)(unsafe.Pointer(&events[i].Fd))
			if resume, ok := p.parked[token]; ok {
				delete(p.parked, token)
				resumes = append(resumes, resume)
			}
		}
		p.mu.Unlock()
		for i, resume := range resumes {
			go resume()
			resumes[i] = nil
		}
		resumes = resumes[:0]
	}
}
