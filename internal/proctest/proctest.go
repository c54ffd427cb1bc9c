// Package proctest builds the fastimage binary for the tests and benchmarks
// that run it as a real process (the command's own tests, the load tool's,
// the fault drills, the socket benchmarks).
package proctest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// Binary builds ./cmd/fastimage once per test binary, without -race, so the
// processes under test behave as in production, and returns its path.
func Binary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fastimage-bin")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "fastimage")
		out, err := exec.Command("go", "build", "-o", binary, "github.com/fastimage/api/cmd/fastimage").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("%w\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatalf("go build ./cmd/fastimage: %v", buildErr)
	}
	return binary
}

// Cleanup removes the binary Binary built, if any; call it from TestMain
// after m.Run.
func Cleanup() {
	if binary != "" {
		os.RemoveAll(filepath.Dir(binary))
	}
}
