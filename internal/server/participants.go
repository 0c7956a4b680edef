package server

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/settle-tcc/settle/client"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/tcc"
)

// Participants delivers Confirm and Cancel over gRPC, with one client
// connection per participant target, created on first use.
type Participants struct {
	opts []grpc.DialOption

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

var _ tcc.Participants = (*Participants)(nil)

// NewParticipants returns a Participants that dials with opts (insecure
// transport credentials when opts is empty).
func NewParticipants(opts ...grpc.DialOption) *Participants {
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	return &Participants{opts: opts, conns: map[string]*grpc.ClientConn{}}
}

func (p *Participants) conn(target string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("participants: closed")
	}
	if cc, ok := p.conns[target]; ok {
		return cc, nil
	}
	cc, err := grpc.NewClient(target, p.opts...)
	if err != nil {
		return nil, fmt.Errorf("participant %s: %w", target, err)
	}
	p.conns[target] = cc
	return cc, nil
}

// Deliver implements tcc.Participants. The gid and branch id also travel as
// gRPC metadata (client.MetadataGID, client.MetadataBranchID), as the client
// SDK sends them with Try. A FAILED_PRECONDITION answer is wrapped in
// tcc.ErrParticipantRefused, INVALID_ARGUMENT in tcc.ErrParticipantInvalid;
// every other failure is transient.
func (p *Participants) Deliver(ctx context.Context, o tcc.Outcome, b *tcc.Branch) error {
	cc, err := p.conn(b.Participant)
	if err != nil {
		return err
	}
	ctx = metadata.AppendToOutgoingContext(ctx, client.MetadataGID, b.GID, client.MetadataBranchID, b.BranchID)
	client := tccv1.NewParticipantServiceClient(cc)
	if o == tcc.Commit {
		_, err = client.Confirm(ctx, &tccv1.ConfirmRequest{Gid: b.GID, BranchId: b.BranchID, Payload: b.Payload})
	} else {
		_, err = client.Cancel(ctx, &tccv1.CancelRequest{Gid: b.GID, BranchId: b.BranchID, Payload: b.Payload})
	}
	if err == nil {
		return nil
	}
	st := status.Convert(err)
	switch st.Code() {
	case codes.FailedPrecondition:
		return fmt.Errorf("%w: %s %s", tcc.ErrParticipantRefused, st.Code(), st.Message())
	case codes.InvalidArgument:
		return fmt.Errorf("%w: %s %s", tcc.ErrParticipantInvalid, st.Code(), st.Message())
	}
	return fmt.Errorf("%s: %s", st.Code(), st.Message())
}

// Close closes every participant connection.
func (p *Participants) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	var errs []error
	for t, cc := range p.conns {
		errs = append(errs, cc.Close())
		delete(p.conns, t)
	}
	return errors.Join(errs...)
}
