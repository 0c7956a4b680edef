package client

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"

	"google.golang.org/grpc/credentials"

	"github.com/settle-tcc/settle/internal/allowlist"
)

// BearerToken returns per-call credentials that send token to the
// coordinator as "authorization: Bearer <token>" (the coordinator's
// -auth-token-file). It refuses to send the token over a connection
// without TLS unless the target is a loopback address, so a token cannot
// leak in plaintext by mistake. Use it for connections to the coordinator
// only (for example the participant SDK's check-back worker's:
// grpc.WithPerRPCCredentials(client.BearerToken(token))), never for
// participants.
func BearerToken(token string) credentials.PerRPCCredentials {
	return bearer(strings.TrimSpace(token))
}

type bearer string

func (b bearer) GetRequestMetadata(ctx context.Context, uri ...string) (map[string]string, error) {
	ri, _ := credentials.RequestInfoFromContext(ctx)
	if err := credentials.CheckSecurityLevel(ri.AuthInfo, credentials.PrivacyAndIntegrity); err != nil && !loopbackURI(uri) {
		return nil, fmt.Errorf("client: refusing to send a bearer token without TLS to %s (use TLS, or a loopback address)", strings.Join(uri, " "))
	}
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false so that loopback connections without
// TLS work; GetRequestMetadata refuses every other plaintext connection.
func (bearer) RequireTransportSecurity() bool { return false }

func loopbackURI(uris []string) bool {
	if len(uris) == 0 {
		return false
	}
	u, err := url.Parse(uris[0])
	return err == nil && allowlist.IsLoopbackHost(u.Hostname())
}

// WithToken makes the client send token to the coordinator with every call
// (see BearerToken). The token is never sent to participants.
func WithToken(token string) Option {
	return func(c *config) { c.token = token }
}

// TokenFrom returns the token held in file, or, when file is empty, the
// one named by the environment (TokenFromEnv): what a command's
// -token-file flag means.
func TokenFrom(file string) (string, error) {
	if file != "" {
		return ReadTokenFile(file)
	}
	return TokenFromEnv()
}

// TokenFromEnv returns the token named by the environment: the contents of
// the file in SETTLE_TOKEN_FILE (trimmed), else SETTLE_TOKEN, else "".
func TokenFromEnv() (string, error) {
	if f := os.Getenv("SETTLE_TOKEN_FILE"); f != "" {
		return ReadTokenFile(f)
	}
	return strings.TrimSpace(os.Getenv("SETTLE_TOKEN")), nil
}

// ReadTokenFile returns the token held in path (surrounding white space
// removed). An error names the file, never its contents.
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("client: token file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("client: token file %s is empty", path)
	}
	return t, nil
}
