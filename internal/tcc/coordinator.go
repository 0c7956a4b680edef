package tcc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/settle-tcc/settle/internal/allowlist"
)

// Config configures a Coordinator. The zero value of each field means its
// default.
type Config struct {
	// InstanceID names this coordinator instance in leases and logs. It
	// must be unique among instances sharing a database. Default:
	// hostname-pid-random.
	InstanceID string
	// MaxPayloadBytes limits a branch payload. Default 64 KiB.
	MaxPayloadBytes int
	// MaxBranches limits the branches of one transaction. Default 64.
	MaxBranches int
	// DefaultTimeout is used when Begin gives none. Default 60s.
	DefaultTimeout time.Duration
	// LeaseTTL is how long an instance owns a transaction it is driving;
	// if it crashes, another instance (or itself after restart) resumes
	// the transaction after this. Must exceed CallTimeout. Default 30s.
	LeaseTTL time.Duration
	// CallTimeout bounds each Confirm/Cancel call. Default 10s.
	CallTimeout time.Duration
	// Backoff is the retry schedule for failed delivery rounds.
	Backoff Backoff
	// RetryHorizon: a decided transaction still unfinished this long after
	// its decision is flagged needs_attention (it keeps its decision and
	// keeps being retried at the capped interval). Default 24h.
	RetryHorizon time.Duration
	// MaxAttempts, if positive, also flags a transaction after this many
	// failed delivery rounds. Default 0 (only the horizon applies).
	MaxAttempts int
	// MaxRetryAfter caps the retry_after of a pending check-back answer.
	// Default 5s.
	MaxRetryAfter time.Duration
	// WaitPoll is how often a waiting Commit/Rollback re-reads a record
	// that another instance is driving. Default 50ms.
	WaitPoll time.Duration
	// Allow is the participant allow-list. Default: loopback only.
	Allow *allowlist.List
	// Deciders calls the deciders that transactions name at Begin
	// (decider.go). nil: a Begin that names a decider is refused
	// (ErrInvalid).
	Deciders Deciders
	// ParticipantRetryRate, if positive, limits the Confirm/Cancel calls of
	// retried delivery rounds (every round after a transaction's first)
	// that this instance sends to one participant target, per second, with
	// bursts of one second's worth. A call over the limit is not sent; its
	// branch is retried with the round's backoff (ErrRateLimited). First
	// rounds are never limited. Default 0: no limit.
	ParticipantRetryRate float64
	// MaxRounds bounds the delivery rounds this instance runs at once for
	// the decisions it records (a Commit or Rollback that does not wait
	// returns while its round goes on). A decision made while MaxRounds
	// rounds are running is durable as always, but its round is left to
	// the recovery loop, which takes it when this instance's lease on it
	// runs out (LeaseTTL): under overload delivery is delayed, never lost,
	// and goroutines and connections stay bounded. Default 4096.
	MaxRounds int
	// HistoryAttempts bounds the history: of each branch's Confirm/Cancel
	// attempts the first and the last HistoryAttempts are kept, the ones in
	// between dropped (and counted). Every other event is kept. Default
	// DefaultHistoryAttempts; 1..1000.
	HistoryAttempts int
}

func (c *Config) setDefaults() error {
	if c.InstanceID == "" {
		c.InstanceID = defaultInstanceID()
	}
	if c.MaxPayloadBytes == 0 {
		c.MaxPayloadBytes = 64 << 10
	}
	if c.MaxBranches == 0 {
		c.MaxBranches = 64
	}
	if c.MaxRounds == 0 {
		c.MaxRounds = 4096
	}
	if c.HistoryAttempts == 0 {
		c.HistoryAttempts = DefaultHistoryAttempts
	}
	if c.DefaultTimeout == 0 {
		c.DefaultTimeout = DefaultTimeout
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 30 * time.Second
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 10 * time.Second
	}
	if c.Backoff == (Backoff{}) {
		c.Backoff = DefaultBackoff
	}
	if c.RetryHorizon == 0 {
		c.RetryHorizon = 24 * time.Hour
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = 5 * time.Second
	}
	if c.WaitPoll == 0 {
		c.WaitPoll = 50 * time.Millisecond
	}
	if c.Allow == nil {
		l, err := allowlist.Parse(allowlist.Default)
		if err != nil {
			return err
		}
		c.Allow = l
	}
	return c.Validate()
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case len(c.InstanceID) > 64:
		return fmt.Errorf("tcc config: instance id longer than 64 bytes")
	case c.MaxPayloadBytes < 0 || c.MaxPayloadBytes > 16<<20:
		return fmt.Errorf("tcc config: max payload %d must be within 0..16 MiB", c.MaxPayloadBytes)
	case c.MaxBranches < 1 || c.MaxBranches > 10000:
		return fmt.Errorf("tcc config: max branches %d must be within 1..10000", c.MaxBranches)
	case validateTimeout(c.DefaultTimeout) != nil:
		return fmt.Errorf("tcc config: default timeout: %w", validateTimeout(c.DefaultTimeout))
	case c.CallTimeout <= 0 || c.LeaseTTL <= c.CallTimeout:
		return fmt.Errorf("tcc config: need 0 < call timeout (%s) < lease TTL (%s)", c.CallTimeout, c.LeaseTTL)
	case c.RetryHorizon < time.Second || c.MaxAttempts < 0:
		return fmt.Errorf("tcc config: retry horizon %s must be at least 1s and max attempts %d not negative", c.RetryHorizon, c.MaxAttempts)
	case c.HistoryAttempts < 1 || c.HistoryAttempts > 1000:
		return fmt.Errorf("tcc config: history attempts %d must be within 1..1000", c.HistoryAttempts)
	case c.MaxRetryAfter < time.Second:
		return fmt.Errorf("tcc config: max retry-after %s must be at least 1s", c.MaxRetryAfter)
	case c.ParticipantRetryRate < 0 || c.ParticipantRetryRate > 1e6 || math.IsNaN(c.ParticipantRetryRate):
		return fmt.Errorf("tcc config: participant retry rate %g must be within 0..1e6 per second (0: no limit)", c.ParticipantRetryRate)
	}
	return c.Backoff.Validate()
}

func defaultInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "coordinator"
	}
	if len(host) > 40 {
		host = host[:40]
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// Clock tells the time. All deadlines, leases and retry times are taken from
// the coordinator's clock; see the package documentation.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// ErrParticipantRefused is returned (wrapped) by Participants when the
// participant answered with a definite refusal (FAILED_PRECONDITION): it
// says the branch is already in the opposite final state. Every other error
// is treated as transient and retried.
var ErrParticipantRefused = errors.New("tcc: participant refused")

// ErrParticipantInvalid is returned (wrapped) by Participants when the
// participant answered INVALID_ARGUMENT: it says it will never accept this
// call's payload, so retrying cannot help. The branch is flagged as needing
// attention at once and retried only at the longest backoff (in case the
// participant is fixed), instead of quietly until the retry horizon.
var ErrParticipantInvalid = errors.New("tcc: participant rejected the payload as invalid")

// ErrParticipantUnexpected is returned (wrapped) by Participants when the
// participant's answer is outside its transport's contract (over HTTP: a
// redirect, 404, 405, ...). The outcome is unknown, so the call is retried
// with the usual backoff, but the transaction is flagged as needing
// attention at once: a misconfigured participant URL does not fix itself.
var ErrParticipantUnexpected = errors.New("tcc: participant answered outside the protocol")

// Participants delivers Confirm and Cancel to participants.
type Participants interface {
	// Deliver calls Confirm (Commit) or Cancel (Abort) for branch b on its
	// participant and returns nil once the participant acknowledged.
	Deliver(ctx context.Context, o Outcome, b *Branch) error
}

// Coordinator records global transactions, decides them exactly once and
// drives their branches to the decided outcome. It is safe for concurrent
// use; any number of Coordinators may share one Store.
type Coordinator struct {
	store Store
	parts Participants
	cfg   Config
	log   *slog.Logger
	clock Clock
	hooks Hooks

	mu       sync.Mutex
	inflight map[string]chan struct{} // gid -> closed when this instance's round ends
	closed   bool
	rounds   sync.WaitGroup
	work     *workers
	limits   *retryLimits // nil: retries are not rate limited
}

// Hooks observe the coordinator; every field may be nil. They are called
// synchronously and must be fast.
type Hooks struct {
	// Decided is called after a decision is recorded by this instance.
	Decided func(gid string, o Outcome, by string)
	// Delivered is called after each Confirm/Cancel call, and for each call
	// a retried round did not send because of the participant's retry rate
	// limit (err wraps ErrRateLimited, took is 0).
	Delivered func(gid, branchID string, o Outcome, err error, took time.Duration)
	// Finished is called when this instance moves a transaction to its
	// final state.
	Finished func(gid string, final State)
	// Attention is called when this instance flags a transaction
	// needs_attention (retry horizon reached or a conflict).
	Attention func(gid, why string)
	// Conflict is called when a participant reports the opposite outcome
	// for a branch (S11).
	Conflict func(gid, branchID string)
	// FaultPoint is called at named points of the protocol so that crash
	// tests can stop the process there (see internal/faults).
	FaultPoint func(name string)
	// RoundDeferred is called when a decision's round is left to the
	// recovery loop because MaxRounds rounds are running.
	RoundDeferred func(gid string)
	// DeciderAsked is called after each call to a transaction's decider
	// (decider.go) with its answer (o is 0 when err is not nil).
	DeciderAsked func(gid string, o Outcome, err error, took time.Duration)
}

// NewCoordinator returns a Coordinator over store and participants. clock
// may be nil for the system clock.
func NewCoordinator(store Store, parts Participants, cfg Config, log *slog.Logger, clock Clock, hooks Hooks) (*Coordinator, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if clock == nil {
		clock = systemClock{}
	}
	return &Coordinator{
		store:    store,
		parts:    parts,
		cfg:      cfg,
		log:      log,
		clock:    clock,
		hooks:    hooks,
		inflight: map[string]chan struct{}{},
		work:     newWorkers(workerIdle),
		limits:   newRetryLimits(cfg.ParticipantRetryRate),
	}, nil
}

// Config returns the effective configuration.
func (c *Coordinator) Config() Config { return c.cfg }

func (c *Coordinator) fault(name string) {
	if c.hooks.FaultPoint != nil {
		c.hooks.FaultPoint(name)
	}
}

// BeginParams are the arguments of Begin.
type BeginParams struct {
	GID     string // empty: generate one
	Timeout time.Duration
	Labels  map[string]string
	// Branches, if any, are registered with the Begin in the same durable
	// write: the same as a RegisterBranch of each right after, but one
	// database transaction and one call instead of 1+N.
	Branches []BranchSpec
	// Decider, if not empty, is the initiator's decider target (a gRPC
	// target or an http(s) base URL, validated and allow-listed like a
	// participant). The transaction is then never aborted at its deadline
	// without asking it (decider.go).
	Decider string
}

// BranchSpec is a branch to register: its id, the participant's gRPC
// target and the payload Try/Confirm/Cancel carry.
type BranchSpec struct {
	BranchID    string
	Participant string
	Payload     []byte
}

// Begin starts a global transaction in TRYING. Begin is idempotent on the
// gid; see the protocol documentation.
//
// model: begin (and register, for branches given with Begin)
func (c *Coordinator) Begin(ctx context.Context, p BeginParams) (*Transaction, error) {
	if p.GID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("begin: generate gid: %w", err)
		}
		p.GID = id.String()
	}
	if err := ValidateGID(p.GID); err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	if p.Timeout == 0 {
		p.Timeout = c.cfg.DefaultTimeout
	}
	if err := validateTimeout(p.Timeout); err != nil {
		return nil, fmt.Errorf("begin %s: %w", p.GID, err)
	}
	if err := validateLabels(p.Labels); err != nil {
		return nil, fmt.Errorf("begin %s: %w", p.GID, err)
	}
	if p.Decider != "" {
		if c.cfg.Deciders == nil {
			return nil, fmt.Errorf("begin %s: %w", p.GID, invalidf("a decider is named but %v", ErrNoDeciders))
		}
		if err := validateDecider(p.Decider); err != nil {
			return nil, fmt.Errorf("begin %s: %w", p.GID, err)
		}
		if err := c.cfg.Allow.Check(p.Decider); err != nil {
			return nil, fmt.Errorf("%w: begin %s: decider: %w", ErrNotAllowed, p.GID, err)
		}
	}
	now := c.now()
	if len(p.Branches) > c.cfg.MaxBranches {
		return nil, fmt.Errorf("begin %s: %w", p.GID, invalidf("%d branches, the limit is %d", len(p.Branches), c.cfg.MaxBranches))
	}
	branches := make([]Branch, 0, len(p.Branches))
	seen := make(map[string]bool, len(p.Branches))
	for _, spec := range p.Branches {
		b, err := c.newBranch(p.GID, spec, now)
		if err != nil {
			return nil, fmt.Errorf("begin %s: %w", p.GID, err)
		}
		if seen[b.BranchID] {
			return nil, fmt.Errorf("begin %s: %w", p.GID, invalidf("branch %s is listed twice", b.BranchID))
		}
		seen[b.BranchID] = true
		branches = append(branches, b)
	}
	tx := &Transaction{
		GID:           p.GID,
		State:         StateTrying,
		Version:       1,
		Timeout:       p.Timeout,
		Deadline:      now.Add(p.Timeout),
		NextAttemptAt: now.Add(p.Timeout),
		Labels:        maps.Clone(p.Labels),
		Decider:       p.Decider,
		CreatedAt:     now,
		UpdatedAt:     now,
		Branches:      branches,
	}
	err := c.store.InsertTransaction(ctx, tx)
	if err == nil {
		c.fault("after_begin")
		return tx, nil
	}
	if !errors.Is(err, ErrDuplicate) {
		return nil, fmt.Errorf("begin %s: %w", p.GID, err)
	}
	existing, err := c.store.GetTransaction(ctx, p.GID)
	if err != nil {
		return nil, fmt.Errorf("begin %s: %w", p.GID, err)
	}
	if existing.Tombstone {
		return nil, &StateError{GID: p.GID, Actual: existing.State, Op: "begin", Detail: "presumed aborted by a check-back before it began; use a new gid"}
	}
	if existing.Timeout != p.Timeout || !labelsEqual(existing.Labels, p.Labels) {
		return nil, fmt.Errorf("%w: begin %s: exists with timeout %s and %d labels, requested timeout %s and %d labels",
			ErrExists, p.GID, existing.Timeout, len(existing.Labels), p.Timeout, len(p.Labels))
	}
	if existing.Decider != p.Decider {
		return nil, fmt.Errorf("%w: begin %s: exists with decider %q, requested %q", ErrExists, p.GID, existing.Decider, p.Decider)
	}
	// A repeat must name branches the record has, with the same
	// participant and payload (it may have gained more since, by
	// RegisterBranch).
	for _, b := range branches {
		if err := sameBranch(existing, b); err != nil {
			return nil, fmt.Errorf("%w: begin %s: %w", ErrExists, p.GID, err)
		}
	}
	return existing, nil
}

// sameBranch checks that tx has branch b with b's participant and payload.
func sameBranch(tx *Transaction, b Branch) error {
	for _, eb := range tx.Branches {
		if eb.BranchID != b.BranchID {
			continue
		}
		if eb.Participant != b.Participant || eb.PayloadDigest != b.PayloadDigest {
			return fmt.Errorf("branch %s registered with participant %q and payload sha256 %.12s, requested %q and %.12s",
				b.BranchID, eb.Participant, eb.PayloadDigest, b.Participant, b.PayloadDigest)
		}
		return nil
	}
	return fmt.Errorf("branch %s is not registered", b.BranchID)
}

// newBranch validates a branch to register and returns it in REGISTERED.
func (c *Coordinator) newBranch(gid string, spec BranchSpec, now time.Time) (Branch, error) {
	if err := ValidateBranchID(spec.BranchID); err != nil {
		return Branch{}, err
	}
	if err := validateParticipant(spec.Participant); err != nil {
		return Branch{}, fmt.Errorf("branch %s: %w", spec.BranchID, err)
	}
	if err := c.cfg.Allow.Check(spec.Participant); err != nil {
		return Branch{}, fmt.Errorf("%w: branch %s: %w", ErrNotAllowed, spec.BranchID, err)
	}
	if len(spec.Payload) > c.cfg.MaxPayloadBytes {
		return Branch{}, fmt.Errorf("branch %s: %w", spec.BranchID,
			invalidf("payload is %d bytes, over the limit of %d", len(spec.Payload), c.cfg.MaxPayloadBytes))
	}
	return Branch{
		GID:           gid,
		BranchID:      spec.BranchID,
		Participant:   spec.Participant,
		Payload:       spec.Payload,
		PayloadDigest: Digest(spec.Payload),
		State:         BranchRegistered,
		CreatedAt:     now,
		UpdatedAt:     now,
	}, nil
}

func labelsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	return maps.Equal(a, b)
}

// RegisterParams are the arguments of RegisterBranch.
type RegisterParams struct {
	GID         string
	BranchID    string
	Participant string
	Payload     []byte
}

// RegisterBranch adds a branch to a TRYING transaction. A repeat with the
// same participant and payload succeeds, also after the decision.
//
// model: register
func (c *Coordinator) RegisterBranch(ctx context.Context, p RegisterParams) (*Transaction, error) {
	if err := ValidateGID(p.GID); err != nil {
		return nil, fmt.Errorf("register branch: %w", err)
	}
	now := c.now()
	b, err := c.newBranch(p.GID, BranchSpec{BranchID: p.BranchID, Participant: p.Participant, Payload: p.Payload}, now)
	if err != nil {
		return nil, fmt.Errorf("register branch of %s: %w", p.GID, err)
	}
	tx, addErr := c.store.RegisterBranch(ctx, AddBranchParams{Branch: b, MaxBranches: c.cfg.MaxBranches, Now: now})
	if addErr != nil && !errors.Is(addErr, ErrDuplicate) && !errors.Is(addErr, ErrState) && !errors.Is(addErr, ErrTooManyBranches) {
		return nil, fmt.Errorf("register branch %s of %s: %w", p.BranchID, p.GID, addErr)
	}
	if tx == nil {
		return nil, fmt.Errorf("register branch %s of %s: store returned no record with %w", p.BranchID, p.GID, addErr)
	}
	if addErr == nil {
		c.fault("after_register")
		return tx, nil
	}
	// Not inserted: a repeat of an earlier registration succeeds whatever
	// the state now; anything else is refused.
	for _, eb := range tx.Branches {
		if eb.BranchID != p.BranchID {
			continue
		}
		if eb.Participant != p.Participant || eb.PayloadDigest != b.PayloadDigest {
			return nil, fmt.Errorf("%w: register branch %s of %s: registered with participant %q and payload sha256 %.12s, requested %q and %.12s",
				ErrExists, p.BranchID, p.GID, eb.Participant, eb.PayloadDigest, p.Participant, b.PayloadDigest)
		}
		return tx, nil
	}
	if errors.Is(addErr, ErrTooManyBranches) {
		return nil, fmt.Errorf("register branch %s of %s: %w", p.BranchID, p.GID,
			invalidf("transaction has %d branches, the limit is %d", len(tx.Branches), c.cfg.MaxBranches))
	}
	var se *StateError
	if errors.As(addErr, &se) {
		return nil, &StateError{GID: p.GID, Actual: tx.State, Op: "register branch " + p.BranchID, Detail: "branches can only be registered while TRYING"}
	}
	// ErrDuplicate but the branch is gone: cannot happen without purging;
	// report it as a conflict the caller may retry.
	return nil, fmt.Errorf("register branch %s of %s: %w", p.BranchID, p.GID, ErrConflict)
}

// Digest returns the hex SHA-256 of a payload, as stored in branch_record.
func Digest(payload []byte) string {
	sum := sha256.Sum256(payload)
	return hex.EncodeToString(sum[:])
}

// Commit decides commit and starts delivering Confirm to every branch. With
// wait, it returns after one delivery round has ended (or ctx ends).
//
// model: decide
func (c *Coordinator) Commit(ctx context.Context, gid string, wait bool) (*Transaction, error) {
	return c.decide(ctx, gid, Commit, "", wait, "commit", CauseCommit)
}

// Rollback decides abort and starts delivering Cancel to every branch.
//
// model: decide
func (c *Coordinator) Rollback(ctx context.Context, gid, reason string, wait bool) (*Transaction, error) {
	if err := validateReason(reason); err != nil {
		return nil, fmt.Errorf("rollback %s: %w", gid, err)
	}
	if reason == "" {
		reason = "rolled back by the initiator"
	}
	return c.decide(ctx, gid, Abort, reason, wait, "rollback", CauseRollback)
}

func (c *Coordinator) decide(ctx context.Context, gid string, o Outcome, reason string, wait bool, op string, cause Cause) (*Transaction, error) {
	if err := ValidateGID(gid); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	tx, _, err := c.Decide(ctx, gid, o, reason, cause)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, gid, err)
	}
	// The store decides again when its compare-and-set ran before a
	// racing Begin created the record; a record still TRYING after that
	// did not exist when this call was decided.
	if tx.State == StateTrying {
		return nil, fmt.Errorf("%s %s: %w: %s", op, gid, ErrNotFound, gid)
	}
	decided, _ := OutcomeOf(tx.State)
	if decided != o {
		return nil, &StateError{GID: gid, Actual: tx.State, Op: op, Detail: tx.AbortReason}
	}
	if !wait {
		return tx, nil
	}
	return c.waitRound(ctx, gid)
}

// Decide records outcome o for gid with the one compare-and-set and, if this
// call made the decision, starts delivering it in the background. It is
// used by Commit, Rollback, CheckBack and the recovery loop alike. It
// returns the record after the call and whether this call decided; the
// caller compares the recorded outcome with the one it wanted. cause is
// what made the decision, for the history.
//
// model: decide
func (c *Coordinator) Decide(ctx context.Context, gid string, o Outcome, reason string, cause Cause) (*Transaction, bool, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, false, ErrClosed
	}
	now := c.now()
	tx, won, err := c.store.Decide(ctx, DecideParams{
		GID:         gid,
		Outcome:     o,
		Owner:       c.cfg.InstanceID,
		LeaseUntil:  now.Add(c.cfg.LeaseTTL),
		AbortReason: reason,
		Cause:       cause,
		Now:         now,
	})
	if err != nil {
		return nil, false, err
	}
	if !won {
		return tx, false, nil
	}
	// Commits are the routine case, logged at debug so that the hot path
	// does not write a log line per transaction; aborts are worth an info
	// line.
	lvl := slog.LevelDebug
	if o == Abort {
		lvl = slog.LevelInfo
	}
	c.log.Log(ctx, lvl, "transaction decided", "gid", gid, "outcome", o.String(), "branches", len(tx.Branches), "reason", reason)
	if c.hooks.Decided != nil {
		c.hooks.Decided(gid, o, c.cfg.InstanceID)
	}
	c.fault("after_decision")
	if !c.startRound(tx) {
		// Shutting down: the lease expires and the recovery loop of some
		// instance delivers the decision.
		c.log.Warn("decision left to recovery: shutting down", "gid", gid)
	}
	return tx, true, nil
}

// startRound runs one delivery round for tx (whose lease this instance
// holds) in the background. It returns false if the coordinator is closing.
func (c *Coordinator) startRound(tx *Transaction) bool {
	c.mu.Lock()
	busy := len(c.inflight) >= c.cfg.MaxRounds
	c.mu.Unlock()
	if busy {
		if c.hooks.RoundDeferred != nil {
			c.hooks.RoundDeferred(tx.GID)
		}
		return true // the recovery loop delivers it after the lease
	}
	release, reserved, closed := c.reserve(tx.GID, true)
	if closed {
		return false
	}
	if !reserved {
		return true // another round of ours is running; it records the result
	}
	c.work.run(func() {
		defer release()
		// The round must finish even if the request that decided is gone.
		if err := c.deliver(context.Background(), tx); err != nil {
			c.log.Warn("delivery round not recorded", "gid", tx.GID, "err", err)
		}
	})
	return true
}

// reserve marks a round of this instance for gid as running, so that no
// second round starts (and no claim is taken from under it) until release
// is called. reserved is false if a round is already running; closed is
// true if the coordinator is closing and track asked to count the round
// for Close (which waits for counted rounds).
func (c *Coordinator) reserve(gid string, track bool) (release func(), reserved, closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if track && c.closed {
		return nil, false, true
	}
	if _, busy := c.inflight[gid]; busy {
		return nil, false, false
	}
	done := make(chan struct{})
	c.inflight[gid] = done
	if track {
		c.rounds.Add(1)
	}
	return func() {
		c.mu.Lock()
		delete(c.inflight, gid)
		c.mu.Unlock()
		close(done)
		if track {
			c.rounds.Done()
		}
	}, true, false
}

// waitRound returns the record once a delivery round has ended for every
// branch (each branch done or attempted at least once), or ctx ends.
func (c *Coordinator) waitRound(ctx context.Context, gid string) (*Transaction, error) {
	for {
		c.mu.Lock()
		done, local := c.inflight[gid]
		c.mu.Unlock()
		if local {
			select {
			case <-done:
			case <-ctx.Done():
				return c.currentOr(ctx, gid)
			}
		}
		tx, err := c.store.GetTransaction(ctx, gid)
		if err != nil {
			return nil, err
		}
		if roundEnded(tx) {
			return tx, nil
		}
		t := time.NewTimer(c.cfg.WaitPoll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return c.currentOr(ctx, gid)
		}
	}
}

// currentOr returns the record read without ctx's deadline (a short
// bounded read), so that a waiting caller whose deadline passed still gets
// the state as it is.
func (c *Coordinator) currentOr(ctx context.Context, gid string) (*Transaction, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	return c.store.GetTransaction(rctx, gid)
}

func roundEnded(tx *Transaction) bool {
	if tx.State.Final() {
		return true
	}
	for _, b := range tx.Branches {
		if b.State == BranchRegistered && b.Attempts == 0 {
			return false
		}
	}
	return true
}

// Resume is the recovery loop's way in: it claims a due, decided
// transaction (a compare-and-set on the version the scan read, which takes
// this instance's lease) and runs one delivery round. It does nothing if
// this instance is already driving the transaction (its round records the
// result; a claim would only make that record fail and leave the
// transaction idle until the new lease expired), or if the claim loses
// (another instance took it, or it changed).
//
// model: claim
func (c *Coordinator) Resume(ctx context.Context, ref DueRef) error {
	release, reserved, _ := c.reserve(ref.GID, false)
	if !reserved {
		return nil
	}
	defer release()
	now := c.now()
	tx, err := c.store.Claim(ctx, ClaimParams{
		GID: ref.GID, Version: ref.Version, Owner: c.cfg.InstanceID,
		LeaseUntil: now.Add(c.cfg.LeaseTTL), Now: now,
	})
	if errors.Is(err, ErrConflict) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("resume %s: %w", ref.GID, err)
	}
	return c.deliver(ctx, tx)
}

// deliver calls Confirm or Cancel on every unfinished branch in parallel,
// then records the results and either finishes the transaction or
// schedules the next round with backoff. No database transaction is open
// during the calls. A participant's refusal (the branch is already in the
// opposite state) marks the branch as a conflict, which is not retried,
// and flags the transaction for an operator.
//
// model: drive
func (c *Coordinator) deliver(ctx context.Context, tx *Transaction) error {
	o, ok := OutcomeOf(tx.State)
	if !ok || tx.State.Final() {
		return fmt.Errorf("deliver %s: %w", tx.GID, &StateError{GID: tx.GID, Actual: tx.State, Op: "deliver"})
	}
	if tx.LeaseOwner != c.cfg.InstanceID {
		// The record was read after the compare-and-set that gave this
		// instance the lease, and another instance claimed it in between
		// (this one stalled past its lease): the version read is the new
		// owner's, so a round recorded with it would be accepted while the
		// new owner drives the transaction (S15). The round is theirs.
		// Found by the model (model/README.md, LOAD_AFTER_CAS).
		c.log.Info("delivery round skipped: another instance holds the transaction now", "gid", tx.GID, "owner", tx.LeaseOwner)
		return nil
	}
	var pending []*Branch
	conflicted := 0
	for i := range tx.Branches {
		b := &tx.Branches[i]
		switch {
		case b.State != BranchRegistered:
		case b.Conflict:
			conflicted++
		default:
			pending = append(pending, b)
		}
	}
	// A retried round sends only the calls its participants' retry budgets
	// allow; the others fail with ErrRateLimited, unsent.
	results := make([]error, len(pending))
	latencies := make([]time.Duration, len(pending))
	var calls []int
	started := c.now()
	for i, b := range pending {
		if tx.Attempts > 0 {
			if ok, next := c.limits.take(b.Participant, started); !ok {
				results[i] = fmt.Errorf("%w: %s not called, next retry slot in %s", ErrRateLimited, b.Participant, next.Round(time.Millisecond))
				if c.hooks.Delivered != nil {
					c.hooks.Delivered(b.GID, b.BranchID, o, results[i], 0)
				}
				continue
			}
		}
		calls = append(calls, i)
	}
	// Every call runs in parallel; the last one on this goroutine.
	var wg sync.WaitGroup
	for n, i := range calls {
		if n == len(calls)-1 {
			latencies[i], results[i] = c.deliverOne(ctx, o, pending[i])
			break
		}
		wg.Add(1)
		c.work.run(func() {
			defer wg.Done()
			latencies[i], results[i] = c.deliverOne(ctx, o, pending[i])
		})
	}
	wg.Wait()

	now := c.now()
	round := RoundParams{GID: tx.GID, Outcome: o, Version: tx.Version, Now: now,
		Instance: c.cfg.InstanceID, KeepAttempts: c.cfg.HistoryAttempts, Calls: make([]CallRecord, 0, len(pending))}
	invalid := 0    // branches whose participant rejected the payload
	unexpected := 0 // branches whose participant answered outside the protocol
	for i, b := range pending {
		err := results[i]
		result, code := classify(err)
		rec := CallRecord{BranchID: b.BranchID, Attempt: b.Attempts + 1, Result: result, Code: code, Latency: latencies[i]}
		if err != nil {
			rec.Message = truncate(err.Error(), 1000)
		}
		round.Calls = append(round.Calls, rec)
		if err == nil {
			round.Done = append(round.Done, b.BranchID)
			continue
		}
		res := BranchResult{BranchID: b.BranchID, Err: truncate(err.Error(), 1000)}
		if errors.Is(err, ErrParticipantRefused) {
			round.Conflicts = append(round.Conflicts, res)
			round.LastError = truncate("conflict on "+b.BranchID+": "+res.Err, 1000)
			c.log.Error("conflicting outcome: participant refused the decided call; branch needs an operator",
				"gid", tx.GID, "branch_id", b.BranchID, "outcome", o.String(), "err", res.Err)
			if c.hooks.Conflict != nil {
				c.hooks.Conflict(tx.GID, b.BranchID)
			}
			continue
		}
		round.Failed = append(round.Failed, res)
		if errors.Is(err, ErrParticipantInvalid) {
			invalid++
		}
		if errors.Is(err, ErrParticipantUnexpected) {
			unexpected++
		}
		if round.LastError == "" || !strings.HasPrefix(round.LastError, "conflict") {
			round.LastError = truncate(b.BranchID+": "+res.Err, 1000)
		}
	}
	conflicted += len(round.Conflicts)
	round.Finish = len(round.Failed) == 0 && conflicted == 0
	if !round.Finish {
		attempt := tx.Attempts + 1
		delay := c.cfg.Backoff.Next(attempt)
		if len(round.Failed) == 0 || invalid > 0 {
			// Only conflicts remain, or a participant rejected a payload:
			// retrying soon cannot help until an operator acts; look again
			// at the capped interval.
			delay = c.cfg.Backoff.Max
		}
		round.NextAttemptAt = now.Add(delay)
		why := ""
		switch {
		case conflicted > 0:
			why = "conflicting outcome reported by a participant"
			if round.LastError == "" {
				round.LastError = tx.LastError
			}
		case invalid > 0:
			why = "a participant rejected the payload as invalid (INVALID_ARGUMENT); retried at the longest backoff"
		case unexpected > 0:
			why = "a participant answered outside the protocol (e.g. an HTTP redirect or 404); check its URL"
		case !tx.DecidedAt.IsZero() && now.Sub(tx.DecidedAt) >= c.cfg.RetryHorizon:
			why = fmt.Sprintf("unfinished %s after its decision (retry horizon)", now.Sub(tx.DecidedAt).Round(time.Second))
		case c.cfg.MaxAttempts > 0 && attempt >= c.cfg.MaxAttempts:
			why = fmt.Sprintf("%d delivery rounds failed (max attempts)", attempt)
		}
		if why != "" {
			round.NeedsAttention = true
			if !tx.NeedsAttention {
				round.Attention = why
				c.log.Error("transaction needs attention", "gid", tx.GID, "state", string(tx.State), "why", why,
					"attempt", attempt, "last_error", round.LastError)
				if c.hooks.Attention != nil {
					c.hooks.Attention(tx.GID, why)
				}
			}
		}
	}
	c.fault("before_record_round")
	// Record even if the caller's context ended: the facts are true.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	// model: record_round, finish
	if err := c.store.RecordRound(rctx, round); err != nil {
		if errors.Is(err, ErrConflict) {
			c.log.Info("delivery round raced: another instance holds the transaction now", "gid", tx.GID)
			return nil
		}
		return fmt.Errorf("deliver %s: record round: %w", tx.GID, err)
	}
	if round.Finish {
		c.log.Debug("transaction finished", "gid", tx.GID, "state", string(o.FinalState()))
		if c.hooks.Finished != nil {
			c.hooks.Finished(tx.GID, o.FinalState())
		}
	} else if len(round.Failed) > 0 {
		c.log.Warn("delivery round failed, will retry", "gid", tx.GID, "failed", len(round.Failed),
			"attempt", tx.Attempts+1, "next_attempt_at", round.NextAttemptAt, "last_error", round.LastError)
	}
	return nil
}

// deliverOne calls Confirm or Cancel on b and returns how long it took
// and its error.
func (c *Coordinator) deliverOne(ctx context.Context, o Outcome, b *Branch) (time.Duration, error) {
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	start := time.Now()
	err := c.parts.Deliver(cctx, o, b)
	took := time.Since(start)
	if c.hooks.Delivered != nil {
		c.hooks.Delivered(b.GID, b.BranchID, o, err, took)
	}
	c.fault("after_branch_call")
	return took, err
}

// Get returns a transaction with its branches.
func (c *Coordinator) Get(ctx context.Context, gid string) (*Transaction, error) {
	if err := ValidateGID(gid); err != nil {
		return nil, fmt.Errorf("get transaction: %w", err)
	}
	tx, err := c.store.GetTransaction(ctx, gid)
	if err != nil {
		return nil, fmt.Errorf("get transaction %s: %w", gid, err)
	}
	return tx, nil
}

// Verdict is the answer to a check-back.
type Verdict int

// The verdicts.
const (
	VerdictPending Verdict = iota + 1
	VerdictConfirm
	VerdictCancel
)

// CheckBackResult is the answer to CheckBack.
type CheckBackResult struct {
	Verdict    Verdict
	State      State
	RetryAfter time.Duration // for VerdictPending
}

// CheckBack answers a participant asking what became of gid. An unknown gid
// is presumed aborted (a tombstone is recorded); a TRYING transaction past
// its deadline is aborted first, through the same Decide as Rollback,
// unless it has a decider: then the answer is pending until the recovery
// loop has asked the decider (decider.go).
//
// model: checkback
func (c *Coordinator) CheckBack(ctx context.Context, gid, branchID string) (CheckBackResult, error) {
	if err := ValidateGID(gid); err != nil {
		return CheckBackResult{}, fmt.Errorf("check-back: %w", err)
	}
	if branchID != "" {
		if err := ValidateBranchID(branchID); err != nil {
			return CheckBackResult{}, fmt.Errorf("check-back %s: %w", gid, err)
		}
	}
	tx, err := c.store.GetTransaction(ctx, gid)
	if errors.Is(err, ErrNotFound) {
		tx, err = c.presumeAbort(ctx, gid)
	}
	if err != nil {
		return CheckBackResult{}, fmt.Errorf("check-back %s: %w", gid, err)
	}
	if tx.State == StateTrying {
		now := c.now()
		if now.Before(tx.Deadline) {
			return CheckBackResult{Verdict: VerdictPending, State: tx.State, RetryAfter: c.retryAfter(tx.Deadline.Sub(now))}, nil
		}
		if tx.Decider != "" {
			// Never aborted without asking its decider, which the
			// recovery loop does when the record is due (decider.go).
			return CheckBackResult{Verdict: VerdictPending, State: tx.State, RetryAfter: c.retryAfter(tx.NextAttemptAt.Sub(now))}, nil
		}
		// model: expire
		tx, _, err = c.Decide(ctx, gid, Abort, "deadline passed (check-back)", CauseCheckBack)
		if err != nil {
			return CheckBackResult{}, fmt.Errorf("check-back %s: %w", gid, err)
		}
	}
	o, _ := OutcomeOf(tx.State)
	v := VerdictCancel
	if o == Commit {
		v = VerdictConfirm
	}
	c.log.Debug("check-back answered", "gid", gid, "branch_id", branchID, "state", string(tx.State))
	return CheckBackResult{Verdict: v, State: tx.State}, nil
}

func (c *Coordinator) retryAfter(untilDeadline time.Duration) time.Duration {
	d := untilDeadline
	if d > c.cfg.MaxRetryAfter {
		d = c.cfg.MaxRetryAfter
	}
	if d < time.Second {
		d = time.Second
	}
	return d.Round(time.Millisecond)
}

// presumeAbort records an aborted tombstone for an unknown gid. If a Begin
// wins the race for the gid, the record it created is returned instead.
// model: checkback (presumed abort: the ABORTED tombstone)
func (c *Coordinator) presumeAbort(ctx context.Context, gid string) (*Transaction, error) {
	now := c.now()
	tomb := &Transaction{
		GID:         gid,
		State:       StateAborted,
		Version:     1,
		Deadline:    now,
		AbortReason: "presumed abort: unknown gid at check-back",
		Tombstone:   true,
		// A final record's next attempt time is when it became final
		// (retention counts from it).
		NextAttemptAt: now,
		CreatedAt:     now,
		UpdatedAt:     now,
	}
	err := c.store.InsertTransaction(ctx, tomb)
	if err == nil {
		c.log.Info("presumed abort recorded", "gid", gid)
		return tomb, nil
	}
	if !errors.Is(err, ErrDuplicate) {
		return nil, err
	}
	return c.store.GetTransaction(ctx, gid)
}

// Close stops accepting decisions and waits for this instance's delivery
// rounds to end, or ctx to end (whatever is left is resumed by a recovery
// loop after the lease expires). The workers of the rounds exit as soon as
// they are idle, instead of waiting out workerIdle.
func (c *Coordinator) Close(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.work.stop()
	done := make(chan struct{})
	go func() {
		c.rounds.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close: delivery rounds still running: %w", ctx.Err())
	}
}

// workerIdle is how long a worker of the delivery rounds waits for its next
// task before it exits.
const workerIdle = 10 * time.Second

func (c *Coordinator) now() time.Time { return c.clock.Now().UTC() }
