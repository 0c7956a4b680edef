package tcc

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// A bucket per target: one target's retries do not use another's budget,
// the burst is one second's worth, tokens come back with the clock, and
// a refused take says when the next token is due.
func TestRetryLimitsPerTarget(t *testing.T) {
	l := newRetryLimits(2)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 2 {
		if ok, _ := l.take("a:1", now); !ok {
			t.Fatalf("take %d of a burst of 2 refused", i)
		}
	}
	ok, next := l.take("a:1", now)
	if ok || next != 500*time.Millisecond {
		t.Fatalf("third take = %t, next slot in %s; want refused, 500ms", ok, next)
	}
	if ok, _ := l.take("b:1", now); !ok {
		t.Fatal("another target's first take refused")
	}
	if ok, _ := l.take("a:1", now.Add(500*time.Millisecond)); !ok {
		t.Fatal("take refused after the token came back")
	}
	if newRetryLimits(0) != nil {
		t.Fatal("rate 0 must mean no limit")
	}
}

// Buckets of targets with no recent retries are dropped once there are too
// many, so the map cannot grow without bound.
func TestRetryLimitsBounded(t *testing.T) {
	l := newRetryLimits(1)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range maxLimitedTargets {
		l.take(fmt.Sprintf("t%d:1", i), now)
	}
	l.take("late:1", now.Add(time.Minute))
	if n := len(l.byTarget); n != 1 {
		t.Fatalf("%d buckets kept, want 1 (the idle ones dropped)", n)
	}
}

func TestParticipantRetryRateValidated(t *testing.T) {
	for _, r := range []float64{-1, 2e6, math.NaN()} {
		c := Config{ParticipantRetryRate: r}
		err := c.setDefaults()
		if err == nil || !strings.Contains(err.Error(), "participant retry rate") {
			t.Fatalf("rate %g: %v, want a participant retry rate error", r, err)
		}
	}
	c := Config{ParticipantRetryRate: 50}
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
}
