package tcc

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// MaxListLimit caps one page of List.
const MaxListLimit = 1000

// List returns one page of transactions (without branches), ordered by gid.
// The returned token, if not empty, fetches the next page.
func (c *Coordinator) List(ctx context.Context, p ListParams) ([]*Transaction, string, error) {
	if p.Limit == 0 {
		p.Limit = 100
	}
	if p.Limit < 0 || p.Limit > MaxListLimit {
		return nil, "", fmt.Errorf("list: %w", invalidf("page size %d must be within 1..%d", p.Limit, MaxListLimit))
	}
	if p.State != "" && !p.State.Valid() {
		return nil, "", fmt.Errorf("list: %w", invalidf("unknown state %q", p.State))
	}
	if p.After != "" {
		if err := ValidateGID(p.After); err != nil {
			return nil, "", fmt.Errorf("list: page token: %w", err)
		}
	}
	if p.GIDPrefix != "" {
		if err := ValidateGID(p.GIDPrefix); err != nil {
			return nil, "", fmt.Errorf("list: gid prefix: %w", err)
		}
	}
	if p.Participant != "" && (len(p.Participant) > 255 || !printableASCII(p.Participant)) {
		return nil, "", fmt.Errorf("list: %w", invalidf("participant must be at most 255 printable ASCII bytes"))
	}
	if p.LabelKey == "" && (p.LabelValue != "" || p.LabelValueSet) {
		return nil, "", fmt.Errorf("list: %w", invalidf("a label filter needs a key"))
	}
	if len(p.LabelKey) > 256 || len(p.LabelValue) > 1024 {
		return nil, "", fmt.Errorf("list: %w", invalidf("label filter too long"))
	}
	if !p.CreatedBefore.IsZero() && !p.CreatedAfter.IsZero() && p.CreatedAfter.After(p.CreatedBefore) {
		return nil, "", fmt.Errorf("list: %w", invalidf("max age must not be below min age"))
	}
	txs, err := c.store.ListTransactions(ctx, p)
	if err != nil {
		return nil, "", fmt.Errorf("list: %w", err)
	}
	next := ""
	if len(txs) == p.Limit {
		next = txs[len(txs)-1].GID
	}
	return txs, next, nil
}

// RetryNow makes a decided, unfinished transaction due at once (after an
// operator fixed a participant, say) instead of at its next backoff time.
// actor names who asked, for the history.
func (c *Coordinator) RetryNow(ctx context.Context, gid, actor string) (*Transaction, error) {
	if err := ValidateGID(gid); err != nil {
		return nil, fmt.Errorf("retry now: %w", err)
	}
	tx, err := c.store.RetryNow(ctx, RetryParams{GID: gid, Actor: truncate(actor, 255), Now: c.now()})
	if err != nil {
		return nil, opError("retry now "+gid, err)
	}
	c.log.Warn("operator: retry now", "gid", gid, "state", string(tx.State), "actor", actor)
	return tx, nil
}

// ResolveBranch records that an operator resolved a branch by hand: the
// branch is set to state (confirmed or cancelled) with the reason stored,
// and the transaction is retried at once so it can finish. Use it for a
// conflict (S11) or a participant that will never answer again, after
// fixing the participant's data by hand. actor names who did, for the
// history.
func (c *Coordinator) ResolveBranch(ctx context.Context, gid, branchID string, state BranchState, reason, actor string) (*Transaction, error) {
	if err := ValidateGID(gid); err != nil {
		return nil, fmt.Errorf("resolve branch: %w", err)
	}
	if err := ValidateBranchID(branchID); err != nil {
		return nil, fmt.Errorf("resolve branch of %s: %w", gid, err)
	}
	if state != BranchConfirmed && state != BranchCancelled {
		return nil, fmt.Errorf("resolve branch %s of %s: %w", branchID, gid, invalidf("state must be CONFIRMED or CANCELLED, not %q", state))
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return nil, fmt.Errorf("resolve branch %s of %s: %w", branchID, gid, invalidf("a reason is required"))
	}
	if err := validateReason(reason); err != nil {
		return nil, fmt.Errorf("resolve branch %s of %s: %w", branchID, gid, err)
	}
	tx, err := c.store.ResolveBranch(ctx, ResolveParams{GID: gid, BranchID: branchID, State: state, Reason: reason, Actor: truncate(actor, 255), Now: c.now()})
	if err != nil {
		return nil, opError("resolve branch "+branchID+" of "+gid, err)
	}
	c.log.Warn("operator: branch resolved by hand", "gid", gid, "branch_id", branchID, "state", string(state), "reason", reason)
	return tx, nil
}

// opError prefixes err with the operation, unless err is a *StateError,
// whose text already names the operation and the gid ("retry now G:
// transaction is COMMITTED"); prefixing it again would repeat them.
func opError(op string, err error) error {
	if se := (*StateError)(nil); errors.As(err, &se) {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}

// printableASCII reports whether s holds only printable ASCII characters.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
