package participant

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"gorm.io/gorm"
)

// DefaultTable is the fence table's name unless Config.Table says
// otherwise.
const DefaultTable = "settle_fence"

// tableName is what a fence table may be called: a plain identifier, so it
// can be spliced into SQL text safely.
var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,47}$`)

// MySQLSchema is the fence table's DDL for MySQL 8 / MariaDB 10.6+, with
// {table} standing for the table name. utf8mb4_bin makes ids compare byte for
// byte, as the protocol requires. Times are microseconds since the Unix
// epoch (UTC), as in the coordinator's own tables.
const MySQLSchema = `CREATE TABLE IF NOT EXISTS {table} (
  gid            VARCHAR(128) NOT NULL,
  branch_id      VARCHAR(64)  NOT NULL,
  state          VARCHAR(16)  NOT NULL,            -- TRIED, CONFIRMED or CANCELLED
  tried          TINYINT      NOT NULL,            -- 1 if a Try was applied (0: null compensation)
  payload_digest CHAR(64)     NOT NULL,            -- hex SHA-256 of the first call's payload
  payload        MEDIUMBLOB   NOT NULL,            -- that payload, for check-back and reconciliation
  created_us     BIGINT       NOT NULL,            -- first call recorded
  updated_us     BIGINT       NOT NULL,            -- last state change
  next_check_us  BIGINT       NOT NULL,            -- TRIED: when to ask the coordinator next
  check_count    INT          NOT NULL DEFAULT 0,  -- check-backs made
  PRIMARY KEY (gid, branch_id),
  KEY {table}_due (state, next_check_us),
  KEY {table}_created (created_us)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`

// SQLiteSchema is the fence table's DDL for SQLite, with {table} standing
// for the table name; the columns mean what they mean in MySQLSchema.
const SQLiteSchema = `CREATE TABLE IF NOT EXISTS {table} (
  gid            TEXT    NOT NULL,
  branch_id      TEXT    NOT NULL,
  state          TEXT    NOT NULL,
  tried          INTEGER NOT NULL,
  payload_digest TEXT    NOT NULL,
  payload        BLOB    NOT NULL,
  created_us     INTEGER NOT NULL,
  updated_us     INTEGER NOT NULL,
  next_check_us  INTEGER NOT NULL,
  check_count    INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (gid, branch_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {table}_due ON {table} (state, next_check_us);
CREATE INDEX IF NOT EXISTS {table}_created ON {table} (created_us)`

// PostgresSchema is the fence table's DDL for PostgreSQL 13+, with {table}
// standing for the table name; the columns mean what they mean in
// MySQLSchema. The "C" collation makes ids compare byte for byte.
const PostgresSchema = `CREATE TABLE IF NOT EXISTS {table} (
  gid            VARCHAR(128) COLLATE "C" NOT NULL,
  branch_id      VARCHAR(64)  COLLATE "C" NOT NULL,
  state          VARCHAR(16)  COLLATE "C" NOT NULL,
  tried          SMALLINT     NOT NULL,
  payload_digest CHAR(64)     COLLATE "C" NOT NULL,
  payload        BYTEA        NOT NULL,
  created_us     BIGINT       NOT NULL,
  updated_us     BIGINT       NOT NULL,
  next_check_us  BIGINT       NOT NULL,
  check_count    INT          NOT NULL DEFAULT 0,
  PRIMARY KEY (gid, branch_id)
);
CREATE INDEX IF NOT EXISTS {table}_due ON {table} (state, next_check_us);
CREATE INDEX IF NOT EXISTS {table}_created ON {table} (created_us)`

// Migrate creates the fence table DefaultTable (and its indexes) in db if
// it does not exist. It must be the database that holds the business
// tables the handlers change: the fence row and the business change commit
// in one local transaction. Migrate is safe to run concurrently and
// repeatedly.
func Migrate(ctx context.Context, db *gorm.DB) error {
	return MigrateTable(ctx, db, DefaultTable)
}

// MigrateTable is Migrate for a fence table with another name (one per
// participant service when several share a database).
func MigrateTable(ctx context.Context, db *gorm.DB, table string) error {
	stmts, err := schema(db, table)
	if err != nil {
		return err
	}
	for _, s := range stmts {
		if err := execDDL(ctx, db, s); err != nil {
			return fmt.Errorf("participant: migrate %s: %w", table, err)
		}
	}
	return nil
}

// execDDL runs one CREATE ... IF NOT EXISTS statement. On PostgreSQL two
// sessions creating the same table at once can both pass the "not exists"
// check, and the later one then fails on a unique index of the system
// catalog (a duplicate key); run again, the statement sees the table and
// does nothing.
func execDDL(ctx context.Context, db *gorm.DB, ddl string) error {
	err := db.WithContext(ctx).Exec(ddl).Error
	for i := 0; i < 3 && IsDuplicateKey(err); i++ {
		err = db.WithContext(ctx).Exec(ddl).Error
	}
	return err
}

// schema returns the DDL statements for db's dialect.
func schema(db *gorm.DB, table string) ([]string, error) {
	if !tableName.MatchString(table) {
		return nil, fmt.Errorf("participant: bad table name %q", table)
	}
	var ddl string
	switch name := db.Dialector.Name(); name {
	case "mysql":
		// MySQL has no CREATE INDEX IF NOT EXISTS; the indexes are inline.
		ddl = MySQLSchema
	case "sqlite":
		ddl = SQLiteSchema
	case "postgres":
		ddl = PostgresSchema
	default:
		return nil, fmt.Errorf("participant: unsupported dialect %q (want mysql, postgres or sqlite)", name)
	}
	var out []string
	for _, s := range strings.Split(ddl, ";") {
		out = append(out, strings.ReplaceAll(s, "{table}", table))
	}
	return out, nil
}
