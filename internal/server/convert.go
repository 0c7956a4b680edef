package server

import (
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

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
