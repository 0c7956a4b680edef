package faulttest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/demo"
)

// Kind is what the initiator of one order does.
type Kind string

// Order kinds.
const (
	// KindNormal: Begin, register and Try both branches, Commit (Rollback
	// if a Try is refused).
	KindNormal Kind = "normal"
	// KindAbandon: the initiator vanishes before Commit/Rollback, after
	// Begin, a registration or a Try; the deadline aborts it.
	KindAbandon Kind = "abandon"
	// KindDuplicate: every Try and the Commit are sent twice at once, and a
	// Try repeated with a changed payload must be refused (S7, S8).
	KindDuplicate Kind = "duplicate"
	// KindCancelFirst: Cancel reaches a participant before its Try (null
	// compensation); the late Try must be refused and the order rolls back
	// (S9).
	KindCancelFirst Kind = "cancel_first"
	// KindLateTry: the initiator rolls back after registering both
	// branches, then a delayed Try arrives (hanging Try, S9).
	KindLateTry Kind = "late_try"
	// KindLateCommit: Commit is sent around the transaction's deadline, so
	// it races the recovery loop's deadline abort and the participants'
	// check-back (S6): exactly one decision may win.
	KindLateCommit Kind = "late_commit"
	// KindOrphanTry: a Try reaches the accounts participant for a gid the
	// coordinator never saw (an initiator that skipped registration); the
	// participant's check-back must get it presumed aborted and released
	// (S5, I5), and a Begin of that gid afterwards must be refused.
	KindOrphanTry Kind = "orphan_try"
	// KindLocal: an order service commits its own order row with the
	// decision through the client SDK (Txn.CommitLocal) and serves the
	// decider; Step says how it ends (local.go: LocalCommit, LocalKilled,
	// LocalRefused). Only with an order service (Cluster.LocalOrders).
	KindLocal Kind = "local"
)

// Order is one generated two-branch order.
type Order struct {
	GID    string
	Kind   Kind
	User   string
	Amount int64
	SKU    string
	Qty    int64
	// Coord is the coordinator the initiator starts with.
	Coord int
	// Step is, for KindAbandon, how far the initiator gets (1: Begin, 2:
	// first registration, 3: first Try, 4: second registration, 5: both
	// Tries); for KindCancelFirst and KindLateTry, the branch index; for
	// KindLateCommit, milliseconds added to (deadline - 300 ms) before
	// Commit.
	Step int
	// WaitRollback: for KindLateTry, the Rollback waits for the Cancel
	// round (every other late_try order), so the late Try is usually sent
	// after the participant processed the Cancel and must be refused.
	WaitRollback bool
	// Out is what the initiator saw; the checker's per-order rules are
	// derived from it.
	Out Outcome
}

// Reply is how a call ended, as the initiator saw it.
type Reply string

// Replies.
const (
	ReplyNone    Reply = ""        // not sent
	ReplyOK      Reply = "ok"      // OK
	ReplyRefused Reply = "refused" // a definitive error (FAILED_PRECONDITION, ...)
	ReplyUnknown Reply = "unknown" // every attempt ended with an unknown outcome
)

func replyOf(err error) Reply {
	switch {
	case err == nil:
		return ReplyOK
	case unknown(err):
		return ReplyUnknown
	default:
		return ReplyRefused
	}
}

// Outcome is what the initiator saw of one order. It is written only by
// the order's initiator and read after the workload.
type Outcome struct {
	// BeganAt is taken just before Begin is first sent: the coordinator's
	// deadline is at least BeganAt + the order's timeout.
	BeganAt time.Time
	BeginOK bool
	// TriesOK counts the branches whose Try answered OK.
	TriesOK int
	// Commit: sent at CommitAt (first attempt), answered Commit at
	// CommitReplyAt (the last attempt's answer).
	CommitAt      time.Time
	Commit        Reply
	CommitReplyAt time.Time
	// CancelFirst: for KindCancelFirst, the Cancel sent ahead of the Try;
	// HangingTry is the Try sent after it.
	CancelFirst Reply
	HangingTry  Reply
	// LateBranchCancelled: for KindLateTry, the coordinator showed the
	// late branch CANCELLED (the participant acknowledged the Cancel)
	// before the late Try was sent. LateTry is that Try's answer.
	LateBranchCancelled bool
	LateTry             Reply
	// OrphanTry is the answer to KindOrphanTry's Try.
	OrphanTry Reply
	// Local is what KindLocal's initiator saw of its local commit
	// (LocalOutCommitted, ...).
	Local string
}

// Payload returns the payload of branch b.
func (o *Order) Payload(b string) []byte {
	if b == demo.BranchAccounts {
		return demo.AccountsPayload(o.User, o.Amount)
	}
	return demo.InventoryPayload(o.SKU, o.Qty)
}

// Shop is the data the workload buys from: users (some poor, so that Try is
// refused for insufficient funds) and items (one scarce).
type Shop struct {
	Rich, Poor  []string
	RichBalance int64
	PoorBalance int64
	SKUs        []string
	Prices      map[string]int64
	Stock       map[string]int64
}

// DefaultShop returns the shop the harness sets up: the demo's book and pen
// with plenty of stock plus a scarce item, 16 rich and 8 poor users.
func DefaultShop() Shop {
	s := Shop{RichBalance: 100_000_000, PoorBalance: 1000, Prices: map[string]int64{}, Stock: map[string]int64{}}
	for i := 0; i < 16; i++ {
		s.Rich = append(s.Rich, fmt.Sprintf("rich%02d", i))
	}
	for i := 0; i < 8; i++ {
		s.Poor = append(s.Poor, fmt.Sprintf("poor%02d", i))
	}
	for _, sku := range []string{"book", "pen"} {
		p, _ := demo.Price(sku)
		s.SKUs = append(s.SKUs, sku)
		s.Prices[sku] = p
		s.Stock[sku] = 10_000_000
	}
	s.SKUs = append(s.SKUs, "scarce")
	s.Prices["scarce"] = 999
	s.Stock["scarce"] = 30
	return s
}

// GenOrder draws the n-th order of worker w from rng.
func GenOrder(rng *rand.Rand, shop Shop, seed uint64, w, n, coordinators int) Order {
	o := Order{GID: fmt.Sprintf("ft-%x-w%02d-%06d", seed, w, n), Coord: rng.IntN(coordinators)}
	switch r := rng.IntN(100); {
	case r < 49:
		o.Kind = KindNormal
	case r < 57:
		o.Kind = KindLocal
		o.Step = rng.IntN(3)
	case r < 60:
		o.Kind = KindOrphanTry
	case r < 72:
		o.Kind = KindAbandon
		o.Step = 1 + rng.IntN(5)
	case r < 84:
		o.Kind = KindDuplicate
	case r < 90:
		o.Kind = KindCancelFirst
		o.Step = rng.IntN(2)
	case r < 95:
		o.Kind = KindLateCommit
		o.Step = rng.IntN(600)
	default:
		o.Kind = KindLateTry
		o.Step = rng.IntN(2)
		o.WaitRollback = n%2 == 0
	}
	if rng.IntN(4) == 0 {
		o.User = shop.Poor[rng.IntN(len(shop.Poor))]
	} else {
		o.User = shop.Rich[rng.IntN(len(shop.Rich))]
	}
	switch r := rng.IntN(10); {
	case r < 4:
		o.SKU = "book"
	case r < 9:
		o.SKU = "pen"
	default:
		o.SKU = "scarce"
	}
	o.Qty = 1 + rng.Int64N(3)
	o.Amount = shop.Prices[o.SKU] * o.Qty
	return o
}

// decision is a commit or abort observed from outside the coordinator.
type decision struct {
	commit bool
	source string
}

// Recorder keeps every order started and every decision observed during
// the run, and flags a decision that changes (I3) the moment it is seen.
type Recorder struct {
	mu        sync.Mutex
	orders    []*Order
	decisions map[string]decision
	// Violations found while running (I3, S8, S9).
	violations []string
	Txns       *Stats
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder {
	return &Recorder{decisions: map[string]decision{}, Txns: NewStats()}
}

func (r *Recorder) add(o *Order) {
	r.mu.Lock()
	r.orders = append(r.orders, o)
	r.mu.Unlock()
	r.Txns.AddName("kind:"+string(o.Kind), 1)
}

func (r *Recorder) violate(format string, args ...any) {
	r.mu.Lock()
	r.violations = append(r.violations, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// Observe records the state of gid seen from source; a decided state that
// differs from an earlier observation is an I3 violation.
func (r *Recorder) Observe(gid string, st tccv1.TransactionState, source string) {
	var d decision
	switch st {
	case tccv1.TransactionState_TRANSACTION_STATE_COMMITTING, tccv1.TransactionState_TRANSACTION_STATE_COMMITTED:
		d = decision{commit: true, source: source}
	case tccv1.TransactionState_TRANSACTION_STATE_ABORTING, tccv1.TransactionState_TRANSACTION_STATE_ABORTED:
		d = decision{commit: false, source: source}
	default:
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, ok := r.decisions[gid]
	if !ok {
		r.decisions[gid] = d
		return
	}
	if prev.commit != d.commit {
		r.violations = append(r.violations, fmt.Sprintf("I3 %s: decision changed: %s (%s) then %s (%s)",
			gid, word(prev.commit), prev.source, word(d.commit), d.source))
	}
}

func word(commit bool) string {
	if commit {
		return "commit"
	}
	return "abort"
}

// Orders returns the orders started so far.
func (r *Recorder) Orders() []*Order {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Order(nil), r.orders...)
}

// Initiator runs orders against a cluster the way an application would:
// every call with a timeout, unknown outcomes retried (idempotent), failing
// over to another coordinator.
type Initiator struct {
	C      *Cluster
	Rec    *Recorder
	Timing Timing
}

// unknown reports whether err leaves the outcome of a call unknown (or is
// a transient refusal), so the call may be retried.
func unknown(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Aborted, codes.Unknown, codes.Internal, codes.ResourceExhausted:
		return true
	}
	return false
}

const (
	attemptTimeout = 2 * time.Second
	maxAttempts    = 6
)

// coordCall runs f against a coordinator, retrying unknown outcomes with
// backoff and failing over between coordinators.
func (in *Initiator) coordCall(ctx context.Context, o *Order, f func(ctx context.Context, c tccv1.CoordinatorServiceClient) error) error {
	coord := o.Coord
	return retryUnknown(ctx, func(a int) error {
		if a > 0 {
			coord = (coord + 1) % len(in.C.CoordClients)
		}
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		defer cancel()
		return f(actx, in.C.CoordClients[coord])
	})
}

// partCall runs f against the participant of branch b with retries.
func (in *Initiator) partCall(ctx context.Context, b string, f func(ctx context.Context, p tccv1.ParticipantServiceClient) error) error {
	return retryUnknown(ctx, func(int) error {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		defer cancel()
		return f(actx, in.C.PartClients[b])
	})
}

// retryUnknown runs attempt (numbered from 0) up to maxAttempts times,
// again only while its error leaves the outcome unknown, with backoff in
// between, and returns the last error.
func retryUnknown(ctx context.Context, attempt func(a int) error) error {
	var err error
	for a := 0; a < maxAttempts; a++ {
		err = attempt(a)
		if err == nil || !unknown(err) || ctx.Err() != nil || !sleepCtx(ctx, backoff(a)) {
			return err
		}
	}
	return err
}

func backoff(a int) time.Duration {
	d := 50 * time.Millisecond << a
	return min(d, 800*time.Millisecond)
}

// Run executes one order. Errors are part of the workload (they are
// counted), never fatal.
func (in *Initiator) Run(ctx context.Context, o *Order) {
	if o.Kind == KindOrphanTry && !in.C.CheckBackProxied() || o.Kind == KindLocal && !in.C.LocalOrders() {
		o.Kind = KindNormal // nothing would release it, or no order service
	}
	in.Rec.add(o)
	txns := in.Rec.Txns
	switch o.Kind {
	case KindOrphanTry:
		in.orphan(ctx, o)
		return
	case KindLocal:
		in.local(ctx, o)
		return
	}
	begun := time.Now()
	o.Out.BeganAt = begun
	err := in.coordCall(ctx, o, func(ctx context.Context, c tccv1.CoordinatorServiceClient) error {
		_, err := c.Begin(ctx, &tccv1.BeginRequest{Gid: o.GID, Timeout: durationpb.New(in.Timing.TxTimeout)})
		return err
	})
	if err != nil {
		txns.AddName("initiator:begin_failed", 1)
		return
	}
	o.Out.BeginOK = true
	if o.Kind == KindDuplicate {
		// S8: the same gid with another timeout is refused.
		err := in.coordCall(ctx, o, func(ctx context.Context, c tccv1.CoordinatorServiceClient) error {
			_, err := c.Begin(ctx, &tccv1.BeginRequest{Gid: o.GID, Timeout: durationpb.New(in.Timing.TxTimeout + time.Second)})
			return err
		})
		if err == nil {
			in.Rec.violate("S8 %s: Begin repeated with a changed timeout was accepted", o.GID)
		}
	}
	step := 1
	if o.Kind == KindAbandon && o.Step == step {
		txns.AddName("initiator:abandoned", 1)
		return
	}
	for i, b := range Branches {
		payload := o.Payload(b)
		err := in.coordCall(ctx, o, func(ctx context.Context, c tccv1.CoordinatorServiceClient) error {
			_, err := c.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: o.GID, BranchId: b, Participant: in.C.ParticipantTarget(b), Payload: payload})
			return err
		})
		if err != nil {
			txns.AddName("initiator:register_failed", 1)
			in.rollback(ctx, o, "register failed")
			return
		}
		if o.Kind == KindDuplicate {
			// S8: the same branch registered again with another payload
			// is refused.
			err := in.coordCall(ctx, o, func(ctx context.Context, c tccv1.CoordinatorServiceClient) error {
				_, err := c.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: o.GID, BranchId: b, Participant: in.C.ParticipantTarget(b), Payload: append(payload[:len(payload):len(payload)], ' ')})
				return err
			})
			if err == nil {
				in.Rec.violate("S8 %s/%s: RegisterBranch repeated with a changed payload was accepted", o.GID, b)
			}
		}
		step++
		if o.Kind == KindAbandon && o.Step == step {
			txns.AddName("initiator:abandoned", 1)
			return
		}
		if o.Kind == KindLateTry {
			continue
		}
		if o.Kind == KindCancelFirst && o.Step == i {
			// The Cancel overtakes the Try (a reordering network, or a
			// rollback racing the Try): null compensation.
			err := in.partCall(ctx, b, func(ctx context.Context, p tccv1.ParticipantServiceClient) error {
				_, err := p.Cancel(ctx, &tccv1.CancelRequest{Gid: o.GID, BranchId: b, Payload: payload})
				return err
			})
			if err != nil {
				txns.AddName("initiator:direct_cancel_failed", 1)
			}
			o.Out.CancelFirst = replyOf(err)
		}
		tryOnce := func(payload []byte) error {
			return in.partCall(ctx, b, func(ctx context.Context, p tccv1.ParticipantServiceClient) error {
				_, err := p.Try(ctx, &tccv1.TryRequest{Gid: o.GID, BranchId: b, Payload: payload})
				return err
			})
		}
		if o.Kind == KindDuplicate {
			var wg sync.WaitGroup
			var e1, e2 error
			wg.Add(2)
			go func() { defer wg.Done(); e1 = tryOnce(payload) }()
			go func() { defer wg.Done(); e2 = tryOnce(payload) }()
			wg.Wait()
			err = e1
			if (e1 == nil) != (e2 == nil) && !unknown(e1) && !unknown(e2) {
				// One copy may have been retried (lost reply) until after
				// the transaction's deadline abort cancelled the branch:
				// the participant then refuses the late copy, which is
				// safe (see TestS7RepeatedTryAfterTriedBranchCancelled).
				// Only differing answers without an abort are a violation.
				if in.aborted(ctx, o) {
					txns.AddName("initiator:duplicate_try_copy_refused_after_abort", 1)
				} else {
					in.Rec.violate("S7 %s/%s: two copies of one Try answered differently: %v / %v", o.GID, b, e1, e2)
				}
			}
			if err == nil {
				changed := demo.InventoryPayload(o.SKU, o.Qty+1)
				if b == demo.BranchAccounts {
					changed = demo.AccountsPayload(o.User, o.Amount+1)
				}
				if cerr := tryOnce(changed); cerr == nil {
					in.Rec.violate("S8 %s/%s: a repeated Try with a changed payload was accepted", o.GID, b)
				}
			}
		} else {
			err = tryOnce(payload)
		}
		if o.Kind == KindCancelFirst && o.Step == i {
			o.Out.HangingTry = replyOf(err)
		}
		if err == nil {
			o.Out.TriesOK++
		}
		if err != nil {
			if o.Kind == KindCancelFirst && o.Step == i {
				txns.AddName("initiator:try_refused_after_cancel", 1)
			} else if !unknown(err) {
				txns.AddName("initiator:try_refused", 1)
			} else {
				txns.AddName("initiator:try_unknown", 1)
			}
			in.rollback(ctx, o, "try failed")
			return
		}
		if o.Kind == KindCancelFirst && o.Step == i {
			// If the Cancel answered OK, this Try was accepted after it:
			// a hanging reservation, which the checker reports (I5).
			// Otherwise the Cancel may never have arrived.
			in.Rec.Txns.AddName("initiator:try_accepted_after_cancel_attempt", 1)
		}
		step++
		if o.Kind == KindAbandon && o.Step == step {
			txns.AddName("initiator:abandoned", 1)
			return
		}
	}
	if o.Kind == KindLateTry {
		b := Branches[o.Step]
		tx := in.rollbackWait(ctx, o, "late try scenario", o.WaitRollback)
		for _, br := range tx.GetBranches() {
			if br.GetBranchId() == b && br.GetState() == tccv1.BranchState_BRANCH_STATE_CANCELLED {
				o.Out.LateBranchCancelled = true
			}
		}
		err := in.partCall(ctx, b, func(ctx context.Context, p tccv1.ParticipantServiceClient) error {
			_, err := p.Try(ctx, &tccv1.TryRequest{Gid: o.GID, BranchId: b, Payload: o.Payload(b)})
			return err
		})
		o.Out.LateTry = replyOf(err)
		switch {
		case err == nil && o.Out.LateBranchCancelled:
			// The checker reports it (I5): the participant had
			// acknowledged the Cancel, so the Try must be refused.
			txns.AddName("initiator:late_try_accepted_after_cancel_acknowledged", 1)
		case err == nil:
			// Allowed only if it overtook the coordinator's Cancel; the
			// checker then requires the fence to show it tried, then
			// cancelled (I5).
			txns.AddName("initiator:late_try_accepted", 1)
		case o.Out.LateBranchCancelled:
			txns.AddName("initiator:late_try_refused_after_cancel_acknowledged", 1)
		default:
			txns.AddName("initiator:late_try_refused", 1)
		}
		return
	}
	if o.Kind == KindLateCommit {
		sleepCtx(ctx, time.Until(begun.Add(in.Timing.TxTimeout-300*time.Millisecond+time.Duration(o.Step)*time.Millisecond)))
	}
	commit := func(ctx context.Context, c tccv1.CoordinatorServiceClient) error {
		r, err := c.Commit(ctx, &tccv1.CommitRequest{Gid: o.GID, Wait: true})
		if err == nil {
			in.Rec.Observe(o.GID, tccv1.TransactionState_TRANSACTION_STATE_COMMITTING, "commit reply")
			in.Rec.Observe(o.GID, r.GetTransaction().GetState(), "commit reply")
		}
		return err
	}
	o.Out.CommitAt = time.Now()
	if o.Kind == KindDuplicate {
		var wg sync.WaitGroup
		wg.Add(1)
		// The second copy goes to the other coordinator, if any: two
		// instances decide the same gid at once (S15).
		other := &Order{GID: o.GID, Kind: o.Kind, Coord: (o.Coord + 1) % len(in.C.CoordClients)}
		var err2 error
		go func() { defer wg.Done(); err2 = in.coordCall(ctx, other, commit) }()
		err = in.coordCall(ctx, o, commit)
		wg.Wait()
		o.Out.Commit = replyOf(err)
		if r2 := replyOf(err2); r2 == ReplyOK || r2 == ReplyRefused && o.Out.Commit == ReplyUnknown {
			o.Out.Commit = r2
		}
	} else {
		err = in.coordCall(ctx, o, commit)
		o.Out.Commit = replyOf(err)
	}
	o.Out.CommitReplyAt = time.Now()
	switch {
	case err == nil:
		txns.AddName("initiator:commit_ok", 1)
	case status.Code(err) == codes.FailedPrecondition:
		txns.AddName("initiator:commit_refused", 1)
		in.poll(ctx, o)
	default:
		txns.AddName("initiator:commit_unknown", 1)
	}
}

func (in *Initiator) rollback(ctx context.Context, o *Order, reason string) {
	in.rollbackWait(ctx, o, reason, false)
}

// rollbackWait rolls o back; with wait, the coordinator answers after its
// Cancel round. It returns the transaction of the reply (nil if none).
func (in *Initiator) rollbackWait(ctx context.Context, o *Order, reason string, wait bool) *tccv1.Transaction {
	var tx *tccv1.Transaction
	err := in.coordCall(ctx, o, func(ctx context.Context, c tccv1.CoordinatorServiceClient) error {
		r, err := c.Rollback(ctx, &tccv1.RollbackRequest{Gid: o.GID, Reason: reason, Wait: wait})
		if err == nil {
			in.Rec.Observe(o.GID, tccv1.TransactionState_TRANSACTION_STATE_ABORTING, "rollback reply")
			in.Rec.Observe(o.GID, r.GetTransaction().GetState(), "rollback reply")
			tx = r.GetTransaction()
		}
		return err
	})
	switch {
	case err == nil:
		in.Rec.Txns.AddName("initiator:rollback_ok", 1)
	case status.Code(err) == codes.FailedPrecondition:
		in.Rec.Txns.AddName("initiator:rollback_refused", 1)
		in.poll(ctx, o)
	default:
		in.Rec.Txns.AddName("initiator:rollback_unknown", 1)
	}
	return tx
}

// orphan sends a Try for a gid the coordinator does not know, waits until
// the participant's check-back has recorded the presumed abort, then tries
// to Begin the gid, which must be refused.
func (in *Initiator) orphan(ctx context.Context, o *Order) {
	b := demo.BranchAccounts
	err := in.partCall(ctx, b, func(ctx context.Context, p tccv1.ParticipantServiceClient) error {
		_, err := p.Try(ctx, &tccv1.TryRequest{Gid: o.GID, BranchId: b, Payload: o.Payload(b)})
		return err
	})
	o.Out.OrphanTry = replyOf(err)
	if err != nil {
		in.Rec.Txns.AddName("initiator:orphan_try_refused", 1)
		return
	}
	wait := in.Timing.CheckBackAfter + 8*time.Second
	for end := time.Now().Add(wait); time.Now().Before(end); {
		if !sleepCtx(ctx, 250*time.Millisecond) {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		r, err := in.C.DirectCoord[0].GetTransaction(cctx, &tccv1.GetTransactionRequest{Gid: o.GID})
		cancel()
		if err != nil {
			continue
		}
		in.Rec.Observe(o.GID, r.GetTransaction().GetState(), "orphan poll")
		if r.GetTransaction().GetState() != tccv1.TransactionState_TRANSACTION_STATE_ABORTED {
			in.Rec.violate("I7 %s: unknown gid checked back, recorded as %v, want ABORTED", o.GID, r.GetTransaction().GetState())
			return
		}
		err = in.coordCall(ctx, o, func(ctx context.Context, c tccv1.CoordinatorServiceClient) error {
			_, err := c.Begin(ctx, &tccv1.BeginRequest{Gid: o.GID, Timeout: durationpb.New(in.Timing.TxTimeout)})
			return err
		})
		switch {
		case err == nil:
			in.Rec.violate("I7 %s: Begin accepted after the gid was presumed aborted by a check-back", o.GID)
		case unknown(err):
			in.Rec.Txns.AddName("initiator:orphan_late_begin_unknown", 1)
		default:
			in.Rec.Txns.AddName("initiator:orphan_presumed_aborted_late_begin_refused", 1)
		}
		return
	}
	in.Rec.Txns.AddName("initiator:orphan_not_checked_back_in_time", 1)
}

// aborted reports whether the coordinator has decided abort for o.
func (in *Initiator) aborted(ctx context.Context, o *Order) bool {
	aborted := false
	_ = in.coordCall(ctx, o, func(ctx context.Context, c tccv1.CoordinatorServiceClient) error {
		r, err := c.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: o.GID})
		if err == nil {
			st := r.GetTransaction().GetState()
			in.Rec.Observe(o.GID, st, "poll")
			aborted = st == tccv1.TransactionState_TRANSACTION_STATE_ABORTING || st == tccv1.TransactionState_TRANSACTION_STATE_ABORTED
		}
		return err
	})
	return aborted
}

// poll reads the transaction once and records its state.
func (in *Initiator) poll(ctx context.Context, o *Order) {
	_ = in.coordCall(ctx, o, func(ctx context.Context, c tccv1.CoordinatorServiceClient) error {
		r, err := c.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: o.GID})
		if err == nil {
			in.Rec.Observe(o.GID, r.GetTransaction().GetState(), "poll")
		}
		return err
	})
}
