package linearizability

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
)

// BeginParam is one choice of Begin's timeout and labels. Every timeout is
// far longer than any run, so no deadline passes during one.
type BeginParam struct {
	Timeout time.Duration
	Labels  map[string]string
}

// BeginParams are the timeouts and labels the workload begins with; Input
// and the model refer to them by index.
var BeginParams = []BeginParam{
	{Timeout: time.Hour},
	{Timeout: time.Hour, Labels: map[string]string{"team": "payments"}},
	{Timeout: 2 * time.Hour},
}

// Rollback reasons the workload sends, by model reason (ReasonNone sends
// none and the coordinator stores its default).
var reasons = map[uint8]string{ReasonNone: "", ReasonR1: "lin-r1", ReasonR2: "lin-r2"}

// payload is the payload of branch i under spec (Spec%2 picks one of two).
func payload(i int, spec Spec) []byte {
	if spec%2 == 0 {
		return []byte("pay-" + BranchIDs[i])
	}
	return []byte("alt-" + BranchIDs[i])
}

// Workload is many concurrent clients calling a coordinator on a small,
// moving window of overlapping gids.
type Workload struct {
	// Coordinators are the instances to call (each call picks one); all
	// share one database.
	Coordinators []tccv1.CoordinatorServiceClient
	// Participants are the two participant targets branches name (Spec/2
	// picks one). They must answer Confirm and Cancel for transactions to
	// finish.
	Participants [2]string
	// Clients is the number of concurrent clients.
	Clients int
	// Duration and MaxOps bound the run: it stops at whichever comes first.
	Duration time.Duration
	MaxOps   int
	// Window is how many gids are in use at once; OpsPerGID how many calls
	// the window moves by one gid after (about the calls each gid gets).
	Window    int
	OpsPerGID int
	// ShortDeadline is the fraction of calls given a deadline of 0.1-3 ms,
	// so that some end with DEADLINE_EXCEEDED while the coordinator may
	// still apply them (calls with an unknown outcome).
	ShortDeadline float64
	// CallTimeout is every other call's deadline.
	CallTimeout time.Duration
	// Seed seeds the clients' choices; Prefix starts every gid.
	Seed   uint64
	Prefix string
	// Strict records the coordinator's answers as they are. Otherwise the
	// two known deviations from the contract (KnownDeviation) are recorded
	// as the NOT_FOUND the contract gives instead, marked Deviation, and
	// the model checks them as such.
	Strict bool
}

// Run runs the workload and records its calls in h.
func (w *Workload) Run(h *History) {
	stop := time.Now().Add(w.Duration)
	var issued atomic.Int64
	var wg sync.WaitGroup
	for client := range w.Clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(w.Seed, uint64(client)))
			for time.Now().Before(stop) {
				n := issued.Add(1) - 1
				if n >= int64(w.MaxOps) {
					return
				}
				base := n / int64(w.OpsPerGID)
				off := r.Int64N(int64(w.Window))
				in := w.next(r, base+off, off >= int64(w.Window)/2)
				coord := w.Coordinators[r.IntN(len(w.Coordinators))]
				timeout := w.CallTimeout
				if r.Float64() < w.ShortDeadline {
					timeout = 100*time.Microsecond + time.Duration(r.Int64N(int64(3*time.Millisecond)))
				}
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				call := h.Now()
				out := w.call(ctx, coord, in)
				ret := h.Now()
				cancel()
				out.Took = time.Duration(ret - call)
				if !w.Strict && KnownDeviation(in, out) {
					out.Code, out.Deviation = CodeNotFound, true
				}
				h.Add(client, in, out, call, ret)
			}
		})
	}
	wg.Wait()
}

// next picks a call on gid number idx. Young gids (the newer half of the
// window) mostly get Begins and registrations, old ones decisions.
func (w *Workload) next(r *rand.Rand, idx int64, young bool) Input {
	in := Input{GID: fmt.Sprintf("%s-%d", w.Prefix, idx)}
	weights := [...]int{8, 10, 20, 12, 30, 20} // Begin, Register, Get, CheckBack, Commit, Rollback
	if young {
		weights = [...]int{30, 25, 13, 12, 10, 10}
	}
	kinds := [...]Kind{KindBegin, KindRegister, KindGet, KindCheckBack, KindCommit, KindRollback}
	total := 0
	for _, wt := range weights {
		total += wt
	}
	pick := r.IntN(total)
	for i, wt := range weights {
		if pick < wt {
			in.Kind = kinds[i]
			break
		}
		pick -= wt
	}
	spec := func() Spec {
		if r.IntN(100) < 88 {
			return 0
		}
		return Spec(1 + r.IntN(NumSpecs-1))
	}
	switch in.Kind {
	case KindBegin:
		// Each gid has its own usual parameters; one Begin in ten
		// differs.
		in.Params = uint8(idx % int64(len(BeginParams)))
		if r.IntN(10) == 0 {
			in.Params = uint8((int(in.Params) + 1 + r.IntN(len(BeginParams)-1)) % len(BeginParams))
		}
		for i := range in.Branches {
			in.Branches[i] = NoBranch
		}
		if r.IntN(100) < 35 {
			listed := 1 + r.IntN(1<<NumBranches-1) // a non-empty subset
			for i := range in.Branches {
				if listed&(1<<i) != 0 {
					in.Branches[i] = int8(spec())
				}
			}
		}
	case KindRegister:
		in.Branch = uint8(r.IntN(NumBranches))
		in.Spec = spec()
	case KindCheckBack:
		in.Branch = uint8(r.IntN(NumBranches + 1)) // NumBranches: no branch id
	case KindCommit:
		in.Wait = r.IntN(100) < 15
	case KindRollback:
		in.Wait = r.IntN(100) < 15
		in.Reason = [...]uint8{ReasonNone, ReasonR1, ReasonR2}[r.IntN(3)]
	}
	return in
}

// call makes one call and reduces its result to an Output.
func (w *Workload) call(ctx context.Context, c tccv1.CoordinatorServiceClient, in Input) Output {
	var tx *tccv1.Transaction
	var out Output
	var err error
	switch in.Kind {
	case KindBegin:
		p := BeginParams[in.Params]
		req := &tccv1.BeginRequest{Gid: in.GID, Timeout: durationpb.New(p.Timeout), Labels: p.Labels}
		for i, spec := range in.Branches {
			if spec != NoBranch {
				req.Branches = append(req.Branches, &tccv1.BranchRegistration{
					BranchId: BranchIDs[i], Participant: w.Participants[spec/2], Payload: payload(i, Spec(spec))})
			}
		}
		var r *tccv1.BeginResponse
		r, err = c.Begin(ctx, req)
		tx = r.GetTransaction()
	case KindRegister:
		var r *tccv1.RegisterBranchResponse
		r, err = c.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: in.GID, BranchId: BranchIDs[in.Branch],
			Participant: w.Participants[in.Spec/2], Payload: payload(int(in.Branch), in.Spec)})
		tx = r.GetTransaction()
	case KindCommit:
		var r *tccv1.CommitResponse
		r, err = c.Commit(ctx, &tccv1.CommitRequest{Gid: in.GID, Wait: in.Wait})
		tx = r.GetTransaction()
	case KindRollback:
		var r *tccv1.RollbackResponse
		r, err = c.Rollback(ctx, &tccv1.RollbackRequest{Gid: in.GID, Wait: in.Wait, Reason: reasons[in.Reason]})
		tx = r.GetTransaction()
	case KindGet:
		var r *tccv1.GetTransactionResponse
		r, err = c.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: in.GID})
		tx = r.GetTransaction()
	case KindCheckBack:
		req := &tccv1.CheckBackRequest{Gid: in.GID}
		if in.Branch < NumBranches {
			req.BranchId = BranchIDs[in.Branch]
		}
		var r *tccv1.CheckBackResponse
		r, err = c.CheckBack(ctx, req)
		out.Verdict = verdictOf(r.GetVerdict())
		out.State = stateOf(r.GetState())
	}
	out.Code = CodeOf(err)
	if err != nil {
		st := status.Convert(err)
		out.Detail = st.Code().String() + ": " + st.Message()
		return out
	}
	if in.Kind != KindCheckBack {
		out.Tx = w.observe(tx)
	}
	return out
}

// KnownDeviation reports whether out is one of the two answers in which the
// coordinator departs from the contract (reported to the maintainers; see
// the package documentation). Both come from a call that finds no record
// and then, before it answers, reads the record a concurrent Begin has just
// created; no write is made, and the contract's answer at the moment the
// call found nothing is NOT_FOUND:
//
//   - Commit or Rollback: FAILED_PRECONDITION "... transaction is TRYING"
//     (tcc.Coordinator.decide: the store's compare-and-set matched no row,
//     its read found the new TRYING record);
//   - RegisterBranch: INVALID_ARGUMENT "transaction has 0 branches, the
//     limit is 64" (sqlstore registerBranch reads ErrTooManyBranches into
//     a compare-and-set that matched no row; the workload never registers
//     more than NumBranches branches).
func KnownDeviation(in Input, out Output) bool {
	switch {
	case (in.Kind == KindCommit || in.Kind == KindRollback) && out.Code == CodeFailedPrecondition:
		return strings.Contains(out.Detail, ": transaction is TRYING")
	case in.Kind == KindRegister && out.Code == CodeInvalidArgument:
		return strings.Contains(out.Detail, "branches, the limit is")
	}
	return false
}

// CodeOf classifies a call's error. Codes that leave the outcome open
// (the call may have been applied) are CodeUnknown.
func CodeOf(err error) Code {
	switch status.Code(err) {
	case codes.OK:
		return CodeOK
	case codes.NotFound:
		return CodeNotFound
	case codes.FailedPrecondition:
		return CodeFailedPrecondition
	case codes.AlreadyExists:
		return CodeAlreadyExists
	case codes.InvalidArgument:
		return CodeInvalidArgument
	case codes.DeadlineExceeded, codes.Canceled, codes.Unavailable, codes.Internal, codes.Unknown,
		codes.Aborted, codes.ResourceExhausted:
		return CodeUnknown
	}
	return CodeOther
}

func stateOf(s tccv1.TransactionState) TxState {
	switch s {
	case tccv1.TransactionState_TRANSACTION_STATE_TRYING:
		return TxTrying
	case tccv1.TransactionState_TRANSACTION_STATE_COMMITTING:
		return TxCommitting
	case tccv1.TransactionState_TRANSACTION_STATE_COMMITTED:
		return TxCommitted
	case tccv1.TransactionState_TRANSACTION_STATE_ABORTING:
		return TxAborting
	case tccv1.TransactionState_TRANSACTION_STATE_ABORTED:
		return TxAborted
	}
	return TxNone
}

func verdictOf(v tccv1.Verdict) Verdict {
	switch v {
	case tccv1.Verdict_VERDICT_CONFIRM:
		return VerdictConfirm
	case tccv1.Verdict_VERDICT_CANCEL:
		return VerdictCancel
	case tccv1.Verdict_VERDICT_PENDING:
		return VerdictPending
	}
	return VerdictNone
}

// observe reduces a returned transaction to what the model compares.
func (w *Workload) observe(tx *tccv1.Transaction) Observed {
	o := Observed{State: stateOf(tx.GetState()), Params: ParamsOther, Reason: ReasonOther}
	timeout := tx.GetTimeout().AsDuration()
	if tx.GetTimeout() == nil && len(tx.GetLabels()) == 0 {
		o.Params = ParamsTombstone
	}
	for i, p := range BeginParams {
		if tx.GetTimeout() != nil && p.Timeout == timeout && len(p.Labels) == len(tx.GetLabels()) && maps.Equal(p.Labels, tx.GetLabels()) {
			o.Params = uint8(i)
		}
	}
	switch reason := tx.GetAbortReason(); {
	case reason == "":
		o.Reason = ReasonNone
	case reason == reasons[ReasonR1]:
		o.Reason = ReasonR1
	case reason == reasons[ReasonR2]:
		o.Reason = ReasonR2
	case strings.HasPrefix(reason, "presumed abort"):
		o.Reason = ReasonPresumed
	case !strings.Contains(reason, "deadline"):
		// The coordinator's own text for a Rollback without a reason.
		o.Reason = ReasonDefault
	}
	for _, b := range tx.GetBranches() {
		i := -1
		for j, id := range BranchIDs {
			if b.GetBranchId() == id {
				i = j
			}
		}
		if i < 0 || o.Branches[i].Present {
			o.Extra = true
			continue
		}
		ob := ObservedBranch{Present: true, Spec: SpecOther}
		for spec := Spec(0); spec < NumSpecs; spec++ {
			if b.GetParticipant() == w.Participants[spec/2] && string(b.GetPayload()) == string(payload(i, spec)) {
				ob.Spec = spec
			}
		}
		switch b.GetState() {
		case tccv1.BranchState_BRANCH_STATE_REGISTERED:
			ob.State = BranchRegistered
		case tccv1.BranchState_BRANCH_STATE_CONFIRMED:
			ob.State = BranchConfirmed
		case tccv1.BranchState_BRANCH_STATE_CANCELLED:
			ob.State = BranchCancelled
		default:
			o.Extra = true
		}
		o.Branches[i] = ob
	}
	return o
}

// Summary counts a history's calls by kind and result, and the details of
// the calls with an unknown outcome by gRPC code.
func Summary(ops []porcupine.Operation) string {
	count := map[string]int{}
	for _, op := range ops {
		in, out := op.Input.(Input), op.Output.(Output)
		key := in.Kind.String() + " " + out.Code.String()
		if out.Code == CodeUnknown || out.Code == CodeOther || out.Deviation {
			key += " " + strings.SplitN(out.Detail, ":", 2)[0]
		}
		if out.Deviation {
			key += " (known deviation)"
		}
		if in.Kind == KindCheckBack && out.Code == CodeOK {
			key += " " + out.Verdict.String()
		}
		count[key]++
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-46s %7d\n", k, count[k])
	}
	return b.String()
}
