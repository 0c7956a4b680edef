// Package server is Settle's gRPC edge: the CoordinatorService handlers, the
// conversion between protocol messages and the domain, the one mapping from
// domain errors to status codes, and the client that delivers Confirm and
// Cancel to participants.
package server

import (
	"context"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/tcc"
)

// Coordinator serves settle.tcc.v1.CoordinatorService over a
// tcc.Coordinator.
type Coordinator struct {
	tccv1.UnimplementedCoordinatorServiceServer
	c   *tcc.Coordinator
	log *slog.Logger
}

// NewCoordinator returns the service for c.
func NewCoordinator(c *tcc.Coordinator, log *slog.Logger) *Coordinator {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Coordinator{c: c, log: log}
}

// Begin implements CoordinatorService.Begin.
func (s *Coordinator) Begin(ctx context.Context, req *tccv1.BeginRequest) (*tccv1.BeginResponse, error) {
	p := tcc.BeginParams{GID: req.GetGid(), Labels: req.GetLabels(), Decider: req.GetDecider()}
	for _, b := range req.GetBranches() {
		p.Branches = append(p.Branches, tcc.BranchSpec{BranchID: b.GetBranchId(), Participant: b.GetParticipant(), Payload: b.GetPayload()})
	}
	if d := req.GetTimeout(); d != nil {
		if err := d.CheckValid(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "begin: timeout: %v", err)
		}
		p.Timeout = d.AsDuration()
		if p.Timeout <= 0 {
			return nil, status.Errorf(codes.InvalidArgument, "begin: timeout %s is outside %s..%s", p.Timeout, tcc.MinTimeout, tcc.MaxTimeout)
		}
	}
	tx, err := s.c.Begin(ctx, p)
	if err != nil {
		return nil, toStatus(s.log, "Begin", err)
	}
	return &tccv1.BeginResponse{Transaction: TransactionToProto(tx)}, nil
}

// RegisterBranch implements CoordinatorService.RegisterBranch.
func (s *Coordinator) RegisterBranch(ctx context.Context, req *tccv1.RegisterBranchRequest) (*tccv1.RegisterBranchResponse, error) {
	tx, err := s.c.RegisterBranch(ctx, tcc.RegisterParams{
		GID: req.GetGid(), BranchID: req.GetBranchId(), Participant: req.GetParticipant(), Payload: req.GetPayload(),
	})
	if err != nil {
		return nil, toStatus(s.log, "RegisterBranch", err)
	}
	return &tccv1.RegisterBranchResponse{Transaction: TransactionToProto(tx)}, nil
}

// Commit implements CoordinatorService.Commit.
func (s *Coordinator) Commit(ctx context.Context, req *tccv1.CommitRequest) (*tccv1.CommitResponse, error) {
	tx, err := s.c.Commit(ctx, req.GetGid(), req.GetWait())
	if err != nil {
		return nil, toStatus(s.log, "Commit", err)
	}
	return &tccv1.CommitResponse{Transaction: TransactionToProto(tx)}, nil
}

// Rollback implements CoordinatorService.Rollback.
func (s *Coordinator) Rollback(ctx context.Context, req *tccv1.RollbackRequest) (*tccv1.RollbackResponse, error) {
	tx, err := s.c.Rollback(ctx, req.GetGid(), req.GetReason(), req.GetWait())
	if err != nil {
		return nil, toStatus(s.log, "Rollback", err)
	}
	return &tccv1.RollbackResponse{Transaction: TransactionToProto(tx)}, nil
}

// GetTransaction implements CoordinatorService.GetTransaction.
func (s *Coordinator) GetTransaction(ctx context.Context, req *tccv1.GetTransactionRequest) (*tccv1.GetTransactionResponse, error) {
	tx, err := s.c.Get(ctx, req.GetGid())
	if err != nil {
		return nil, toStatus(s.log, "GetTransaction", err)
	}
	return &tccv1.GetTransactionResponse{Transaction: TransactionToProto(tx)}, nil
}

// CheckBack implements CoordinatorService.CheckBack.
func (s *Coordinator) CheckBack(ctx context.Context, req *tccv1.CheckBackRequest) (*tccv1.CheckBackResponse, error) {
	res, err := s.c.CheckBack(ctx, req.GetGid(), req.GetBranchId())
	if err != nil {
		return nil, toStatus(s.log, "CheckBack", err)
	}
	out := &tccv1.CheckBackResponse{State: StateToProto(res.State)}
	switch res.Verdict {
	case tcc.VerdictConfirm:
		out.Verdict = tccv1.Verdict_VERDICT_CONFIRM
	case tcc.VerdictCancel:
		out.Verdict = tccv1.Verdict_VERDICT_CANCEL
	default:
		out.Verdict = tccv1.Verdict_VERDICT_PENDING
		out.RetryAfter = durationpb.New(res.RetryAfter)
	}
	return out, nil
}
