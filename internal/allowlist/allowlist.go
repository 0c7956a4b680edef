// Package allowlist decides which participant targets a coordinator may
// call, so that the coordinator cannot be used to reach arbitrary addresses.
//
// A list is a set of host:port patterns. Host and port are matched
// separately with path.Match syntax; "*" matches any run of characters,
// dots included, so "*.svc.local" matches "a.svc.local" and "a.b.svc.local".
// Host matching ignores case. IPv6 hosts are written in brackets:
// "[::1]:*". The pattern "*" alone allows everything.
//
// Targets may be plain "host:port" or use the "dns:///" or "passthrough:///"
// schemes of gRPC, or be an HTTP participant's base URL ("http://host:port/
// path" or "https://..."), whose host:port is matched, with the scheme's
// default port (80, 443) when the URL has none; other schemes (unix, custom
// resolvers) are refused unless the list allows everything.
package allowlist

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// Default allows loopback only.
const Default = "127.0.0.1:*,localhost:*,[::1]:*"

// ErrDenied is returned for a target the list does not allow.
var ErrDenied = errors.New("participant target not on the allow-list")

// List is a parsed allow-list. The zero value allows nothing.
type List struct {
	any      bool
	patterns []pattern
	text     string
}

type pattern struct{ host, port string }

// Parse parses a comma-separated list of host:port patterns.
func Parse(s string) (*List, error) {
	l := &List{text: s}
	for _, raw := range strings.Split(s, ",") {
		p := strings.TrimSpace(raw)
		if p == "" {
			continue
		}
		if p == "*" {
			l.any = true
			continue
		}
		host, port, err := net.SplitHostPort(p)
		if err != nil {
			return nil, fmt.Errorf("allowlist: pattern %q: want host:port (e.g. 10.0.0.*:7501 or *.svc:*): %w", p, err)
		}
		if host == "" || port == "" {
			return nil, fmt.Errorf("allowlist: pattern %q: empty host or port", p)
		}
		for _, part := range []string{host, port} {
			if _, err := path.Match(strings.ToLower(part), ""); err != nil {
				return nil, fmt.Errorf("allowlist: pattern %q: %w", p, err)
			}
		}
		l.patterns = append(l.patterns, pattern{host: strings.ToLower(host), port: port})
	}
	if !l.any && len(l.patterns) == 0 {
		return nil, errors.New("allowlist: no patterns")
	}
	return l, nil
}

// String returns the list as given to Parse.
func (l *List) String() string { return l.text }

// Check returns nil if target may be called, or an error wrapping ErrDenied.
func (l *List) Check(target string) error {
	if l == nil {
		return fmt.Errorf("%w: %q (empty allow-list)", ErrDenied, target)
	}
	if l.any {
		return nil
	}
	addr := target
	for _, scheme := range []string{"dns:///", "passthrough:///"} {
		if rest, ok := strings.CutPrefix(target, scheme); ok {
			addr = rest
			break
		}
	}
	if hp, ok, err := urlHostPort(target); ok {
		if err != nil {
			return fmt.Errorf("%w: %q: %v", ErrDenied, target, err)
		}
		addr = hp
	} else if strings.Contains(addr, "://") || strings.Contains(addr, "/") {
		return fmt.Errorf("%w: %q (only host:port, dns:/// and passthrough:/// targets can be allowed)", ErrDenied, target)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("%w: %q is not host:port", ErrDenied, target)
	}
	if !ValidPort(port) {
		// A "*" port pattern must not let "127.0.0.1:80@10.0.0.1" through.
		return fmt.Errorf("%w: %q: port %q is not a number in 1..65535", ErrDenied, target, port)
	}
	host = strings.ToLower(host)
	for _, p := range l.patterns {
		hostOK, _ := path.Match(p.host, host)
		portOK, _ := path.Match(p.port, port)
		if hostOK && portOK {
			return nil
		}
	}
	return fmt.Errorf("%w: %q (allowed: %s)", ErrDenied, target, l.text)
}

// urlHostPort returns the host:port of an http:// or https:// target (ok
// false for any other target), with the scheme's default port when the URL
// has none. A URL with credentials is refused: "http://a.svc:80@evil:80"
// must not be matched as a.svc.
func urlHostPort(target string) (hostport string, ok bool, err error) {
	scheme, _, found := strings.Cut(target, "://")
	if !found {
		return "", false, nil
	}
	scheme = strings.ToLower(scheme)
	if scheme != "http" && scheme != "https" {
		return "", false, nil
	}
	u, err := url.Parse(target)
	if err != nil {
		return "", true, errors.New("not a valid URL")
	}
	if u.User != nil {
		return "", true, errors.New("a URL with credentials")
	}
	host := u.Hostname()
	if host == "" {
		return "", true, errors.New("a URL without a host")
	}
	port := u.Port()
	if port == "" {
		if strings.HasSuffix(u.Host, ":") {
			return "", true, errors.New("an empty port")
		}
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(host, port), true, nil
}

// ValidPort reports whether port is a decimal TCP port in 1..65535 (no
// sign, no other characters).
func ValidPort(port string) bool {
	n, err := strconv.ParseUint(port, 10, 16)
	return err == nil && n > 0
}

// IsLoopbackHost reports whether host names this machine only:
// "localhost" or a loopback IP. An empty host (every interface) is not.
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
