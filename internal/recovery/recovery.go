// Package recovery is the background work of a coordinator instance: it
// finds transactions that are due through the (state, next_attempt_us)
// index and drives them.
//
// # Overview
//
// Every coordinator instance runs one Loop. Each pass lists due records:
//
//   - TRYING past its deadline (a stale pre-execution): the loop decides
//     abort through tcc.Coordinator.Decide, the same compare-and-set that
//     Rollback and CheckBack use, and the winner cancels the branches; a
//     transaction with a decider is instead decided by the decider's
//     answer, or postponed with backoff while the decider cannot answer
//     (tcc.Coordinator.Expire);
//   - COMMITTING / ABORTING whose lease has expired or whose retry time has
//     come: the loop claims the record (a compare-and-set on its version
//     that takes the lease) and runs one delivery round, which confirms or
//     cancels the unfinished branches and then finishes the transaction or
//     schedules the next round with backoff.
//
// # Failure handling
//
// The loop holds no state that matters: a crash loses only the leases it
// held, and those expire. Two instances never drive one transaction at the
// same time, because a round is only run after winning the claim, and a
// stale owner's writes are refused by the version check (tcc.ErrConflict).
// Work per pass is bounded (BatchSize, Concurrency), so a large backlog
// after an outage is worked through at a bounded rate instead of a storm.
package recovery

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/settle-tcc/settle/internal/tcc"
)

// Config configures a Loop. Zero fields take their defaults.
type Config struct {
	// Interval between passes when the previous pass found less than a
	// full batch. Default 1s.
	Interval time.Duration
	// BatchSize is the most due records taken per pass. Default 100.
	BatchSize int
	// Concurrency is the most transactions driven at once. Default 16.
	Concurrency int
	// Rate is the most transactions driven per second by this instance
	// (a token bucket with a burst of BatchSize), so that a backlog after
	// an outage is worked through at a bounded pace. Default 1000.
	Rate float64
	// Retention is how long finished transactions are kept before they are
	// purged. Default 7 days.
	Retention time.Duration
	// TombstoneRetention is how long presumed-abort tombstones are kept; at
	// least Retention. Default: Retention.
	TombstoneRetention time.Duration
	// PurgeInterval is the pause between purge batches. Default 1 minute.
	PurgeInterval time.Duration
	// PurgeBatch is the most transactions deleted per batch. Default 500.
	PurgeBatch int
	// Observer, if set, is told about each pass (metrics).
	Observer Observer
}

// Observer receives the loop's figures. Every method must be fast.
type Observer interface {
	Pass(due int)
	Purged(n int)
}

func (c *Config) setDefaults() error {
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.Concurrency == 0 {
		c.Concurrency = 16
	}
	if c.Rate == 0 {
		c.Rate = 1000
	}
	if c.Retention == 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.TombstoneRetention == 0 {
		c.TombstoneRetention = c.Retention
	}
	if c.PurgeInterval == 0 {
		c.PurgeInterval = time.Minute
	}
	if c.PurgeBatch == 0 {
		c.PurgeBatch = 500
	}
	return c.Validate()
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Interval < time.Millisecond:
		return fmt.Errorf("recovery config: interval %s too short", c.Interval)
	case c.BatchSize < 1 || c.BatchSize > 10000:
		return fmt.Errorf("recovery config: batch size %d must be within 1..10000", c.BatchSize)
	case c.Concurrency < 1 || c.Concurrency > 1024:
		return fmt.Errorf("recovery config: concurrency %d must be within 1..1024", c.Concurrency)
	case c.Rate <= 0:
		return fmt.Errorf("recovery config: rate %v must be positive", c.Rate)
	case c.Retention < time.Minute:
		return fmt.Errorf("recovery config: retention %s must be at least 1m", c.Retention)
	case c.TombstoneRetention < c.Retention:
		return fmt.Errorf("recovery config: tombstone retention %s must be at least the retention %s (late check-backs must still find them)", c.TombstoneRetention, c.Retention)
	case c.PurgeInterval <= 0 || c.PurgeBatch < 1 || c.PurgeBatch > 10000:
		return fmt.Errorf("recovery config: purge interval %s / batch %d out of range", c.PurgeInterval, c.PurgeBatch)
	}
	return nil
}

// Loop drives due transactions. Create it with New and run it with Run.
type Loop struct {
	store tcc.Store
	coord *tcc.Coordinator
	cfg   Config
	log   *slog.Logger
	clock tcc.Clock
	limit *rate.Limiter
}

// New returns a Loop. clock may be nil for the system clock.
func New(store tcc.Store, coord *tcc.Coordinator, cfg Config, log *slog.Logger, clock tcc.Clock) (*Loop, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if clock == nil {
		clock = systemClock{}
	}
	return &Loop{store: store, coord: coord, cfg: cfg, log: log, clock: clock,
		limit: rate.NewLimiter(rate.Limit(cfg.Rate), cfg.BatchSize)}, nil
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Run runs passes, and purges finished transactions past retention, until
// ctx ends.
func (l *Loop) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.runPurge(ctx)
	}()
	defer wg.Wait()
	for {
		n, err := l.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			l.log.Warn("recovery pass failed", "err", err)
		}
		wait := l.cfg.Interval
		if n >= l.cfg.BatchSize {
			wait = 0 // a full batch: more is probably due
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// RunOnce runs one pass and returns how many due records it found.
func (l *Loop) RunOnce(ctx context.Context) (int, error) {
	now := l.clock.Now().UTC()
	due, err := l.store.ListDue(ctx, now, l.cfg.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("recovery: list due: %w", err)
	}
	if l.cfg.Observer != nil {
		l.cfg.Observer.Pass(len(due))
	}
	sem := make(chan struct{}, l.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, ref := range due {
		if err := l.limit.Wait(ctx); err != nil {
			wg.Wait()
			return len(due), err
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return len(due), ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := l.process(ctx, ref); err != nil && ctx.Err() == nil {
				l.log.Warn("recovery of transaction failed", "gid", ref.GID, "state", string(ref.State), "err", err)
			}
		}()
	}
	wg.Wait()
	return len(due), nil
}

// process handles one due record.
//
// model: expire (claim: tcc.Coordinator.Resume)
func (l *Loop) process(ctx context.Context, ref tcc.DueRef) error {
	if ref.State == tcc.StateTrying {
		// model: expire
		return l.coord.Expire(ctx, ref)
	}
	return l.coord.Resume(ctx, ref)
}

func (l *Loop) runPurge(ctx context.Context) {
	for {
		n, err := l.PurgeOnce(ctx)
		if err != nil && ctx.Err() == nil {
			l.log.Warn("purge failed", "err", err)
		}
		wait := l.cfg.PurgeInterval
		if n >= l.cfg.PurgeBatch {
			wait = l.cfg.PurgeInterval / 60 // more to purge: keep going, gently
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// PurgeOnce deletes one batch of finished transactions older than the
// retention (tombstones older than the tombstone retention) and returns
// how many it deleted. Unfinished transactions are never deleted.
func (l *Loop) PurgeOnce(ctx context.Context) (int, error) {
	now := l.clock.Now().UTC()
	n, err := l.store.Purge(ctx, tcc.PurgeParams{
		Before:           now.Add(-l.cfg.Retention),
		TombstonesBefore: now.Add(-l.cfg.TombstoneRetention),
		Limit:            l.cfg.PurgeBatch,
	})
	if err != nil {
		return 0, fmt.Errorf("recovery: purge: %w", err)
	}
	if n > 0 {
		l.log.Info("purged finished transactions", "count", n)
		if l.cfg.Observer != nil {
			l.cfg.Observer.Purged(n)
		}
	}
	return n, nil
}
