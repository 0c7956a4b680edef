package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/settle-tcc/settle/internal/tcc"
)

// RetryNow implements tcc.Store: the record's update and its event in one
// database transaction.
func (s *Store) RetryNow(ctx context.Context, p tcc.RetryParams) (*tcc.Transaction, error) {
	gid, now := p.GID, p.Now
	var tx *tcc.Transaction
	var changed bool
	err := s.db.WithContext(ctx).Transaction(func(db *gorm.DB) error {
		res := db.Exec(`UPDATE transaction_record`+s.pk()+`
			SET next_attempt_us = ?, version = version + 1, updated_us = ?
			WHERE gid = ? AND ((state IN (?, ?) AND (lease_owner = '' OR next_attempt_us <= ?))
			                   OR (state = ? AND decider <> '' AND deadline_us <= ?))`,
			micros(now), micros(now), gid, string(tcc.StateCommitting), string(tcc.StateAborting), micros(now),
			string(tcc.StateTrying), micros(now))
		if res.Error != nil {
			return res.Error
		}
		if changed = res.RowsAffected == 1; changed {
			ev := eventsInsert([]tcc.Event{{GID: gid, At: now, Kind: tcc.EventRetryNow, Actor: p.Actor}})
			if err := db.Exec(ev.query, ev.args...).Error; err != nil {
				return err
			}
		}
		var err error
		tx, err = s.getTransaction(db, gid)
		return err
	})
	if err != nil {
		return nil, s.interpret("retry now", err)
	}
	if changed {
		return tx, nil
	}
	if tx.State != tcc.StateCommitting && tx.State != tcc.StateAborting {
		return nil, &tcc.StateError{GID: gid, Actual: tx.State, Op: "retry now",
			Detail: "only a decided, unfinished transaction, or one with a decider past its deadline, can be retried"}
	}
	return nil, fmt.Errorf("being driven by %s until %s: %w", tx.LeaseOwner, tx.NextAttemptAt.Format(time.RFC3339), tcc.ErrConflict)
}

// ResolveBranch implements tcc.Store.
func (s *Store) ResolveBranch(ctx context.Context, p tcc.ResolveParams) (*tcc.Transaction, error) {
	var out *tcc.Transaction
	err := s.db.WithContext(ctx).Transaction(func(db *gorm.DB) error {
		now := micros(p.Now)
		// Lock the record and check its state first, so the resolution and
		// the due time are one step.
		res := db.Exec(`UPDATE transaction_record`+s.pk()+`
			SET next_attempt_us = ?, version = version + 1, updated_us = ?
			WHERE gid = ? AND state IN (?, ?)`,
			now, now, p.GID, string(tcc.StateCommitting), string(tcc.StateAborting))
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			tx, err := s.getTransaction(db, p.GID)
			if err != nil {
				return err
			}
			return &tcc.StateError{GID: p.GID, Actual: tx.State, Op: "resolve branch " + p.BranchID, Detail: "only branches of a decided, unfinished transaction can be resolved"}
		}
		res = db.Exec(`UPDATE branch_record SET state = ?, resolution = ?, updated_us = ?
			WHERE gid = ? AND branch_id = ? AND state = ?`,
			string(p.State), p.Reason, now, p.GID, p.BranchID, string(tcc.BranchRegistered))
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 1 {
			ev := eventsInsert([]tcc.Event{{GID: p.GID, At: p.Now, Kind: tcc.EventResolved, BranchID: p.BranchID,
				BranchState: p.State, Message: p.Reason, Actor: p.Actor}})
			if err := db.Exec(ev.query, ev.args...).Error; err != nil {
				return err
			}
		}
		tx, err := s.getTransaction(db, p.GID)
		if err != nil {
			return err
		}
		if res.RowsAffected == 0 {
			for _, b := range tx.Branches {
				if b.BranchID == p.BranchID {
					return &tcc.StateError{GID: p.GID, Actual: tx.State, Op: "resolve branch " + p.BranchID,
						Detail: "branch is already " + string(b.State)}
				}
			}
			return fmt.Errorf("%w: branch %s of %s", tcc.ErrNotFound, p.BranchID, p.GID)
		}
		out = tx
		return nil
	})
	if err != nil {
		return nil, s.interpret("resolve branch", err)
	}
	return out, nil
}

// ListTransactions implements tcc.Store.
func (s *Store) ListTransactions(ctx context.Context, p tcc.ListParams) ([]*tcc.Transaction, error) {
	var where []string
	var args []any
	if p.NeedsAttention {
		where = append(where, "needs_attention = ?")
		args = append(args, true)
	}
	if p.State != "" {
		where = append(where, "state = ?")
		args = append(args, string(p.State))
	}
	if !p.CreatedBefore.IsZero() {
		where = append(where, "created_us < ?")
		args = append(args, micros(p.CreatedBefore))
	}
	if !p.CreatedAfter.IsZero() {
		where = append(where, "created_us >= ?")
		args = append(args, micros(p.CreatedAfter))
	}
	if p.GIDPrefix != "" {
		// A range on the primary key: gids are printable ASCII (below
		// 0x7f) compared bytewise, so every gid with the prefix is in
		// [prefix, prefix+"\x7f").
		where = append(where, "gid >= ? AND gid < ?")
		args = append(args, p.GIDPrefix, p.GIDPrefix+"\x7f")
	}
	if p.Participant != "" {
		where = append(where, "EXISTS (SELECT 1 FROM branch_record b WHERE b.gid = transaction_record.gid AND b.participant = ?)")
		args = append(args, p.Participant)
	}
	if p.LabelKey != "" {
		// labels is the JSON object encodeLabels wrote (json.Marshal, keys
		// sorted): a key is preceded by '{' or ',' and followed by ':',
		// which a key or value inside a string never is (its quotes are
		// escaped). The pattern is matched literally ('!' escapes LIKE's
		// wildcards).
		needle, err := labelNeedle(p.LabelKey, p.LabelValue, p.LabelValueSet)
		if err != nil {
			return nil, err
		}
		where = append(where, "(labels LIKE ? ESCAPE '!' OR labels LIKE ? ESCAPE '!')")
		args = append(args, "%{"+needle+"%", "%,"+needle+"%")
	}
	if p.After != "" {
		where = append(where, "gid > ?")
		args = append(args, p.After)
	}
	q := `SELECT ` + recordColumns + ` FROM transaction_record`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY gid LIMIT ?"
	args = append(args, p.Limit)
	rows, err := s.db.WithContext(ctx).Raw(q, args...).Rows()
	if err != nil {
		return nil, s.interpret("list transactions", err)
	}
	defer rows.Close()
	var out []*tcc.Transaction
	for rows.Next() {
		var r recordRow
		if err := rows.Scan(r.dest()...); err != nil {
			return nil, s.interpret("list transactions", err)
		}
		tx, err := r.record()
		if err != nil {
			return nil, err
		}
		tx.BranchCount = r.branchCount
		out = append(out, tx)
	}
	return out, s.interpret("list transactions", rows.Err())
}

// Purge implements tcc.Store. Final records are found through the
// (state, next_attempt_us) index: for them next_attempt_us is the finish
// time.
func (s *Store) Purge(ctx context.Context, p tcc.PurgeParams) (int, error) {
	db := s.db.WithContext(ctx)
	var gids []any
	for _, st := range []tcc.State{tcc.StateCommitted, tcc.StateAborted} {
		if len(gids) >= p.Limit {
			break
		}
		rows, err := db.Raw(`SELECT gid FROM transaction_record
			WHERE state = ? AND next_attempt_us < ? AND (tombstone = ? OR created_us < ?)
			ORDER BY next_attempt_us LIMIT ?`,
			string(st), micros(p.Before), false, micros(p.TombstonesBefore), p.Limit-len(gids)).Rows()
		if err != nil {
			return 0, s.interpret("purge", err)
		}
		for rows.Next() {
			var gid string
			if err := rows.Scan(&gid); err != nil {
				rows.Close()
				return 0, s.interpret("purge", err)
			}
			gids = append(gids, gid)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return 0, s.interpret("purge", err)
		}
	}
	if len(gids) == 0 {
		return 0, nil
	}
	marks := strings.TrimSuffix(strings.Repeat("?,", len(gids)), ",")
	var n int64
	err := db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec(`DELETE FROM branch_record WHERE gid IN (`+marks+`)`, gids...).Error; err != nil {
			return err
		}
		if err := tx.Exec(`DELETE FROM transaction_event WHERE gid IN (`+marks+`)`, gids...).Error; err != nil {
			return err
		}
		args := append(append([]any{}, gids...), string(tcc.StateCommitted), string(tcc.StateAborted))
		res := tx.Exec(`DELETE FROM transaction_record WHERE gid IN (`+marks+`) AND state IN (?, ?)`, args...)
		n = res.RowsAffected
		return res.Error
	})
	if err != nil {
		return 0, s.interpret("purge", err)
	}
	return int(n), nil
}

// labelNeedle is the text a label filter looks for in the labels column:
// "key": for any value, "key":"value" for that value (JSON-encoded as
// encodeLabels encodes them), with LIKE's wildcards escaped by '!'.
func labelNeedle(key, value string, valueSet bool) (string, error) {
	k, err := json.Marshal(key)
	if err != nil {
		return "", fmt.Errorf("label filter: %w", err)
	}
	needle := string(k) + ":"
	if valueSet || value != "" {
		// With the value's closing quote: "a" does not match "ab".
		v, err := json.Marshal(value)
		if err != nil {
			return "", fmt.Errorf("label filter: %w", err)
		}
		needle += string(v)
	}
	return likeEscape(needle), nil
}

// likeEscape escapes LIKE's wildcards and the escape character '!'.
func likeEscape(s string) string {
	r := strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")
	return r.Replace(s)
}
