package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/httpparticipant"
	"github.com/settle-tcc/settle/internal/rpcopt"
)

// Metadata keys under which Txn.Try sends the gid and the branch id to the
// participant, in addition to the request fields (which are authoritative).
const (
	MetadataGID      = "settle-gid"
	MetadataBranchID = "settle-branch-id"
)

// DefaultRollbackTimeout bounds the rollback Run sends after fn failed or
// panicked, when no WithRollbackTimeout option is given.
const DefaultRollbackTimeout = 10 * time.Second

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("client: closed")

// retryServiceConfig makes gRPC retry calls that failed with UNAVAILABLE,
// and coordinator calls it shed with RESOURCE_EXHAUSTED (refused before
// doing anything), with exponential backoff (and the coordinator's
// pushback, when it sends one). Every coordinator call and every
// participant Try is idempotent, so a retry can never apply anything
// twice. Retry throttling stops retries when most calls fail, so that
// clients do not multiply the load of an overloaded coordinator.
const retryServiceConfig = `{
  "methodConfig": [{
    "name": [{"service": "settle.tcc.v1.CoordinatorService"}],
    "retryPolicy": {
      "maxAttempts": 5,
      "initialBackoff": "0.05s",
      "maxBackoff": "1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED"]
    }
  }, {
    "name": [{"service": "settle.tcc.v1.ParticipantService"}],
    "retryPolicy": {
      "maxAttempts": 4,
      "initialBackoff": "0.05s",
      "maxBackoff": "1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }],
  "retryThrottling": {"maxTokens": 20, "tokenRatio": 0.1}
}`

// Option configures a Client.
type Option func(*config)

type config struct {
	creds            credentials.TransportCredentials
	participantCreds credentials.TransportCredentials
	dialOpts         []grpc.DialOption
	participantOpts  []grpc.DialOption
	rollbackTimeout  time.Duration
	runWait          bool
	token            string
	httpClient       *http.Client
	decider          string
}

// WithDecider names the decider of every transaction this client begins
// (unless BeginOptions.Decider names another): the initiator's own
// endpoint serving a Decider, as a gRPC target ("10.0.0.5:7600") or an
// HTTP base URL ("https://orders.example/settle"). It must be on the
// coordinator's allow-list. A transaction with a decider is committed with
// Txn.CommitLocal; the coordinator asks the decider, instead of aborting,
// when the transaction is still undecided at its deadline.
func WithDecider(target string) Option {
	return func(c *config) { c.decider = target }
}

// WithParticipantHTTPClient sets the http.Client used to call HTTP
// participants (targets that are http:// or https:// base URLs), for
// example one whose Transport has the participants' CA and a client
// certificate. It must not follow redirects: set CheckRedirect to return
// http.ErrUseLastResponse, as the protocol treats a redirect as an answer
// outside the contract. The default client uses the system roots, no
// proxy, and does not follow redirects.
func WithParticipantHTTPClient(hc *http.Client) Option {
	return func(c *config) { c.httpClient = hc }
}

// WithTransportCredentials sets the transport credentials (TLS, mTLS) used
// to reach the coordinator and, unless WithParticipantTransportCredentials
// is also given, the participants. The default is insecure (plaintext).
func WithTransportCredentials(creds credentials.TransportCredentials) Option {
	return func(c *config) { c.creds = creds }
}

// WithParticipantTransportCredentials sets the transport credentials used
// to reach participants only.
func WithParticipantTransportCredentials(creds credentials.TransportCredentials) Option {
	return func(c *config) { c.participantCreds = creds }
}

// WithDialOptions adds gRPC dial options for the coordinator and participant
// connections. They are applied after the SDK's own, so they can override
// them (for example grpc.WithDefaultServiceConfig replaces the retry policy,
// grpc.WithInitialWindowSize the SDK's static 1 MiB flow-control window).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *config) { c.dialOpts = append(c.dialOpts, opts...) }
}

// WithParticipantDialOptions adds gRPC dial options for participant
// connections only, applied after those of WithDialOptions.
func WithParticipantDialOptions(opts ...grpc.DialOption) Option {
	return func(c *config) { c.participantOpts = append(c.participantOpts, opts...) }
}

// WithRollbackTimeout bounds the rollback that Run sends when fn fails or
// panics. That rollback runs even if the caller's context is cancelled.
// Non-positive values are ignored.
func WithRollbackTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.rollbackTimeout = d
		}
	}
}

// WithRunWait makes Run pass wait=true to Commit and Rollback, so that the
// transaction it returns shows each branch's first Confirm or Cancel
// outcome. By default Run returns as soon as the decision is durable.
func WithRunWait(wait bool) Option {
	return func(c *config) { c.runWait = wait }
}

// Client talks to one Settle coordinator and to the participants of the
// transactions it begins. It is safe for concurrent use.
type Client struct {
	ownHTTP bool // cfg.httpClient is the SDK's own, closed by Close
	cfg     config
	conn    *grpc.ClientConn
	coord   tccv1.CoordinatorServiceClient

	mu           sync.Mutex
	closed       bool
	participants map[string]*grpc.ClientConn
}

// New creates a client for the coordinator at target (a gRPC target such as
// "127.0.0.1:7400" or "dns:///settle:7400"). Like grpc.NewClient it does not
// connect until the first call.
func New(target string, opts ...Option) (*Client, error) {
	if target == "" {
		return nil, errors.New("client: empty coordinator target")
	}
	cfg := config{rollbackTimeout: DefaultRollbackTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	creds := cfg.creds
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	dial := rpcopt.DialOptions(
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(retryServiceConfig),
	)
	if cfg.token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(BearerToken(cfg.token)))
	}
	dial = append(dial, cfg.dialOpts...)
	ownHTTP := cfg.httpClient == nil
	if ownHTTP {
		cfg.httpClient = httpparticipant.NewHTTPClient(nil, 0, 100, 90*time.Second)
	}
	conn, err := grpc.NewClient(target, dial...)
	if err != nil {
		return nil, fmt.Errorf("client: coordinator %s: %w", target, err)
	}
	return &Client{
		ownHTTP:      ownHTTP,
		cfg:          cfg,
		conn:         conn,
		coord:        tccv1.NewCoordinatorServiceClient(conn),
		participants: make(map[string]*grpc.ClientConn),
	}, nil
}

// Close closes the coordinator connection and every participant connection.
// Calls in flight fail; later calls return ErrClosed or a gRPC Canceled
// status.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conns := c.participants
	c.participants = nil
	c.mu.Unlock()

	if c.ownHTTP {
		c.cfg.httpClient.CloseIdleConnections()
	}
	errs := []error{c.conn.Close()}
	for _, cc := range conns {
		errs = append(errs, cc.Close())
	}
	return errors.Join(errs...)
}

// Coordinator returns the raw coordinator stub, for calls the SDK does not
// wrap (GetTransaction, CheckBack).
func (c *Client) Coordinator() tccv1.CoordinatorServiceClient { return c.coord }

// participant returns the cached stub for target, creating its connection
// on first use.
func (c *Client) participant(target string) (tccv1.ParticipantServiceClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if httpparticipant.IsTarget(target) {
		// An HTTP participant: POST <target>/try (docs/participant-protocol.md).
		return httpparticipant.New(c.cfg.httpClient, target), nil
	}
	if cc, ok := c.participants[target]; ok {
		return tccv1.NewParticipantServiceClient(cc), nil
	}
	creds := c.cfg.participantCreds
	if creds == nil {
		creds = c.cfg.creds
	}
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	dial := rpcopt.DialOptions(
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(retryServiceConfig),
	)
	dial = append(dial, c.cfg.dialOpts...)
	dial = append(dial, c.cfg.participantOpts...)
	// grpc.NewClient does no I/O, so holding the lock here is cheap.
	cc, err := grpc.NewClient(target, dial...)
	if err != nil {
		return nil, fmt.Errorf("participant %s: %w", target, err)
	}
	c.participants[target] = cc
	return tccv1.NewParticipantServiceClient(cc), nil
}

// BeginOptions are the parameters of a new global transaction.
type BeginOptions struct {
	// GID is the transaction's id and the idempotency key of the whole
	// operation (an order number, say): Begin repeated with the same GID and
	// parameters returns the existing transaction. When empty the SDK
	// generates a UUIDv7.
	GID string
	// Timeout is how long the transaction may stay undecided before the
	// coordinator aborts it. Zero means the coordinator's default.
	Timeout time.Duration
	// Labels are stored with the transaction, for operators.
	Labels map[string]string
	// Branches, when the initiator knows them up front, are registered
	// with the Begin in the same durable write (one call instead of one
	// RegisterBranch per branch). Txn.Try of such a branch, with the same
	// participant and payload, then only calls the participant's Try.
	Branches []Branch
	// Decider names the transaction's decider, overriding WithDecider
	// (see there). Empty: the client's WithDecider, if any.
	Decider string
}

// Branch is a branch registered with Begin.
type Branch struct {
	// ID is the branch id, unique within the transaction.
	ID string
	// Participant is the participant's gRPC target.
	Participant string
	// Payload is sent with Try, Confirm and Cancel.
	Payload []byte
}

// Begin starts a global transaction.
func (c *Client) Begin(ctx context.Context, opts BeginOptions) (*Txn, error) {
	gid := opts.GID
	if gid == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("client: generate gid: %w", err)
		}
		gid = id.String()
	}
	decider := opts.Decider
	if decider == "" {
		decider = c.cfg.decider
	}
	req := &tccv1.BeginRequest{Gid: gid, Labels: opts.Labels, Decider: decider}
	registered := make(map[string]Branch, len(opts.Branches))
	for _, b := range opts.Branches {
		b.Payload = bytes.Clone(b.Payload)
		registered[b.ID] = b
		req.Branches = append(req.Branches, &tccv1.BranchRegistration{BranchId: b.ID, Participant: b.Participant, Payload: b.Payload})
	}
	if opts.Timeout != 0 {
		req.Timeout = durationpb.New(opts.Timeout)
	}
	resp, err := c.coord.Begin(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("client: begin %s: %w", gid, err)
	}
	if got := resp.GetTransaction().GetGid(); got != "" {
		gid = got
	}
	return &Txn{c: c, gid: gid, begun: resp.GetTransaction(), registered: registered, decider: decider}, nil
}

// Run begins a transaction and calls fn with it. If fn returns nil, Run
// commits and returns the transaction as the coordinator reports it after
// the decision. If fn returns an error or panics, Run rolls the transaction
// back — on a context detached from ctx's cancellation and bounded by the
// rollback timeout, so that a cancelled ctx still rolls back — and then
// returns fn's error wrapped (errors.Is and status.Code see through it) or
// re-panics with fn's value.
//
// If the commit's outcome is unknown (the call timed out, was cancelled or
// the coordinator was unavailable), Run settles it with a rollback: if the
// rollback wins, the returned error wraps the commit error; if the
// coordinator had already decided commit, Run returns the transaction and no
// error.
func (c *Client) Run(ctx context.Context, opts BeginOptions, fn func(ctx context.Context, tx *Txn) error) (*tccv1.Transaction, error) {
	tx, err := c.Begin(ctx, opts)
	if err != nil {
		return nil, err
	}
	finished := false
	defer func() {
		if finished {
			return
		}
		// fn panicked (or called runtime.Goexit, for which recover returns
		// nil and unwinding simply continues after the rollback).
		value := recover()
		reason := "fn exited without returning"
		if value != nil {
			reason = fmt.Sprintf("panic: %v", value)
		}
		_, _ = tx.rollbackDetached(ctx, reason, c.cfg.runWait)
		if value != nil {
			panic(value)
		}
	}()
	fnErr := fn(ctx, tx)
	finished = true
	if fnErr != nil {
		txn, rbErr := tx.rollbackDetached(ctx, fnErr.Error(), c.cfg.runWait)
		if rbErr != nil {
			return txn, fmt.Errorf("client: run %s: %w (rollback failed: %w)", tx.gid, fnErr, rbErr)
		}
		return txn, fmt.Errorf("client: run %s: %w", tx.gid, fnErr)
	}
	txn, err := tx.Commit(ctx, c.cfg.runWait)
	if err == nil || !outcomeUnknown(err) {
		return txn, err
	}
	// The commit may or may not have been decided. A rollback is decided by
	// the same compare-and-set, so it either aborts an undecided transaction
	// or fails because commit already won; either way the outcome is known.
	txn, rbErr := tx.rollbackDetached(ctx, "commit outcome unknown: "+err.Error(), c.cfg.runWait)
	if rbErr == nil {
		return txn, fmt.Errorf("%w (rolled back)", err)
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.rollbackTimeout)
	defer cancel()
	got, getErr := c.coord.GetTransaction(dctx, &tccv1.GetTransactionRequest{Gid: tx.gid})
	if getErr == nil {
		switch s := got.GetTransaction().GetState(); s {
		case tccv1.TransactionState_TRANSACTION_STATE_COMMITTING, tccv1.TransactionState_TRANSACTION_STATE_COMMITTED:
			return got.GetTransaction(), nil
		}
	}
	return nil, fmt.Errorf("%w (rollback: %w)", err, rbErr)
}
