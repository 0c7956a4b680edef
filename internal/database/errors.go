package database

import (
	"errors"

	gomysql "github.com/go-sql-driver/mysql"
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
)

// sqliteError is implemented by the SQLite driver's errors.
type sqliteError interface {
	error
	Code() int
}

// IsDuplicateKey reports whether err is a primary or unique key violation
// reported by MySQL/MariaDB or SQLite.
func IsDuplicateKey(err error) bool {
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
// run again: a deadlock or lock wait timeout on MySQL, a busy or locked
// database on SQLite. Nothing of the transaction was applied.
func IsRetryable(err error) bool {
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
