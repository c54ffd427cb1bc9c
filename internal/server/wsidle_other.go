//go:build !linux

package server

// peek says there may be something to read: elsewhere than Linux the reader
// waits in gorilla's read path, as it would without idleReader.
func peek(uintptr, []byte) (int, error) { return 1, nil }

// readPoller is Linux's (epoll); elsewhere every socket's reader waits on a
// goroutine of its own.
type readPoller struct{}

func sharedPoller() *readPoller                   { return nil }
func (*readPoller) token() uint64                 { return 0 }
func (*readPoller) park(*idleReader, func()) bool { return false }
func (*readPoller) wake(uint64)                   {}
