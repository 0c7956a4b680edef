package tcc

import (
	"fmt"
	"maps"
	"time"
)

// State is the state of a global transaction. See the package documentation
// for the state diagram.
type State string

// Transaction states, as stored in transaction_record.state.
const (
	StateTrying     State = "TRYING"
	StateCommitting State = "COMMITTING"
	StateCommitted  State = "COMMITTED"
	StateAborting   State = "ABORTING"
	StateAborted    State = "ABORTED"
)

// Decided reports whether s is after the decision (committing, aborting or
// final).
func (s State) Decided() bool { return s != StateTrying }

// Final reports whether s is a final state.
func (s State) Final() bool { return s == StateCommitted || s == StateAborted }

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	switch s {
	case StateTrying, StateCommitting, StateCommitted, StateAborting, StateAborted:
		return true
	}
	return false
}

// Outcome is what a decision resolves to: commit or abort.
type Outcome int

// The two outcomes.
const (
	Commit Outcome = iota + 1
	Abort
)

func (o Outcome) String() string {
	switch o {
	case Commit:
		return "commit"
	case Abort:
		return "abort"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// DecidedState is the state a decision for o moves a TRYING transaction to.
func (o Outcome) DecidedState() State {
	if o == Commit {
		return StateCommitting
	}
	return StateAborting
}

// FinalState is the state a transaction decided with o ends in.
func (o Outcome) FinalState() State {
	if o == Commit {
		return StateCommitted
	}
	return StateAborted
}

// BranchDone is the branch state o drives every branch to.
func (o Outcome) BranchDone() BranchState {
	if o == Commit {
		return BranchConfirmed
	}
	return BranchCancelled
}

// OutcomeOf returns the outcome a decided state stands for; ok is false for
// TRYING.
func OutcomeOf(s State) (o Outcome, ok bool) {
	switch s {
	case StateCommitting, StateCommitted:
		return Commit, true
	case StateAborting, StateAborted:
		return Abort, true
	}
	return 0, false
}

// BranchState is the coordinator's view of a branch.
type BranchState string

// Branch states, as stored in branch_record.state.
const (
	BranchRegistered BranchState = "REGISTERED"
	BranchConfirmed  BranchState = "CONFIRMED"
	BranchCancelled  BranchState = "CANCELLED"
)

// Transaction is a global transaction as recorded in transaction_record,
// with its branches.
type Transaction struct {
	GID   string
	State State
	// Version increases with every write to the record; writers that must not
	// act on a stale view compare it (see Store).
	Version int64
	// Timeout is the timeout given at Begin; Deadline is Begin's time plus
	// Timeout. A TRYING transaction past its deadline may be aborted.
	Timeout  time.Duration
	Deadline time.Time
	// DecidedAt is when the decision was recorded; zero while TRYING.
	DecidedAt time.Time
	// NextAttemptAt is when the transaction is next due for the recovery
	// loop: the deadline while TRYING, the end of the current lease or the
	// next retry once decided. For a final record it is the time it became
	// final, from which retention is counted.
	NextAttemptAt time.Time
	// LeaseOwner names the coordinator instance driving the transaction
	// while it holds the lease; empty otherwise.
	LeaseOwner string
	// Attempts counts delivery rounds (Confirm/Cancel to the unfinished
	// branches); LastError is the last round's error.
	Attempts  int
	LastError string
	// AbortReason says why an aborted transaction aborted.
	AbortReason string
	// NeedsAttention flags a transaction an operator should look at.
	NeedsAttention bool
	// Tombstone marks a record created by a check-back for an unknown gid
	// (presumed abort).
	Tombstone bool
	// Decider is the initiator's decider target named at Begin (a gRPC
	// target or an HTTP base URL), empty if none. A TRYING transaction
	// with a decider is decided at its deadline by the decider's answer,
	// never aborted without asking it (decider.go).
	Decider   string
	Labels    map[string]string
	CreatedAt time.Time
	UpdatedAt time.Time
	Branches  []Branch
	// BranchCount is how many branches are registered: set by
	// Store.ListTransactions, which returns no Branches (zero elsewhere).
	BranchCount int
}

// Clone returns a deep copy of t.
func (t *Transaction) Clone() *Transaction {
	c := *t
	c.Labels = maps.Clone(t.Labels)
	c.Branches = make([]Branch, len(t.Branches))
	for i, b := range t.Branches {
		b.Payload = append([]byte(nil), b.Payload...)
		c.Branches[i] = b
	}
	return &c
}

// Branch is one participant's part of a global transaction, as recorded in
// branch_record.
type Branch struct {
	GID      string
	BranchID string
	// Participant is the gRPC target the coordinator calls.
	Participant string
	Payload     []byte
	// PayloadDigest is the SHA-256 of Payload, hex encoded.
	PayloadDigest string
	State         BranchState
	Attempts      int
	LastError     string
	// Conflict is set when the participant answered the decided call with
	// a refusal saying the branch is already in the opposite final state
	// (S11). The branch is no longer retried; an operator resolves it.
	Conflict bool
	// Resolution is the operator's reason when the branch was resolved by
	// hand.
	Resolution string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}
