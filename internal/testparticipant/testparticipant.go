// Package testparticipant is a ParticipantService for coordinator tests: a
// real gRPC server on loopback that records every call, counts how many
// calls for one branch run at the same moment, and answers as the test
// tells it (succeed, fail transiently, refuse, delay).
package testparticipant

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/grpctest"
)

// Behaviour decides the answer to one call; nil means success. It may
// block (to simulate a slow participant) and must respect ctx.
type Behaviour func(ctx context.Context, method, gid, branchID string) error

// Server is a recording participant.
type Server struct {
	tccv1.UnimplementedParticipantServiceServer
	addr string
	srv  *grpc.Server

	mu            sync.Mutex
	behaviour     Behaviour
	calls         map[string]int // method/gid/branch -> successful calls
	attempts      map[string]int // method/gid/branch -> all calls
	running       map[string]int // gid/branch -> calls in progress
	maxConcurrent int            // most calls in progress for one branch at once
	log           []Call
}

// Call is one recorded call.
type Call struct {
	Method, GID, BranchID string
	Err                   error
}

// Start serves a participant on 127.0.0.1:0 until the test ends.
func Start(t testing.TB) *Server { return StartWith(t) }

// StartWith is Start with gRPC server options (e.g. TLS credentials).
func StartWith(t testing.TB, opts ...grpc.ServerOption) *Server {
	t.Helper()
	s := &Server{srv: grpc.NewServer(opts...),
		calls: map[string]int{}, attempts: map[string]int{}, running: map[string]int{}}
	tccv1.RegisterParticipantServiceServer(s.srv, s)
	s.addr = grpctest.Serve(t, s.srv)
	return s
}

// Addr is the participant's target.
func (s *Server) Addr() string { return s.addr }

// Stop stops serving (calls then fail with UNAVAILABLE at the coordinator).
func (s *Server) Stop() { s.srv.Stop() }

// SetBehaviour replaces the behaviour for later calls.
func (s *Server) SetBehaviour(b Behaviour) {
	s.mu.Lock()
	s.behaviour = b
	s.mu.Unlock()
}

// Count returns the successful calls of method ("Try", "Confirm",
// "Cancel") for one branch.
func (s *Server) Count(method, gid, branchID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method+"/"+gid+"/"+branchID]
}

// Attempts returns all calls of method for one branch, failed ones included.
func (s *Server) Attempts(method, gid, branchID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[method+"/"+gid+"/"+branchID]
}

// MaxConcurrent returns the most calls that were in progress for one branch
// at the same moment.
func (s *Server) MaxConcurrent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxConcurrent
}

// Calls returns a copy of the call log.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.log...)
}

func (s *Server) handle(ctx context.Context, method, gid, branchID string) error {
	key := gid + "/" + branchID
	s.mu.Lock()
	s.running[key]++
	if s.running[key] > s.maxConcurrent {
		s.maxConcurrent = s.running[key]
	}
	b := s.behaviour
	s.attempts[method+"/"+key]++
	s.mu.Unlock()

	var err error
	if b != nil {
		err = b(ctx, method, gid, branchID)
	}

	s.mu.Lock()
	s.running[key]--
	if err == nil {
		s.calls[method+"/"+key]++
	}
	s.log = append(s.log, Call{Method: method, GID: gid, BranchID: branchID, Err: err})
	s.mu.Unlock()
	return err
}

// Try implements ParticipantService.
func (s *Server) Try(ctx context.Context, r *tccv1.TryRequest) (*tccv1.TryResponse, error) {
	return &tccv1.TryResponse{}, s.handle(ctx, "Try", r.GetGid(), r.GetBranchId())
}

// Confirm implements ParticipantService.
func (s *Server) Confirm(ctx context.Context, r *tccv1.ConfirmRequest) (*tccv1.ConfirmResponse, error) {
	return &tccv1.ConfirmResponse{}, s.handle(ctx, "Confirm", r.GetGid(), r.GetBranchId())
}

// Cancel implements ParticipantService.
func (s *Server) Cancel(ctx context.Context, r *tccv1.CancelRequest) (*tccv1.CancelResponse, error) {
	return &tccv1.CancelResponse{}, s.handle(ctx, "Cancel", r.GetGid(), r.GetBranchId())
}

// Unavailable is a Behaviour error for a transient failure.
func Unavailable(what string) error {
	return status.Error(codes.Unavailable, fmt.Sprintf("test participant: %s unavailable", what))
}

// Refused is a Behaviour error for a definite refusal.
func Refused(why string) error {
	return status.Error(codes.FailedPrecondition, why)
}
