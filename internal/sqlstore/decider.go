package sqlstore

import (
	"context"
	"fmt"

	"github.com/settle-tcc/settle/internal/tcc"
)

// Postpone implements tcc.Store: a TRYING record whose decider could not
// answer is rescheduled (one compare-and-set on state and version), with
// its needs-attention event when it is flagged for the first time, in one
// database transaction.
func (s *Store) Postpone(ctx context.Context, p tcc.PostponeParams) error {
	cas := stmt{`UPDATE transaction_record` + s.pk() + `
		SET version = version + 1, attempts = attempts + 1, next_attempt_us = ?, last_error = ?,
		    needs_attention = (needs_attention OR ?), updated_us = ?
		WHERE gid = ? AND version = ? AND state = ?`,
		[]any{micros(p.NextAttemptAt), p.LastError, p.NeedsAttention, micros(p.Now), p.GID, p.Version, string(tcc.StateTrying)}}
	stmts := []stmt{cas}
	if p.Attention != "" {
		// The event only if the compare-and-set matched (dialect.thenInsert).
		e := tcc.Event{GID: p.GID, At: p.Now, Kind: tcc.EventNeedsAttention, Message: p.Attention, Instance: p.Instance}
		stmts = s.d().thenInsert(cas, "transaction_event", eventColumns, eventArgs(e))
	}
	affected, err := s.write(ctx, stmts...)
	if err != nil {
		return s.interpret("postpone", err)
	}
	if affected[0] == 0 {
		return fmt.Errorf("postpone %s at version %d: %w", p.GID, p.Version, tcc.ErrConflict)
	}
	return nil
}
