package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/settle-tcc/settle/internal/tcc"
)

// Group commit.
//
// Begin, RegisterBranch, Decide and RecordRound requests that arrive while a
// request of the same kind is being written are queued and written together
// by one caller: one multi-row INSERT for Begins (plus one for the branches
// they register, in one write transaction); one write transaction for
// the registrations and the decisions of records this store remembers
// (known.go) and for the finishing delivery rounds (from two on); one
// locking transaction for the registrations and decisions (from three on)
// of other records. On MySQL a write transaction is one round trip
// (script.go). A request arriving when nothing of its kind is running is
// written at once, alone, so batching adds no latency at low load and saves
// round trips, commits (fsyncs) and statements as load grows. Durability is
// unchanged: every caller returns only after the statement or transaction
// holding its write has committed.
//
// A batch that cannot be applied as a whole (a duplicate key, a refused
// compare-and-set, a deadlock) is rolled back and its requests are run one
// by one through the single-request code, which gives each its own precise
// result. Requests for the same gid never share a batch: the later ones run
// alone after it.

// maxBatch bounds the requests written together.
const maxBatch = 64

// batchTimeout bounds the database work of one batch; it is not tied to any
// one caller's context because the batch serves several.
const batchTimeout = 10 * time.Second

type pending[P, T any] struct {
	p    P
	res  T
	err  error
	done chan struct{}
}

// combiner queues requests of one kind and writes them in batches.
type combiner[P, T any] struct {
	mu      sync.Mutex
	queue   []*pending[P, T]
	running bool
	flush   func(ctx context.Context, batch []*pending[P, T])
}

// do queues p and returns its result once its batch has been written. If
// no batch is running the caller writes batches itself until its own
// request is done, then hands what is left to a new goroutine.
func (c *combiner[P, T]) do(ctx context.Context, p P) (T, error) {
	r := &pending[P, T]{p: p, done: make(chan struct{})}
	c.mu.Lock()
	c.queue = append(c.queue, r)
	if !c.running {
		c.running = true
		c.mu.Unlock()
		c.drain(r)
	} else {
		c.mu.Unlock()
	}
	select {
	case <-r.done:
		return r.res, r.err
	case <-ctx.Done():
		// The write may still happen: the outcome is unknown, as for any
		// timed-out database call.
		var zero T
		return zero, ctx.Err()
	}
}

// drain writes batches until own (if not nil) is done and, if requests are
// still queued, continues in a new goroutine so that no caller is held
// serving others.
func (c *combiner[P, T]) drain(own *pending[P, T]) {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		if own != nil && isDone(own) {
			c.mu.Unlock()
			go c.drain(nil)
			return
		}
		n := min(len(c.queue), maxBatch)
		batch := make([]*pending[P, T], n)
		copy(batch, c.queue)
		c.queue = append(c.queue[:0], c.queue[n:]...)
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
		c.flush(ctx, batch)
		cancel()
		for _, r := range batch {
			close(r.done)
		}
	}
}

func isDone[P, T any](r *pending[P, T]) bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// splitByGID returns the requests whose gid is the first of its kind in the
// batch, and the rest.
func splitByGID[P, T any](batch []*pending[P, T], gid func(P) string) (first, rest []*pending[P, T]) {
	seen := make(map[string]bool, len(batch))
	for _, r := range batch {
		g := gid(r.p)
		if seen[g] {
			rest = append(rest, r)
			continue
		}
		seen[g] = true
		first = append(first, r)
	}
	return first, rest
}

func placeholders(n int) string {
	return "?" + strings.Repeat(", ?", n-1)
}

// ---- Begin -----------------------------------------------------------

type unit struct{}

func (s *Store) flushInserts(ctx context.Context, batch []*pending[*tcc.Transaction, unit]) {
	if len(batch) > 1 {
		txs := make([]*tcc.Transaction, len(batch))
		for i, r := range batch {
			txs[i] = r.p
		}
		if s.insertAll(ctx, txs) == nil {
			for _, tx := range txs {
				s.known.put(tx, tx.CreatedAt)
			}
			return
		}
		// A duplicate (or anything else): nothing was inserted; one by one.
	}
	for _, r := range batch {
		if r.err = s.insertAll(ctx, []*tcc.Transaction{r.p}); r.err == nil {
			s.known.put(r.p, r.p.CreatedAt)
		}
	}
}

// ---- RegisterBranch ----------------------------------------------------

func (s *Store) flushRegisters(ctx context.Context, batch []*pending[tcc.AddBranchParams, *tcc.Transaction]) {
	first, rest := splitByGID(batch, func(p tcc.AddBranchParams) string { return p.Branch.GID })
	var known []knownRegistration
	var unknown []*pending[tcc.AddBranchParams, *tcc.Transaction]
	for _, r := range first {
		if k := s.known.take(r.p.Branch.GID); k != nil {
			known = append(known, knownRegistration{r, k})
		} else {
			unknown = append(unknown, r)
		}
	}
	unknown = append(unknown, s.registerKnown(ctx, known)...)
	if len(unknown) > 1 && s.registerBatch(ctx, unknown) {
		unknown = nil
	}
	for _, r := range append(unknown, rest...) {
		r.res, r.err = s.registerBranch(ctx, r.p)
	}
}

// knownRegistration is a registration with the record this store
// remembers for its gid (see known.go).
type knownRegistration struct {
	r     *pending[tcc.AddBranchParams, *tcc.Transaction]
	known *tcc.Transaction
}

// registerKnown registers the branches of records this store remembers in
// one write transaction (one round trip on MySQL): for each, the record's
// compare-and-set (TRYING, under the branch limit, at the remembered
// version) and an insert of the branch that happens only if that matched.
// The record after the call is then the remembered one with the branch
// added, without reading it. It returns the requests it did not register
// (the record changed since, is decided or full, or the write failed, e.g.
// on a duplicate branch id), for the paths that read the record and report
// exactly why.
func (s *Store) registerKnown(ctx context.Context, items []knownRegistration) []*pending[tcc.AddBranchParams, *tcc.Transaction] {
	if len(items) == 0 {
		return nil
	}
	left := make([]*pending[tcc.AddBranchParams, *tcc.Transaction], len(items))
	stmts := make([]stmt, 0, 2*len(items))
	for i, it := range items {
		left[i] = it.r
		p, b := it.r.p, it.r.p.Branch
		stmts = append(stmts,
			stmt{`UPDATE transaction_record` + s.pk() + ` SET branch_count = branch_count + 1, version = version + 1, updated_us = ?
				WHERE gid = ? AND state = ? AND branch_count < ? AND version = ?`,
				[]any{micros(p.Now), b.GID, string(tcc.StateTrying), p.MaxBranches, it.known.Version}},
			stmt{`INSERT INTO branch_record (gid, branch_id, participant, payload, payload_digest, state, created_us, updated_us)
				SELECT ?, ?, ?, ?, ?, ?, ?, ?` + s.ifLastChanged(),
				[]any{b.GID, b.BranchID, b.Participant, nonNil(b.Payload), b.PayloadDigest, string(tcc.BranchRegistered),
					micros(p.Now), micros(p.Now)}})
	}
	affected, err := s.write(ctx, stmts...)
	if err != nil {
		return left
	}
	left = left[:0]
	for i, it := range items {
		if affected[2*i] != 1 || affected[2*i+1] != 1 {
			left = append(left, it.r)
			continue
		}
		tx := registered(it.known, it.r.p)
		s.known.put(tx, it.r.p.Now)
		it.r.res = tx
	}
	return left
}

// registerBatch registers every branch of batch (distinct gids) in one
// database transaction, or nothing and returns false.
func (s *Store) registerBatch(ctx context.Context, batch []*pending[tcc.AddBranchParams, *tcc.Transaction]) bool {
	dbtx, err := s.begin(ctx)
	if err != nil {
		return false
	}
	defer func() { _ = dbtx.Rollback() }()
	n := len(batch)
	gids := make([]any, 0, n)
	var nowCase, maxCase strings.Builder
	caseArgs := make([]any, 0, 4*n)
	for _, r := range batch {
		gids = append(gids, r.p.Branch.GID)
		nowCase.WriteString(" WHEN ? THEN ?")
		caseArgs = append(caseArgs, r.p.Branch.GID, micros(r.p.Now))
	}
	for _, r := range batch {
		maxCase.WriteString(" WHEN ? THEN ?")
		caseArgs = append(caseArgs, r.p.Branch.GID, r.p.MaxBranches)
	}
	args := append([]any{}, caseArgs[:2*n]...)
	args = append(args, string(tcc.StateTrying))
	args = append(args, caseArgs[2*n:]...)
	args = append(args, gids...)
	updated, err := s.exec(ctx, dbtx, `UPDATE transaction_record`+s.pk()+`
		SET branch_count = branch_count + 1, version = version + 1, updated_us = CASE gid`+nowCase.String()+` END
		WHERE state = ? AND branch_count < CASE gid`+maxCase.String()+` END AND gid IN (`+placeholders(n)+`)`, args...)
	if err != nil || updated != int64(n) {
		return false
	}
	branches := make([]tcc.Branch, 0, n)
	for _, r := range batch {
		b := r.p.Branch
		b.CreatedAt, b.UpdatedAt = r.p.Now, r.p.Now
		branches = append(branches, b)
	}
	if err := s.insertBranches(ctx, dbtx, branches); err != nil {
		return false
	}
	txs, err := s.loadMany(ctx, dbtx, gids)
	if err != nil || len(txs) != n {
		return false
	}
	if err := s.commit(dbtx); err != nil {
		// The outcome is unknown; each request is retried alone, which is
		// idempotent (a repeat of a registration that did commit is
		// reported as a duplicate with the branch in the record).
		return false
	}
	for _, r := range batch {
		r.res = txs[r.p.Branch.GID]
		s.known.put(r.res, r.p.Now)
	}
	return true
}

// loadMany reads several records with their branches in one round trip.
func (s *Store) loadMany(ctx context.Context, q querier, gids []any) (map[string]*tcc.Transaction, error) {
	s.roundTrips.Add(1)
	query := strings.Replace(loadQuery, "WHERE r.gid = ? ORDER BY b.branch_id",
		"WHERE r.gid IN ("+placeholders(len(gids))+") ORDER BY r.gid, b.branch_id", 1)
	rows, err := q.QueryContext(ctx, query, gids...)
	if err != nil {
		return nil, s.interpret("get transactions", err)
	}
	defer rows.Close()
	out := make(map[string]*tcc.Transaction, len(gids))
	if err := s.scanLoaded(rows, func(tx *tcc.Transaction) { out[tx.GID] = tx }); err != nil {
		return nil, err
	}
	return out, nil
}

// ---- Decide -------------------------------------------------------------

type decision struct {
	tx  *tcc.Transaction
	won bool
}

// minDecideBatch: a batched decision costs five round trips whatever its
// size, a single one two; below this size the single path is cheaper.
const minDecideBatch = 3

func (s *Store) flushDecides(ctx context.Context, batch []*pending[tcc.DecideParams, decision]) {
	first, rest := splitByGID(batch, func(p tcc.DecideParams) string { return p.GID })
	var known []knownDecision
	var unknown []*pending[tcc.DecideParams, decision]
	for _, r := range first {
		if k := s.known.take(r.p.GID); k != nil {
			known = append(known, knownDecision{r, k})
		} else {
			unknown = append(unknown, r)
		}
	}
	unknown = append(unknown, s.decideKnown(ctx, known)...)
	if len(unknown) >= minDecideBatch && s.decideBatch(ctx, unknown) {
		unknown = nil
	}
	for _, r := range append(unknown, rest...) {
		r.res.tx, r.res.won, r.err = s.decide(ctx, r.p)
	}
}

// knownDecision is a decision request with the record this store
// remembers for its gid (see known.go).
type knownDecision struct {
	r     *pending[tcc.DecideParams, decision]
	known *tcc.Transaction
}

// decideKnown decides the requests whose records are remembered, each by
// a compare-and-set on state and version, in one write (one autocommit
// statement alone; one transaction, one round trip on MySQL, for several)
// that is durable when it returns, and answers them with the remembered
// records, decided. It returns the requests whose compare-and-set matched
// nothing (the record changed since: another instance registered a branch
// or decided it), for the other paths, which read the record.
func (s *Store) decideKnown(ctx context.Context, items []knownDecision) []*pending[tcc.DecideParams, decision] {
	if len(items) == 0 {
		return nil
	}
	stmts := make([]stmt, len(items))
	left := make([]*pending[tcc.DecideParams, decision], len(items))
	for i, it := range items {
		query, args := decideStatement(s.pk(), []tcc.DecideParams{it.r.p}, []int64{it.known.Version})
		stmts[i], left[i] = stmt{query, args}, it.r
	}
	var affected []int64
	var err error
	if len(stmts) == 1 {
		var n int64
		n, err = s.exec(ctx, s.sql, stmts[0].query, stmts[0].args...)
		affected = []int64{n}
	} else {
		affected, err = s.write(ctx, stmts...)
	}
	if err != nil {
		// Unknown outcome: the other paths decide again, which is safe (see
		// decideBatch).
		return left
	}
	left = left[:0]
	for i, it := range items {
		if affected[i] == 1 {
			it.r.res = decision{tx: decided(it.known, it.r.p), won: true}
		} else {
			left = append(left, it.r)
		}
	}
	return left
}

// decideStatement builds the compare-and-set TRYING -> decided of several
// records, each with its own decision, lease and time; with versions it
// also requires each record's version.
func decideStatement(pk string, params []tcc.DecideParams, versions []int64) (string, []any) {
	var state, owner, next, reason, decided, version strings.Builder
	var sArgs, oArgs, nArgs, rArgs, dArgs, vArgs, in []any
	for i, p := range params {
		for _, b := range []*strings.Builder{&state, &owner, &next, &reason, &decided} {
			b.WriteString(" WHEN ? THEN ?")
		}
		sArgs = append(sArgs, p.GID, string(p.Outcome.DecidedState()))
		oArgs = append(oArgs, p.GID, p.Owner)
		nArgs = append(nArgs, p.GID, micros(p.LeaseUntil))
		rArgs = append(rArgs, p.GID, abortReason(p))
		dArgs = append(dArgs, p.GID, micros(p.Now))
		in = append(in, p.GID)
		if versions != nil {
			version.WriteString(" WHEN ? THEN ?")
			vArgs = append(vArgs, p.GID, versions[i])
		}
	}
	args := make([]any, 0, 14*len(params)+1)
	args = append(args, sArgs...)
	args = append(args, oArgs...)
	args = append(args, nArgs...)
	args = append(args, rArgs...)
	args = append(args, dArgs...)
	args = append(args, dArgs...)
	args = append(args, string(tcc.StateTrying))
	args = append(args, in...)
	query := `UPDATE transaction_record` + pk + `
		SET state = CASE gid` + state.String() + ` END, version = version + 1, lease_owner = CASE gid` + owner.String() + ` END,
		    next_attempt_us = CASE gid` + next.String() + ` END, abort_reason = CASE gid` + reason.String() + ` END,
		    decided_us = CASE gid` + decided.String() + ` END, updated_us = CASE gid` + decided.String() + ` END
		WHERE state = ? AND gid IN (` + placeholders(len(in)) + `)`
	if versions != nil {
		query += ` AND version = CASE gid` + version.String() + ` END`
		args = append(args, vArgs...)
	}
	return query, args
}

// decideBatch decides every request of batch (distinct gids) in one
// database transaction: the records are locked and read, the TRYING ones
// are decided by one compare-and-set, and all are read back. It returns
// false, having written nothing, if the batch could not be applied whole.
func (s *Store) decideBatch(ctx context.Context, batch []*pending[tcc.DecideParams, decision]) bool {
	dbtx, err := s.begin(ctx)
	if err != nil {
		return false
	}
	defer func() { _ = dbtx.Rollback() }()
	gids := make([]any, 0, len(batch))
	for _, r := range batch {
		gids = append(gids, r.p.GID)
	}
	lock := s.forUpdate()
	s.roundTrips.Add(1)
	rows, err := dbtx.QueryContext(ctx, `SELECT gid FROM transaction_record WHERE state = ? AND gid IN (`+placeholders(len(gids))+`)`+lock,
		append([]any{string(tcc.StateTrying)}, gids...)...)
	if err != nil {
		return false
	}
	trying := map[string]bool{}
	for rows.Next() {
		var g string
		if rows.Scan(&g) == nil {
			trying[g] = true
		}
	}
	if rows.Close() != nil || rows.Err() != nil {
		return false
	}
	if len(trying) > 0 {
		var params []tcc.DecideParams
		for _, r := range batch {
			if trying[r.p.GID] {
				params = append(params, r.p)
			}
		}
		query, args := decideStatement(s.pk(), params, nil)
		n, err := s.exec(ctx, dbtx, query, args...)
		if err != nil || n != int64(len(params)) {
			return false
		}
	}
	txs, err := s.loadMany(ctx, dbtx, gids)
	if err != nil {
		return false
	}
	if err := s.commit(dbtx); err != nil {
		// Unknown outcome: deciding again alone is safe (a decision that
		// did commit is then reported as not won, with the record, and the
		// lease expiry hands its delivery to the recovery loop).
		return false
	}
	for _, r := range batch {
		tx, ok := txs[r.p.GID]
		if !ok {
			r.err = fmt.Errorf("%w: %s", tcc.ErrNotFound, r.p.GID)
			continue
		}
		r.res = decision{tx: tx, won: trying[r.p.GID]}
	}
	return true
}

// ---- RecordRound ---------------------------------------------------------

func (s *Store) flushRounds(ctx context.Context, batch []*pending[tcc.RoundParams, unit]) {
	first, rest := splitByGID(batch, func(p tcc.RoundParams) string { return p.GID })
	var simple []*pending[tcc.RoundParams, unit]
	for _, r := range first {
		p := r.p
		if p.Finish && len(p.Failed) == 0 && len(p.Conflicts) == 0 && len(p.Done) > 0 {
			simple = append(simple, r)
		} else {
			rest = append(rest, r)
		}
	}
	if len(simple) >= minRoundBatch {
		for _, o := range []tcc.Outcome{tcc.Commit, tcc.Abort} {
			var group []*pending[tcc.RoundParams, unit]
			for _, r := range simple {
				if r.p.Outcome == o {
					group = append(group, r)
				}
			}
			if len(group) < minRoundBatch {
				rest = append(rest, group...)
			} else if !s.finishBatch(ctx, o, group) {
				rest = append(rest, group...)
			}
		}
	} else {
		rest = append(rest, simple...)
	}
	for _, r := range rest {
		r.err = s.recordRound(ctx, r.p)
	}
}

// minRoundBatch: a batch of finishing rounds costs one write transaction
// (one round trip on MySQL) whatever its size, as a single round does.
const minRoundBatch = 2

// finishBatch records finishing rounds (every called branch done) of
// several transactions with the same outcome in one write transaction (one
// round trip on MySQL): the done branches of all of them in one statement,
// then each record's compare-and-set, whose count tells each round its
// exact result, as a single round would. It returns false if the write
// failed; the rounds are then recorded one by one, which is idempotent.
func (s *Store) finishBatch(ctx context.Context, o tcc.Outcome, group []*pending[tcc.RoundParams, unit]) bool {
	branchDone := o.BranchDone()
	gids := make([]any, 0, len(group))
	var nowCase strings.Builder
	var nowArgs, ids []any
	seenID := map[string]bool{}
	for _, r := range group {
		gids = append(gids, r.p.GID)
		nowCase.WriteString(" WHEN ? THEN ?")
		nowArgs = append(nowArgs, r.p.GID, micros(r.p.Now))
		for _, id := range r.p.Done {
			if !seenID[id] {
				seenID[id] = true
				ids = append(ids, id)
			}
		}
	}
	// A finishing round's Done is every branch still REGISTERED in its
	// record (registration ends with the decision), so "REGISTERED
	// branches of these gids" is exactly the union of the Done lists; the
	// branch id list is a guard. The branch facts are stored whatever the
	// compare-and-set of the record says, as in a single round.
	args := append([]any{string(branchDone)}, nowArgs...)
	args = append(args, string(tcc.BranchRegistered))
	args = append(args, gids...)
	args = append(args, ids...)
	stmts := []stmt{{`UPDATE branch_record SET state = ?, attempts = attempts + 1, last_error = '',
			updated_us = CASE gid` + nowCase.String() + ` END
			WHERE state = ? AND gid IN (` + placeholders(len(gids)) + `) AND branch_id IN (` + placeholders(len(ids)) + `)`, args}}
	for _, r := range group {
		stmts = append(stmts, recordFinish(s.pk(), r.p))
	}
	affected, err := s.write(ctx, stmts...)
	if err != nil {
		return false
	}
	for i, r := range group {
		if affected[1+i] == 0 {
			r.err = fmt.Errorf("record round of %s at version %d: %w", r.p.GID, r.p.Version, tcc.ErrConflict)
		}
	}
	return true
}
