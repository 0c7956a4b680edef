-- The transaction history (tcc.Event): an append-only log of what
-- happened to each transaction, written in the same database transaction
-- as the state change each event describes. Ordered per gid by id (the
-- rowid: a new row's id is above every existing row's).
--
-- Rows hold the attempts, conflicts, needs-attention flags, operator
-- actions and a tombstone's decision; the begin, the registrations, the
-- decision and the finish are read from transaction_record and
-- branch_record (see internal/sqlstore/history.go and 00004).
--
-- state: DECIDED the transaction state; RESOLVED the branch state;
-- ATTEMPT the call (CONFIRM or CANCEL).
-- cause: DECIDED what decided (CHECK_BACK for a tombstone); ATTEMPT the
-- result class (SUCCESS, FAILED, UNKNOWN).
-- attempt: ATTEMPT the branch's attempt number (from 1); the first and
-- last N of each branch are kept, the ones between deleted.

-- +goose Up
CREATE TABLE transaction_event (
  id          INTEGER NOT NULL PRIMARY KEY,
  gid         TEXT    NOT NULL,
  at_us       INTEGER NOT NULL,
  kind        TEXT    NOT NULL,
  branch_id   TEXT    NOT NULL DEFAULT '',
  participant TEXT    NOT NULL DEFAULT '',
  state       TEXT    NOT NULL DEFAULT '',
  cause       TEXT    NOT NULL DEFAULT '',
  attempt     INTEGER NOT NULL DEFAULT 0,
  code        TEXT    NOT NULL DEFAULT '',
  message     TEXT    NOT NULL DEFAULT '',
  latency_us  INTEGER NOT NULL DEFAULT 0,
  instance    TEXT    NOT NULL DEFAULT '',
  actor       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX idx_event_gid ON transaction_event (gid, id);

-- +goose Down
DROP INDEX idx_event_gid;
DROP TABLE transaction_event;
