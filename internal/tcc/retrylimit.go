package tcc

import (
	"errors"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ErrRateLimited: a retried Confirm/Cancel was not sent because its
// participant's retry budget (Config.ParticipantRetryRate) was used up. The
// branch stays unfinished and the round is retried with backoff like any
// failed call; nothing was sent, so nothing can have been applied.
var ErrRateLimited = errors.New("tcc: participant retry rate limit")

// retryLimits is one token bucket per participant target for the calls of
// retried delivery rounds (a transaction's first round is never limited:
// that is the hot path). Tokens are taken at the coordinator's clock, so a
// call is either sent now or deferred to a later round, never waited for
// while the round holds its lease.
type retryLimits struct {
	rate  rate.Limit
	burst int

	mu       sync.Mutex
	byTarget map[string]*rate.Limiter
}

// maxLimitedTargets bounds the buckets kept; beyond it, buckets that are
// full (their participant had no recent retries) are dropped.
const maxLimitedTargets = 4096

// newRetryLimits returns nil (no limit) for a rate of 0. The burst is one
// second's worth of calls, at least one.
func newRetryLimits(perSecond float64) *retryLimits {
	if perSecond <= 0 {
		return nil
	}
	return &retryLimits{
		rate:     rate.Limit(perSecond),
		burst:    max(1, int(math.Ceil(perSecond))),
		byTarget: map[string]*rate.Limiter{},
	}
}

// take takes a token for target at now. If none is left it returns false
// and how long until the next one. A nil retryLimits allows everything.
func (l *retryLimits) take(target string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.byTarget[target]
	if !ok {
		if len(l.byTarget) >= maxLimitedTargets {
			for t, b := range l.byTarget {
				if b.TokensAt(now) >= float64(l.burst) {
					delete(l.byTarget, t)
				}
			}
		}
		lim = rate.NewLimiter(l.rate, l.burst)
		l.byTarget[target] = lim
	}
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}
