package tcc

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Transaction history.
//
// Every state change of a transaction appends events to its history, and
// the store writes them in the same database transaction (the same
// statements or script) as the change itself: a crash leaves both or
// neither, and the history costs no extra round trip. The history is
// append-only and bounded: every event except Confirm/Cancel attempts is
// kept, and of each branch's attempts the first and the last N
// (Config.HistoryAttempts); the attempts in between are deleted as newer
// ones are written, and how many were is reported with the history. It is
// deleted with its transaction by retention (Store.Purge).
//
// A store may keep an event in the changed row itself when that row holds
// its facts once and for good (internal/sqlstore reads BEGUN from the
// record, BRANCH_REGISTERED and each branch's successful attempt from the
// branch rows, DECIDED from the decision's columns and FINISHED from the
// final record, and writes rows only for the rest): the contract is what
// History returns.
//
// What writes which event:
//
//	Begin                     EventBegun, EventBranchRegistered per branch
//	RegisterBranch            EventBranchRegistered
//	Decide                    EventDecided (cause: commit, rollback,
//	                          deadline, check-back, decider)
//	Postpone                  EventNeedsAttention when it flags the
//	                          transaction (a decider unreachable past the
//	                          retry horizon)
//	a check-back's tombstone  EventDecided (cause check-back), State ABORTED
//	RecordRound               EventAttempt per branch called (or not sent
//	                          under the retry rate limit), EventConflict per
//	                          conflict, EventNeedsAttention when the round
//	                          flags the transaction, EventFinished when it
//	                          finishes it
//	RetryNow, ResolveBranch   EventRetryNow, EventResolved (with the actor)
//
// A check-back answered from the record without changing it (a verdict
// for a transaction already decided, or pending) writes nothing: a read
// stays a read, and participants that check back often cannot grow the
// history.

// EventKind is what a history event records.
type EventKind string

// The event kinds, as stored in transaction_event.kind.
const (
	EventBegun            EventKind = "BEGUN"
	EventBranchRegistered EventKind = "BRANCH_REGISTERED"
	EventDecided          EventKind = "DECIDED"
	EventAttempt          EventKind = "ATTEMPT"
	EventNeedsAttention   EventKind = "NEEDS_ATTENTION"
	EventConflict         EventKind = "CONFLICT"
	EventRetryNow         EventKind = "RETRY_NOW"
	EventResolved         EventKind = "RESOLVED"
	EventFinished         EventKind = "FINISHED"
)

// Cause is what made a decision.
type Cause string

// The causes of a decision.
const (
	CauseCommit    Cause = "COMMIT"
	CauseRollback  Cause = "ROLLBACK"
	CauseDeadline  Cause = "DEADLINE"
	CauseCheckBack Cause = "CHECK_BACK"
	CauseOperator  Cause = "OPERATOR"
	// CauseDecider: the recovery loop decided a transaction still TRYING
	// at its deadline by the answer of its decider.
	CauseDecider Cause = "DECIDER"
)

// AttemptResult classifies one Confirm/Cancel call.
type AttemptResult string

// The result classes of a call.
const (
	// ResultSuccess: the participant acknowledged.
	ResultSuccess AttemptResult = "SUCCESS"
	// ResultFailed: a definite refusal (a conflict, INVALID_ARGUMENT).
	ResultFailed AttemptResult = "FAILED"
	// ResultUnknown: timeout, unavailable, any other error, or not sent
	// (retry rate limit); retried.
	ResultUnknown AttemptResult = "UNKNOWN"
)

// DefaultHistoryAttempts is the default of Config.HistoryAttempts.
const DefaultHistoryAttempts = 10

// Event is one entry of a transaction's history. Which fields are set
// depends on Kind (see the package's history notes and admin.proto's
// TransactionEvent).
type Event struct {
	// Seq is the event's position in the history as read (1, 2, ...).
	Seq  int64
	GID  string
	At   time.Time
	Kind EventKind
	// BranchID: BRANCH_REGISTERED, ATTEMPT, CONFLICT, RESOLVED.
	BranchID string
	// Participant: BRANCH_REGISTERED.
	Participant string
	// State: DECIDED (COMMITTING, ABORTING; ABORTED for a tombstone) and
	// FINISHED (COMMITTED, ABORTED).
	State State
	// BranchState: RESOLVED.
	BranchState BranchState
	// Cause: DECIDED.
	Cause Cause
	// Result, Call ("confirm" or "cancel"), Attempt (the branch's attempt
	// number, from 1), Code (the gRPC code's name) and Latency: ATTEMPT.
	Result  AttemptResult
	Call    string
	Attempt int
	Code    string
	Latency time.Duration
	// Message: the error of an attempt, the abort reason of a decision,
	// why a transaction needs attention, the participant's answer in a
	// conflict, the operator's reason of a resolution.
	Message string
	// Instance is the coordinator instance that wrote the event.
	Instance string
	// Actor is who asked: RETRY_NOW, RESOLVED.
	Actor string
}

// CallRecord is one Confirm/Cancel call of a delivery round, for the
// history (RoundParams.Calls).
type CallRecord struct {
	BranchID string
	// Attempt is the branch's attempt number this call is (its attempts
	// before the round, plus one).
	Attempt int
	Result  AttemptResult
	Code    string
	Message string
	Latency time.Duration
}

// History is a transaction's history as read.
type History struct {
	Events []Event
	// Dropped counts, per branch id, the attempts the bound dropped.
	Dropped map[string]int
}

// CallError is a participant's failed answer to Confirm or Cancel, with its
// gRPC code (by name, e.g. "Unavailable"). Kind, when set, is
// ErrParticipantRefused or ErrParticipantInvalid (errors.Is sees it).
type CallError struct {
	Code    string
	Message string
	Kind    error
}

func (e *CallError) Error() string {
	if e.Kind != nil {
		return fmt.Sprintf("%v: %s %s", e.Kind, e.Code, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns Kind.
func (e *CallError) Unwrap() error { return e.Kind }

// classify returns the result class and code of a call's error.
func classify(err error) (AttemptResult, string) {
	if err == nil {
		return ResultSuccess, "OK"
	}
	code := ""
	if ce := (*CallError)(nil); errors.As(err, &ce) {
		code = ce.Code
	} else if errors.Is(err, context.DeadlineExceeded) {
		code = "DeadlineExceeded"
	}
	if errors.Is(err, ErrParticipantRefused) || errors.Is(err, ErrParticipantInvalid) {
		return ResultFailed, code
	}
	return ResultUnknown, code
}

// History returns the durable history of gid, oldest first, and how many
// attempts of each branch the bound dropped. ErrNotFound when there is
// none.
func (c *Coordinator) History(ctx context.Context, gid string) (*History, error) {
	if err := ValidateGID(gid); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	events, err := c.store.History(ctx, gid)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", gid, err)
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("history of %s: %w: %s", gid, ErrNotFound, gid)
	}
	return NewHistory(events), nil
}

// NewHistory numbers events (already in order) and counts the dropped
// attempts of each branch: the highest attempt number seen minus the
// attempts kept.
func NewHistory(events []Event) *History {
	h := &History{Events: events}
	highest, kept := map[string]int{}, map[string]int{}
	for i := range events {
		e := &events[i]
		e.Seq = int64(i + 1)
		if e.Kind != EventAttempt {
			continue
		}
		kept[e.BranchID]++
		highest[e.BranchID] = max(highest[e.BranchID], e.Attempt)
	}
	for id, n := range highest {
		if d := n - kept[id]; d > 0 {
			if h.Dropped == nil {
				h.Dropped = map[string]int{}
			}
			h.Dropped[id] = d
		}
	}
	return h
}
