-- The transaction history (tcc.Event): an append-only log of what
-- happened to each transaction, written by the same statements or script
-- as the state change each event describes. Ordered per gid by id (a
-- gid's writes serialise on its transaction_record row, so its ids
-- increase in commit order). Clustered by (gid, id): reading one
-- transaction's history and purging it are one range each.
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
  id          BIGINT        NOT NULL AUTO_INCREMENT,
  gid         VARCHAR(128)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  at_us       BIGINT        NOT NULL,
  kind        VARCHAR(24)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  branch_id   VARCHAR(64)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  participant VARCHAR(255)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  state       VARCHAR(16)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  cause       VARCHAR(16)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  attempt     INT           NOT NULL DEFAULT 0,
  code        VARCHAR(32)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  message     VARCHAR(2048) NOT NULL DEFAULT '',
  latency_us  BIGINT        NOT NULL DEFAULT 0,
  instance    VARCHAR(64)   NOT NULL DEFAULT '',
  actor       VARCHAR(255)  NOT NULL DEFAULT '',
  PRIMARY KEY (gid, id),
  KEY idx_event_id (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE transaction_event;
