-- Settle coordinator schema, MySQL 8 / MariaDB 10.6+.
-- Times are BIGINT unix microseconds (UTC) written by the coordinator's
-- clock; use FROM_UNIXTIME(col/1e6) to read them.

-- +goose Up
CREATE TABLE transaction_record (
  gid             VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  state           VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  version         BIGINT       NOT NULL,
  timeout_ms      BIGINT       NOT NULL,
  deadline_us     BIGINT       NOT NULL,
  -- When the recovery loop should next look at the record: the deadline
  -- while TRYING, the lease end or next retry once decided, 0 when final.
  next_attempt_us BIGINT       NOT NULL,
  lease_owner     VARCHAR(64)  NOT NULL DEFAULT '',
  attempts        INT          NOT NULL DEFAULT 0,
  branch_count    INT          NOT NULL DEFAULT 0,
  last_error      VARCHAR(2048) NOT NULL DEFAULT '',
  abort_reason    VARCHAR(1024) NOT NULL DEFAULT '',
  needs_attention BOOLEAN      NOT NULL DEFAULT FALSE,
  tombstone       BOOLEAN      NOT NULL DEFAULT FALSE,
  labels          TEXT         NOT NULL,
  created_us      BIGINT       NOT NULL,
  updated_us      BIGINT       NOT NULL,
  PRIMARY KEY (gid),
  KEY idx_transaction_due (state, next_attempt_us)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE branch_record (
  gid            VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  branch_id      VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  participant    VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  payload        MEDIUMBLOB   NOT NULL,
  payload_digest CHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  state          VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  attempts       INT          NOT NULL DEFAULT 0,
  last_error     VARCHAR(2048) NOT NULL DEFAULT '',
  created_us     BIGINT       NOT NULL,
  updated_us     BIGINT       NOT NULL,
  PRIMARY KEY (gid, branch_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE branch_record;
DROP TABLE transaction_record;
