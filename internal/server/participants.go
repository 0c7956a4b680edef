package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/settle-tcc/settle/client"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/httpparticipant"
	"github.com/settle-tcc/settle/internal/tcc"
)

// Participants delivers Confirm and Cancel to participants over one of two
// transports, chosen by the target: an http:// or https:// base URL is an
// HTTP participant (internal/httpparticipant: POST <base>/confirm and
// <base>/cancel with protojson bodies), anything else a gRPC target. Both
// are a tccv1.ParticipantServiceClient, and Deliver is one code path for
// both: the same metadata, the same answer classification.
//
// gRPC: one client connection per participant target, created on first use.
//
// Connections are bounded: at most MaxTargets targets are held open. A new
// target beyond that closes the connection least recently used that has no
// call in flight; when every held connection is busy, the call fails as
// unavailable (and is retried by the usual backoff) rather than opening
// connections without bound. A connection unused for IdleTimeout is closed
// the next time a new target is opened, and grpc-go drops the transport of
// an idle channel on its own after IdleTimeout.
//
// HTTP: one http.Client for every HTTP participant, over a Transport that
// holds at most HTTPMaxConnsPerHost connections to one host:port (a call
// beyond that waits for a connection, bounded by the call timeout), at most
// MaxTargets idle connections in all, closed after IdleTimeout unused, TLS
// from ParticipantsConfig.HTTPTLS, no proxy and no redirects followed.
type Participants struct {
	http       *http.Client
	opts       []grpc.DialOption
	maxTargets int
	idle       time.Duration
	now        func() time.Time

	mu     sync.Mutex
	conns  map[string]*participantConn
	closed bool
}

type participantConn struct {
	cc       *grpc.ClientConn
	inFlight int
	lastUsed time.Time
}

// Default bounds of Participants.
const (
	DefaultMaxTargets  = 1024
	DefaultIdleTimeout = 5 * time.Minute
)

// ErrTooManyTargets is returned when every one of MaxTargets connections
// has a call in flight and a call to yet another target is asked for.
var ErrTooManyTargets = errors.New("participants: too many participant targets with calls in flight")

var _ tcc.Participants = (*Participants)(nil)

// DefaultHTTPMaxConnsPerHost bounds the connections to one HTTP
// participant host:port.
const DefaultHTTPMaxConnsPerHost = 64

// ParticipantsConfig configures Participants. Zero values are the
// defaults.
type ParticipantsConfig struct {
	// MaxTargets bounds the gRPC connections held, and the idle HTTP
	// connections kept. Default DefaultMaxTargets.
	MaxTargets int
	// IdleTimeout closes connections unused for this long. Default
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// DialOptions are the gRPC dial options (transport credentials).
	// Default: plaintext.
	DialOptions []grpc.DialOption
	// HTTPTLS is the TLS configuration for https:// participants: the same
	// CA and client certificate as the gRPC credentials. nil: the system
	// roots and no client certificate.
	HTTPTLS *tls.Config
	// HTTPMaxConnsPerHost bounds the connections to one HTTP participant
	// host:port. Default DefaultHTTPMaxConnsPerHost.
	HTTPMaxConnsPerHost int
}

// NewParticipantsFromConfig returns a Participants configured by cfg.
func NewParticipantsFromConfig(cfg ParticipantsConfig) *Participants {
	p := NewBoundedParticipants(cfg.MaxTargets, cfg.IdleTimeout, cfg.DialOptions...)
	perHost := cfg.HTTPMaxConnsPerHost
	if perHost <= 0 {
		perHost = DefaultHTTPMaxConnsPerHost
	}
	p.http = httpparticipant.NewHTTPClient(cfg.HTTPTLS, perHost, p.maxTargets, p.idle)
	return p
}

// NewParticipants returns a Participants that dials with opts (insecure
// transport credentials when opts is empty), holding at most
// DefaultMaxTargets connections.
func NewParticipants(opts ...grpc.DialOption) *Participants {
	return NewBoundedParticipants(DefaultMaxTargets, DefaultIdleTimeout, opts...)
}

// NewBoundedParticipants is NewParticipants with the bounds given
// (non-positive: the defaults).
func NewBoundedParticipants(maxTargets int, idle time.Duration, opts ...grpc.DialOption) *Participants {
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	if maxTargets <= 0 {
		maxTargets = DefaultMaxTargets
	}
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	opts = append(opts[:len(opts):len(opts)], grpc.WithIdleTimeout(idle))
	return &Participants{
		http: httpparticipant.NewHTTPClient(nil, DefaultHTTPMaxConnsPerHost, maxTargets, idle),
		opts: opts, maxTargets: maxTargets, idle: idle, now: time.Now, conns: map[string]*participantConn{},
	}
}

// Open returns how many participant connections are held.
func (p *Participants) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// conn returns the connection for target, counting a call in flight on it
// until release.
func (p *Participants) conn(target string) (cc *grpc.ClientConn, release func(), err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, nil, errors.New("participants: closed")
	}
	pc, ok := p.conns[target]
	if !ok {
		if err := p.makeRoomLocked(); err != nil {
			return nil, nil, err
		}
		cc, err := grpc.NewClient(target, p.opts...)
		if err != nil {
			return nil, nil, fmt.Errorf("participant %s: %w", target, err)
		}
		pc = &participantConn{cc: cc}
		p.conns[target] = pc
	}
	pc.inFlight++
	pc.lastUsed = p.now()
	return pc.cc, func() {
		p.mu.Lock()
		pc.inFlight--
		pc.lastUsed = p.now()
		p.mu.Unlock()
	}, nil
}

// makeRoomLocked closes idle connections, and the least recently used one
// without calls in flight if the map is full.
func (p *Participants) makeRoomLocked() error {
	now := p.now()
	var lru string
	for t, pc := range p.conns {
		if pc.inFlight > 0 {
			continue
		}
		if now.Sub(pc.lastUsed) >= p.idle {
			_ = pc.cc.Close()
			delete(p.conns, t)
			continue
		}
		if lru == "" || pc.lastUsed.Before(p.conns[lru].lastUsed) {
			lru = t
		}
	}
	if len(p.conns) < p.maxTargets {
		return nil
	}
	if lru == "" {
		return fmt.Errorf("%w (%d)", ErrTooManyTargets, p.maxTargets)
	}
	_ = p.conns[lru].cc.Close()
	delete(p.conns, lru)
	return nil
}

// participant returns the client for target over its transport, counting
// a call in flight until release.
func (p *Participants) participant(target string) (tccv1.ParticipantServiceClient, func(), error) {
	if httpparticipant.IsTarget(target) {
		if err := p.checkOpen(); err != nil {
			return nil, nil, err
		}
		return httpparticipant.New(p.http, target), func() {}, nil
	}
	cc, release, err := p.conn(target)
	if err != nil {
		return nil, nil, err
	}
	return tccv1.NewParticipantServiceClient(cc), release, nil
}

// Deliver implements tcc.Participants. The gid and branch id also travel as
// gRPC metadata (client.MetadataGID, client.MetadataBranchID) or HTTP
// headers (Settle-Gid, Settle-Branch-Id), as the client SDK sends them with
// Try. A FAILED_PRECONDITION answer (HTTP 409) is wrapped in
// tcc.ErrParticipantRefused, INVALID_ARGUMENT (HTTP 400, 422) in
// tcc.ErrParticipantInvalid, an HTTP answer outside the contract in
// tcc.ErrParticipantUnexpected; every other failure is transient.
func (p *Participants) Deliver(ctx context.Context, o tcc.Outcome, b *tcc.Branch) error {
	pc, release, err := p.participant(b.Participant)
	if err != nil {
		return err
	}
	defer release()
	ctx = metadata.AppendToOutgoingContext(ctx, client.MetadataGID, b.GID, client.MetadataBranchID, b.BranchID)
	if o == tcc.Commit {
		_, err = pc.Confirm(ctx, &tccv1.ConfirmRequest{Gid: b.GID, BranchId: b.BranchID, Payload: b.Payload})
	} else {
		_, err = pc.Cancel(ctx, &tccv1.CancelRequest{Gid: b.GID, BranchId: b.BranchID, Payload: b.Payload})
	}
	if err == nil {
		return nil
	}
	return callError(err, true)
}

// checkOpen refuses an HTTP call after Close (gRPC calls are refused by
// conn).
func (p *Participants) checkOpen() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("participants: closed")
	}
	return nil
}

// callError classifies a failed participant or decider call: INVALID_ARGUMENT
// is tcc.ErrParticipantInvalid, an HTTP answer outside the contract
// tcc.ErrParticipantUnexpected, and, when refusals count (Confirm and
// Cancel, not a decider's question), FAILED_PRECONDITION
// tcc.ErrParticipantRefused; anything else has no kind (transient).
func callError(err error, refusals bool) *tcc.CallError {
	st := status.Convert(err)
	ce := &tcc.CallError{Code: st.Code().String(), Message: st.Message()}
	switch {
	case st.Code() == codes.FailedPrecondition && refusals:
		ce.Kind = tcc.ErrParticipantRefused
	case st.Code() == codes.InvalidArgument:
		ce.Kind = tcc.ErrParticipantInvalid
	default:
		if ae := (*httpparticipant.AnswerError)(nil); errors.As(err, &ae) && ae.Unexpected {
			ce.Kind = tcc.ErrParticipantUnexpected
		}
	}
	return ce
}

// Close closes every participant connection.
func (p *Participants) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.http.CloseIdleConnections()
	var errs []error
	for t, pc := range p.conns {
		errs = append(errs, pc.cc.Close())
		delete(p.conns, t)
	}
	return errors.Join(errs...)
}
