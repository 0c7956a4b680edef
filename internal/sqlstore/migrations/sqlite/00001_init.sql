-- Settle coordinator schema, SQLite (embedded, single instance).
-- Times are INTEGER unix microseconds (UTC) written by the coordinator's
-- clock.

-- +goose Up
CREATE TABLE transaction_record (
  gid             TEXT    NOT NULL PRIMARY KEY,
  state           TEXT    NOT NULL,
  version         INTEGER NOT NULL,
  timeout_ms      INTEGER NOT NULL,
  deadline_us     INTEGER NOT NULL,
  -- When the recovery loop should next look at the record: the deadline
  -- while TRYING, the lease end or next retry once decided, 0 when final.
  next_attempt_us INTEGER NOT NULL,
  lease_owner     TEXT    NOT NULL DEFAULT '',
  attempts        INTEGER NOT NULL DEFAULT 0,
  branch_count    INTEGER NOT NULL DEFAULT 0,
  last_error      TEXT    NOT NULL DEFAULT '',
  abort_reason    TEXT    NOT NULL DEFAULT '',
  needs_attention INTEGER NOT NULL DEFAULT 0,
  tombstone       INTEGER NOT NULL DEFAULT 0,
  labels          TEXT    NOT NULL,
  created_us      INTEGER NOT NULL,
  updated_us      INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX idx_transaction_due ON transaction_record (state, next_attempt_us);

CREATE TABLE branch_record (
  gid            TEXT    NOT NULL,
  branch_id      TEXT    NOT NULL,
  participant    TEXT    NOT NULL,
  payload        BLOB    NOT NULL,
  payload_digest TEXT    NOT NULL,
  state          TEXT    NOT NULL,
  attempts       INTEGER NOT NULL DEFAULT 0,
  last_error     TEXT    NOT NULL DEFAULT '',
  created_us     INTEGER NOT NULL,
  updated_us     INTEGER NOT NULL,
  PRIMARY KEY (gid, branch_id)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE branch_record;
DROP TABLE transaction_record;
