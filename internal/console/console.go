// Package console is the operator console: a small web application served
// by the coordinator's HTTP listener at /console/ (internal/server), whose
// pages call the AdminService HTTP routes (/v1/admin/...) from the
// browser. Its assets are plain HTML, CSS and JavaScript embedded in the
// binary: nothing to build, nothing fetched from elsewhere (no CDN, no
// fonts).
//
// The handler serves only the embedded files, by exact name: no directory
// listing, 404 for anything else. It holds no data and checks no
// credentials; the API routes the pages call do (auth.Policy). The page
// sends the bearer token the operator entered (kept in the tab's
// sessionStorage) in the Authorization header, never in a URL.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// Prefix is where the console is served.
const Prefix = "/console/"

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// contentTypes are the types of the console's file kinds, fixed here so
// they do not depend on the machine's MIME tables.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

// assets maps a name under Prefix ("" for the index) to its file.
var assets = func() map[string]asset {
	m := map[string]asset{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			ct = http.DetectContentType(body)
		}
		sum := sha256.Sum256(body)
		m[strings.TrimPrefix(p, "static/")] = asset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("console: embedded assets: " + err.Error()) // the embed is fixed at build time
	}
	m[""] = m["index.html"]
	return m
}()

// contentSecurityPolicy lets the page load only its own files and talk only
// to its own origin: no inline script, no other site, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the console under Prefix: GET or HEAD of an embedded
// file by exact name (Prefix itself is index.html). Every answer carries
// the Content-Security-Policy above, nosniff and no-referrer; files are
// revalidated on each load (Cache-Control: no-cache, with an ETag, so an
// upgraded coordinator's console is never mixed with a cached one).
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, Prefix)
		a, found := assets[name]
		if !ok || !found {
			http.Error(w, "not found: the console's pages are under "+Prefix, http.StatusNotFound)
			return
		}
		h.Set("Content-Type", a.contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
	})
}

// Redirect sends /console to Prefix.
func Redirect() http.Handler {
	return http.RedirectHandler(Prefix, http.StatusMovedPermanently)
}
