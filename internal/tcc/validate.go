package tcc

import (
	"fmt"
	"time"
	"unicode/utf8"
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
	for i := 0; i < len(id); i++ {
		if !idChar(id[i]) {
			return invalidf("%s %q has character %q at byte %d; allowed are A-Z a-z 0-9 . _ : -", field, id, id[i], i)
		}
	}
	return nil
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
	return nil
}

func validateParticipant(target string) error {
	if target == "" {
		return invalidf("participant is empty")
	}
	if len(target) > MaxParticipantLen {
		return invalidf("participant is %d bytes, longer than %d", len(target), MaxParticipantLen)
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f {
			return invalidf("participant %q has a control, space or non-ASCII byte at %d", target, i)
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
