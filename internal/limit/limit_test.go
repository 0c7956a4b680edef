package limit

import (
	"sync"
	"testing"
)

// TestAcquire: the instance bound and the per-caller bound each refuse
// the call over them, and releases make room again; concurrent
// acquire/release never leaves a count behind.
func TestAcquire(t *testing.T) {
	var shed []bool
	l := New(Config{MaxInFlight: 3, MaxInFlightPerCaller: 2, Shed: func(_ string, perCaller bool) { shed = append(shed, perCaller) }})
	r1, _, ok1 := l.acquire("a")
	r2, _, ok2 := l.acquire("a")
	if !ok1 || !ok2 {
		t.Fatal("calls under the bounds refused")
	}
	if _, perCaller, ok := l.acquire("a"); ok || !perCaller {
		t.Fatalf("a's third call: ok=%v perCaller=%v, want refused by the per-caller bound", ok, perCaller)
	}
	r3, _, ok3 := l.acquire("b")
	if !ok3 {
		t.Fatal("b refused under both bounds")
	}
	if _, perCaller, ok := l.acquire("c"); ok || perCaller {
		t.Fatalf("a fourth call: ok=%v perCaller=%v, want refused by the instance bound", ok, perCaller)
	}
	if l.InFlight() != 3 {
		t.Fatalf("in flight %d, want 3 (refusals must not count)", l.InFlight())
	}
	r1()
	r4, _, ok4 := l.acquire("c")
	if !ok4 {
		t.Fatal("no room after a release")
	}
	r2()
	r3()
	r4()
	if l.InFlight() != 0 || len(l.callers) != 0 {
		t.Fatalf("after every release: in flight %d, callers %v", l.InFlight(), l.callers)
	}
	if New(Config{}) != nil {
		t.Fatal("a Config without bounds made a limiter")
	}
	if len(shed) != 0 {
		t.Fatalf("Shed called by acquire: %v (the interceptors report refusals)", shed)
	}
	l.cfg.Shed = nil

	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			for range 200 {
				if release, _, ok := l.acquire(string(rune('a' + i%5))); ok {
					release()
				}
			}
		})
	}
	wg.Wait()
	if l.InFlight() != 0 || len(l.callers) != 0 {
		t.Fatalf("after concurrent use: in flight %d, callers %v", l.InFlight(), l.callers)
	}
}
