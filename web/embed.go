// Package web holds the web editor: one HTML page, its stylesheet and its
// JavaScript modules, written to run as they are (no build step) and
// embedded in the binary. internal/server serves them: the page at / and at
// the paths emailed links open, the files under /static/.
package web

import "embed"

// Static is the editor's files, under "static/". static/index.html is the
// page; it loads everything else from /static/.
//
//go:embed static
var Static embed.FS
