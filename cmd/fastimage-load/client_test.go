package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
)

func TestCodeOfGroupsFailures(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp4", Source: &net.TCPAddr{IP: net.IPv4(127, 9, 8, 7)},
		Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, Err: fmt.Errorf("connect: %w", syscall.ENETUNREACH)}
	for _, c := range []struct {
		err  error
		want string
	}{
		{&opError{code: "RATE_LIMITED", msg: "Too many attempts."}, "RATE_LIMITED"},
		{fmt.Errorf("signIn: %w", &opError{code: "HTTP 503"}), "HTTP 503"},
		{context.DeadlineExceeded, "transport: timeout"},
		{fmt.Errorf("post: %w", syscall.ECONNREFUSED), "transport: connection refused"},
		{io.ErrUnexpectedEOF, "transport: connection closed"},
		{dial, "transport: dial: " + syscall.ENETUNREACH.Error()},
		{errors.New("something else"), "transport: something else"},
	} {
		if got := codeOf(c.err); got != c.want {
			t.Errorf("codeOf(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
