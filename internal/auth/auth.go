package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
)

// Role is what an identity may do.
type Role string

// The roles.
const (
	Initiator   Role = "initiator"
	Participant Role = "participant"
	Operator    Role = "operator"
	// Viewer may read what operators read (the admin listing, a
	// transaction, its history, the overview: the console's pages) but
	// change nothing.
	Viewer Role = "viewer"
)

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	switch r := Role(strings.ToLower(strings.TrimSpace(s))); r {
	case Initiator, Participant, Operator, Viewer:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want initiator, participant, operator or viewer)", s)
}

// Identity is an authenticated caller.
type Identity struct {
	// Name identifies the caller in logs and in what it changed (a manual
	// resolution records who made it).
	Name string
	Role Role
	// Via is how it was proved: "token" or "mtls".
	Via string
}

type ctxKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the identity the request was authenticated as; ok is
// false when authentication is off.
func FromContext(ctx context.Context) (id Identity, ok bool) {
	id, ok = ctx.Value(ctxKey{}).(Identity)
	return id, ok
}

// MinTokenLen is the shortest token the token file may hold.
const MinTokenLen = 16

// Config says where identities come from. Both fields empty: no
// authentication.
type Config struct {
	// TokenFile holds "token,name,role" lines (Kubernetes static-token
	// style; "#" comments and blank lines allowed).
	TokenFile string
	// MTLSIdentities maps client certificate names to roles:
	// comma-separated "name=role" entries, where name is a URI SAN
	// ("spiffe://prod/orders"), a DNS SAN ("orders.svc") or a Common Name.
	MTLSIdentities string
}

// Authenticator checks credentials. The zero value and nil authenticate
// nobody; use New.
type Authenticator struct {
	tokenFile string
	tokens    atomic.Pointer[tokenSet]
	certs     map[string]Identity // certificate name -> identity
}

// tokenSet is the tokens in force, as SHA-256 digests.
type tokenSet struct {
	digests [][sha256.Size]byte
	ids     []Identity
}

// New returns an Authenticator for cfg, or nil when cfg configures no
// identity (authentication off).
func New(cfg Config) (*Authenticator, error) {
	if cfg.TokenFile == "" && strings.TrimSpace(cfg.MTLSIdentities) == "" {
		return nil, nil
	}
	a := &Authenticator{tokenFile: cfg.TokenFile, certs: map[string]Identity{}}
	if cfg.TokenFile != "" {
		if err := a.Reload(); err != nil {
			return nil, err
		}
	} else {
		a.tokens.Store(&tokenSet{})
	}
	if err := a.parseCertIdentities(cfg.MTLSIdentities); err != nil {
		return nil, err
	}
	return a, nil
}

// Reload re-reads the token file. On error the tokens in force are kept.
func (a *Authenticator) Reload() error {
	if a == nil || a.tokenFile == "" {
		return nil
	}
	f, err := os.Open(a.tokenFile)
	if err != nil {
		return fmt.Errorf("auth: token file: %w", err)
	}
	defer f.Close()
	set, err := parseTokens(f)
	if err != nil {
		return fmt.Errorf("auth: token file %s: %w", a.tokenFile, err)
	}
	a.tokens.Store(set)
	return nil
}

// Tokens returns how many tokens are in force.
func (a *Authenticator) Tokens() int {
	if a == nil {
		return 0
	}
	return len(a.tokens.Load().digests)
}

// parseTokens reads "token,name,role" lines. Errors name the line, never
// the token.
func parseTokens(r io.Reader) (*tokenSet, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	set := &tokenSet{}
	seen := map[[sha256.Size]byte]string{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return set, nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("line %d: not a token,name,role line", pe.Line)
			}
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != 3 {
			return nil, fmt.Errorf("line %d: %d fields, want token,name,role", line, len(rec))
		}
		token, name := strings.TrimSpace(rec[0]), strings.TrimSpace(rec[1])
		if len(token) < MinTokenLen || strings.ContainsAny(token, " \t") {
			return nil, fmt.Errorf("line %d: the token must be at least %d characters without spaces (generate one with: openssl rand -hex 32)", line, MinTokenLen)
		}
		if name == "" {
			return nil, fmt.Errorf("line %d: empty name", line)
		}
		role, err := ParseRole(rec[2])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		d := sha256.Sum256([]byte(token))
		if prev, dup := seen[d]; dup {
			return nil, fmt.Errorf("line %d: the token of %q is also the token of %q", line, name, prev)
		}
		seen[d] = name
		set.digests = append(set.digests, d)
		set.ids = append(set.ids, Identity{Name: name, Role: role, Via: "token"})
	}
}

func (a *Authenticator) parseCertIdentities(s string) error {
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, roleText, ok := strings.Cut(entry, "=")
		// A URI SAN may hold "="; the role is after the last one.
		if i := strings.LastIndex(entry, "="); ok && i > 0 {
			name, roleText = entry[:i], entry[i+1:]
		}
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return fmt.Errorf("auth: mTLS identity %q: want certificate-name=role", entry)
		}
		role, err := ParseRole(roleText)
		if err != nil {
			return fmt.Errorf("auth: mTLS identity %q: %w", entry, err)
		}
		if prev, dup := a.certs[name]; dup && prev.Role != role {
			return fmt.Errorf("auth: mTLS identity %q is given two roles", name)
		}
		a.certs[name] = Identity{Name: name, Role: role, Via: "mtls"}
	}
	return nil
}

// Errors of Authenticate, mapped to Unauthenticated and PermissionDenied.
var (
	ErrNoCredentials = errors.New("no credentials: send \"authorization: Bearer <token>\" or a client certificate")
	ErrBadToken      = errors.New("the bearer token is not valid")
	ErrUnmappedCert  = errors.New("the client certificate names no identity with a role")
)

// Authenticate returns the identity proved by a bearer token (the value of
// an Authorization header, "Bearer <token>"; "" if none) or else by the
// leaf of a verified client certificate chain (nil if none).
func (a *Authenticator) Authenticate(authorization string, leaf *x509.Certificate) (Identity, error) {
	if authorization != "" {
		scheme, token, _ := strings.Cut(strings.TrimSpace(authorization), " ")
		if !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(token) == "" {
			return Identity{}, ErrBadToken
		}
		return a.lookupToken(strings.TrimSpace(token))
	}
	if leaf != nil {
		for _, name := range certNames(leaf) {
			if id, ok := a.certs[name]; ok {
				return id, nil
			}
		}
		return Identity{}, fmt.Errorf("%w (%s)", ErrUnmappedCert, strings.Join(certNames(leaf), ", "))
	}
	return Identity{}, ErrNoCredentials
}

// lookupToken finds the identity of token. It compares the token's
// SHA-256 digest with every digest in force, in constant time and without
// stopping at a match, so the time it takes says nothing about which
// token, or how much of one, a caller guessed right.
func (a *Authenticator) lookupToken(token string) (Identity, error) {
	d := sha256.Sum256([]byte(token))
	set := a.tokens.Load()
	found := -1
	for i := range set.digests {
		if subtle.ConstantTimeCompare(set.digests[i][:], d[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Identity{}, ErrBadToken
	}
	return set.ids[found], nil
}

// certNames lists the names a certificate can be mapped by, in order of
// preference: URI SANs, DNS SANs, the Common Name.
func certNames(c *x509.Certificate) []string {
	var out []string
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	out = append(out, c.DNSNames...)
	if c.Subject.CommonName != "" {
		out = append(out, c.Subject.CommonName)
	}
	return out
}
