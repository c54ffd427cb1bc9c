package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// tabTimeout bounds everything one test does in its tab.
const tabTimeout = 5 * time.Minute

// slowdown stretches every wait: under the race detector on a crowded
// machine a password hash or a generator step takes many times longer, and
// a wait only lasts its full length when the test is failing anyway.
const slowdown = 4

// tab is one test's page in a fresh browser context (its own cookies and
// storage, like an incognito window). It records every problem the page
// reports — console errors, uncaught exceptions, failed requests to the
// service — and the test fails with them when it ends.
type tab struct {
	t   *testing.T
	ctx context.Context
	svc *service

	mu        sync.Mutex
	problems  []string
	tolerate  *regexp.Regexp // problems it matches are expected for now
	tolerated []string
	requests  map[network.RequestID]string // URL of each request seen
}

// openTab opens a desktop-sized tab on svc in a new browser context.
func openTab(t *testing.T, svc *service) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser(t), chromedp.WithNewBrowserContext())
	tb := &tab{t: t, svc: svc, requests: map[network.RequestID]string{}}
	if err := chromedp.Listen(ctx, tb.observe); err != nil {
		cancel()
		t.Fatalf("open a tab: %v", err)
	}
	// Screenshots of an earlier run of this test would mislead.
	if old, err := filepath.Glob(filepath.Join(filepath.Dir(screenPath(t, "x")), unsafeInName.ReplaceAllString(t.Name(), "_")+"-*.png")); err == nil {
		for _, f := range old {
			_ = os.Remove(f)
		}
	}
	actx, cancelActions := context.WithTimeout(ctx, tabTimeout)
	tb.ctx = actx
	t.Cleanup(func() {
		tb.mu.Lock()
		for _, p := range tb.problems {
			t.Errorf("the page reported: %s", p)
		}
		tb.mu.Unlock()
		cancelActions()
		cancel()
	})
	tb.do(chromedp.EmulateViewport(1280, 800))
	return tb
}

// observe runs on chromedp's reading goroutine for every event of the tab:
// it must be quick and must not call the browser.
func (tb *tab) observe(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			tb.report("console.error: " + remoteText(ev.Args))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg += " " + d.Exception.Description
		}
		tb.report(fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError {
			tb.report(fmt.Sprintf("browser log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
		}
	case *network.EventRequestWillBeSent:
		tb.mu.Lock()
		tb.requests[ev.RequestID] = ev.Request.URL
		tb.mu.Unlock()
	case *network.EventLoadingFailed:
		tb.mu.Lock()
		u := tb.requests[ev.RequestID]
		tb.mu.Unlock()
		// A request the page itself abandoned (an image replaced, a
		// navigation away) is canceled, not failed.
		if strings.HasPrefix(u, tb.svc.URL) && !ev.Canceled {
			tb.report(fmt.Sprintf("request failed: %s %s %s", u, ev.ErrorText, ev.BlockedReason))
		}
	}
}

func (tb *tab) report(msg string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.tolerate != nil && tb.tolerate.MatchString(msg) {
		tb.tolerated = append(tb.tolerated, msg)
		return
	}
	tb.problems = append(tb.problems, msg)
}

func remoteText(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		switch {
		case a.Type == runtime.RemoteObjectTypeString:
			var s string
			_ = json.Unmarshal(a.Value, &s)
			parts = append(parts, s)
		case a.Description != "":
			parts = append(parts, a.Description)
		case len(a.Value) > 0:
			parts = append(parts, string(a.Value))
		default:
			parts = append(parts, string(a.Type))
		}
	}
	return strings.Join(parts, " ")
}

// expectProblems makes problems matching re expected until the returned
// func is called, which returns the ones that occurred.
func (tb *tab) expectProblems(re *regexp.Regexp) (end func() []string) {
	tb.mu.Lock()
	tb.tolerate, tb.tolerated = re, nil
	tb.mu.Unlock()
	return func() []string {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		got := tb.tolerated
		tb.tolerate, tb.tolerated = nil, nil
		return got
	}
}

func (tb *tab) problemCount() int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return len(tb.problems)
}

// do runs actions, failing the test (with a screenshot) if one fails.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, actions...); err != nil {
		tb.fatalf("browser action failed: %v", err)
	}
}

// fatalf fails the test after keeping a screenshot of the page as it is.
func (tb *tab) fatalf(format string, args ...any) {
	tb.t.Helper()
	msg := fmt.Sprintf(format, args...)
	if tb.ctx.Err() == nil {
		if buf, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot()); err == nil {
			path := screenPath(tb.t, "FAILED")
			if os.WriteFile(path, buf, 0o644) == nil {
				msg += "\n(screenshot: " + path + ")"
			}
		}
		if text, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 1500) : ""`)); err == nil {
			msg += "\npage text:\n" + text
		}
	}
	tb.t.Fatal(msg)
}

// eval evaluates a JavaScript expression in the page and decodes its value.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.fatalf("evaluate %s: %v", firstLineOf(expr), err)
	}
	return v
}

func firstLineOf(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i > 0 {
		return s[:i] + " …"
	}
	return s
}

// waitFor polls expr (a JavaScript expression) until it is truthy, and
// fails the test if it is not within timeout or if the page reports a
// problem meanwhile. what says what the user would be waiting for.
func (tb *tab) waitFor(what, expr string, timeout time.Duration) {
	tb.t.Helper()
	timeout *= slowdown
	deadline := time.Now().Add(timeout)
	for {
		ok, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](`!!(`+expr+`)`))
		if err == nil && ok {
			return
		}
		if n := tb.problemCount(); n > 0 {
			tb.fatalf("the page reported %d problem(s) (listed below) while waiting for %s", n, what)
		}
		if time.Now().After(deadline) {
			detail := ""
			if err != nil {
				detail = fmt.Sprintf(" (last error: %v)", err)
			}
			tb.fatalf("waited %s for %s%s", timeout, what, detail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// visibleJS is a JavaScript expression that is true when sel matches an
// element that is rendered (not display:none, not hidden).
func visibleJS(sel string) string {
	return fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden"; })()`, sel)
}

func (tb *tab) waitVisible(sel string) {
	tb.t.Helper()
	tb.waitFor(sel+" to show", visibleJS(sel), 15*time.Second)
}

// goTo loads a URL of the service (a path such as "/#/signin").
func (tb *tab) goTo(path string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(tb.svc.URL + path))
}

// click clicks the element as a user does: a mouse press and release at its
// centre, once it shows.
func (tb *tab) click(sel string) {
	tb.t.Helper()
	tb.waitVisible(sel)
	tb.do(chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// typeInto focuses a field, clears it, and types text key by key.
func (tb *tab) typeInto(sel, text string) {
	tb.t.Helper()
	tb.waitVisible(sel)
	// Select what is there, as a user does before typing over it (a
	// number field cannot be selected: empty it instead).
	eval[bool](tb, fmt.Sprintf(`(() => {
		const e = document.querySelector(%q);
		e.focus();
		try { e.select(); } catch { }
		if (e.type === "number" && e.value !== "") {
			e.value = "";
			e.dispatchEvent(new Event("input", {bubbles: true}));
		}
		return true;
	})()`, sel))
	tb.do(chromedp.SendKeys(chromedp.CSS(sel), text))
}

// pressEnter sends the Enter key to the focused element.
func (tb *tab) pressEnter() {
	tb.t.Helper()
	tb.do(chromedp.KeyEvent("\r"))
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	return eval[string](tb, fmt.Sprintf(`(document.querySelector(%q) || {}).innerText || ""`, sel))
}

func (tb *tab) attr(sel, name string) string {
	tb.t.Helper()
	return eval[string](tb, fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? (e.getAttribute(%q) || "") : ""; })()`, sel, name))
}

func (tb *tab) count(sel string) int {
	tb.t.Helper()
	return eval[int](tb, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))
}

// mouse sends one mouse event at page coordinates, with the left button.
func (tb *tab) mouse(typ input.DispatchMouseEventType, x, y float64, buttons int64) {
	tb.t.Helper()
	tb.do(chromedp.MouseEvent(typ, x, y, func(p *input.DispatchMouseEventParams) {
		p.Button = input.MouseButtonLeft
		p.Buttons = buttons
		if typ != input.DispatchMouseEventTypeMouseMoved {
			p.ClickCount = 1
		}
	}))
}

// viewports are the sizes every screen is photographed at.
var viewports = []struct {
	name          string
	width, height int64
	mobile        bool
}{
	{"phone", 390, 844, true},
	{"desktop", 1280, 800, false},
}

// screens keeps a screenshot of the page at each viewport size, in
// .artifacts/screens/, and leaves the tab at the desktop size.
func (tb *tab) screens(name string) {
	tb.t.Helper()
	for _, vp := range viewports {
		opts := []chromedp.EmulateViewportOption{}
		if vp.mobile {
			opts = append(opts, chromedp.EmulateMobile)
		}
		tb.do(chromedp.EmulateViewport(vp.width, vp.height, opts...))
		// Let the page lay itself out at the new size (two frames).
		eval[bool](tb, `new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`)
		// A screen that is wider than the phone scrolls sideways: say
		// which element sticks out.
		if wide := eval[string](tb, `(() => {
			const vw = document.documentElement.clientWidth;
			if (document.documentElement.scrollWidth <= vw) return "";
			let worst = null, right = vw;
			for (const e of document.body.querySelectorAll("*")) {
				const r = e.getBoundingClientRect();
				if (r.width > 0 && r.right > right + 0.5) { worst = e; right = r.right; }
			}
			const name = worst ? worst.tagName.toLowerCase() + (worst.id ? "#" + worst.id : "") + (worst.className && typeof worst.className === "string" ? "." + worst.className.trim().split(/\s+/).join(".") : "") : "?";
			return name + " reaches " + Math.round(right) + "px of " + vw + "px";
		})()`); wide != "" {
			tb.t.Errorf("screen %q at %s size (%dx%d) scrolls sideways: %s", name, vp.name, vp.width, vp.height, wide)
		}
		buf, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			tb.fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(screenPath(tb.t, name+"-"+vp.name), buf, 0o644); err != nil {
			tb.t.Fatalf("keep screenshot: %v", err)
		}
	}
}

var unsafeInName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// screenPath is where a screenshot of the test is kept: .artifacts/screens/
// at the repository root.
func screenPath(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), ".artifacts", "screens")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("make screenshot folder: %v", err)
	}
	return filepath.Join(dir, unsafeInName.ReplaceAllString(t.Name()+"-"+name, "_")+".png")
}

// repoRoot is the folder holding go.mod, above the package's folder.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", dir)
		}
	}
}
