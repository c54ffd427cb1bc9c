package stripemock

import "syscall"

// sysProcAttr makes the kernel kill stripe-mock when the test binary ends,
// however it ends (os.Exit after the tests, a panic, a timeout, SIGKILL), so
// no run leaves one behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
