package database

import (
	"errors"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// Driver error codes that change what callers do.
const (
	sqliteBusy              = 5    // SQLITE_BUSY
	sqliteLocked            = 6    // SQLITE_LOCKED
	sqliteConstraintPrimary = 1555 // SQLITE_CONSTRAINT_PRIMARYKEY
	sqliteConstraintUnique  = 2067 // SQLITE_CONSTRAINT_UNIQUE
	sqlitePrimaryCodeMask   = 0xff // extended code -> primary code

	mysqlDuplicateEntry  = 1062 // ER_DUP_ENTRY
	mysqlLockWaitTimeout = 1205 // ER_LOCK_WAIT_TIMEOUT
	mysqlDeadlock        = 1213 // ER_LOCK_DEADLOCK

	pgUniqueViolation      = "23505" // unique_violation
	pgSerializationFailure = "40001" // serialization_failure
	pgDeadlockDetected     = "40P01" // deadlock_detected
	pgLockNotAvailable     = "55P03" // lock_not_available (lock_timeout)
)

// PostgresCode returns the SQLSTATE of a PostgreSQL error in err's chain,
// or "".
func PostgresCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// sqliteError is implemented by the SQLite driver's errors.
type sqliteError interface {
	error
	Code() int
}

// IsDuplicateKey reports whether err is a primary or unique key violation
// reported by MySQL/MariaDB, PostgreSQL or SQLite.
func IsDuplicateKey(err error) bool {
	if code := PostgresCode(err); code != "" {
		return code == pgUniqueViolation
	}
	var me *gomysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == mysqlDuplicateEntry
	}
	var se sqliteError
	if errors.As(err, &se) {
		return se.Code() == sqliteConstraintPrimary || se.Code() == sqliteConstraintUnique
	}
	return false
}

// IsRetryable reports whether err aborted a transaction that may simply be
// run again: a deadlock or lock wait timeout on MySQL; a serialization
// failure, deadlock or lock timeout on PostgreSQL (and so on CockroachDB and
// YugabyteDB, which report conflicts as serialization failures); a busy or
// locked database on SQLite. Nothing of the transaction was applied.
func IsRetryable(err error) bool {
	switch PostgresCode(err) {
	case "":
	case pgSerializationFailure, pgDeadlockDetected, pgLockNotAvailable:
		return true
	default:
		return false
	}
	var me *gomysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == mysqlDeadlock || me.Number == mysqlLockWaitTimeout
	}
	var se sqliteError
	if errors.As(err, &se) {
		c := se.Code() & sqlitePrimaryCodeMask
		return c == sqliteBusy || c == sqliteLocked
	}
	return false
}
