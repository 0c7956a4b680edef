-- The decision's history event lives in the record (history.go): what
-- decided (COMMIT, ROLLBACK, DEADLINE, CHECK_BACK, OPERATOR) and which
-- instance, written by the decision's own compare-and-set, once (a
-- decision never changes). With decided_us, state and abort_reason they
-- are the DECIDED event; a final record's finish time (next_attempt_us) is
-- its FINISHED event. No statement of their own on the hot path.

-- +goose Up
ALTER TABLE transaction_record
  ADD COLUMN decided_by       VARCHAR(16) COLLATE "C" NOT NULL DEFAULT '',
  ADD COLUMN decided_instance VARCHAR(64) NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE transaction_record DROP COLUMN decided_instance, DROP COLUMN decided_by;
