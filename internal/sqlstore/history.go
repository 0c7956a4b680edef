package sqlstore

import (
	"context"
	"strings"
	"time"

	"github.com/settle-tcc/settle/internal/tcc"
)

// History: transaction_event rows (migrations/*/00003_history.sql), and
// two events that live in the record itself.
//
// Every event is written by the statements of the state change it
// describes, in the same database transaction (one script on MySQL), so
// it costs no round trip of its own on MySQL:
//
//   - Begin: one multi-row INSERT of the batch's events (BEGUN, a
//     BRANCH_REGISTERED per branch) after the records and branches;
//   - a registration of a remembered record: an INSERT ... SELECT after
//     the branch insert that inserts only if that inserted
//     (ifLastChanged);
//   - the decision: no statement of its own. Its compare-and-set writes
//     decided_by (the cause) and decided_instance with decided_us and
//     abort_reason (00004_decision_cause.sql), once, and History reads
//     them back as the DECIDED event, after the registrations (a decision
//     ends registration, and every other event comes after it). A lone
//     decision therefore stays one autocommit statement;
//   - a delivery round: one multi-row INSERT of its attempts and conflicts
//     (facts, stored like the branch facts), the DELETE of attempts beyond
//     the bound (only once a branch has more than 2N), and after the
//     record's compare-and-set an INSERT ... SELECT of NEEDS_ATTENTION
//     (when the round flags it) that happens only if that matched. The
//     finish is the record's final state and finish time (next_attempt_us
//     of a final record), read back as the FINISHED event, last;
//   - a tombstone: its DECIDED event (by check-back) is a row, written
//     with the record.
//
// The paths that read the record in their transaction (records this store
// does not remember, batches of them, the admin calls) insert their events
// after the change in the same transaction. History reads the rows and the
// record in one statement, so it sees one snapshot.

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

// eventIfChanged builds the INSERT of e that happens only if the statement
// before it in the same transaction changed exactly one row.
func (s *Store) eventIfChanged(e tcc.Event) stmt {
	return stmt{`INSERT INTO transaction_event (` + eventColumns + `)
		SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?` + s.ifLastChanged(), eventArgs(e)}
}

// beginEvents are the first events of a new record: BEGUN and a
// BRANCH_REGISTERED per branch, or a tombstone's decision by check-back.
func beginEvents(tx *tcc.Transaction) []tcc.Event {
	if tx.Tombstone {
		return []tcc.Event{{GID: tx.GID, At: tx.CreatedAt, Kind: tcc.EventDecided, State: tx.State,
			Cause: tcc.CauseCheckBack, Message: tx.AbortReason}}
	}
	out := make([]tcc.Event, 0, 1+len(tx.Branches))
	out = append(out, tcc.Event{GID: tx.GID, At: tx.CreatedAt, Kind: tcc.EventBegun})
	for _, b := range tx.Branches {
		out = append(out, registeredEvent(tx.GID, b, tx.CreatedAt))
	}
	return out
}

func registeredEvent(gid string, b tcc.Branch, at time.Time) tcc.Event {
	return tcc.Event{GID: gid, At: at, Kind: tcc.EventBranchRegistered, BranchID: b.BranchID, Participant: b.Participant}
}

// roundFacts are a round's attempts and conflicts.
func roundFacts(p tcc.RoundParams) []tcc.Event {
	call := "confirm"
	if p.Outcome == tcc.Abort {
		call = "cancel"
	}
	out := make([]tcc.Event, 0, len(p.Calls)+len(p.Conflicts))
	for _, c := range p.Calls {
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

// historyQuery reads a gid's event rows and, as the row with id 0, its
// record's decision and finish columns (an empty kind, decided_us in at_us,
// decided_by in cause, tombstone in attempt, abort_reason in message, the
// finish time in latency_us, decided_instance in instance): one statement,
// one snapshot.
const historyQuery = `SELECT id, ` + eventColumns + ` FROM transaction_event WHERE gid = ?
	UNION ALL
	SELECT 0, gid, decided_us, '', '', '', state, decided_by, tombstone, '', abort_reason, next_attempt_us, decided_instance, ''
	FROM transaction_record WHERE gid = ?
	ORDER BY 1`

// History implements tcc.Store.
func (s *Store) History(ctx context.Context, gid string) ([]tcc.Event, error) {
	rows, err := s.sql.QueryContext(ctx, historyQuery, gid, gid)
	if err != nil {
		return nil, s.interpret("history", err)
	}
	defer rows.Close()
	var (
		out    []tcc.Event
		record *tcc.Event
	)
	for rows.Next() {
		var (
			id, at, latency    int64
			e                  tcc.Event
			kind, state, cause string
		)
		if err := rows.Scan(&id, &e.GID, &at, &kind, &e.BranchID, &e.Participant, &state, &cause, &e.Attempt, &e.Code,
			&e.Message, &latency, &e.Instance, &e.Actor); err != nil {
			return nil, s.interpret("history", err)
		}
		e.At, e.Kind, e.Latency = fromMicros(at), tcc.EventKind(kind), time.Duration(latency)*time.Microsecond
		switch e.Kind {
		case "":
			e.State, e.Cause = tcc.State(state), tcc.Cause(cause)
			record = &e
			continue
		case tcc.EventResolved:
			e.BranchState = tcc.BranchState(state)
		case tcc.EventAttempt:
			e.Call = strings.ToLower(state)
			e.Result = tcc.AttemptResult(cause)
		default:
			e.State = tcc.State(state)
			e.Cause = tcc.Cause(cause)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.interpret("history", err)
	}
	if record != nil {
		out = withRecordEvents(out, *record)
	}
	return out, nil
}

// withRecordEvents adds the events that live in the record (r, the
// record's row of historyQuery): DECIDED after the registrations, FINISHED
// last. A tombstone's decision is a row already.
func withRecordEvents(events []tcc.Event, r tcc.Event) []tcc.Event {
	tombstone := r.Attempt != 0
	if tombstone || r.At.IsZero() {
		return events
	}
	o, _ := tcc.OutcomeOf(r.State)
	decided := tcc.Event{GID: r.GID, At: r.At, Kind: tcc.EventDecided, State: o.DecidedState(), Cause: r.Cause,
		Instance: r.Instance}
	if o == tcc.Abort {
		decided.Message = r.Message
	}
	i := 0
	for i < len(events) && (events[i].Kind == tcc.EventBegun || events[i].Kind == tcc.EventBranchRegistered) {
		i++
	}
	events = append(events[:i], append([]tcc.Event{decided}, events[i:]...)...)
	if r.State.Final() {
		events = append(events, tcc.Event{GID: r.GID, At: fromMicros(r.Latency.Microseconds()), Kind: tcc.EventFinished, State: r.State})
	}
	return events
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
