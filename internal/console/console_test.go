package console_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/settle-tcc/settle/internal/console"
)

func get(t *testing.T, h http.Handler, method, path string, header ...string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAssets: each file is served with its content type, revalidated on
// each load (no-cache with an ETag that a conditional request matches),
// and the security headers; the index at the prefix.
func TestAssets(t *testing.T) {
	h := console.Handler()
	for path, want := range map[string]string{
		"/console/":           "text/html; charset=utf-8",
		"/console/index.html": "text/html; charset=utf-8",
		"/console/app.js":     "text/javascript; charset=utf-8",
		"/console/style.css":  "text/css; charset=utf-8",
	} {
		resp := get(t, h, "GET", path)
		text := body(t, resp)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != want || len(text) == 0 {
			t.Errorf("GET %s: %d %q (%d bytes), want 200 %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(text), want)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q", path, cc)
		}
		for _, hdr := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "ETag"} {
			if resp.Header.Get(hdr) == "" {
				t.Errorf("GET %s: no %s", path, hdr)
			}
		}
		again := get(t, h, "GET", path, "If-None-Match", resp.Header.Get("ETag"))
		if again.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d, want 304", path, again.StatusCode)
		}
		head := get(t, h, "HEAD", path)
		if head.StatusCode != 200 || body(t, head) != "" {
			t.Errorf("HEAD %s: %d", path, head.StatusCode)
		}
	}
	if csp := get(t, h, "GET", "/console/").Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") ||
		strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q", csp)
	}
}

// TestNotServed: unknown files, directories and other methods are
// refused; nothing is listed.
func TestNotServed(t *testing.T) {
	h := console.Handler()
	for _, path := range []string{"/console/nope.js", "/console/static/", "/console/static/app.js", "/console/../go.mod",
		"/console/index.html/", "/console/.", "/elsewhere/app.js"} {
		resp := get(t, h, "GET", path)
		if text := body(t, resp); resp.StatusCode != 404 || strings.Contains(text, "app.js") {
			t.Errorf("GET %s: %d %q, want 404 without a listing", path, resp.StatusCode, text)
		}
	}
	resp := get(t, h, "POST", "/console/")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /console/: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if resp := get(t, console.Redirect(), "GET", "/console"); resp.StatusCode != http.StatusMovedPermanently ||
		resp.Header.Get("Location") != "/console/" {
		t.Errorf("GET /console: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestNoNetworkNoHTML: the pages load nothing from elsewhere (no http(s)
// URL, no CDN, no web font) and the script never writes HTML from
// strings (innerHTML, outerHTML, insertAdjacentHTML, document.write), so
// server data can only ever be text.
func TestNoNetworkNoHTML(t *testing.T) {
	h := console.Handler()
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|@font-face|url\(`)
	for _, path := range []string{"/console/", "/console/app.js", "/console/style.css"} {
		text := body(t, get(t, h, "GET", path))
		// The SVG namespace is a name, not a fetch.
		text = strings.ReplaceAll(text, `"http://www.w3.org/2000/svg"`, "")
		if m := external.FindString(text); m != "" {
			t.Errorf("%s refers to %q", path, m)
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
			if strings.Contains(text, bad) {
				t.Errorf("%s uses %s", path, bad)
			}
		}
	}
	if js := body(t, get(t, h, "GET", "/console/app.js")); strings.Count(js, "\n") > 600 {
		t.Errorf("app.js has %d lines; split it", strings.Count(js, "\n"))
	}
}
