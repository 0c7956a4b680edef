-- Recovery loop, retry horizon, conflicts, retention, admin listing.

-- +goose Up
ALTER TABLE transaction_record
  ADD COLUMN decided_us BIGINT NOT NULL DEFAULT 0 AFTER deadline_us,
  ADD KEY idx_transaction_attention (needs_attention, gid);
-- A branch whose participant reported the opposite outcome (S11): it is no
-- longer retried; an operator resolves it.
ALTER TABLE branch_record
  ADD COLUMN conflict BOOLEAN NOT NULL DEFAULT FALSE,
  ADD COLUMN resolution VARCHAR(1024) NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE branch_record DROP COLUMN resolution, DROP COLUMN conflict;
ALTER TABLE transaction_record DROP KEY idx_transaction_attention, DROP COLUMN decided_us;
