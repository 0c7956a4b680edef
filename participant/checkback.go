package participant

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
)

// errNoCoordinator is returned for a CheckerConfig without a coordinator.
var errNoCoordinator = errors.New("participant: CheckerConfig.Coordinator is required")

// CheckerConfig configures the check-back worker.
type CheckerConfig struct {
	// Coordinator is the coordinator to ask. Required.
	Coordinator tccv1.CoordinatorServiceClient
	// Interval is the pause between two passes of Run. Default 5s.
	Interval time.Duration
	// BatchSize is how many due rows one pass looks at. Default 100.
	BatchSize int
	// Lease is how long a row claimed by one worker is left alone by the
	// others (it bounds one check-back plus the local Confirm/Cancel).
	// Default 1m.
	Lease time.Duration
	// CallTimeout bounds each CheckBack call and each local Confirm/Cancel.
	// Default 10s.
	CallTimeout time.Duration
	// MinRetry is the shortest wait before asking again about a pending
	// transaction (the coordinator's retry_after wins when longer), and the
	// first backoff after a failed check-back. Default 1s.
	MinRetry time.Duration
	// MaxBackoff caps the exponential backoff after failed check-backs.
	// Default 5m.
	MaxBackoff time.Duration
	// PurgeInterval is how often Run purges finished fence rows older than
	// the Participant's retention. Default 1h; negative disables purging.
	PurgeInterval time.Duration
}

func (c *CheckerConfig) setDefaults() {
	if c.Interval == 0 {
		c.Interval = 5 * time.Second
	}
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.Lease == 0 {
		c.Lease = time.Minute
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 10 * time.Second
	}
	if c.MinRetry == 0 {
		c.MinRetry = time.Second
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 5 * time.Minute
	}
	if c.PurgeInterval == 0 {
		c.PurgeInterval = time.Hour
	}
}

// Validate reports whether c is usable, after defaults.
func (c CheckerConfig) Validate() error {
	c.setDefaults()
	switch {
	case c.Coordinator == nil:
		return errNoCoordinator
	case c.Interval < 0 || c.BatchSize < 0 || c.Lease < 0 || c.CallTimeout < 0 || c.MinRetry < 0 || c.MaxBackoff < 0:
		return errors.New("participant: CheckerConfig durations and sizes must not be negative")
	case c.Lease < c.CallTimeout*2:
		return fmt.Errorf("participant: CheckerConfig.Lease %v must be at least twice CallTimeout %v", c.Lease, c.CallTimeout)
	}
	return nil
}

// Checker is the check-back worker: it finds fence rows that stayed TRIED
// past Config.CheckBackAfter, asks the coordinator (CheckBack), and on a
// definite verdict applies Confirm or Cancel locally through the same
// handlers and fence as the gRPC calls. Several Checkers (in one process
// or in several instances of a participant) may run against one database:
// each row is claimed by a compare-and-set before the call, and the fence
// makes the local apply idempotent anyway.
type Checker struct {
	p   *Participant
	cfg CheckerConfig
	sql checkerSQL
}

type checkerSQL struct {
	due, claim, reschedule string
}

// NewChecker returns a check-back worker for p.
func (p *Participant) NewChecker(cfg CheckerConfig) (*Checker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	t := p.table
	return &Checker{p: p, cfg: cfg, sql: checkerSQL{
		due: "SELECT gid, branch_id, payload, next_check_us, check_count FROM " + t +
			" WHERE state = ? AND next_check_us <= ? ORDER BY next_check_us LIMIT ?",
		claim: "UPDATE " + t + " SET next_check_us = ?, check_count = check_count + 1" +
			" WHERE gid = ? AND branch_id = ? AND state = ? AND next_check_us = ?",
		reschedule: "UPDATE " + t + " SET next_check_us = ?" +
			" WHERE gid = ? AND branch_id = ? AND state = ? AND next_check_us = ?",
	}}, nil
}

// CheckStats counts what one pass did.
type CheckStats struct {
	// Due is the number of due rows found.
	Due int
	// Claimed is how many of them this worker claimed (the others were
	// claimed by another worker first).
	Claimed int
	// Confirmed and Cancelled count the verdicts applied locally.
	Confirmed, Cancelled int
	// Pending counts transactions not decided yet.
	Pending int
	// Failed counts check-backs or local applies that failed; they are
	// retried with backoff.
	Failed int
}

// Run checks back every Interval (and purges every PurgeInterval) until
// ctx is done, then returns ctx's error. Errors of single passes are
// logged and retried on the next pass.
func (c *Checker) Run(ctx context.Context) error {
	log := c.p.log
	ticker := time.NewTicker(c.cfg.Interval)
	defer ticker.Stop()
	var lastPurge time.Time
	for {
		if _, err := c.RunOnce(ctx); err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "participant: check-back pass failed", "err", err)
		}
		if now := c.p.now(); c.cfg.PurgeInterval > 0 && now.Sub(lastPurge) >= c.cfg.PurgeInterval {
			n, err := c.p.Purge(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				log.WarnContext(ctx, "participant: purge failed", "err", err)
			case err == nil:
				lastPurge = now
				if n > 0 {
					log.InfoContext(ctx, "participant: purged fence rows", "rows", n)
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

// dueRow is one TRIED row past its check time.
type dueRow struct {
	req       Request
	nextCheck int64
	count     int
}

// RunOnce makes one bounded pass: it claims up to BatchSize due rows and
// checks each back. It returns what it did; the error reports a failure to
// read the due rows (single rows' failures are counted and logged).
func (c *Checker) RunOnce(ctx context.Context) (CheckStats, error) {
	var st CheckStats
	now := c.p.now()
	rows, err := c.p.db.WithContext(ctx).Raw(c.sql.due, string(StateTried), micros(now), c.cfg.BatchSize).Rows()
	if err != nil {
		return st, fmt.Errorf("participant: find due rows: %w", err)
	}
	var due []dueRow
	for rows.Next() {
		var d dueRow
		if err := rows.Scan(&d.req.GID, &d.req.BranchID, &d.req.Payload, &d.nextCheck, &d.count); err != nil {
			rows.Close()
			return st, fmt.Errorf("participant: find due rows: %w", err)
		}
		due = append(due, d)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return st, fmt.Errorf("participant: find due rows: %w", err)
	}
	st.Due = len(due)
	for _, d := range due {
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		c.checkOne(ctx, d, &st)
	}
	return st, nil
}

// checkOne claims one row (short statement), asks the coordinator (no
// transaction open), then applies the verdict through the fence or
// reschedules the row (compare-and-set on the claim).
// model: checker
func (c *Checker) checkOne(ctx context.Context, d dueRow, st *CheckStats) {
	log := c.p.log.With("gid", d.req.GID, "branch_id", d.req.BranchID, "attempt", d.count+1)
	now := c.p.now()
	claimed := micros(now.Add(c.cfg.Lease))
	res := c.p.db.WithContext(ctx).Exec(c.sql.claim, claimed, d.req.GID, d.req.BranchID, string(StateTried), d.nextCheck)
	if res.Error != nil {
		st.Failed++
		log.WarnContext(ctx, "participant: check-back claim failed", "err", res.Error)
		return
	}
	if res.RowsAffected != 1 {
		return // another worker claimed it, or it was confirmed/cancelled meanwhile
	}
	st.Claimed++

	cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	resp, err := c.cfg.Coordinator.CheckBack(cctx, &tccv1.CheckBackRequest{Gid: d.req.GID, BranchId: d.req.BranchID})
	cancel()
	var ph Phase
	switch {
	case err != nil:
		st.Failed++
		log.WarnContext(ctx, "participant: check-back failed", "err", err)
		c.reschedule(ctx, d.req, claimed, c.backoff(d.count))
		return
	case resp.GetVerdict() == tccv1.Verdict_VERDICT_CONFIRM:
		ph = PhaseConfirm
	case resp.GetVerdict() == tccv1.Verdict_VERDICT_CANCEL:
		ph = PhaseCancel
	case resp.GetVerdict() == tccv1.Verdict_VERDICT_PENDING:
		st.Pending++
		wait := max(resp.GetRetryAfter().AsDuration(), c.cfg.MinRetry)
		log.DebugContext(ctx, "participant: check-back pending", "retry_after", wait)
		c.reschedule(ctx, d.req, claimed, wait)
		return
	default:
		st.Failed++
		log.WarnContext(ctx, "participant: check-back gave no verdict", "verdict", resp.GetVerdict().String())
		c.reschedule(ctx, d.req, claimed, c.backoff(d.count))
		return
	}

	actx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	outcome, err := c.p.Apply(actx, ph, d.req)
	cancel()
	switch {
	case err == nil:
		if ph == PhaseConfirm {
			st.Confirmed++
		} else {
			st.Cancelled++
		}
		log.InfoContext(ctx, "participant: check-back applied", "op", string(ph), "outcome", outcome, "state", resp.GetState().String())
	case errors.Is(err, ErrConflict):
		// The coordinator's verdict disagrees with what this participant
		// already did: only an operator can sort this out (S11). Apply
		// logged it; the row is final, so it is not asked about again.
		st.Failed++
		log.ErrorContext(ctx, "participant: check-back verdict conflicts with the fence", "op", string(ph), "err", err)
	default:
		st.Failed++
		c.reschedule(ctx, d.req, claimed, c.backoff(d.count))
	}
}

// reschedule moves a claimed, still TRIED row's next check to now+wait.
func (c *Checker) reschedule(ctx context.Context, r Request, claimed int64, wait time.Duration) {
	next := micros(c.p.now().Add(wait))
	ctx = context.WithoutCancel(ctx) // a short statement that should land even on shutdown
	if err := c.p.db.WithContext(ctx).Exec(c.sql.reschedule, next, r.GID, r.BranchID, string(StateTried), claimed).Error; err != nil {
		// The claim expires on its own; nothing is lost.
		c.p.log.WarnContext(ctx, "participant: check-back reschedule failed", "gid", r.GID, "branch_id", r.BranchID, "err", err)
	}
}

// backoff is the wait after the n-th failed check-back (n from 0):
// MinRetry doubling up to MaxBackoff, with equal jitter.
func (c *Checker) backoff(n int) time.Duration {
	d := c.cfg.MinRetry
	for i := 0; i < n && d < c.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.cfg.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}
