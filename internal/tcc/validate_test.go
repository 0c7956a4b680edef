package tcc

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestValidateIDs(t *testing.T) {
	tests := []struct {
		id     string
		max    int
		wantOK bool
	}{
		{"order-1", MaxGIDLen, true},
		{"A.b_c:d-9", MaxGIDLen, true},
		{strings.Repeat("x", 128), MaxGIDLen, true},
		{strings.Repeat("x", 129), MaxGIDLen, false},
		{"", MaxGIDLen, false},
		{"a b", MaxGIDLen, false},
		{"a/b", MaxGIDLen, false},
		{"ü", MaxGIDLen, false},
		{"a\x00", MaxGIDLen, false},
		{strings.Repeat("b", 64), MaxBranchIDLen, true},
		{strings.Repeat("b", 65), MaxBranchIDLen, false},
	}
	for _, tc := range tests {
		err := validateID("id", tc.id, tc.max)
		if (err == nil) != tc.wantOK {
			t.Errorf("validateID(%q, %d) = %v, want ok=%v", tc.id, tc.max, err, tc.wantOK)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("validateID(%q): %v does not wrap ErrInvalid", tc.id, err)
		}
	}
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

func FuzzValidateGID(f *testing.F) {
	for _, s := range []string{"order-1", "", "a b", strings.Repeat("z", 130), "\xff", "a:b.c_d-e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, gid string) {
		err := ValidateGID(gid)
		if (err == nil) != idPattern.MatchString(gid) {
			t.Fatalf("ValidateGID(%q) = %v, disagrees with the documented pattern", gid, err)
		}
	})
}

func TestValidateTimeoutAndLabels(t *testing.T) {
	for _, d := range []time.Duration{0, 999 * time.Millisecond, 24*time.Hour + 1, -time.Second} {
		if validateTimeout(d) == nil {
			t.Errorf("timeout %s accepted", d)
		}
	}
	for _, d := range []time.Duration{time.Second, time.Minute, 24 * time.Hour} {
		if err := validateTimeout(d); err != nil {
			t.Errorf("timeout %s refused: %v", d, err)
		}
	}
	many := map[string]string{}
	for i := 0; i < MaxLabels+1; i++ {
		many[strings.Repeat("k", i+1)] = "v"
	}
	bad := []map[string]string{many, {"": "v"}, {"k": strings.Repeat("v", 257)}, {"k": "\xff"}, {"k": "a\x00b"}, {"k\x00": "v"}}
	for _, m := range bad {
		if validateLabels(m) == nil {
			t.Errorf("labels with %d entries accepted", len(m))
		}
	}
	if err := validateLabels(map[string]string{"order": "o-1", "Straße": "ü"}); err != nil {
		t.Errorf("good labels refused: %v", err)
	}
}

func TestValidateReason(t *testing.T) {
	for _, r := range []string{strings.Repeat("r", MaxReasonLen+1), "\xff", "out of\x00 stock"} {
		if validateReason(r) == nil {
			t.Errorf("reason %q accepted", r)
		}
	}
	if err := validateReason("out of stock: Straße 5"); err != nil {
		t.Errorf("good reason refused: %v", err)
	}
}

func TestTruncate(t *testing.T) {
	s := strings.Repeat("é", 10) // 20 bytes
	got := truncate(s, 5)
	if !strings.HasPrefix(got, "éé") || strings.HasPrefix(got, "ééé") || !strings.Contains(got, "cut") {
		t.Fatalf("truncate: %q", got)
	}
	if truncate("short", 10) != "short" {
		t.Fatal("short string changed")
	}
}

func TestBackoff(t *testing.T) {
	b := DefaultBackoff
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	for i, w := range want {
		if got := b.Delay(i + 1); got != w {
			t.Errorf("Delay(%d) = %s, want %s", i+1, got, w)
		}
	}
	if got := b.Delay(100); got != 5*time.Minute {
		t.Errorf("Delay(100) = %s, want the 5m cap", got)
	}
	for i := 0; i < 1000; i++ {
		d := b.Next(3)
		if d > 4*time.Second || d < time.Duration(0.8*float64(4*time.Second)) {
			t.Fatalf("Next(3) = %s outside [3.2s, 4s]", d)
		}
	}
	for _, bad := range []Backoff{{}, {Initial: time.Second, Max: time.Millisecond, Multiplier: 2}, {Initial: 1, Max: 2, Multiplier: 0.5}, {Initial: 1, Max: 2, Multiplier: 2, Jitter: 2}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestOutcomes(t *testing.T) {
	for _, tc := range []struct {
		s     State
		o     Outcome
		ok    bool
		final bool
	}{
		{StateTrying, 0, false, false},
		{StateCommitting, Commit, true, false},
		{StateCommitted, Commit, true, true},
		{StateAborting, Abort, true, false},
		{StateAborted, Abort, true, true},
	} {
		o, ok := OutcomeOf(tc.s)
		if o != tc.o || ok != tc.ok || tc.s.Final() != tc.final || !tc.s.Valid() {
			t.Errorf("%s: outcome %v ok %v final %v", tc.s, o, ok, tc.s.Final())
		}
	}
	if State("BOGUS").Valid() {
		t.Error("bogus state valid")
	}
}

// TestValidateReportsRunes: a multi-byte character in an id is reported as
// the character, not as the first byte of its encoding ('Ã' for 'ü').
func TestValidateReportsRunes(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"zahlung-ü-€", `character 'ü' at byte 8`},
		{"pay€", `character '€' at byte 3`},
		{"a b", `character ' ' at byte 1`},
		{"a\xffb", `invalid UTF-8 byte 0xff at byte 1`},
	} {
		err := ValidateGID(tc.id)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ValidateGID(%q) = %v, want it to say %s", tc.id, err, tc.want)
		}
	}
	err := validateParticipant("zahlung-ü:7501")
	if err == nil || !strings.Contains(err.Error(), `character 'ü' at byte 8`) {
		t.Errorf("validateParticipant: %v, want the character ü named", err)
	}
}

// TestValidateParticipantAddress: a target whose port is not a number in
// 1..65535 is refused at registration with ErrInvalid, not accepted and
// retried until the horizon.
func TestValidateParticipantAddress(t *testing.T) {
	for _, tc := range []struct {
		target string
		ok     bool
	}{
		{"127.0.0.1:7501", true},
		{"localhost:1", true},
		{"[::1]:65535", true},
		{"dns:///payments.svc:443", true},
		{"passthrough:///10.0.0.1:80", true},
		{"unix:///tmp/participant.sock", true}, // left to the allow-list
		{"127.0.0.1:80@10.0.0.1", false},
		{"127.0.0.1:notaport", false},
		{"127.0.0.1:0", false},
		{"127.0.0.1:65536", false},
		{"127.0.0.1:+80", false},
		{"127.0.0.1:", false},
		{":7501", false},
		{"127.0.0.1", false},
		{"dns:///127.0.0.1:x", false},
		// HTTP participants' base URLs.
		{"http://127.0.0.1:8080", true},
		{"https://payments.svc/tcc/v1", true},
		{"HTTP://127.0.0.1:8080/x/", true},
		{"http://user:pw@127.0.0.1:8080", false},
		{"http://127.0.0.1:8080/x#frag", false},
		{"http://127.0.0.1:8080/x?a=1", false},
		{"http://127.0.0.1:8080/x?", false},
		{"http://127.0.0.1:0", false},
		{"http://127.0.0.1:99999", false},
		{"http://127.0.0.1:/", false},
		{"http:///only-a-path", false},
		{"http:opaque", false},
		{"ftp://127.0.0.1:21", false},
		{"file:///etc/passwd", false},
		{"htp://127.0.0.1:8080", false},
	} {
		err := validateParticipant(tc.target)
		if (err == nil) != tc.ok {
			t.Errorf("validateParticipant(%q) = %v, want ok=%v", tc.target, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("validateParticipant(%q): %v does not wrap ErrInvalid", tc.target, err)
		}
	}
}
