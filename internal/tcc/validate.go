package tcc

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/settle-tcc/settle/internal/allowlist"
)

// Limits on identifiers and request fields. The configurable limits
// (payload size, branch count) live in Config.
const (
	MaxGIDLen         = 128
	MaxBranchIDLen    = 64
	MaxParticipantLen = 255
	MaxReasonLen      = 512
	MaxLabels         = 32
	MaxLabelKeyLen    = 64
	MaxLabelValueLen  = 256
	MinTimeout        = time.Second
	MaxTimeout        = 24 * time.Hour
	DefaultTimeout    = 60 * time.Second
)

// ValidateGID checks a global transaction id: 1..128 bytes of
// [A-Za-z0-9._:-].
func ValidateGID(gid string) error {
	return validateID("gid", gid, MaxGIDLen)
}

// ValidateBranchID checks a branch id: 1..64 bytes of [A-Za-z0-9._:-].
func ValidateBranchID(id string) error {
	return validateID("branch_id", id, MaxBranchIDLen)
}

func validateID(field, id string, max int) error {
	if id == "" {
		return invalidf("%s is empty", field)
	}
	if len(id) > max {
		return invalidf("%s is %d bytes, longer than %d", field, len(id), max)
	}
	for i, r := range id {
		if r >= utf8.RuneSelf || !idChar(byte(r)) {
			return invalidf("%s %q has %s at byte %d; allowed are A-Z a-z 0-9 . _ : -", field, id, describeChar(id[i:]), i)
		}
	}
	return nil
}

// describeChar names the character s starts with: the whole rune ("ü",
// not the first byte of its encoding), or the byte when s starts with
// invalid UTF-8.
func describeChar(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("invalid UTF-8 byte 0x%02x", s[0])
	}
	return fmt.Sprintf("character %q", r)
}

func idChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	case c == '.', c == '_', c == ':', c == '-':
		return true
	}
	return false
}

func validateTimeout(d time.Duration) error {
	if d < MinTimeout || d > MaxTimeout {
		return invalidf("timeout %s is outside %s..%s", d, MinTimeout, MaxTimeout)
	}
	return nil
}

func validateLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return invalidf("%d labels, more than %d", len(labels), MaxLabels)
	}
	for k, v := range labels {
		if k == "" || len(k) > MaxLabelKeyLen {
			return invalidf("label key %q must be 1..%d bytes", k, MaxLabelKeyLen)
		}
		if len(v) > MaxLabelValueLen {
			return invalidf("label %q value is %d bytes, longer than %d", k, len(v), MaxLabelValueLen)
		}
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return invalidf("label %q is not valid UTF-8", k)
		}
		if strings.ContainsRune(k, 0) || strings.ContainsRune(v, 0) {
			return invalidf("label %q holds a NUL character", k)
		}
	}
	return nil
}

func validateReason(reason string) error {
	if len(reason) > MaxReasonLen {
		return invalidf("reason is %d bytes, longer than %d", len(reason), MaxReasonLen)
	}
	if !utf8.ValidString(reason) {
		return invalidf("reason is not valid UTF-8")
	}
	// PostgreSQL's text cannot hold NUL; refused everywhere, so that the
	// answer does not depend on the store.
	if strings.ContainsRune(reason, 0) {
		return invalidf("reason holds a NUL character")
	}
	return nil
}

func validateParticipant(target string) error { return validateTarget("participant", target) }

// validateDecider checks a decider target (BeginParams.Decider) as a
// participant target is checked: a gRPC target or an http(s) base URL.
func validateDecider(target string) error { return validateTarget("decider", target) }

// validateTarget checks a target the coordinator calls (kind names it in
// errors): printable ASCII, at most MaxParticipantLen bytes, a gRPC target
// or an http(s) base URL.
func validateTarget(kind, target string) error {
	if target == "" {
		return invalidf("%s is empty", kind)
	}
	if len(target) > MaxParticipantLen {
		return invalidf("%s is %d bytes, longer than %d", kind, len(target), MaxParticipantLen)
	}
	for i, r := range target {
		if r <= ' ' || r >= 0x7f {
			return invalidf("%s %q has %s at byte %d; allowed are printable ASCII characters", kind, target, describeChar(target[i:]), i)
		}
	}
	return validateTargetAddress(kind, target)
}

// grpcSchemes are the gRPC target schemes grpc-go resolves; any other
// "scheme://" is refused, so that a mistyped URL ("htp://", "ftp://") is
// an InvalidArgument at registration rather than a target retried until
// the horizon.
var grpcSchemes = map[string]bool{"dns": true, "passthrough": true, "unix": true, "unix-abstract": true, "vsock": true, "xds": true}

// validateTargetAddress checks that a gRPC target written as host:port,
// dns:///host:port or passthrough:///host:port has a host and a decimal
// port in 1..65535. A target like "127.0.0.1:80@10.0.0.1" or
// "127.0.0.1:notaport" could never be dialled, and would be retried until
// the retry horizon. Other gRPC schemes (unix:, xds:) are left to the
// allow-list, which refuses them unless it allows everything. An http://
// or https:// target is an HTTP participant's base URL (validateURL).
func validateTargetAddress(kind, target string) error {
	if scheme, _, ok := strings.Cut(target, "://"); ok {
		switch s := strings.ToLower(scheme); {
		case s == "http" || s == "https":
			return validateURL(kind, target)
		case !grpcSchemes[s]:
			return invalidf("%s %q: scheme %q is neither http, https nor a gRPC target scheme (dns, passthrough, unix)", kind, target, scheme)
		}
	}
	addr := target
	for _, scheme := range []string{"dns:///", "passthrough:///"} {
		if rest, ok := strings.CutPrefix(target, scheme); ok {
			addr = rest
			break
		}
	}
	if addr == target && strings.Contains(target, "://") {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return invalidf("%s %q is not host:port", kind, target)
	}
	if host == "" {
		return invalidf("%s %q has no host", kind, target)
	}
	if !allowlist.ValidPort(port) {
		return invalidf("%s %q: port %q is not a number in 1..65535", kind, target, port)
	}
	return nil
}

// validateURL checks an HTTP participant's base URL: http or https, a
// host and a valid port if one is given, and no credentials, query or
// fragment (the calls go to <base>/try, <base>/confirm and <base>/cancel,
// which a query or fragment would break, and credentials would be stored
// and shown in every listing).
func validateURL(kind, target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return invalidf("%s %q is not a valid URL", kind, target)
	}
	switch {
	case u.User != nil:
		return invalidf("%s URL must not carry credentials (user:password@); configure participant TLS instead", kind)
	case u.Fragment != "" || strings.Contains(target, "#"):
		return invalidf("%s URL %q must not have a fragment (#...)", kind, target)
	case u.RawQuery != "" || u.ForceQuery:
		return invalidf("%s URL %q must not have a query (?...)", kind, target)
	case u.Opaque != "":
		return invalidf("%s URL %q is not scheme://host[:port][/path]", kind, target)
	case u.Hostname() == "":
		return invalidf("%s URL %q has no host", kind, target)
	}
	if port := u.Port(); port != "" || strings.HasSuffix(u.Host, ":") {
		if !allowlist.ValidPort(port) {
			return invalidf("%s URL %q: port %q is not a number in 1..65535", kind, target, port)
		}
	}
	return nil
}

// truncate shortens s to at most n bytes without splitting a UTF-8
// sequence, for error texts stored in bounded columns.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("…(%d bytes cut)", len(s)-cut)
}
