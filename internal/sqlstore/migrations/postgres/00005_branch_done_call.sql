-- A branch's successful Confirm/Cancel, for the history (history.go): the
-- delivery round that moves the branch to its final state stores the
-- call's latency and the instance that made it in the same UPDATE, so a
-- transaction whose calls all succeed writes no history row at all. With
-- state, attempts and updated_us they are that attempt's event. Failed
-- attempts are transaction_event rows.

-- +goose Up
ALTER TABLE branch_record
  ADD COLUMN done_latency_us BIGINT      NOT NULL DEFAULT 0,
  ADD COLUMN done_instance   VARCHAR(64) NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE branch_record DROP COLUMN done_instance, DROP COLUMN done_latency_us;
