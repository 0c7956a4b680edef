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
//     Rollback and CheckBack use, and the winner cancels the branches;
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
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

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
	return &Loop{store: store, coord: coord, cfg: cfg, log: log, clock: clock}, nil
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Run runs passes until ctx ends.
func (l *Loop) Run(ctx context.Context) error {
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
	sem := make(chan struct{}, l.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, ref := range due {
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
// model: claim, expire
func (l *Loop) process(ctx context.Context, ref tcc.DueRef) error {
	if ref.State == tcc.StateTrying {
		// model: expire
		tx, won, err := l.coord.Decide(ctx, ref.GID, tcc.Abort, "deadline passed")
		if err != nil {
			return err
		}
		if won {
			l.log.Info("stale transaction aborted", "gid", ref.GID, "deadline", tx.Deadline)
		}
		return nil
	}
	now := l.clock.Now().UTC()
	tx, err := l.store.Claim(ctx, tcc.ClaimParams{
		GID: ref.GID, Version: ref.Version, Owner: l.coord.Config().InstanceID,
		LeaseUntil: now.Add(l.coord.Config().LeaseTTL), Now: now,
	})
	if errors.Is(err, tcc.ErrConflict) {
		return nil // another instance claimed it, or it changed: fine
	}
	if err != nil {
		return err
	}
	return l.coord.Deliver(ctx, tx)
}
