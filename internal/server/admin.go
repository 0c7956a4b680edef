package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	adminv1 "github.com/settle-tcc/settle/gen/settle/admin/v1"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/auth"
	"github.com/settle-tcc/settle/internal/tcc"
)

// Admin serves settle.admin.v1.AdminService.
type Admin struct {
	adminv1.UnimplementedAdminServiceServer
	c     *tcc.Coordinator
	log   *slog.Logger
	clock tcc.Clock
}

// NewAdmin returns the admin service for c. clock may be nil.
func NewAdmin(c *tcc.Coordinator, log *slog.Logger, clock tcc.Clock) *Admin {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if clock == nil {
		clock = wallClock{}
	}
	return &Admin{c: c, log: log, clock: clock}
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

var stateFromProto = func() map[tccv1.TransactionState]tcc.State {
	m := map[tccv1.TransactionState]tcc.State{}
	for k, v := range stateToProto {
		m[v] = k
	}
	return m
}()

// ListTransactions implements AdminService.
func (s *Admin) ListTransactions(ctx context.Context, req *adminv1.ListTransactionsRequest) (*adminv1.ListTransactionsResponse, error) {
	p := tcc.ListParams{NeedsAttention: req.GetNeedsAttention(), After: req.GetPageToken(), Limit: int(req.GetPageSize())}
	if st := req.GetState(); st != tccv1.TransactionState_TRANSACTION_STATE_UNSPECIFIED {
		ds, ok := stateFromProto[st]
		if !ok {
			return nil, toStatus(s.log, "ListTransactions", invalid("unknown state %v", st))
		}
		p.State = ds
	}
	now := s.clock.Now()
	minAge, maxAge := req.GetMinAgeSeconds(), req.GetMaxAgeSeconds()
	switch {
	case minAge < 0 || minAge > maxAgeSeconds:
		return nil, toStatus(s.log, "ListTransactions", invalid("min_age_seconds %d must be within 0..%d", minAge, maxAgeSeconds))
	case maxAge < 0 || maxAge > maxAgeSeconds:
		return nil, toStatus(s.log, "ListTransactions", invalid("max_age_seconds %d must be within 0..%d", maxAge, maxAgeSeconds))
	case maxAge > 0 && maxAge < minAge:
		return nil, toStatus(s.log, "ListTransactions", invalid("max_age_seconds %d is below min_age_seconds %d", maxAge, minAge))
	}
	if minAge > 0 {
		p.CreatedBefore = now.Add(-time.Duration(minAge) * time.Second)
	}
	if maxAge > 0 {
		p.CreatedAfter = now.Add(-time.Duration(maxAge) * time.Second)
	}
	p.GIDPrefix, p.Participant = req.GetGidPrefix(), req.GetParticipant()
	if l := req.GetLabel(); l != "" {
		k, v, hasValue := strings.Cut(l, "=")
		if k == "" {
			return nil, toStatus(s.log, "ListTransactions", invalid("label filter %q needs a key (key or key=value)", l))
		}
		p.LabelKey, p.LabelValue, p.LabelValueSet = k, v, hasValue
	}
	txs, next, err := s.c.List(ctx, p)
	if err != nil {
		return nil, toStatus(s.log, "ListTransactions", err)
	}
	out := &adminv1.ListTransactionsResponse{NextPageToken: next}
	for _, tx := range txs {
		out.Transactions = append(out.Transactions, TransactionToProto(tx))
	}
	return out, nil
}

// GetTransaction implements AdminService.
func (s *Admin) GetTransaction(ctx context.Context, req *adminv1.GetTransactionRequest) (*adminv1.GetTransactionResponse, error) {
	tx, err := s.c.Get(ctx, req.GetGid())
	if err != nil {
		return nil, toStatus(s.log, "GetTransaction", err)
	}
	out := &adminv1.GetTransactionResponse{Transaction: TransactionToProto(tx), LeaseOwner: tx.LeaseOwner}
	for _, b := range tx.Branches {
		out.BranchDetails = append(out.BranchDetails, &adminv1.BranchDetail{BranchId: b.BranchID, Conflict: b.Conflict, Resolution: b.Resolution,
			PayloadDigest: b.PayloadDigest})
	}
	return out, nil
}

// RetryNow implements AdminService.
func (s *Admin) RetryNow(ctx context.Context, req *adminv1.RetryNowRequest) (*adminv1.RetryNowResponse, error) {
	tx, err := s.c.RetryNow(ctx, req.GetGid(), actor(ctx))
	if err != nil {
		return nil, toStatus(s.log, "RetryNow", err)
	}
	s.log.Warn("admin: retry now", "gid", req.GetGid(), auth.LogAttr(ctx))
	return &adminv1.RetryNowResponse{Transaction: TransactionToProto(tx)}, nil
}

// ResolveBranch implements AdminService.
func (s *Admin) ResolveBranch(ctx context.Context, req *adminv1.ResolveBranchRequest) (*adminv1.ResolveBranchResponse, error) {
	var st tcc.BranchState
	switch req.GetState() {
	case tccv1.BranchState_BRANCH_STATE_CONFIRMED:
		st = tcc.BranchConfirmed
	case tccv1.BranchState_BRANCH_STATE_CANCELLED:
		st = tcc.BranchCancelled
	default:
		return nil, toStatus(s.log, "ResolveBranch", invalid("state must be BRANCH_STATE_CONFIRMED or BRANCH_STATE_CANCELLED, not %v", req.GetState()))
	}
	// The stored resolution says who resolved the branch and when, after
	// the operator's reason (an empty reason stays empty and is refused).
	reason := strings.TrimSpace(req.GetReason())
	if reason != "" {
		reason = fmt.Sprintf("%s [by %s at %s]", reason, actor(ctx), s.clock.Now().UTC().Format(time.RFC3339))
	}
	tx, err := s.c.ResolveBranch(ctx, req.GetGid(), req.GetBranchId(), st, reason, actor(ctx))
	if err != nil {
		return nil, toStatus(s.log, "ResolveBranch", err)
	}
	s.log.Warn("admin: branch resolved by hand", "gid", req.GetGid(), "branch_id", req.GetBranchId(), "state", string(st), auth.LogAttr(ctx))
	return &adminv1.ResolveBranchResponse{Transaction: TransactionToProto(tx)}, nil
}

// GetTransactionHistory implements AdminService.
func (s *Admin) GetTransactionHistory(ctx context.Context, req *adminv1.GetTransactionHistoryRequest) (*adminv1.GetTransactionHistoryResponse, error) {
	h, err := s.c.History(ctx, req.GetGid())
	if err != nil {
		return nil, toStatus(s.log, "GetTransactionHistory", err)
	}
	return HistoryToProto(h), nil
}

// maxAgeSeconds bounds the age filters (100 years): a larger one would
// overflow the time arithmetic.
const maxAgeSeconds = 100 * 365 * 24 * 3600

// actor names the caller of an admin action for what it stores.
func actor(ctx context.Context) string {
	if id, ok := auth.FromContext(ctx); ok {
		return id.Name + " (" + string(id.Role) + ")"
	}
	return "an unauthenticated caller"
}

// GetOverview implements AdminService.
func (s *Admin) GetOverview(ctx context.Context, _ *adminv1.GetOverviewRequest) (*adminv1.GetOverviewResponse, error) {
	o, err := s.c.Overview(ctx)
	if err != nil {
		return nil, toStatus(s.log, "GetOverview", err)
	}
	return OverviewToProto(o), nil
}
