//go:build !linux

package stripemock

import "syscall"

// sysProcAttr: only Linux can tie a child's life to its parent's, so
// elsewhere stripe-mock outlives the test binary (it keeps no state and
// listens on loopback only). CI runs on Linux.
func sysProcAttr() *syscall.SysProcAttr { return nil }
