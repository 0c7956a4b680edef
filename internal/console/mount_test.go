package console_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/auth"
)

// TestMountedOnTheHTTPListener: a coordinator serves the console at
// /console/ (and redirects /console) without credentials, while the API
// its pages call answers 401 without a token, lets a viewer read the
// overview and refuses the viewer's Retry now with 403 and the server's
// message, which the console shows as it is. Runs without a browser.
func TestMountedOnTheHTTPListener(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens.csv")
	if err := os.WriteFile(tokens, []byte(operatorToken+",alice,operator\n"+viewerToken+",victor,viewer\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startCoordinator(t, auth.Config{TokenFile: tokens})
	noRedirect := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path, token string) (*http.Response, map[string]any) {
		t.Helper()
		req, err := http.NewRequestWithContext(context.Background(), method, c.base+path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			_ = json.NewDecoder(resp.Body).Decode(&body)
		}
		return resp, body
	}
	if resp, _ := do("GET", "/console", ""); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/console/" {
		t.Errorf("GET /console: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := do("GET", "/console/", ""); resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("GET /console/: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp, _ := do("GET", "/console/missing.js", ""); resp.StatusCode != 404 {
		t.Errorf("GET /console/missing.js: %d", resp.StatusCode)
	}
	if resp, body := do("GET", "/v1/admin/overview", ""); resp.StatusCode != 401 || body["code"] != "UNAUTHENTICATED" {
		t.Errorf("overview without a token: %d %v", resp.StatusCode, body)
	}
	resp, body := do("GET", "/v1/admin/overview", viewerToken)
	if resp.StatusCode != 200 || body["bucket"] != "60s" || len(body["decisions"].([]any)) != 60 {
		t.Errorf("overview as a viewer: %d %v", resp.StatusCode, body)
	}
	if resp, body := do("POST", "/v1/admin/transactions/order-stuck:retry", viewerToken); resp.StatusCode != 403 ||
		body["code"] != "PERMISSION_DENIED" || !strings.Contains(body["message"].(string), "victor (viewer) may not call") {
		t.Errorf("retry now as a viewer: %d %v", resp.StatusCode, body)
	}
	if resp, body := do("POST", "/v1/admin/transactions/order-stuck:retry", operatorToken); resp.StatusCode != 404 {
		t.Errorf("retry now of an unknown gid as an operator: %d %v", resp.StatusCode, body)
	}
}
