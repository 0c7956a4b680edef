package linearizability

import (
	"os"
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
)

// Hand-made histories: the checker must reject each broken one and accept
// its legal twin, so that a passing run of the real coordinator means
// something.

const gid = "g"

func in(k Kind) Input { return Input{Kind: k, GID: gid} }

// beginIn is a Begin with parameters 0 and no branches.
func beginIn() Input {
	i := in(KindBegin)
	i.Branches = [NumBranches]int8{NoBranch, NoBranch, NoBranch}
	return i
}

func rollbackIn(reason uint8) Input {
	i := in(KindRollback)
	i.Reason = reason
	return i
}

func registerIn(branch uint8, spec Spec) Input {
	i := in(KindRegister)
	i.Branch, i.Spec = branch, spec
	return i
}

// tx is a returned transaction with parameters 0 and the given branches
// (branch a, b, ... in order, canonical spec).
func tx(st TxState, branches ...BranchState) Output {
	o := Observed{State: st}
	if st == TxAborting || st == TxAborted {
		o.Reason = ReasonDefault
	}
	for i, b := range branches {
		o.Branches[i] = ObservedBranch{Present: true, State: b}
	}
	return Output{Code: CodeOK, Tx: o}
}

func code(c Code) Output { return Output{Code: c} }

func checkBackOut(v Verdict, st TxState) Output {
	return Output{Code: CodeOK, Verdict: v, State: st}
}

type call struct {
	client    int
	in        Input
	out       Output
	call, ret int64 // ret < 0: unknown outcome (set by Finish)
}

func history(calls ...call) []porcupine.Operation {
	ops := make([]porcupine.Operation, len(calls))
	for i, c := range calls {
		ops[i] = porcupine.Operation{ClientId: c.client, Input: c.in, Output: c.out, Call: c.call, Return: c.ret}
	}
	return Finish(ops)
}

func TestModelHandMadeHistories(t *testing.T) {
	unknown := code(CodeUnknown)
	cases := []struct {
		name  string
		ops   []porcupine.Operation
		legal bool
	}{
		// One client sees commit, another abort, for the same gid.
		{"double decision, one after the other", history(
			call{0, beginIn(), tx(TxTrying), 0, 5},
			call{0, in(KindCommit), tx(TxCommitting), 10, 20},
			call{1, rollbackIn(ReasonNone), tx(TxAborting), 30, 40},
		), false},
		{"double decision, concurrent", history(
			call{0, beginIn(), tx(TxTrying), 0, 5},
			call{0, in(KindCommit), tx(TxCommitting), 10, 30},
			call{1, rollbackIn(ReasonNone), tx(TxAborting), 15, 35},
		), false},
		{"decision once: the loser is refused", history(
			call{0, beginIn(), tx(TxTrying), 0, 5},
			call{0, in(KindCommit), tx(TxCommitting), 10, 30},
			call{1, rollbackIn(ReasonNone), code(CodeFailedPrecondition), 15, 35},
		), true},
		{"decision once: the rollback won the race", history(
			call{0, beginIn(), tx(TxTrying), 0, 5},
			call{0, in(KindCommit), code(CodeFailedPrecondition), 10, 30},
			call{1, rollbackIn(ReasonNone), tx(TxAborting), 15, 35},
		), true},
		{"double decision seen by check-backs", history(
			call{0, beginIn(), tx(TxTrying), 0, 5},
			call{0, in(KindCommit), tx(TxCommitting), 10, 20},
			call{1, in(KindCheckBack), checkBackOut(VerdictConfirm, TxCommitting), 30, 40},
			call{2, in(KindCheckBack), checkBackOut(VerdictCancel, TxAborting), 50, 60},
		), false},
		{"decision changes between two reads", history(
			call{0, beginIn(), tx(TxTrying), 0, 5},
			call{1, in(KindGet), tx(TxCommitting), 10, 20},
			call{2, in(KindGet), tx(TxAborting), 30, 40},
		), false},

		// CheckBack of an unknown gid presumes abort; a later Begin is
		// refused.
		{"begin accepted after a tombstone", history(
			call{0, in(KindCheckBack), checkBackOut(VerdictCancel, TxAborted), 0, 10},
			call{1, beginIn(), tx(TxTrying), 20, 30},
		), false},
		{"begin refused after a tombstone", history(
			call{0, in(KindCheckBack), checkBackOut(VerdictCancel, TxAborted), 0, 10},
			call{1, beginIn(), code(CodeFailedPrecondition), 20, 30},
			call{1, in(KindCommit), code(CodeFailedPrecondition), 40, 50},
		), true},
		{"check-back racing begin: begin first", history(
			call{0, in(KindCheckBack), checkBackOut(VerdictPending, TxTrying), 0, 30},
			call{1, beginIn(), tx(TxTrying), 10, 20},
		), true},
		{"check-back found nothing, yet no tombstone", history(
			call{0, in(KindCheckBack), checkBackOut(VerdictCancel, TxAborted), 0, 10},
			call{1, in(KindGet), code(CodeNotFound), 20, 30},
		), false},

		// Parameter refusal and repeats.
		{"begin repeated with other parameters accepted", history(
			call{0, beginIn(), tx(TxTrying), 0, 5},
			call{1, func() Input { i := beginIn(); i.Params = 1; return i }(), tx(TxTrying), 10, 20},
		), false},
		{"begin repeated with other parameters refused", history(
			call{0, beginIn(), tx(TxTrying), 0, 5},
			call{1, func() Input { i := beginIn(); i.Params = 1; return i }(), code(CodeAlreadyExists), 10, 20},
			call{1, beginIn(), tx(TxTrying), 30, 40},
		), true},
		{"registration repeated with another payload accepted", history(
			call{0, beginIn(), tx(TxTrying), 0, 5},
			call{0, registerIn(0, 0), tx(TxTrying, BranchRegistered), 10, 20},
			call{1, registerIn(0, 1), tx(TxTrying, BranchRegistered), 30, 40},
		), false},
		{"registration repeated after the decision", history(
			call{0, beginIn(), tx(TxTrying), 0, 5},
			call{0, registerIn(0, 0), tx(TxTrying, BranchRegistered), 10, 20},
			call{0, in(KindCommit), tx(TxCommitting, BranchRegistered), 30, 40},
			call{1, registerIn(0, 0), tx(TxCommitted, BranchConfirmed), 50, 60},
			call{1, registerIn(1, 0), code(CodeFailedPrecondition), 70, 80},
			call{1, registerIn(0, 2), code(CodeAlreadyExists), 90, 100},
		), true},

		// Delivery moves forward only, and a final record has every
		// branch done.
		{"committed, then committing again", history(
			call{0, beginIn(), tx(TxTrying), 0, 5},
			call{0, in(KindCommit), tx(TxCommitting), 10, 20},
			call{1, in(KindGet), tx(TxCommitted), 30, 40},
			call{2, in(KindGet), tx(TxCommitting), 50, 60},
		), false},
		{"committed with a branch not confirmed", history(
			call{0, beginIn(), tx(TxTrying), 0, 5},
			call{0, registerIn(0, 0), tx(TxTrying, BranchRegistered), 10, 20},
			call{0, in(KindCommit), tx(TxCommitting, BranchRegistered), 30, 40},
			call{1, in(KindGet), tx(TxCommitted, BranchRegistered), 50, 60},
		), false},
		{"a branch registered after the decision", history(
			call{0, beginIn(), tx(TxTrying), 0, 5},
			call{0, in(KindCommit), tx(TxCommitting), 10, 20},
			call{1, registerIn(0, 0), tx(TxCommitting, BranchRegistered), 30, 40},
		), false},

		// Calls with an unknown outcome may or may not have happened.
		{"unknown commit that happened", history(
			call{0, beginIn(), tx(TxTrying), 0, 5},
			call{0, in(KindCommit), unknown, 10, -1},
			call{1, rollbackIn(ReasonNone), code(CodeFailedPrecondition), 20, 30},
		), true},
		{"unknown commit that did not happen", history(
			call{0, beginIn(), tx(TxTrying), 0, 5},
			call{0, in(KindCommit), unknown, 10, -1},
			call{1, rollbackIn(ReasonNone), tx(TxAborting), 20, 30},
		), true},
		{"unknown commit, then both decisions seen", history(
			call{0, beginIn(), tx(TxTrying), 0, 5},
			call{0, in(KindCommit), unknown, 10, -1},
			call{1, rollbackIn(ReasonNone), tx(TxAborting), 20, 30},
			call{2, in(KindGet), tx(TxCommitting), 40, 50},
		), false},
		{"a status code the contract never gives", history(
			call{0, beginIn(), Output{Code: CodeOther}, 0, 5},
		), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := Check(c.ops, 0)
			if err != nil {
				t.Fatal(err)
			}
			want := porcupine.Ok
			if !c.legal {
				want = porcupine.Illegal
			}
			if res.Result != want {
				t.Fatalf("porcupine says %s, want %s", res.Result, want)
			}
			if !c.legal {
				if len(res.Illegal) != 1 || res.Illegal[0] != gid || res.Visualization == "" {
					t.Fatalf("illegal gids %v, visualization %q", res.Illegal, res.Visualization)
				}
				html, err := os.ReadFile(res.Visualization)
				if err != nil || !strings.Contains(string(html), "<html") {
					t.Fatalf("visualization %s: %v", res.Visualization, err)
				}
				_ = os.Remove(res.Visualization)
			}
		})
	}
}

// TestPartitionByGID: calls on different gids never constrain each other.
func TestPartitionByGID(t *testing.T) {
	other := beginIn()
	other.GID = "h"
	ops := history(
		call{0, beginIn(), tx(TxTrying), 0, 5},
		call{1, other, tx(TxTrying), 1, 6},
		call{0, in(KindCommit), tx(TxCommitting), 10, 20},
		call{1, func() Input { i := rollbackIn(ReasonNone); i.GID = "h"; return i }(), tx(TxAborting), 11, 21},
	)
	res, err := Check(ops, 0)
	if err != nil || res.Result != porcupine.Ok || res.Partitions != 2 {
		t.Fatalf("result %s, %d partitions, err %v", res.Result, res.Partitions, err)
	}
}

func TestCountIn(t *testing.T) {
	profile := "goroutine profile: total 6\n" +
		"2 @ 0x1 0x2\n#\t0x1\tgithub.com/x/internal/sqlstore.submit[...]+0x1\tbatch.go:92\n#\t0x2\tmain.f+0x1\tf.go:1\n\n" +
		"3 @ 0x3\n#\t0x3\tmain.g+0x1\tg.go:1\n\n" +
		"1 @ 0x4\n#\t0x4\tgithub.com/x/internal/sqlstore.submit[...]+0x9\tbatch.go:85\n"
	if n := countIn([]byte(profile), "internal/sqlstore.submit["); n != 3 {
		t.Fatalf("countIn = %d, want 3", n)
	}
}

// TestKnownDeviation recognizes exactly the two answers it stands for.
func TestKnownDeviation(t *testing.T) {
	fp := Output{Code: CodeFailedPrecondition, Detail: "FailedPrecondition: commit g: transaction is TRYING"}
	inval := Output{Code: CodeInvalidArgument, Detail: "InvalidArgument: register branch a of g: tcc: invalid argument: transaction has 0 branches, the limit is 64"}
	for _, c := range []struct {
		in   Input
		out  Output
		want bool
	}{
		{in(KindCommit), fp, true},
		{rollbackIn(ReasonNone), fp, true},
		{registerIn(0, 0), inval, true},
		{in(KindCommit), Output{Code: CodeFailedPrecondition, Detail: "FailedPrecondition: commit g: transaction is ABORTING (x)"}, false},
		{beginIn(), fp, false},
		{registerIn(0, 0), Output{Code: CodeInvalidArgument, Detail: "InvalidArgument: branch_id is empty"}, false},
		{in(KindCommit), inval, false},
	} {
		if got := KnownDeviation(c.in, c.out); got != c.want {
			t.Errorf("KnownDeviation(%s, %q) = %v, want %v", c.in.Kind, c.out.Detail, got, c.want)
		}
	}
}
