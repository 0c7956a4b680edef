package client

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBearerTokenPlaintext: the token goes in plaintext only to loopback
// targets; elsewhere GetRequestMetadata refuses without naming the token.
func TestBearerTokenPlaintext(t *testing.T) {
	b := BearerToken("  tok-0123456789abcdef \n")
	for _, uri := range []string{"https://127.0.0.1:7400/settle.tcc.v1.CoordinatorService", "https://localhost:7400/x", "https://[::1]:7400/x"} {
		md, err := b.GetRequestMetadata(context.Background(), uri)
		if err != nil || md["authorization"] != "Bearer tok-0123456789abcdef" {
			t.Errorf("%s: %v %v", uri, md, err)
		}
	}
	for _, uri := range []string{"https://10.1.2.3:7400/x", "https://settle.svc:7400/x", "https://0.0.0.0:7400/x"} {
		_, err := b.GetRequestMetadata(context.Background(), uri)
		if err == nil || strings.Contains(err.Error(), "tok-") {
			t.Errorf("%s: %v, want a refusal without the token", uri, err)
		}
	}
	if _, err := b.GetRequestMetadata(context.Background()); err == nil {
		t.Error("no target: the token was sent")
	}
}

func TestTokenFromEnvAndFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("from-file-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SETTLE_TOKEN", "from-env-0123456789")
	t.Setenv("SETTLE_TOKEN_FILE", "")
	if tok, err := TokenFromEnv(); err != nil || tok != "from-env-0123456789" {
		t.Errorf("SETTLE_TOKEN: %q %v", tok, err)
	}
	t.Setenv("SETTLE_TOKEN_FILE", path)
	if tok, err := TokenFromEnv(); err != nil || tok != "from-file-0123456789" {
		t.Errorf("SETTLE_TOKEN_FILE wins: %q %v", tok, err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTokenFile(empty); err == nil {
		t.Error("an empty token file was accepted")
	}
	if _, err := ReadTokenFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing token file was accepted")
	}
}
