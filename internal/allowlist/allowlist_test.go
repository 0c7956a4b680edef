package allowlist

import (
	"errors"
	"testing"
)

func TestCheck(t *testing.T) {
	l, err := Parse("127.0.0.1:*, localhost:*, [::1]:*, *.svc.local:7501, 10.0.0.*:80")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		target string
		ok     bool
	}{
		{"127.0.0.1:7501", true},
		{"LOCALHOST:1", true},
		{"[::1]:9", true},
		{"dns:///accounts.svc.local:7501", true},
		{"passthrough:///a.b.svc.local:7501", true},
		{"accounts.svc.local:7502", false},
		{"10.0.0.7:80", true},
		{"10.0.1.7:80", false},
		{"169.254.169.254:80", false},
		{"unix:///var/run/x.sock", false},
		{"dns://8.8.8.8/accounts.svc.local:7501", false},
		{"127.0.0.1", false},
		{"", false},
		// A "*" port must not admit what is not a port.
		{"127.0.0.1:80@10.0.0.1", false},
		{"127.0.0.1:notaport", false},
		{"127.0.0.1:0", false},
		{"127.0.0.1:65536", false},
		{"127.0.0.1:65535", true},
		// HTTP participants: the URL's host:port, default port by scheme.
		{"http://127.0.0.1:8080/settle", true},
		{"HTTPS://localhost:8443", true},
		{"https://accounts.svc.local:7501/tcc/", true},
		{"https://accounts.svc.local/tcc", false}, // port 443 not allowed
		{"http://10.0.0.7", true},                 // port 80
		{"https://10.0.0.7", false},               // port 443
		{"http://169.254.169.254/latest", false},
		{"http://127.0.0.1:80@169.254.169.254/", false}, // credentials
		{"http://u:p@127.0.0.1:80/", false},
		{"http://127.0.0.1:/", false},
		{"http://127.0.0.1:x/", false},
		{"http:///path", false},
		{"ftp://127.0.0.1:21", false},
	}
	for _, tc := range tests {
		err := l.Check(tc.target)
		if (err == nil) != tc.ok {
			t.Errorf("Check(%q) = %v, want ok=%v", tc.target, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrDenied) {
			t.Errorf("Check(%q) error does not wrap ErrDenied", tc.target)
		}
	}
}

func TestParse(t *testing.T) {
	for _, bad := range []string{"", ",", "nohost", "[a:1", "a:[", ":80"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	all, err := Parse("*")
	if err != nil || all.Check("unix:///x") != nil {
		t.Fatalf("* must allow everything: %v", err)
	}
	if err := (*List)(nil).Check("127.0.0.1:1"); err == nil {
		t.Fatal("nil list allowed a target")
	}
	def, err := Parse(Default)
	if err != nil || def.Check("127.0.0.1:7501") != nil || def.Check("example.com:7501") == nil {
		t.Fatalf("default list: %v", err)
	}
}
