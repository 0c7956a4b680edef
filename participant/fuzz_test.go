package participant_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/participant"
)

// FuzzFence drives the fence with arbitrary sequences of Try, Confirm and
// Cancel over two gids and two branch ids, with valid and invalid payloads,
// in any order and repeated, and checks after every call what the protocol
// promises: only the package's own errors, handlers run at most once per
// phase, never both Confirm and Cancel, no Try after a Cancel, no Confirm
// without a Try, and the stock (available + reserved + sold) conserved with
// exactly the open reservations reserved. Each input gets a fresh SQLite
// database; `go test` runs the seeds, `go test -fuzz FuzzFence` explores.
func FuzzFence(f *testing.F) {
	for _, seed := range [][]byte{
		{0, 0, 1, 0},                   // Try, Confirm
		{0, 0, 2, 0},                   // Try, Cancel
		{2, 0, 0, 0},                   // Cancel before Try, then Try (hanging)
		{1, 0, 0, 0, 1, 0},             // Confirm without Try, Try, Confirm
		{0, 0, 0, 1, 1, 0},             // Try, Try with another payload, Confirm
		{0, 0, 1, 0, 2, 0, 1, 0},       // Confirm, then Cancel, then Confirm again
		{0, 3, 0, 4, 0, 5, 2, 3},       // invalid payloads
		{0, 0, 3, 1, 6, 2, 9, 0, 4, 0}, // mixed gids and branches
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 48 {
			data = data[:48]
		}
		e := setup(t, dbtest.NewSQLite(t))
		m := newFenceModel()
		ctx := context.Background()
		for i := 0; i+1 < len(data); i += 2 {
			op := decodeOp(data[i], data[i+1])
			_, err := e.p.Apply(ctx, op.phase, participant.Request{GID: op.gid, BranchID: op.branch, Payload: []byte(op.payload)})
			if msg := m.apply(op, err); msg != "" {
				t.Fatalf("call %d %+v: %s (err %v)", i/2, op, msg, err)
			}
			m.check(t, e)
		}
	})
}

type fenceOp struct {
	phase         participant.Phase
	gid, branch   string
	payload       string
	validQuantity int64 // 0: the payload is not a positive quantity
}

var fuzzPayloads = []string{"1", "2", "3", "0", "x", ""}

func decodeOp(a, b byte) fenceOp {
	op := fenceOp{
		phase:   []participant.Phase{participant.PhaseTry, participant.PhaseConfirm, participant.PhaseCancel}[a%3],
		gid:     fmt.Sprintf("fz-g%d", (a/3)%2),
		branch:  fmt.Sprintf("b%d", (a/6)%2),
		payload: fuzzPayloads[int(b)%len(fuzzPayloads)],
	}
	op.validQuantity = map[string]int64{"1": 1, "2": 2, "3": 3}[op.payload]
	return op
}

// fenceModel is what the calls so far allow about each branch.
type fenceModel struct {
	tried, confirmed, cancelled map[string]bool
	qty                         map[string]int64 // quantity of the applied Try
}

func newFenceModel() *fenceModel {
	return &fenceModel{tried: map[string]bool{}, confirmed: map[string]bool{}, cancelled: map[string]bool{}, qty: map[string]int64{}}
}

// apply records the result of op and returns what is wrong with it, if
// anything.
func (m *fenceModel) apply(op fenceOp, err error) string {
	k := op.gid + "/" + op.branch
	known := err == nil || errors.Is(err, participant.ErrInvalid) || participant.IsRefusal(err)
	if !known {
		return "an error that is neither invalid input nor a refusal"
	}
	if op.validQuantity == 0 {
		if !errors.Is(err, participant.ErrInvalid) {
			return "an invalid payload was not rejected as invalid"
		}
		return ""
	}
	if errors.Is(err, participant.ErrInvalid) {
		return "a valid request was rejected as invalid"
	}
	if err != nil {
		return ""
	}
	switch op.phase {
	case participant.PhaseTry:
		if m.cancelled[k] {
			return "a Try after a Cancel succeeded (hanging reservation)"
		}
		if m.tried[k] && m.qty[k] != op.validQuantity {
			return "a Try repeated with another payload succeeded"
		}
		m.tried[k], m.qty[k] = true, op.validQuantity
	case participant.PhaseConfirm:
		if !m.tried[k] {
			return "a Confirm without a Try succeeded"
		}
		if m.cancelled[k] {
			return "a Confirm after a Cancel succeeded"
		}
		if m.qty[k] != op.validQuantity {
			return "a Confirm with another payload than the Try succeeded"
		}
		m.confirmed[k] = true
	case participant.PhaseCancel:
		if m.confirmed[k] {
			return "a Cancel after a Confirm succeeded"
		}
		if m.tried[k] && m.qty[k] != op.validQuantity {
			return "a Cancel with another payload than the Try succeeded"
		}
		m.cancelled[k] = true
	}
	return ""
}

// check compares the business tables with the model.
func (m *fenceModel) check(t *testing.T, e *env) {
	t.Helper()
	var reserved, sold int64
	for g := range 2 {
		for b := range 2 {
			gid, branch := fmt.Sprintf("fz-g%d", g), fmt.Sprintf("b%d", b)
			k := gid + "/" + branch
			try, confirm, cancel := e.runs(t, "try", gid, branch), e.runs(t, "confirm", gid, branch), e.runs(t, "cancel", gid, branch)
			wt, wc, wx := once(m.tried[k]), once(m.tried[k] && m.confirmed[k]), once(m.tried[k] && m.cancelled[k])
			if try != wt || confirm != wc || cancel != wx {
				t.Fatalf("%s: handler runs try/confirm/cancel = %d/%d/%d, want %d/%d/%d", k, try, confirm, cancel, wt, wc, wx)
			}
			switch {
			case m.tried[k] && m.confirmed[k]:
				sold += m.qty[k]
			case m.tried[k] && !m.cancelled[k]:
				reserved += m.qty[k]
			}
		}
	}
	if s := e.stock(t); s.available+s.reserved+s.sold != 100 || s.reserved != reserved || s.sold != sold {
		t.Fatalf("stock = %+v, want reserved %d and sold %d of 100", s, reserved, sold)
	}
}

// once is how many handler runs a phase that applied (or not) leaves: 1 or 0.
func once(applied bool) int {
	if applied {
		return 1
	}
	return 0
}
