package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/fastimage/api/web"
)

// webStaticPrefix is where the editor's files are served.
const webStaticPrefix = "/static/"

// webAppPaths are the paths that open the editor's page besides /: the
// links in emails. Opening one consumes nothing (mail scanners open links
// too); the page shows a button, and only the mutation it sends uses the
// token.
var webAppPaths = []string{"/verify-email", "/reset-password", "/confirm-email"}

// webFile is one embedded file, ready to serve.
type webFile struct {
	body        []byte
	etag        string
	contentType string
}

// webApp serves the web editor (package web): its page at / and the
// email-link paths, its files under /static/, every response with a
// Content-Security-Policy that allows no inline script or style.
type webApp struct {
	page  webFile
	files map[string]webFile // by path under static/, e.g. "js/app.js"
	csp   string
}

// webContentTypes are the types of the files the editor ships; a file of
// another type is a mistake caught at start.
var webContentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".json": "application/json; charset=utf-8",
}

// newWebApp reads the embedded files once. imageOrigins are origins other
// than the page's own that images may come from (signed storage URLs);
// connectOrigins those the page may fetch from or open WebSockets to.
func newWebApp(files fs.FS, imageOrigins, connectOrigins []string) (*webApp, error) {
	a := &webApp{files: map[string]webFile{}}
	err := fs.WalkDir(files, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		ct, ok := webContentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("web: %s has no known content type", p)
		}
		sum := sha256.Sum256(body)
		a.files[strings.TrimPrefix(p, "static/")] = webFile{body: body, contentType: ct,
			etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`}
		return nil
	})
	if err != nil {
		return nil, err
	}
	page, ok := a.files["index.html"]
	if !ok {
		return nil, fmt.Errorf("web: static/index.html is missing")
	}
	a.page = page
	a.csp = strings.Join([]string{
		"default-src 'self'",
		"script-src 'self'",
		"style-src 'self'",
		strings.TrimSpace("img-src 'self' blob: data: " + strings.Join(imageOrigins, " ")),
		strings.TrimSpace("connect-src 'self' " + strings.Join(connectOrigins, " ")),
		"object-src 'none'",
		"frame-ancestors 'none'",
		"base-uri 'none'",
		"form-action 'self'",
	}, "; ")
	return a, nil
}

// webOrigins are the origins the editor's CSP allows beyond 'self': the
// public URL (images and sockets when the page is opened under another
// name) and, with GCS storage, any https image host, since signed URLs
// point at the storage service.
func webOrigins(publicOrigin string, gcs bool) (images, connect []string) {
	if publicOrigin != "" {
		images = append(images, publicOrigin)
		connect = append(connect, publicOrigin)
		if ws, ok := strings.CutPrefix(publicOrigin, "http"); ok {
			connect = append(connect, "ws"+ws)
		}
	}
	if gcs {
		images = append(images, "https:")
	}
	return images, connect
}

// servePage answers with the editor's page. The router in the page reads
// the path (and the link's token) itself.
func (a *webApp) servePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// The email links carry their token in the URL: never send it on as a
	// Referer (the page's own API calls set their policy per request).
	h.Set("Referrer-Policy", "no-referrer")
	a.serve(w, r, a.page)
}

// serveStatic answers with one of the editor's files, or 404 NOT_FOUND.
func (a *webApp) serveStatic(w http.ResponseWriter, r *http.Request) {
	f, ok := a.files[strings.TrimPrefix(r.URL.Path, webStaticPrefix)]
	if !ok || strings.HasSuffix(r.URL.Path, "/index.html") {
		notFound(w, r)
		return
	}
	a.serve(w, r, f)
}

func (a *webApp) serve(w http.ResponseWriter, r *http.Request, f webFile) {
	h := w.Header()
	h.Set("Content-Security-Policy", a.csp)
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", f.etag)
	// The files keep their names from release to release, so a browser
	// checks each time (a 304 when unchanged) rather than run old modules
	// next to new ones.
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}

// mustNewWebApp serves the embedded editor. Its files are fixed when the
// binary is built, so a problem with them is a build mistake: it panics,
// and every server test catches it.
func mustNewWebApp(imageOrigins, connectOrigins []string) *webApp {
	a, err := newWebApp(web.Static, imageOrigins, connectOrigins)
	if err != nil {
		panic(err)
	}
	return a
}
