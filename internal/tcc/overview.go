package tcc

import (
	"context"
	"fmt"
	"time"
)

// The overview: what the console's first page shows (AdminService.GetOverview).

// OverviewBuckets and OverviewBucket are the shape of the overview's
// series: the last hour, per minute.
const (
	OverviewBuckets = 60
	OverviewBucket  = time.Minute
)

// OverviewParams are the arguments of Store.Overview: the series' buckets
// are [Since + i*Bucket, Since + (i+1)*Bucket) for i in 0..Buckets-1.
type OverviewParams struct {
	Since   time.Time
	Bucket  time.Duration
	Buckets int
}

// StateSummary is what the overview knows of the records in one state.
type StateSummary struct {
	State State
	Count int64
	// NeedsAttention counts those flagged as needing attention.
	NeedsAttention int64
	// OldestCreated is the creation time of the oldest one.
	OldestCreated time.Time
}

// Overview summarises the store at one moment.
type Overview struct {
	// At is when it was computed (the coordinator's clock).
	At time.Time
	// States has one entry per state with records, in lifecycle order
	// (TRYING, COMMITTING, ABORTING, COMMITTED, ABORTED).
	States []StateSummary
	// NeedsAttention counts the flagged transactions that are not final.
	NeedsAttention int64
	// OldestUndecided and OldestUnfinished are the creation times of the
	// oldest TRYING and the oldest not final transaction; zero if none.
	OldestUndecided  time.Time
	OldestUnfinished time.Time
	// Since and Bucket place the series: bucket i starts at
	// Since + i*Bucket.
	Since  time.Time
	Bucket time.Duration
	// Decisions counts per bucket the DECIDED events (a record's decision,
	// a tombstone's presumed abort); FailedCalls the ATTEMPT events that
	// did not succeed (FAILED or UNKNOWN), by the event's time.
	Decisions   []int64
	FailedCalls []int64
}

// LifecycleOrder lists the states in the order the overview gives them.
var LifecycleOrder = []State{StateTrying, StateCommitting, StateAborting, StateCommitted, StateAborted}

// Overview returns the store's overview now: the series covers the last
// OverviewBuckets whole minutes, the current one last.
func (c *Coordinator) Overview(ctx context.Context) (*Overview, error) {
	now := c.now()
	since := now.Truncate(OverviewBucket).Add(-(OverviewBuckets - 1) * OverviewBucket)
	o, err := c.store.Overview(ctx, OverviewParams{Since: since, Bucket: OverviewBucket, Buckets: OverviewBuckets})
	if err != nil {
		return nil, fmt.Errorf("overview: %w", err)
	}
	o.At = now
	for _, s := range o.States {
		if s.State.Final() {
			continue
		}
		o.NeedsAttention += s.NeedsAttention
		if o.OldestUnfinished.IsZero() || s.OldestCreated.Before(o.OldestUnfinished) {
			o.OldestUnfinished = s.OldestCreated
		}
		if s.State == StateTrying {
			o.OldestUndecided = s.OldestCreated
		}
	}
	return o, nil
}
