package tcc

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Backoff is the retry schedule for delivering Confirm/Cancel: exponential
// with jitter, computed from the attempt count alone so that any coordinator
// instance computes the same schedule for a transaction it picks up.
type Backoff struct {
	// Initial is the delay after the first failed round. Default 1s.
	Initial time.Duration
	// Multiplier grows the delay each round. Default 2.
	Multiplier float64
	// Max caps the delay. Default 5m.
	Max time.Duration
	// Jitter is the fraction of the delay taken off at random (0..1), so
	// that transactions failing together do not retry together. Default 0.2.
	Jitter float64
}

// DefaultBackoff suits payments: 1s doubling to 5 minutes, 20% jitter.
var DefaultBackoff = Backoff{Initial: time.Second, Multiplier: 2, Max: 5 * time.Minute, Jitter: 0.2}

// Validate checks the schedule.
func (b Backoff) Validate() error {
	if b.Initial <= 0 || b.Max < b.Initial {
		return fmt.Errorf("backoff: need 0 < initial (%s) <= max (%s)", b.Initial, b.Max)
	}
	if b.Multiplier < 1 || math.IsNaN(b.Multiplier) || math.IsInf(b.Multiplier, 0) {
		return fmt.Errorf("backoff: multiplier %v must be >= 1", b.Multiplier)
	}
	if b.Jitter < 0 || b.Jitter > 1 {
		return fmt.Errorf("backoff: jitter %v must be in 0..1", b.Jitter)
	}
	return nil
}

// Delay returns the wait after the given number of failed rounds
// (attempt >= 1), without jitter; see Next.
func (b Backoff) Delay(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := float64(b.Initial) * math.Pow(b.Multiplier, float64(attempt-1))
	if d > float64(b.Max) || math.IsInf(d, 0) || math.IsNaN(d) {
		return b.Max
	}
	return time.Duration(d)
}

// Next returns Delay(attempt) minus a random share of up to Jitter of it.
func (b Backoff) Next(attempt int) time.Duration {
	d := b.Delay(attempt)
	return d - time.Duration(b.Jitter*rand.Float64()*float64(d))
}
