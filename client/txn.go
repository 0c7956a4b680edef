package client

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
)

// maxReason is the longest rollback reason the coordinator accepts.
const maxReason = 512

// Txn is a global transaction begun by Client.Begin. Its methods may be
// called from several goroutines (to try branches in parallel).
type Txn struct {
	c     *Client
	gid   string
	begun *tccv1.Transaction
	// registered holds the branches registered with Begin; read-only.
	registered map[string]Branch
	// decider is the decider named at Begin, empty if none.
	decider string

	mu sync.Mutex
	// tried holds, per branch id passed to Try, the error of its last Try
	// (nil: it succeeded), for CommitLocal.
	tried map[string]error
}

// GID returns the transaction's global id.
func (t *Txn) GID() string { return t.gid }

// Begun returns the transaction as the coordinator reported it at Begin.
func (t *Txn) Begun() *tccv1.Transaction { return t.begun }

// Try registers the branch with the coordinator and then calls the
// participant's Try with the same gid, branch id and payload. The
// registration comes first so that the coordinator can cancel the branch
// whatever happens to the Try; a branch registered with Begin (same
// participant and payload) is not registered again. The gid and branch id also travel as gRPC
// metadata (MetadataGID, MetadataBranchID), and ctx's deadline bounds both
// calls.
//
// participant is a gRPC target ("10.0.0.7:7501", "dns:///pay.svc:7501")
// or an HTTP participant's base URL ("https://pay.example/tcc"): the Try
// is then POST <base>/try with the protobuf JSON request, over the client
// of WithParticipantHTTPClient, and its answer's HTTP status is read as a
// gRPC code (409 FailedPrecondition, 400/422 InvalidArgument, 429
// ResourceExhausted, 5xx Unavailable, no answer Unavailable or
// DeadlineExceeded, anything else Unknown; docs/participant-protocol.md).
//
// The error, if any, is a *BranchError wrapping the gRPC status error:
// Refusal tells a participant's business refusal apart; any error means the
// transaction should be rolled back.
//
// model: register, try
func (t *Txn) Try(ctx context.Context, branchID, participant string, payload []byte) error {
	err := t.try(ctx, branchID, participant, payload)
	t.mu.Lock()
	if t.tried == nil {
		t.tried = make(map[string]error)
	}
	t.tried[branchID] = err
	t.mu.Unlock()
	return err
}

func (t *Txn) try(ctx context.Context, branchID, participant string, payload []byte) error {
	if rb, ok := t.registered[branchID]; !ok || rb.Participant != participant || !bytes.Equal(rb.Payload, payload) {
		_, err := t.c.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{
			Gid:         t.gid,
			BranchId:    branchID,
			Participant: participant,
			Payload:     payload,
		})
		if err != nil {
			return &BranchError{GID: t.gid, BranchID: branchID, Stage: StageRegister, Err: err}
		}
	}
	p, err := t.c.participant(participant)
	if err != nil {
		return &BranchError{GID: t.gid, BranchID: branchID, Stage: StageTry, Err: err}
	}
	ctx = metadata.AppendToOutgoingContext(ctx, MetadataGID, t.gid, MetadataBranchID, branchID)
	_, err = p.Try(ctx, &tccv1.TryRequest{Gid: t.gid, BranchId: branchID, Payload: payload})
	if err != nil {
		return &BranchError{GID: t.gid, BranchID: branchID, Stage: StageTry, Err: err}
	}
	return nil
}

// Commit asks the coordinator to decide commit. With wait, it returns after
// Confirm has been attempted once on every branch, and the transaction shows
// each branch's outcome; without, as soon as the decision is durable.
// Repeating Commit is harmless.
func (t *Txn) Commit(ctx context.Context, wait bool) (*tccv1.Transaction, error) {
	resp, err := t.c.coord.Commit(ctx, &tccv1.CommitRequest{Gid: t.gid, Wait: wait})
	if err != nil {
		return nil, fmt.Errorf("client: commit %s: %w", t.gid, err)
	}
	return resp.GetTransaction(), nil
}

// Rollback asks the coordinator to decide abort, recording reason
// (truncated to 512 bytes). With wait, it returns after Cancel has been
// attempted once on every branch. Repeating Rollback is harmless.
func (t *Txn) Rollback(ctx context.Context, reason string, wait bool) (*tccv1.Transaction, error) {
	resp, err := t.c.coord.Rollback(ctx, &tccv1.RollbackRequest{Gid: t.gid, Wait: wait, Reason: truncate(reason, maxReason)})
	if err != nil {
		return nil, fmt.Errorf("client: rollback %s: %w", t.gid, err)
	}
	return resp.GetTransaction(), nil
}

// rollbackDetached rolls back on a context that keeps ctx's values but not
// its cancellation, bounded by the client's rollback timeout.
func (t *Txn) rollbackDetached(ctx context.Context, reason string, wait bool) (*tccv1.Transaction, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.c.cfg.rollbackTimeout)
	defer cancel()
	return t.Rollback(ctx, reason, wait)
}

// outcomeUnknown reports whether err leaves it open whether the call was
// applied.
func outcomeUnknown(err error) bool {
	switch status.Code(err) {
	case codes.Canceled, codes.DeadlineExceeded, codes.Unavailable, codes.Unknown, codes.Internal:
		return true
	}
	return false
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i]
}
