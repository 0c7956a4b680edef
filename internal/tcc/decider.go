package tcc

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Deciders.
//
// An initiator may make its own database change the decision
// (docs/initiators.md): it commits its business change together with a row
// (gid, commit) in its decision table in one local transaction, then calls
// Commit. It names a decider at Begin (Transaction.Decider): its own
// endpoint, which answers "what is the outcome of gid?" by inserting
// (gid, abort) if no row exists (insert-if-absent on the primary key, which
// waits for a local transaction holding the key) and answering what the
// row says. Whichever of the local commit and the decider's insert wins
// the key decides; the answer never changes.
//
// The coordinator therefore never aborts a TRYING transaction that has a
// decider without asking it:
//
//   - the recovery loop, at the deadline (Expire), asks the decider and
//     decides commit or abort by its answer through the one
//     compare-and-set (Decide, cause CauseDecider); a commit then runs the
//     normal Confirm rounds;
//   - a participant's check-back past the deadline is answered
//     VerdictPending with a retry-after until that decision is recorded
//     (the recovery loop asks; check-backs, which may come from every
//     branch, never call the decider themselves);
//   - a decider that cannot answer (unreachable, an error, an answer
//     outside its contract) leaves the transaction TRYING: Store.Postpone
//     schedules the next ask with the delivery backoff (Config.Backoff,
//     counted in Transaction.Attempts) and, once the retry horizon
//     (Config.RetryHorizon, counted from the deadline) or MaxAttempts is
//     reached, flags it as needing attention; an answer outside the
//     decider's contract (ErrParticipantUnexpected) or INVALID_ARGUMENT
//     (ErrParticipantInvalid) flags it at once, as for participants. It
//     keeps being asked with the backoff, capped at Backoff.Max.
//
// An initiator's Rollback, and its Commit, still decide as always: the
// decider is only asked when the initiator did not decide in time.

// Deciders asks initiators' deciders (DeciderService, over gRPC or HTTP)
// for the outcome of a transaction. Implementations live at the edge
// (internal/server); the domain only sees this interface.
type Deciders interface {
	// Ask asks the decider at target for the outcome of gid and returns
	// Commit or Abort, the decider's durable answer. Any error means the
	// answer is unknown: the transaction stays TRYING and the decider is
	// asked again later.
	Ask(ctx context.Context, target, gid string) (Outcome, error)
}

// ErrNoDeciders is returned when a transaction names a decider but the
// coordinator was configured without a way to call deciders
// (Config.Deciders is nil).
var ErrNoDeciders = errors.New("tcc: this coordinator cannot call deciders")

// Expire handles a TRYING transaction that the recovery loop found due (its
// deadline, or the next ask of its decider, has come). Without a decider
// it is aborted ("deadline passed", CauseDeadline). With one, the decider
// is asked and the transaction decided by its answer (CauseDecider), or,
// if the decider cannot answer, postponed with backoff. A record that is
// no longer TRYING, or changed since ref was read, is left alone.
//
// model: expire
func (c *Coordinator) Expire(ctx context.Context, ref DueRef) error {
	tx, err := c.store.GetTransaction(ctx, ref.GID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("expire %s: %w", ref.GID, err)
	}
	if tx.State != StateTrying {
		return nil
	}
	if tx.Decider == "" {
		tx, won, err := c.Decide(ctx, ref.GID, Abort, "deadline passed", CauseDeadline)
		if err != nil {
			return fmt.Errorf("expire %s: %w", ref.GID, err)
		}
		if won {
			c.log.Info("stale transaction aborted", "gid", ref.GID, "deadline", tx.Deadline)
		}
		return nil
	}
	if tx.Version != ref.Version || c.now().Before(tx.NextAttemptAt) {
		return nil // changed since listed (another instance asked); listed again when due
	}
	return c.askDecider(ctx, tx)
}

// askDecider asks tx's decider and decides by its answer, or postpones tx
// when the decider cannot answer.
//
// model: ask_decider, decide_by_decider
func (c *Coordinator) askDecider(ctx context.Context, tx *Transaction) error {
	o, askErr := c.ask(ctx, tx)
	if askErr == nil {
		reason := ""
		if o == Abort {
			reason = "decider answered abort (no local commit)"
		}
		d, won, err := c.Decide(ctx, tx.GID, o, reason, CauseDecider)
		if err != nil {
			return fmt.Errorf("decide %s by decider: %w", tx.GID, err)
		}
		if won {
			c.log.Info("transaction decided by its decider", "gid", tx.GID, "outcome", o.String(), "decider", tx.Decider)
		} else if decided, _ := OutcomeOf(d.State); decided != o {
			// The initiator decided the other way in between: its own
			// Commit or Rollback. A decider answers commit only after the
			// local commit, and abort only when none can happen any more,
			// so this means the initiator decided against its own table.
			c.log.Error("decider answer differs from the recorded decision", "gid", tx.GID,
				"decider_answer", o.String(), "state", string(d.State))
		}
		return nil
	}
	now := c.now()
	attempt := tx.Attempts + 1
	p := PostponeParams{
		GID:           tx.GID,
		Version:       tx.Version,
		NextAttemptAt: now.Add(c.cfg.Backoff.Next(attempt)),
		LastError:     truncate("decider "+tx.Decider+": "+askErr.Error(), 1000),
		Instance:      c.cfg.InstanceID,
		Now:           now,
	}
	why := ""
	switch {
	case errors.Is(askErr, ErrParticipantUnexpected):
		why = "the decider answered outside its contract (e.g. an HTTP redirect or 404, or no outcome); check its target"
	case errors.Is(askErr, ErrParticipantInvalid):
		why = "the decider rejected the request as invalid (INVALID_ARGUMENT)"
	case now.Sub(tx.Deadline) >= c.cfg.RetryHorizon:
		why = fmt.Sprintf("decider unreachable %s after the deadline (retry horizon); the transaction stays TRYING until it answers",
			now.Sub(tx.Deadline).Round(time.Second))
	case c.cfg.MaxAttempts > 0 && attempt >= c.cfg.MaxAttempts:
		why = fmt.Sprintf("decider did not answer %d times (max attempts); the transaction stays TRYING until it answers", attempt)
	}
	if why != "" {
		p.NeedsAttention = true
		if !tx.NeedsAttention {
			p.Attention = why
		}
	}
	if err := c.store.Postpone(ctx, p); err != nil {
		if errors.Is(err, ErrConflict) {
			return nil // decided or changed meanwhile
		}
		return fmt.Errorf("postpone %s: %w", tx.GID, err)
	}
	c.log.Warn("decider did not answer, will ask again", "gid", tx.GID, "decider", tx.Decider, "attempt", attempt,
		"next_attempt_at", p.NextAttemptAt, "err", askErr)
	if p.Attention != "" {
		c.log.Error("transaction needs attention", "gid", tx.GID, "state", string(tx.State), "why", why, "attempt", attempt,
			"last_error", p.LastError)
		if c.hooks.Attention != nil {
			c.hooks.Attention(tx.GID, why)
		}
	}
	return nil
}

// ask calls tx's decider, bounded by the call timeout.
func (c *Coordinator) ask(ctx context.Context, tx *Transaction) (Outcome, error) {
	if c.cfg.Deciders == nil {
		return 0, ErrNoDeciders
	}
	actx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	start := time.Now()
	o, err := c.cfg.Deciders.Ask(actx, tx.Decider, tx.GID)
	if err == nil && o != Commit && o != Abort {
		o, err = 0, fmt.Errorf("%w: decider answered %v, neither commit nor abort", ErrParticipantUnexpected, o)
	}
	if c.hooks.DeciderAsked != nil {
		c.hooks.DeciderAsked(tx.GID, o, err, time.Since(start))
	}
	return o, err
}
