-- Settle coordinator schema, PostgreSQL 13+.
-- Times are BIGINT unix microseconds (UTC) written by the coordinator's
-- clock; use to_timestamp(col / 1e6) to read them.
-- Ids use the "C" collation: compared and ordered byte for byte, as on
-- MySQL (ascii_bin) and SQLite, whatever the database's default collation.

-- +goose Up
CREATE TABLE transaction_record (
  gid             VARCHAR(128)  COLLATE "C" NOT NULL,
  state           VARCHAR(16)   COLLATE "C" NOT NULL,
  version         BIGINT        NOT NULL,
  timeout_ms      BIGINT        NOT NULL,
  deadline_us     BIGINT        NOT NULL,
  -- When the recovery loop should next look at the record: the deadline
  -- while TRYING, the lease end or next retry once decided, 0 when final.
  next_attempt_us BIGINT        NOT NULL,
  lease_owner     VARCHAR(64)   NOT NULL DEFAULT '',
  attempts        INT           NOT NULL DEFAULT 0,
  branch_count    INT           NOT NULL DEFAULT 0,
  last_error      VARCHAR(2048) NOT NULL DEFAULT '',
  abort_reason    VARCHAR(1024) NOT NULL DEFAULT '',
  needs_attention BOOLEAN       NOT NULL DEFAULT FALSE,
  tombstone       BOOLEAN       NOT NULL DEFAULT FALSE,
  labels          TEXT          NOT NULL,
  created_us      BIGINT        NOT NULL,
  updated_us      BIGINT        NOT NULL,
  PRIMARY KEY (gid)
);
CREATE INDEX idx_transaction_due ON transaction_record (state, next_attempt_us);

CREATE TABLE branch_record (
  gid            VARCHAR(128)  COLLATE "C" NOT NULL,
  branch_id      VARCHAR(64)   COLLATE "C" NOT NULL,
  participant    VARCHAR(255)  COLLATE "C" NOT NULL,
  payload        BYTEA         NOT NULL,
  payload_digest CHAR(64)      COLLATE "C" NOT NULL,
  state          VARCHAR(16)   COLLATE "C" NOT NULL,
  attempts       INT           NOT NULL DEFAULT 0,
  last_error     VARCHAR(2048) NOT NULL DEFAULT '',
  created_us     BIGINT        NOT NULL,
  updated_us     BIGINT        NOT NULL,
  PRIMARY KEY (gid, branch_id)
);

-- +goose Down
DROP TABLE branch_record;
DROP TABLE transaction_record;
