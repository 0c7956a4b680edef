package faults

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in     string
		name   string
		n      int64
		action Action
		err    string
	}{
		{in: "after_decision", name: "after_decision", n: 1, action: Kill},
		{in: "after_decision:3", name: "after_decision", n: 3, action: Kill},
		{in: "after_begin:2:kill", name: "after_begin", n: 2, action: Kill},
		{in: "after_decision:3:panic", name: "after_decision", n: 3, action: Panic},
		{in: "after_decision:0", err: "positive"},
		{in: "after_decision:x", err: "positive"},
		{in: "after_decision:1:explode", err: "kill or panic"},
		{in: "a:1:panic:4", err: "want name"},
		{in: ":1", err: "want name"},
	} {
		p, err := Parse(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Parse(%q) = %v, want error containing %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if p.Name() != c.name || p.n != c.n || p.Action() != c.action {
			t.Errorf("Parse(%q) = %s:%d:%s, want %s:%d:%s", c.in, p.Name(), p.n, p.Action(), c.name, c.n, c.action)
		}
	}
}

// TestPanicEveryNthHit: the panic action fires at hits n, 2n, ... of its
// own point only (the kill action is covered by internal/e2e, which runs
// the real binary).
func TestPanicEveryNthHit(t *testing.T) {
	p, err := Parse("after_decision:2:panic")
	if err != nil {
		t.Fatal(err)
	}
	panicked := func(name string) (did bool) {
		defer func() {
			if r := recover(); r != nil {
				did = true
			}
		}()
		p.Hit(name)
		return false
	}
	var got []bool
	for i := 0; i < 5; i++ {
		got = append(got, panicked("after_decision"))
		if panicked("after_begin") {
			t.Fatal("another point panicked")
		}
	}
	want := []bool{false, true, false, true, false}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("hits 1..5 panicked %v, want %v", got, want)
		}
	}
	var nilPoint *Point
	nilPoint.Hit("after_decision") // nil-safe
}
