-- Recovery loop, retry horizon, conflicts, retention, admin listing.

-- +goose Up
ALTER TABLE transaction_record ADD COLUMN decided_us INTEGER NOT NULL DEFAULT 0;
CREATE INDEX idx_transaction_attention ON transaction_record (needs_attention, gid);
-- A branch whose participant reported the opposite outcome (S11): it is no
-- longer retried; an operator resolves it.
ALTER TABLE branch_record ADD COLUMN conflict INTEGER NOT NULL DEFAULT 0;
ALTER TABLE branch_record ADD COLUMN resolution TEXT NOT NULL DEFAULT '';

-- +goose Down
DROP INDEX idx_transaction_attention;
ALTER TABLE transaction_record DROP COLUMN decided_us;
ALTER TABLE branch_record DROP COLUMN conflict;
ALTER TABLE branch_record DROP COLUMN resolution;
