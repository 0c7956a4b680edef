package client

import "testing"

func TestTruncate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"}, // é is two bytes; never split it
		{"aé", 3, "aé"},
		{"", 0, ""},
	} {
		if got := truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestParticipantConnectionsCached(t *testing.T) {
	t.Parallel()
	c, err := New("127.0.0.1:1")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	done := make(chan struct{})
	for range 10 {
		go func() {
			defer func() { done <- struct{}{} }()
			for _, target := range []string{"127.0.0.1:2", "127.0.0.1:3"} {
				if _, err := c.participant(target); err != nil {
					t.Errorf("participant(%s): %v", target, err)
				}
			}
		}()
	}
	for range 10 {
		<-done
	}
	c.mu.Lock()
	n := len(c.participants)
	c.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d participant connections, want 2", n)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := c.participant("127.0.0.1:2"); err != ErrClosed {
		t.Fatalf("participant after Close: %v, want ErrClosed", err)
	}
}
