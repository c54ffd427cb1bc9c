// Package browsertest proves the web editor in a real browser: its tests run
// the whole service in-process (internal/app, a fresh test database, the
// built-in generator, mail kept in the development outbox) on a real
// 127.0.0.1 listener, and drive Debian's Chromium through the DevTools
// protocol (chromedp) the way a user would — typing into forms, clicking,
// painting a mask with the mouse, going offline mid-generation.
//
// One headless Chromium serves the whole test binary; each test gets its own
// incognito-like browser context, so tests share no cookies and run in
// parallel. Every test fails on a console error, an uncaught exception or a
// failed request to the service, and keeps a screenshot of each screen it
// visits, at a phone and a desktop size, in .artifacts/screens/ at the
// repository root (git-ignored) for people to look at.
//
// Chromium comes from CHROMIUM_BIN, else /usr/bin/chromium; .ci/ensure-chromium
// installs it (make test runs it). Without a browser the tests fail, never
// skip. The package holds only tests.
package browsertest
