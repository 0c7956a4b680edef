package linearizability

import (
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Kind is an RPC of CoordinatorService.
type Kind uint8

// The operations a history holds.
const (
	KindBegin Kind = iota + 1
	KindRegister
	KindCommit
	KindRollback
	KindCheckBack
	KindGet
)

func (k Kind) String() string {
	switch k {
	case KindBegin:
		return "Begin"
	case KindRegister:
		return "RegisterBranch"
	case KindCommit:
		return "Commit"
	case KindRollback:
		return "Rollback"
	case KindCheckBack:
		return "CheckBack"
	case KindGet:
		return "GetTransaction"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// NumBranches is the number of branch ids a transaction may have in the
// workload: BranchIDs.
const NumBranches = 3

// BranchIDs are the branch ids the workload registers.
var BranchIDs = [NumBranches]string{"a", "b", "c"}

// Spec is what a registration says about a branch besides its id: which of
// the two participants (Spec/2) and which of the two payloads (Spec%2).
// Spec 0 is the canonical one; the other three are "different parameters".
type Spec uint8

// NumSpecs is the number of Spec values; SpecOther marks an observed
// participant or payload the workload never sent.
const (
	NumSpecs  = 4
	SpecOther = Spec(255)
)

// Begin parameters (timeout and labels) are an index into the workload's
// table (see BeginParams); ParamsTombstone is a presumed-abort tombstone's
// (no timeout, no labels) and ParamsOther anything else.
const (
	ParamsTombstone = uint8(254)
	ParamsOther     = uint8(255)
)

// Abort reasons as the model tells them apart. A Rollback sends
// ReasonNone (the coordinator stores its own text, which the model calls
// ReasonDefault), ReasonR1 or ReasonR2.
const (
	ReasonNone     = uint8(0)
	ReasonDefault  = uint8(1)
	ReasonR1       = uint8(2)
	ReasonR2       = uint8(3)
	ReasonPresumed = uint8(4)
	ReasonOther    = uint8(255)
)

// TxState is a transaction state as observed (the protocol's
// TransactionState without the prefix).
type TxState uint8

// Observed transaction states.
const (
	TxNone TxState = iota
	TxTrying
	TxCommitting
	TxCommitted
	TxAborting
	TxAborted
)

func (s TxState) String() string {
	return [...]string{"-", "TRYING", "COMMITTING", "COMMITTED", "ABORTING", "ABORTED"}[min(int(s), 5)]
}

// BranchState is a branch state as observed.
type BranchState uint8

// Observed branch states.
const (
	BranchNone BranchState = iota
	BranchRegistered
	BranchConfirmed
	BranchCancelled
)

func (s BranchState) String() string {
	return [...]string{"-", "REGISTERED", "CONFIRMED", "CANCELLED"}[min(int(s), 3)]
}

// Verdict is a check-back verdict as observed.
type Verdict uint8

// Observed verdicts.
const (
	VerdictNone Verdict = iota
	VerdictConfirm
	VerdictCancel
	VerdictPending
)

func (v Verdict) String() string {
	return [...]string{"-", "CONFIRM", "CANCEL", "PENDING"}[min(int(v), 3)]
}

// Outcome is a decision.
type Outcome uint8

// The decisions; OutcomeNone is TRYING.
const (
	OutcomeNone Outcome = iota
	OutcomeCommit
	OutcomeAbort
)

func (o Outcome) decided() TxState {
	if o == OutcomeCommit {
		return TxCommitting
	}
	return TxAborting
}

func (o Outcome) final() TxState {
	if o == OutcomeCommit {
		return TxCommitted
	}
	return TxAborted
}

func (o Outcome) branchDone() BranchState {
	if o == OutcomeCommit {
		return BranchConfirmed
	}
	return BranchCancelled
}

// Input is one call: its kind, its gid and its arguments as indexes into
// the workload's small tables, so that the model compares them exactly.
type Input struct {
	Kind Kind
	GID  string
	// Begin: the timeout and labels (an index into BeginParams) and the
	// branches it registers (NoBranch: not listed, else the Spec).
	Params   uint8
	Branches [NumBranches]int8
	// RegisterBranch: the branch (an index into BranchIDs) and its Spec.
	// CheckBack: the asking branch, or NoBranch.
	Branch uint8
	Spec   Spec
	// Rollback: the reason sent (ReasonNone, ReasonR1, ReasonR2).
	Reason uint8
	// Commit, Rollback: wait for the first delivery round.
	Wait bool
}

// NoBranch marks a branch a Begin does not list, and a CheckBack without a
// branch id.
const NoBranch = -1

// Code is a call's result class.
type Code uint8

// Result classes. CodeUnknown is a call whose outcome is unknown (deadline
// exceeded, unavailable, internal error, ...): it may or may not have taken
// effect, at any moment after it was invoked. CodeOther is a status code the
// contract never gives for these calls; no step accepts it.
const (
	CodeOK Code = iota
	CodeNotFound
	CodeFailedPrecondition
	CodeAlreadyExists
	CodeInvalidArgument
	CodeUnknown
	CodeOther
)

func (c Code) String() string {
	return [...]string{"OK", "NOT_FOUND", "FAILED_PRECONDITION", "ALREADY_EXISTS", "INVALID_ARGUMENT", "UNKNOWN-OUTCOME", "OTHER"}[min(int(c), 6)]
}

// Observed is the transaction a call returned, reduced to what the model
// knows about.
type Observed struct {
	State    TxState
	Params   uint8
	Reason   uint8
	Branches [NumBranches]ObservedBranch
	// Extra is set when the record had a branch id outside BranchIDs or a
	// state outside the known ones: never legal.
	Extra bool
}

// ObservedBranch is one branch of an Observed transaction.
type ObservedBranch struct {
	Present bool
	Spec    Spec
	State   BranchState
}

// Output is a call's result.
type Output struct {
	Code Code
	// Tx is the returned transaction (OK of every call but CheckBack).
	Tx Observed
	// Verdict and State are CheckBack's answer.
	Verdict Verdict
	State   TxState
	// Detail is the gRPC code and message, for the visualization.
	Detail string
	// Deviation is set when the coordinator's answer was one of the known
	// deviations from the contract and Code is the answer the contract
	// gives instead (see Workload.Strict).
	Deviation bool
	// Took is how long the call took (its real duration also when the
	// history moves an unknown outcome's return to its end).
	Took time.Duration
}

// State is the model's transaction record for one gid.
type State struct {
	// Begun: a record exists (begun, or a tombstone).
	Begun   bool
	Outcome Outcome
	// Final: COMMITTED or ABORTED (every branch done).
	Final    bool
	Tomb     bool
	Params   uint8
	Reason   uint8
	Branches [NumBranches]Branch
}

// Branch is one branch of the model's record.
type Branch struct {
	Present bool
	Spec    Spec
	// Done: confirmed or cancelled, as the outcome says.
	Done bool
}

// Model returns the porcupine model of one transaction record, partitioned
// by gid. See the package documentation for the rules.
func Model() porcupine.Model {
	return porcupine.Model{
		Partition: partition,
		Init:      func() interface{} { return State{} },
		Step: func(state, input, output interface{}) (bool, interface{}) {
			ok, next := Step(state.(State), input.(Input), output.(Output))
			return ok, next
		},
		Equal: func(a, b interface{}) bool { return a.(State) == b.(State) },
		Hash: func(state interface{}) uint64 {
			h := fnv.New64a()
			_, _ = fmt.Fprintf(h, "%v", state.(State))
			return h.Sum64()
		},
		DescribeOperation: func(input, output interface{}) string {
			return DescribeOperation(input.(Input), output.(Output))
		},
		DescribeState: func(state interface{}) string { return state.(State).String() },
	}
}

// partition splits a history by gid: the gids are independent records, so
// the history is linearizable if and only if each gid's part is.
func partition(history []porcupine.Operation) [][]porcupine.Operation {
	index := map[string]int{}
	var out [][]porcupine.Operation
	for _, op := range history {
		gid := op.Input.(Input).GID
		i, ok := index[gid]
		if !ok {
			i = len(out)
			index[gid] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], op)
	}
	return out
}

// Step applies one call to the record s and says whether output is a
// legal result of it; it returns the record after the call.
func Step(s State, in Input, out Output) (bool, State) {
	switch out.Code {
	case CodeUnknown:
		// It may have taken effect (then here, at its linearization
		// point) or not at all (then porcupine can order it after every
		// other call, where its effect is seen by nobody).
		return true, effect(s, in)
	case CodeOther:
		return false, s
	}
	switch in.Kind {
	case KindBegin:
		code, next := begin(s, in)
		if out.Code != code {
			return false, s
		}
		if code != CodeOK {
			return true, next
		}
		return observe(next, out.Tx)
	case KindRegister:
		code, next := register(s, in)
		if out.Code != code {
			return false, s
		}
		if code != CodeOK {
			return true, next
		}
		return observe(next, out.Tx)
	case KindCommit, KindRollback:
		code, next := decide(s, in)
		if out.Code != code {
			return false, s
		}
		if code != CodeOK {
			return true, next
		}
		return weakObserve(next, out.Tx), next
	case KindCheckBack:
		if out.Code != CodeOK {
			return false, s
		}
		next := checkBack(s)
		want := VerdictPending
		switch next.Outcome {
		case OutcomeCommit:
			want = VerdictConfirm
		case OutcomeAbort:
			want = VerdictCancel
		}
		if out.Verdict != want {
			return false, s
		}
		return observeState(next, out.State)
	case KindGet:
		if !s.Begun {
			return out.Code == CodeNotFound, s
		}
		if out.Code != CodeOK {
			return false, s
		}
		return observe(s, out.Tx)
	}
	return false, s
}

// effect is what a call does to the record when it takes effect, whatever
// it answered.
func effect(s State, in Input) State {
	switch in.Kind {
	case KindBegin:
		_, next := begin(s, in)
		return next
	case KindRegister:
		_, next := register(s, in)
		return next
	case KindCommit, KindRollback:
		_, next := decide(s, in)
		return next
	case KindCheckBack:
		return checkBack(s)
	}
	return s
}

// begin: a new gid is begun (TRYING, with the listed branches); a tombstone
// refuses (FAILED_PRECONDITION); an existing record with the same timeout
// and labels, having every listed branch with the same participant and
// payload, is returned as it is, whatever its state; anything else is
// ALREADY_EXISTS.
func begin(s State, in Input) (Code, State) {
	if !s.Begun {
		n := State{Begun: true, Params: in.Params}
		for i, spec := range in.Branches {
			if spec != NoBranch {
				n.Branches[i] = Branch{Present: true, Spec: Spec(spec)}
			}
		}
		return CodeOK, n
	}
	if s.Tomb {
		return CodeFailedPrecondition, s
	}
	if s.Params != in.Params {
		return CodeAlreadyExists, s
	}
	for i, spec := range in.Branches {
		if spec == NoBranch {
			continue
		}
		if b := s.Branches[i]; !b.Present || b.Spec != Spec(spec) {
			return CodeAlreadyExists, s
		}
	}
	return CodeOK, s
}

// register: unknown gid NOT_FOUND; a branch already there is a repeat (OK,
// in any state) with the same participant and payload, else
// ALREADY_EXISTS; a new branch is added while TRYING, else
// FAILED_PRECONDITION.
func register(s State, in Input) (Code, State) {
	if !s.Begun {
		return CodeNotFound, s
	}
	if b := s.Branches[in.Branch]; b.Present {
		if b.Spec == in.Spec {
			return CodeOK, s
		}
		return CodeAlreadyExists, s
	}
	if s.Outcome != OutcomeNone {
		return CodeFailedPrecondition, s
	}
	s.Branches[in.Branch] = Branch{Present: true, Spec: in.Spec}
	return CodeOK, s
}

// decide: unknown gid NOT_FOUND; TRYING takes the decision (a Rollback
// stores its reason); the same decision again is OK; the opposite one is
// FAILED_PRECONDITION.
func decide(s State, in Input) (Code, State) {
	want := OutcomeCommit
	if in.Kind == KindRollback {
		want = OutcomeAbort
	}
	switch {
	case !s.Begun:
		return CodeNotFound, s
	case s.Outcome == OutcomeNone:
		s.Outcome = want
		if want == OutcomeAbort {
			s.Reason = in.Reason
			if s.Reason == ReasonNone {
				s.Reason = ReasonDefault
			}
		}
		return CodeOK, s
	case s.Outcome == want:
		return CodeOK, s
	}
	return CodeFailedPrecondition, s
}

// checkBack records a tombstone (ABORTED, presumed abort) for an unknown
// gid and otherwise changes nothing (no deadline passes in the workload).
func checkBack(s State) State {
	if s.Begun {
		return s
	}
	return State{Begun: true, Outcome: OutcomeAbort, Final: true, Tomb: true, Params: ParamsTombstone, Reason: ReasonPresumed}
}

// observeState checks an observed record state against s and returns s
// moved forward to it: delivery (COMMITTING -> COMMITTED, ABORTING ->
// ABORTED, each branch REGISTERED -> done) happens in the background, so
// an observation may show it happened, and no later one may show it
// undone.
func observeState(s State, st TxState) (bool, State) {
	if s.Outcome == OutcomeNone {
		return st == TxTrying, s
	}
	switch st {
	case s.Outcome.decided():
		return !s.Final, s
	case s.Outcome.final():
		s.Final = true
		for i := range s.Branches {
			s.Branches[i].Done = s.Branches[i].Present
		}
		return true, s
	}
	return false, s
}

// sameRecord checks what never changes after a record is written, or
// changes only with the decision: parameters, branch set, abort reason.
func sameRecord(s State, tx Observed) bool {
	if tx.Extra || tx.Params != s.Params {
		return false
	}
	reason := ReasonNone
	if s.Outcome == OutcomeAbort {
		reason = s.Reason
	}
	if tx.Reason != reason {
		return false
	}
	for i, b := range s.Branches {
		o := tx.Branches[i]
		if o.Present != b.Present || (b.Present && o.Spec != b.Spec) {
			return false
		}
	}
	return true
}

// branchStatesFit checks the observed branch states against the decision:
// REGISTERED or the decision's done state, and every branch done in a
// final record (the record and its branches are read in one statement).
func branchStatesFit(s State, tx Observed) bool {
	final := tx.State == TxCommitted || tx.State == TxAborted
	for i, b := range s.Branches {
		if !b.Present {
			continue
		}
		st := tx.Branches[i].State
		switch {
		case st == BranchRegistered:
			if final {
				return false
			}
		case s.Outcome != OutcomeNone && st == s.Outcome.branchDone():
		default:
			return false
		}
	}
	return true
}

// observe checks a transaction read at one moment (a snapshot) against s
// and returns s moved forward to it.
func observe(s State, tx Observed) (bool, State) {
	if !sameRecord(s, tx) || !branchStatesFit(s, tx) {
		return false, s
	}
	ok, next := observeState(s, tx.State)
	if !ok {
		return false, s
	}
	for i, b := range next.Branches {
		if !b.Present {
			continue
		}
		done := tx.Branches[i].State != BranchRegistered
		if b.Done && !done {
			return false, s // a branch done earlier is REGISTERED again
		}
		next.Branches[i].Done = done
	}
	return true, next
}

// weakObserve checks the record a Commit or Rollback returned. It may have
// been read after the decision, later than the call's linearization point
// (the decision's compare-and-set), so it only has to agree with the
// decision: same parameters, branches and reason, a state and branch
// states of that decision; it moves nothing forward.
func weakObserve(s State, tx Observed) bool {
	if !sameRecord(s, tx) || !branchStatesFit(s, tx) {
		return false
	}
	return tx.State == s.Outcome.decided() || tx.State == s.Outcome.final()
}

// String describes the record for the visualization.
func (s State) String() string {
	if !s.Begun {
		return "absent"
	}
	var b strings.Builder
	switch {
	case s.Outcome == OutcomeNone:
		b.WriteString("TRYING")
	case s.Final:
		b.WriteString(s.Outcome.final().String())
	default:
		b.WriteString(s.Outcome.decided().String())
	}
	if s.Tomb {
		b.WriteString(" tombstone")
	} else {
		fmt.Fprintf(&b, " params=%d", s.Params)
	}
	if s.Outcome == OutcomeAbort {
		fmt.Fprintf(&b, " reason=%d", s.Reason)
	}
	for i, br := range s.Branches {
		if !br.Present {
			continue
		}
		fmt.Fprintf(&b, " %s:%d", BranchIDs[i], br.Spec)
		if br.Done {
			b.WriteString("(done)")
		}
	}
	return b.String()
}

// DescribeOperation describes a call and its result for the visualization.
func DescribeOperation(in Input, out Output) string {
	var b strings.Builder
	b.WriteString(in.Kind.String())
	switch in.Kind {
	case KindBegin:
		fmt.Fprintf(&b, "(params=%d", in.Params)
		for i, spec := range in.Branches {
			if spec != NoBranch {
				fmt.Fprintf(&b, " %s:%d", BranchIDs[i], spec)
			}
		}
		b.WriteString(")")
	case KindRegister:
		fmt.Fprintf(&b, "(%s:%d)", BranchIDs[in.Branch], in.Spec)
	case KindCommit, KindRollback:
		if in.Kind == KindRollback {
			fmt.Fprintf(&b, "(reason=%d wait=%v)", in.Reason, in.Wait)
		} else {
			fmt.Fprintf(&b, "(wait=%v)", in.Wait)
		}
	}
	b.WriteString(" -> ")
	b.WriteString(out.Code.String())
	switch {
	case out.Code == CodeOK && in.Kind == KindCheckBack:
		fmt.Fprintf(&b, " %s %s", out.Verdict, out.State)
	case out.Code == CodeOK:
		b.WriteString(" " + out.Tx.String())
	case out.Detail != "":
		b.WriteString(" (" + out.Detail + ")")
	}
	return b.String()
}

// String describes an observed transaction.
func (tx Observed) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s params=%d", tx.State, tx.Params)
	if tx.Reason != ReasonNone {
		fmt.Fprintf(&b, " reason=%d", tx.Reason)
	}
	for i, br := range tx.Branches {
		if br.Present {
			fmt.Fprintf(&b, " %s:%d:%s", BranchIDs[i], br.Spec, br.State)
		}
	}
	if tx.Extra {
		b.WriteString(" +unexpected branches")
	}
	return b.String()
}
