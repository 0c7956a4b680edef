package main

import (
	"context"
	"net"
	"sync/atomic"

	"google.golang.org/grpc"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/rpcopt"
)

// noopParticipant answers every Try, Confirm and Cancel with success at
// once, so that a run measures the coordinator and not the participants.
type noopParticipant struct {
	tccv1.UnimplementedParticipantServiceServer
	addr                  string
	srv                   *grpc.Server
	tries, confirms, cans atomic.Int64
}

func startNoop() (*noopParticipant, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &noopParticipant{addr: lis.Addr().String(), srv: grpc.NewServer(rpcopt.ServerOptions(grpc.NumStreamWorkers(32))...)}
	tccv1.RegisterParticipantServiceServer(p.srv, p)
	go func() { _ = p.srv.Serve(lis) }()
	return p, nil
}

func (p *noopParticipant) stop() { p.srv.Stop() }

func (p *noopParticipant) Try(context.Context, *tccv1.TryRequest) (*tccv1.TryResponse, error) {
	p.tries.Add(1)
	return &tccv1.TryResponse{}, nil
}

func (p *noopParticipant) Confirm(context.Context, *tccv1.ConfirmRequest) (*tccv1.ConfirmResponse, error) {
	p.confirms.Add(1)
	return &tccv1.ConfirmResponse{}, nil
}

func (p *noopParticipant) Cancel(context.Context, *tccv1.CancelRequest) (*tccv1.CancelResponse, error) {
	p.cans.Add(1)
	return &tccv1.CancelResponse{}, nil
}
