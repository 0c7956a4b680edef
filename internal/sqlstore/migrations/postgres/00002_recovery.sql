-- Recovery loop, retry horizon, conflicts, retention, admin listing.

-- +goose Up
ALTER TABLE transaction_record ADD COLUMN decided_us BIGINT NOT NULL DEFAULT 0;
CREATE INDEX idx_transaction_attention ON transaction_record (needs_attention, gid);
-- A branch whose participant reported the opposite outcome (S11): it is no
-- longer retried; an operator resolves it.
ALTER TABLE branch_record
  ADD COLUMN conflict BOOLEAN NOT NULL DEFAULT FALSE,
  ADD COLUMN resolution VARCHAR(1024) NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE branch_record DROP COLUMN resolution, DROP COLUMN conflict;
DROP INDEX idx_transaction_attention;
ALTER TABLE transaction_record DROP COLUMN decided_us;
