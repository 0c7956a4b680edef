package client

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// The decision table.
//
// An initiator that makes its own database change part of the transaction
// keeps a decision table in that database: one row per gid, primary key
// gid, whose outcome is "commit" or "abort". Txn.CommitLocal inserts
// (gid, commit) in the same local transaction as the business change; the
// Decider inserts (gid, abort) if no row exists and answers what the row
// says. The primary key makes them exclusive: whichever inserts first
// decides, and the other follows (docs/initiators.md). Rows are never
// updated; they may be deleted once the transaction has been final for
// longer than any check-back can arrive (the coordinator's tombstone
// retention).

// DecisionTable is the decision table's name.
const DecisionTable = "settle_decision"

// The outcomes stored in the decision table.
const (
	OutcomeCommit = "commit"
	OutcomeAbort  = "abort"
)

// DecisionTableMySQL is the decision table's DDL for MySQL 8 / MariaDB
// 10.6+. Times are microseconds since the Unix epoch (UTC), as in the
// fence and the coordinator's own tables.
const DecisionTableMySQL = `CREATE TABLE IF NOT EXISTS settle_decision (
  gid        VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  outcome    VARCHAR(8)   NOT NULL,  -- commit or abort; never updated
  created_us BIGINT       NOT NULL,  -- when the row was inserted
  PRIMARY KEY (gid)
) ENGINE=InnoDB`

// DecisionTableSQLite is the decision table's DDL for SQLite; the columns
// mean what they mean in DecisionTableMySQL.
const DecisionTableSQLite = `CREATE TABLE IF NOT EXISTS settle_decision (
  gid        TEXT    NOT NULL PRIMARY KEY,
  outcome    TEXT    NOT NULL,
  created_us INTEGER NOT NULL
) WITHOUT ROWID`

// DecisionTablePostgres is the decision table's DDL for PostgreSQL; the
// columns mean what they mean in DecisionTableMySQL.
const DecisionTablePostgres = `CREATE TABLE IF NOT EXISTS settle_decision (
  gid        VARCHAR(128) COLLATE "C" NOT NULL PRIMARY KEY,
  outcome    VARCHAR(8)   NOT NULL,
  created_us BIGINT       NOT NULL
)`

// EnsureDecisionTable creates the decision table in db if it does not
// exist. db must be the database that holds the business tables the
// initiator changes in Txn.CommitLocal: the decision row and the business
// change commit in one local transaction. It is safe to run concurrently
// and repeatedly.
func EnsureDecisionTable(ctx context.Context, db *gorm.DB) error {
	d, err := decisionDialectOf(db)
	if err != nil {
		return err
	}
	if err := db.WithContext(ctx).Exec(d.ddl).Error; err != nil {
		return fmt.Errorf("client: create %s: %w", DecisionTable, err)
	}
	return nil
}

// decisionDialect is the decision table's SQL for one database.
type decisionDialect struct {
	ddl string
	// insertIfAbsent inserts (gid, abort, created_us) unless a row for
	// gid exists, waiting for a transaction that is inserting one.
	insertIfAbsent string
}

const (
	insertDecision = `INSERT INTO settle_decision (gid, outcome, created_us) VALUES (?, ?, ?)`
	selectDecision = `SELECT outcome FROM settle_decision WHERE gid = ?`
)

func decisionDialectOf(db *gorm.DB) (decisionDialect, error) {
	switch name := db.Dialector.Name(); name {
	case "mysql":
		return decisionDialect{DecisionTableMySQL,
			`INSERT IGNORE INTO settle_decision (gid, outcome, created_us) VALUES (?, ?, ?)`}, nil
	case "sqlite":
		return decisionDialect{DecisionTableSQLite,
			`INSERT INTO settle_decision (gid, outcome, created_us) VALUES (?, ?, ?) ON CONFLICT (gid) DO NOTHING`}, nil
	case "postgres":
		return decisionDialect{DecisionTablePostgres,
			`INSERT INTO settle_decision (gid, outcome, created_us) VALUES (?, ?, ?) ON CONFLICT (gid) DO NOTHING`}, nil
	default:
		return decisionDialect{}, fmt.Errorf("client: decision table: unsupported dialect %q (want mysql, sqlite or postgres)", name)
	}
}

// readDecision returns gid's outcome, or "" if it has no row.
func readDecision(ctx context.Context, db *gorm.DB, gid string) (string, error) {
	var outcomes []string
	if err := db.WithContext(ctx).Raw(selectDecision, gid).Scan(&outcomes).Error; err != nil {
		return "", fmt.Errorf("client: read %s: %w", DecisionTable, err)
	}
	if len(outcomes) == 0 {
		return "", nil
	}
	return outcomes[0], nil
}

// decideLocally is the decider's query on db: insert (gid, abort) if no row
// exists, then read the row. Each statement runs on its own (autocommit),
// so that the read sees the row a concurrent local transaction committed
// while the insert waited for it.
//
// model: decider
func decideLocally(ctx context.Context, db *gorm.DB, gid string) (string, error) {
	d, err := decisionDialectOf(db)
	if err != nil {
		return "", err
	}
	if err := db.WithContext(ctx).Exec(d.insertIfAbsent, gid, OutcomeAbort, time.Now().UnixMicro()).Error; err != nil {
		return "", fmt.Errorf("client: insert into %s: %w", DecisionTable, err)
	}
	o, err := readDecision(ctx, db, gid)
	if err != nil {
		return "", err
	}
	switch o {
	case OutcomeCommit, OutcomeAbort:
		return o, nil
	case "":
		return "", fmt.Errorf("client: %s has no row for %s after inserting one", DecisionTable, gid)
	}
	return "", fmt.Errorf("client: %s holds outcome %q for %s, neither commit nor abort", DecisionTable, o, gid)
}
