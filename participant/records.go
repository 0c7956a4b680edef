package participant

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"gorm.io/gorm"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
)

// Record is one fence row: what this participant did for one branch.
type Record struct {
	// GID is the global transaction id.
	GID string
	// BranchID is the branch id.
	BranchID string
	// State is the fence state.
	State State
	// Tried is true when a Try was applied; a CANCELLED row with Tried
	// false is a null compensation.
	Tried bool
	// PayloadDigest is the hex SHA-256 of the first call's payload.
	PayloadDigest string
	// Payload is that payload.
	Payload []byte
	// CreatedAt is when the first call was recorded.
	CreatedAt time.Time
	// UpdatedAt is when the state last changed.
	UpdatedAt time.Time
	// NextCheckAt is, for a TRIED row, when the check-back worker may ask
	// the coordinator next.
	NextCheckAt time.Time
	// CheckCount is how many check-backs were made for the row.
	CheckCount int
}

// Query selects fence records.
type Query struct {
	// Table is the fence table. Default DefaultTable.
	Table string
	// From and To bound the records' CreatedAt: From <= CreatedAt < To. A
	// zero bound is open.
	From, To time.Time
	// GID, if set, selects one transaction's records.
	GID string
	// State, if set, selects one state.
	State State
	// Limit caps the number of records; zero means no cap.
	Limit int
}

// ListRecords returns the fence records db holds that match q, ordered by
// creation time, gid and branch id. It needs no Participant, so tools can
// use it on a participant's database; see Reconcile.
func ListRecords(ctx context.Context, db *gorm.DB, q Query) ([]Record, error) {
	if q.Table == "" {
		q.Table = DefaultTable
	}
	if !tableName.MatchString(q.Table) {
		return nil, fmt.Errorf("participant: bad table name %q", q.Table)
	}
	var (
		where []string
		args  []any
	)
	if !q.From.IsZero() {
		where, args = append(where, "created_us >= ?"), append(args, micros(q.From))
	}
	if !q.To.IsZero() {
		where, args = append(where, "created_us < ?"), append(args, micros(q.To))
	}
	if q.GID != "" {
		where, args = append(where, "gid = ?"), append(args, q.GID)
	}
	if q.State != "" {
		where, args = append(where, "state = ?"), append(args, string(q.State))
	}
	sq := "SELECT gid, branch_id, state, tried, payload_digest, payload, created_us, updated_us, next_check_us, check_count FROM " + q.Table
	if len(where) > 0 {
		sq += " WHERE " + strings.Join(where, " AND ")
	}
	sq += " ORDER BY created_us, gid, branch_id"
	if q.Limit > 0 {
		sq += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	rows, err := db.WithContext(ctx).Raw(sq, args...).Rows()
	if err != nil {
		return nil, fmt.Errorf("participant: list records: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var (
			r                         Record
			state                     string
			tried                     int
			created, updated, nextChk int64
		)
		if err := rows.Scan(&r.GID, &r.BranchID, &state, &tried, &r.PayloadDigest, &r.Payload, &created, &updated, &nextChk, &r.CheckCount); err != nil {
			return nil, fmt.Errorf("participant: list records: %w", err)
		}
		r.State, r.Tried = State(state), tried != 0
		r.CreatedAt, r.UpdatedAt, r.NextCheckAt = fromMicros(created), fromMicros(updated), fromMicros(nextChk)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("participant: list records: %w", err)
	}
	return out, nil
}

// Records is ListRecords on p's database and fence table.
func (p *Participant) Records(ctx context.Context, q Query) ([]Record, error) {
	q.Table = p.table
	return ListRecords(ctx, p.db, q)
}

// purgeBatch is how many rows one purge statement deletes at most.
const purgeBatch = 500

// Purge deletes the finished (CONFIRMED or CANCELLED) fence rows whose last
// change is older than the retention, in batches, and returns how many it
// deleted. TRIED rows are never purged. It stops early when ctx is done.
// Run it periodically (the check-back worker does, see CheckerConfig).
func (p *Participant) Purge(ctx context.Context) (int64, error) {
	cutoff := micros(p.now().Add(-p.retention))
	sel := "SELECT gid, branch_id FROM " + p.table + " WHERE state <> ? AND updated_us < ? LIMIT ?"
	var total int64
	for {
		rows, err := p.db.WithContext(ctx).Raw(sel, string(StateTried), cutoff, purgeBatch).Rows()
		if err != nil {
			return total, fmt.Errorf("participant: purge: %w", err)
		}
		var keys []any
		var conds []string
		for rows.Next() {
			var gid, branch string
			if err := rows.Scan(&gid, &branch); err != nil {
				rows.Close()
				return total, fmt.Errorf("participant: purge: %w", err)
			}
			keys = append(keys, gid, branch)
			conds = append(conds, "(gid = ? AND branch_id = ?)")
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return total, fmt.Errorf("participant: purge: %w", err)
		}
		rows.Close()
		if len(conds) == 0 {
			return total, nil
		}
		// The conditions are repeated so a row changed since the SELECT is
		// left alone.
		del := "DELETE FROM " + p.table + " WHERE state <> ? AND updated_us < ? AND (" + strings.Join(conds, " OR ") + ")"
		res := p.db.WithContext(ctx).Exec(del, append([]any{string(StateTried), cutoff}, keys...)...)
		if res.Error != nil {
			return total, fmt.Errorf("participant: purge: %w", res.Error)
		}
		total += res.RowsAffected
		if len(conds) < purgeBatch {
			return total, nil
		}
	}
}

// Agreement is how a fence record compares with the coordinator's record.
type Agreement string

// Agreements.
const (
	// AgreeOK: both sides agree.
	AgreeOK Agreement = "ok"
	// AgreeInFlight: the transaction is not finished; the two sides will
	// converge (Confirm/Cancel delivery or check-back).
	AgreeInFlight Agreement = "in-flight"
	// AgreeMissing: the coordinator has no record of the transaction (never
	// begun, or purged after its retention). Expected for a CANCELLED row;
	// a CONFIRMED row whose coordinator record is gone cannot be checked.
	AgreeMissing Agreement = "missing"
	// AgreeMismatch: the two sides disagree; an operator must look.
	AgreeMismatch Agreement = "MISMATCH"
)

// Comparison is one fence record next to the coordinator's view.
type Comparison struct {
	// Record is the fence record.
	Record Record
	// TransactionState is the coordinator's transaction state
	// (UNSPECIFIED when it has no record).
	TransactionState tccv1.TransactionState
	// BranchState is the coordinator's state of the same branch
	// (UNSPECIFIED when it has none).
	BranchState tccv1.BranchState
	// Agreement is the verdict.
	Agreement Agreement
}

// Reconcile compares fence records with the coordinator's GetTransaction
// answers, one call per distinct gid. It is read-only on both sides.
func Reconcile(ctx context.Context, coord tccv1.CoordinatorServiceClient, records []Record) ([]Comparison, error) {
	txns := map[string]*tccv1.Transaction{}
	out := make([]Comparison, 0, len(records))
	for _, r := range records {
		txn, seen := txns[r.GID]
		if !seen {
			resp, err := coord.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: r.GID})
			switch {
			case status.Code(err) == codes.NotFound:
			case err != nil:
				return out, fmt.Errorf("participant: reconcile %s: %w", r.GID, err)
			default:
				txn = resp.GetTransaction()
			}
			txns[r.GID] = txn
		}
		c := Comparison{Record: r}
		if txn != nil {
			c.TransactionState = txn.GetState()
			for _, b := range txn.GetBranches() {
				if b.GetBranchId() == r.BranchID {
					c.BranchState = b.GetState()
				}
			}
		}
		c.Agreement = agreement(r, txn != nil, c.TransactionState, c.BranchState)
		out = append(out, c)
	}
	return out, nil
}

// agreement decides whether a fence record and the coordinator agree.
func agreement(r Record, found bool, ts tccv1.TransactionState, bs tccv1.BranchState) Agreement {
	if !found {
		if r.State == StateCancelled {
			return AgreeOK // presumed abort
		}
		return AgreeMissing
	}
	switch bs {
	case tccv1.BranchState_BRANCH_STATE_CONFIRMED:
		if r.State == StateConfirmed {
			return AgreeOK
		}
		return AgreeMismatch
	case tccv1.BranchState_BRANCH_STATE_CANCELLED:
		if r.State == StateCancelled {
			return AgreeOK
		}
		return AgreeMismatch
	case tccv1.BranchState_BRANCH_STATE_UNSPECIFIED:
		// A branch the coordinator never registered: only a null
		// compensation can be right.
		if r.State == StateCancelled && !r.Tried {
			return AgreeOK
		}
		return AgreeMismatch
	}
	// Registered, not yet finished on the coordinator's side.
	switch ts {
	case tccv1.TransactionState_TRANSACTION_STATE_TRYING:
		if r.State == StateTried {
			return AgreeInFlight
		}
	case tccv1.TransactionState_TRANSACTION_STATE_COMMITTING, tccv1.TransactionState_TRANSACTION_STATE_COMMITTED:
		if r.State == StateTried || r.State == StateConfirmed {
			return AgreeInFlight
		}
	case tccv1.TransactionState_TRANSACTION_STATE_ABORTING, tccv1.TransactionState_TRANSACTION_STATE_ABORTED:
		if r.State == StateTried || r.State == StateCancelled {
			return AgreeInFlight
		}
	}
	return AgreeMismatch
}
