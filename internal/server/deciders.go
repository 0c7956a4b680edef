package server

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/settle-tcc/settle/client"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/httpparticipant"
	"github.com/settle-tcc/settle/internal/tcc"
)

var _ tcc.Deciders = (*Participants)(nil)

// Ask implements tcc.Deciders: DeciderService.Decide on the decider at
// target, over the same connections, TLS and bounds as Confirm and Cancel
// (an http:// or https:// target is POST <base>/decide, anything else a
// gRPC target). The gid also travels as gRPC metadata (client.MetadataGID)
// or the Settle-Gid header. Every failure is an unknown answer, a
// *tcc.CallError with the gRPC code; an answer outside the decider's
// contract (an HTTP 404 or redirect, a success without an outcome) and
// INVALID_ARGUMENT are marked tcc.ErrParticipantUnexpected and
// tcc.ErrParticipantInvalid, which flag the transaction at once.
func (p *Participants) Ask(ctx context.Context, target, gid string) (tcc.Outcome, error) {
	var d tccv1.DeciderServiceClient
	if httpparticipant.IsTarget(target) {
		if err := p.checkOpen(); err != nil {
			return 0, err
		}
		d = httpparticipant.NewDecider(p.http, target)
	} else {
		cc, release, err := p.conn(target)
		if err != nil {
			return 0, err
		}
		defer release()
		d = tccv1.NewDeciderServiceClient(cc)
		ctx = metadata.AppendToOutgoingContext(ctx, client.MetadataGID, gid)
	}
	resp, err := d.Decide(ctx, &tccv1.DecideRequest{Gid: gid})
	if err != nil {
		return 0, callError(err, false)
	}
	switch resp.GetOutcome() {
	case tccv1.Outcome_OUTCOME_COMMIT:
		return tcc.Commit, nil
	case tccv1.Outcome_OUTCOME_ABORT:
		return tcc.Abort, nil
	}
	return 0, &tcc.CallError{Code: codes.Unknown.String(), Kind: tcc.ErrParticipantUnexpected,
		Message: fmt.Sprintf("the decider answered outcome %v, neither commit nor abort", resp.GetOutcome())}
}
