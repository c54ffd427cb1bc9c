package server

import (
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
