package browsertest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// chromium is the one browser process of this test binary, started by the
// first test that needs it and stopped by TestMain.
var chromium struct {
	once    sync.Once
	ctx     context.Context // the browser's chromedp context; tabs derive from it
	stop    func()
	err     error
	profile string
}

// parallelTests is how many tests run at once unless -test.parallel says
// otherwise: they mostly wait for the browser and the service, so more
// than GOMAXPROCS of them keep two cores busy without crowding them.
const parallelTests = 4

func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", strconv.Itoa(parallelTests))
	}
	code := m.Run()
	if chromium.stop != nil {
		chromium.stop()
	}
	if chromium.profile != "" {
		_ = os.RemoveAll(chromium.profile)
	}
	os.Exit(code)
}

// chromiumPath is CHROMIUM_BIN, else Debian's /usr/bin/chromium.
func chromiumPath() (string, error) {
	path, from := os.Getenv("CHROMIUM_BIN"), "CHROMIUM_BIN"
	if path == "" {
		path, from = "/usr/bin/chromium", "the default path"
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("no Chromium at %s (%s): run .ci/ensure-chromium, which installs Debian's chromium package and prints its path (make test runs it), or set CHROMIUM_BIN to a Chromium binary", path, from)
	case err != nil:
		return "", fmt.Errorf("Chromium at %s (%s): %w; run .ci/ensure-chromium or set CHROMIUM_BIN", path, from, err)
	case fi.IsDir() || fi.Mode()&0o111 == 0:
		return "", fmt.Errorf("%s (%s) is not an executable file: run .ci/ensure-chromium or set CHROMIUM_BIN to a Chromium binary", path, from)
	}
	return path, nil
}

// browser returns the context of the test binary's Chromium, starting it the
// first time. A test without a browser fails: it never passes unseen.
func browser(t *testing.T) context.Context {
	t.Helper()
	chromium.once.Do(func() {
		path, err := chromiumPath()
		if err != nil {
			chromium.err = err
			return
		}
		profile, err := os.MkdirTemp("", "browsertest-chromium-")
		if err != nil {
			chromium.err = err
			return
		}
		chromium.profile = profile
		allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
			chromedp.ExecPath(path),
			chromedp.UserDataDir(profile),
			chromedp.Headless,
			chromedp.NoSandbox,
			chromedp.DisableGPU,
			chromedp.NoFirstRun,
			chromedp.NoDefaultBrowserCheck,
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("disable-dev-shm-usage", true),
			chromedp.Flag("disable-extensions", true),
			// Tabs of parallel tests are all in the background: their
			// timers and rendering must not be slowed down for it.
			chromedp.Flag("disable-background-timer-throttling", true),
			chromedp.Flag("disable-backgrounding-occluded-windows", true),
			chromedp.Flag("disable-renderer-backgrounding", true),
			chromedp.Flag("hide-scrollbars", true),
			chromedp.Flag("mute-audio", true),
			chromedp.WindowSize(1280, 800),
		)
		ctx, cancel := chromedp.NewContext(allocCtx)
		// The first Do starts the process; its context must outlive it.
		if err := chromedp.Do(ctx); err != nil {
			cancel()
			cancelAlloc()
			chromium.err = fmt.Errorf("start Chromium at %s: %w (run .ci/ensure-chromium to check the installation)", path, err)
			return
		}
		chromium.ctx = ctx
		chromium.stop = func() { cancel(); cancelAlloc() }
	})
	if chromium.err != nil {
		t.Fatalf("browser tests need Chromium: %v", chromium.err)
	}
	return chromium.ctx
}
