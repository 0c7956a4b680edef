package server

import (
	"sort"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/settle-tcc/settle/gen/settle/admin/v1"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/tcc"
)

var stateToProto = map[tcc.State]tccv1.TransactionState{
	tcc.StateTrying:     tccv1.TransactionState_TRANSACTION_STATE_TRYING,
	tcc.StateCommitting: tccv1.TransactionState_TRANSACTION_STATE_COMMITTING,
	tcc.StateCommitted:  tccv1.TransactionState_TRANSACTION_STATE_COMMITTED,
	tcc.StateAborting:   tccv1.TransactionState_TRANSACTION_STATE_ABORTING,
	tcc.StateAborted:    tccv1.TransactionState_TRANSACTION_STATE_ABORTED,
}

var branchStateToProto = map[tcc.BranchState]tccv1.BranchState{
	tcc.BranchRegistered: tccv1.BranchState_BRANCH_STATE_REGISTERED,
	tcc.BranchConfirmed:  tccv1.BranchState_BRANCH_STATE_CONFIRMED,
	tcc.BranchCancelled:  tccv1.BranchState_BRANCH_STATE_CANCELLED,
}

func timestamp(t interface{ IsZero() bool }, ts *timestamppb.Timestamp) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return ts
}

// TransactionToProto converts a domain transaction to its protocol form.
func TransactionToProto(tx *tcc.Transaction) *tccv1.Transaction {
	if tx == nil {
		return nil
	}
	out := &tccv1.Transaction{
		Gid:             tx.GID,
		State:           stateToProto[tx.State],
		Deadline:        timestamp(tx.Deadline, timestamppb.New(tx.Deadline)),
		Attempts:        int32(tx.Attempts),
		LastError:       tx.LastError,
		Labels:          tx.Labels,
		CreateTime:      timestamp(tx.CreatedAt, timestamppb.New(tx.CreatedAt)),
		UpdateTime:      timestamp(tx.UpdatedAt, timestamppb.New(tx.UpdatedAt)),
		AbortReason:     tx.AbortReason,
		NeedsAttention:  tx.NeedsAttention,
		NextAttemptTime: timestamp(tx.NextAttemptAt, timestamppb.New(tx.NextAttemptAt)),
		BranchCount:     int32(max(tx.BranchCount, len(tx.Branches))),
		Decider:         tx.Decider,
	}
	if tx.Timeout > 0 {
		out.Timeout = durationpb.New(tx.Timeout)
	}
	if tx.State.Final() {
		out.NextAttemptTime = nil
	}
	for _, b := range tx.Branches {
		out.Branches = append(out.Branches, &tccv1.Branch{
			BranchId:    b.BranchID,
			Participant: b.Participant,
			State:       branchStateToProto[b.State],
			Attempts:    int32(b.Attempts),
			LastError:   b.LastError,
			Payload:     b.Payload,
			UpdateTime:  timestamp(b.UpdatedAt, timestamppb.New(b.UpdatedAt)),
		})
	}
	return out
}

// StateToProto converts a transaction state.
func StateToProto(s tcc.State) tccv1.TransactionState { return stateToProto[s] }

var eventKindToProto = map[tcc.EventKind]adminv1.EventKind{
	tcc.EventBegun:            adminv1.EventKind_EVENT_KIND_BEGUN,
	tcc.EventBranchRegistered: adminv1.EventKind_EVENT_KIND_BRANCH_REGISTERED,
	tcc.EventDecided:          adminv1.EventKind_EVENT_KIND_DECIDED,
	tcc.EventAttempt:          adminv1.EventKind_EVENT_KIND_ATTEMPT,
	tcc.EventNeedsAttention:   adminv1.EventKind_EVENT_KIND_NEEDS_ATTENTION,
	tcc.EventConflict:         adminv1.EventKind_EVENT_KIND_CONFLICT,
	tcc.EventRetryNow:         adminv1.EventKind_EVENT_KIND_RETRY_NOW,
	tcc.EventResolved:         adminv1.EventKind_EVENT_KIND_RESOLVED,
	tcc.EventFinished:         adminv1.EventKind_EVENT_KIND_FINISHED,
}

var causeToProto = map[tcc.Cause]adminv1.DecisionCause{
	tcc.CauseCommit:    adminv1.DecisionCause_DECISION_CAUSE_COMMIT,
	tcc.CauseRollback:  adminv1.DecisionCause_DECISION_CAUSE_ROLLBACK,
	tcc.CauseDeadline:  adminv1.DecisionCause_DECISION_CAUSE_DEADLINE,
	tcc.CauseCheckBack: adminv1.DecisionCause_DECISION_CAUSE_CHECK_BACK,
	tcc.CauseOperator:  adminv1.DecisionCause_DECISION_CAUSE_OPERATOR,
	tcc.CauseDecider:   adminv1.DecisionCause_DECISION_CAUSE_DECIDER,
}

var resultToProto = map[tcc.AttemptResult]adminv1.AttemptResult{
	tcc.ResultSuccess: adminv1.AttemptResult_ATTEMPT_RESULT_SUCCESS,
	tcc.ResultFailed:  adminv1.AttemptResult_ATTEMPT_RESULT_FAILED,
	tcc.ResultUnknown: adminv1.AttemptResult_ATTEMPT_RESULT_UNKNOWN,
}

// HistoryToProto converts a transaction's history. Values the protocol
// does not know (a newer coordinator's) become UNSPECIFIED.
func HistoryToProto(h *tcc.History) *adminv1.GetTransactionHistoryResponse {
	out := &adminv1.GetTransactionHistoryResponse{Events: make([]*adminv1.TransactionEvent, 0, len(h.Events))}
	for _, e := range h.Events {
		pe := &adminv1.TransactionEvent{
			Seq:         e.Seq,
			Time:        timestamp(e.At, timestamppb.New(e.At)),
			Kind:        eventKindToProto[e.Kind],
			BranchId:    e.BranchID,
			Participant: e.Participant,
			State:       stateToProto[e.State],
			Cause:       causeToProto[e.Cause],
			Result:      resultToProto[e.Result],
			Code:        e.Code,
			Message:     e.Message,
			Instance:    e.Instance,
			Actor:       e.Actor,
			BranchState: branchStateToProto[e.BranchState],
			Call:        e.Call,
			Attempt:     int32(e.Attempt),
		}
		if e.Kind == tcc.EventAttempt {
			pe.Latency = durationpb.New(e.Latency)
		}
		out.Events = append(out.Events, pe)
	}
	if len(h.Events) > 0 {
		out.BeginTime = timestamp(h.Events[0].At, timestamppb.New(h.Events[0].At))
	}
	ids := make([]string, 0, len(h.Dropped))
	for id := range h.Dropped {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		out.DroppedAttempts = append(out.DroppedAttempts, &adminv1.DroppedAttempts{BranchId: id, Count: int64(h.Dropped[id])})
	}
	return out
}

// OverviewToProto converts an overview.
func OverviewToProto(o *tcc.Overview) *adminv1.GetOverviewResponse {
	out := &adminv1.GetOverviewResponse{Time: timestamppb.New(o.At), NeedsAttention: o.NeedsAttention,
		SeriesStart: timestamppb.New(o.Since), Bucket: durationpb.New(o.Bucket),
		Decisions: o.Decisions, FailedCalls: o.FailedCalls}
	for _, s := range o.States {
		out.States = append(out.States, &adminv1.StateCount{State: stateToProto[s.State], Count: s.Count, NeedsAttention: s.NeedsAttention})
	}
	age := func(t time.Time) *durationpb.Duration {
		if t.IsZero() {
			return nil
		}
		return durationpb.New(max(o.At.Sub(t), 0))
	}
	out.OldestUndecidedAge, out.OldestUnfinishedAge = age(o.OldestUndecided), age(o.OldestUnfinished)
	return out
}
