package sqlstore

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/settle-tcc/settle/internal/tcc"
)

// History: transaction_event rows (migrations/*/00003_history.sql), and
// the events that live in the rows of the change itself.
//
// Every event is written by the statements of the state change it
// describes, in the same database transaction (one script on MySQL, one
// pipeline on PostgreSQL), so it costs no round trip of its own there. Where the changed row
// already holds the event's facts, once and for good, it is the event and
// no statement is added:
//
//   - BEGUN is the record (created_us); BRANCH_REGISTERED is each
//     branch_record row (created_us, participant), whether registered with
//     Begin or later: Begins and registrations write nothing more;
//   - DECIDED: the decision's compare-and-set also writes decided_by (the
//     cause) and decided_instance, with decided_us and abort_reason
//     (00004_decision_cause.sql); a decision never changes;
//   - FINISHED is a final record's state and finish time
//     (next_attempt_us of a final record);
//   - a successful Confirm/Cancel is stored with its branch by the
//     round's UPDATE of it (done_latency_us, done_instance with state,
//     attempts and updated_us; 00005_branch_done_call.sql): a transaction
//     whose calls all succeed writes no history row;
//   - a delivery round with failed calls writes one multi-row INSERT of
//     them and its conflicts (facts, stored like the branch facts), the
//     DELETE of attempts beyond the bound (only once a branch has more
//     than 2N),
//     and after the record's compare-and-set an INSERT ... SELECT of
//     NEEDS_ATTENTION (when the round flags it) that happens only if that
//     matched (dialect.thenInsert);
//   - a tombstone's DECIDED (by check-back) is a row written with it;
//   - RETRY_NOW and RESOLVED are rows written by the admin calls'
//     transactions after their change.
//
// History reads the rows, the record and its branches in one statement,
// so it sees one snapshot, and orders them by the state machine: BEGUN,
// the registrations (by time), DECIDED (a decision ends registration),
// the rows in the order written (all after the decision) with each
// branch's success placed by its time, FINISHED.

const eventColumns = `gid, at_us, kind, branch_id, participant, state, cause, attempt, code, message, latency_us, instance, actor`

const eventMarks = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

// eventArgs returns e's values in eventColumns order.
func eventArgs(e tcc.Event) []any {
	state := string(e.State)
	switch e.Kind {
	case tcc.EventResolved:
		state = string(e.BranchState)
	case tcc.EventAttempt:
		state = strings.ToUpper(e.Call)
	}
	cause := string(e.Cause)
	if e.Kind == tcc.EventAttempt {
		cause = string(e.Result)
	}
	return []any{e.GID, micros(e.At), string(e.Kind), e.BranchID, e.Participant, state, cause, e.Attempt, e.Code,
		truncate(e.Message, 2000), e.Latency.Microseconds(), e.Instance, e.Actor}
}

// eventsInsert builds the multi-row INSERT of events (at least one).
func eventsInsert(events []tcc.Event) stmt {
	var sb strings.Builder
	sb.Grow(len(events) * (len(eventMarks) + 2))
	sb.WriteString(`INSERT INTO transaction_event (` + eventColumns + `) VALUES `)
	args := make([]any, 0, 13*len(events))
	for i, e := range events {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(eventMarks)
		args = append(args, eventArgs(e)...)
	}
	return stmt{sb.String(), args}
}

// casWithEvent returns a round's compare-and-set of the record and, when
// the round ends with an event (roundEnd), the INSERT of it that happens
// only if the compare-and-set matched (dialect.thenInsert). The first
// statement's affected count is the compare-and-set's.
func casWithEvent(d dialect, cas stmt, p tcc.RoundParams) []stmt {
	e, ok := roundEnd(p)
	if !ok {
		return []stmt{cas}
	}
	return d.thenInsert(cas, "transaction_event", eventColumns, eventArgs(e))
}

// tombstoneEvent is a tombstone's history: its decision by check-back.
func tombstoneEvent(tx *tcc.Transaction) tcc.Event {
	return tcc.Event{GID: tx.GID, At: tx.CreatedAt, Kind: tcc.EventDecided, State: tx.State, Cause: tcc.CauseCheckBack,
		Message: tx.AbortReason}
}

// callLatencies maps the branch ids of a round's calls to their latency
// in microseconds.
func callLatencies(p tcc.RoundParams) map[string]int64 {
	m := make(map[string]int64, len(p.Calls))
	for _, c := range p.Calls {
		m[c.BranchID] = c.Latency.Microseconds()
	}
	return m
}

// roundFacts are a round's attempts that did not succeed (a success is
// stored with its branch, done_latency_us and done_instance) and its
// conflicts.
func roundFacts(p tcc.RoundParams) []tcc.Event {
	call := "confirm"
	if p.Outcome == tcc.Abort {
		call = "cancel"
	}
	var out []tcc.Event
	for _, c := range p.Calls {
		if c.Result == tcc.ResultSuccess {
			continue
		}
		out = append(out, tcc.Event{GID: p.GID, At: p.Now, Kind: tcc.EventAttempt, BranchID: c.BranchID, Call: call,
			Attempt: c.Attempt, Result: c.Result, Code: c.Code, Message: c.Message, Latency: c.Latency, Instance: p.Instance})
	}
	for _, c := range p.Conflicts {
		out = append(out, tcc.Event{GID: p.GID, At: p.Now, Kind: tcc.EventConflict, BranchID: c.BranchID, Message: c.Err,
			Instance: p.Instance})
	}
	return out
}

// trimAttempts returns the DELETEs that keep the first and last
// p.KeepAttempts attempts of each called branch: only for a branch whose
// attempt number is above twice the bound (below it nothing is dropped,
// so the hot path never has one).
func trimAttempts(p tcc.RoundParams) []stmt {
	n := p.KeepAttempts
	if n <= 0 {
		return nil
	}
	var out []stmt
	for _, c := range p.Calls {
		if c.Attempt <= 2*n {
			continue
		}
		out = append(out, stmt{`DELETE FROM transaction_event
			WHERE gid = ? AND kind = ? AND branch_id = ? AND attempt > ? AND attempt <= ?`,
			[]any{p.GID, string(tcc.EventAttempt), c.BranchID, n, c.Attempt - n}})
	}
	return out
}

// roundEnd is the event a round's compare-and-set writes when it matches:
// NEEDS_ATTENTION when the round flags the transaction, or none (the
// finish is read from the record).
func roundEnd(p tcc.RoundParams) (tcc.Event, bool) {
	if p.Attention != "" && !p.Finish {
		return tcc.Event{GID: p.GID, At: p.Now, Kind: tcc.EventNeedsAttention, Message: p.Attention, Instance: p.Instance}, true
	}
	return tcc.Event{}, false
}

// historyQuery reads, in one statement (one snapshot), a gid's event rows
// (id > 0), its record as the row of id 0 and kind '-' (decided_us in
// at_us, decided_by in cause, tombstone in attempt (as 0 or 1: a BOOLEAN
// on PostgreSQL, which a UNION does not mix with INT), abort_reason in
// message, the finish time in latency_us, decided_instance in instance,
// created_us in the last column), and its branches as rows of id 0 and
// kind BRANCH_REGISTERED (state, attempts, resolution in message,
// done_latency_us in latency_us, done_instance in instance, updated_us in
// the last column).
const historyQuery = `SELECT id, ` + eventColumns + `, 0 FROM transaction_event WHERE gid = ?
	UNION ALL
	SELECT 0, gid, decided_us, '-', '', '', state, decided_by, CASE WHEN tombstone THEN 1 ELSE 0 END, '', abort_reason, next_attempt_us, decided_instance, '', created_us
	FROM transaction_record WHERE gid = ?
	UNION ALL
	SELECT 0, gid, created_us, 'BRANCH_REGISTERED', branch_id, participant, state, '', attempts, '', resolution,
	       done_latency_us, done_instance, '', updated_us
	FROM branch_record WHERE gid = ?
	ORDER BY 1`

// History implements tcc.Store.
func (s *Store) History(ctx context.Context, gid string) ([]tcc.Event, error) {
	rows, err := s.sql.QueryContext(ctx, s.bind(historyQuery), gid, gid, gid)
	if err != nil {
		return nil, s.interpret("history", err)
	}
	defer rows.Close()
	var (
		written, branches []tcc.Event
		record            *tcc.Event
		created           int64
	)
	for rows.Next() {
		var (
			id, at, latency, extra int64
			e                      tcc.Event
			kind, state, cause     string
		)
		if err := rows.Scan(&id, &e.GID, &at, &kind, &e.BranchID, &e.Participant, &state, &cause, &e.Attempt, &e.Code,
			&e.Message, &latency, &e.Instance, &e.Actor, &extra); err != nil {
			return nil, s.interpret("history", err)
		}
		e.At, e.Kind, e.Latency = fromMicros(at), tcc.EventKind(kind), time.Duration(latency)*time.Microsecond
		switch {
		case id == 0 && kind == "-":
			e.State, e.Cause = tcc.State(state), tcc.Cause(cause)
			record, created = &e, extra
			continue
		case id == 0:
			e.BranchState, e.Actor = tcc.BranchState(state), "" // the branch row's state, for assembleHistory
			e.Code = strconv.FormatInt(extra, 10)
			branches = append(branches, e)
			continue
		case e.Kind == tcc.EventResolved:
			e.BranchState = tcc.BranchState(state)
		case e.Kind == tcc.EventAttempt:
			e.Call = strings.ToLower(state)
			e.Result = tcc.AttemptResult(cause)
		default:
			e.State = tcc.State(state)
			e.Cause = tcc.Cause(cause)
		}
		written = append(written, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.interpret("history", err)
	}
	if record == nil {
		// Purged (or never begun): rows without their record are not a
		// history.
		return nil, nil
	}
	return assembleHistory(*record, fromMicros(created), branches, written), nil
}

// assembleHistory orders a transaction's events by its state machine:
// BEGUN, the registrations by time, DECIDED, the written rows in the order
// written, FINISHED. A tombstone's history is its rows (its decision).
func assembleHistory(r tcc.Event, created time.Time, branches, written []tcc.Event) []tcc.Event {
	if r.Attempt != 0 { // tombstone
		return written
	}
	out := make([]tcc.Event, 0, 3+len(branches)+len(written))
	out = append(out, tcc.Event{GID: r.GID, At: created, Kind: tcc.EventBegun})
	sort.SliceStable(branches, func(i, j int) bool {
		if !branches[i].At.Equal(branches[j].At) {
			return branches[i].At.Before(branches[j].At)
		}
		return branches[i].BranchID < branches[j].BranchID
	})
	var done []tcc.Event
	for _, b := range branches {
		// The success of a branch finished by a call (not resolved by
		// hand) is stored with the branch.
		if (b.BranchState == tcc.BranchConfirmed || b.BranchState == tcc.BranchCancelled) && b.Message == "" {
			updated, _ := strconv.ParseInt(b.Code, 10, 64)
			call := "confirm"
			if b.BranchState == tcc.BranchCancelled {
				call = "cancel"
			}
			done = append(done, tcc.Event{GID: b.GID, At: fromMicros(updated), Kind: tcc.EventAttempt, BranchID: b.BranchID,
				Call: call, Attempt: b.Attempt, Result: tcc.ResultSuccess, Code: "OK", Latency: b.Latency, Instance: b.Instance})
		}
		out = append(out, tcc.Event{GID: b.GID, At: b.At, Kind: tcc.EventBranchRegistered, BranchID: b.BranchID,
			Participant: b.Participant})
	}
	if !r.At.IsZero() {
		o, _ := tcc.OutcomeOf(r.State)
		decided := tcc.Event{GID: r.GID, At: r.At, Kind: tcc.EventDecided, State: o.DecidedState(), Cause: r.Cause,
			Instance: r.Instance}
		if o == tcc.Abort {
			decided.Message = r.Message
		}
		out = append(out, decided)
	}
	// The successes go among the rows by time, after the rows of the same
	// time (an operator's action comes before the round it triggers; the
	// calls of one round have no order among themselves).
	sort.SliceStable(done, func(i, j int) bool { return done[i].At.Before(done[j].At) })
	for _, w := range written {
		for len(done) > 0 && done[0].At.Before(w.At) {
			out, done = append(out, done[0]), done[1:]
		}
		out = append(out, w)
	}
	out = append(out, done...)
	if r.State.Final() {
		out = append(out, tcc.Event{GID: r.GID, At: fromMicros(r.Latency.Microseconds()), Kind: tcc.EventFinished, State: r.State})
	}
	return out
}

// truncate cuts s to at most n bytes, on a UTF-8 boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
