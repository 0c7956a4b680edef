package sqlstore

import (
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/settle-tcc/settle/internal/database"
)

// The SQL that differs between MySQL, PostgreSQL and SQLite, in one place.
// The store's statements are written once, with ? placeholders, in the
// SQL the three share; each difference is one of these small functions.
//
//   - pk: MySQL's index hint for updates through the primary key;
//   - forUpdate: the row-lock clause of a locking read;
//   - thenInsert: "change one row, and insert a row only if it did", which
//     MySQL and SQLite write as two statements (ROW_COUNT(), changes()) and
//     PostgreSQL as one (a data-modifying WITH);
//   - bigint: a parameter PostgreSQL cannot type from its context (a THEN
//     of a CASE, a value of an INSERT ... SELECT);
//   - bind: ? placeholders to PostgreSQL's $1, $2, ... (gorm does it for
//     the statements sent through it; the hot path uses database/sql and
//     pgx directly);
//   - args: text a column refuses (invalid UTF-8; on PostgreSQL a NUL
//     byte), which a participant's error message may hold, made storable;
//   - write (script.go, pipeline.go): one round trip per write
//     transaction, as a multi-statement script on MySQL and as one pgx
//     pipeline on PostgreSQL.

// dialect is a database.Dialect seen by the SQL it needs.
type dialect database.Dialect

func (s *Store) d() dialect { return dialect(s.dialect) }

// pk returns the index hint that makes MySQL update a record through its
// primary key. Without it the optimizer may pick the (state,
// next_attempt_us) index for "gid = ? AND state = ?" on small tables, and
// concurrent compare-and-sets on one row then deadlock on that index's gap
// locks instead of queueing on the row.
func (d dialect) pk() string {
	if d == dialect(database.MySQL) {
		return " FORCE INDEX (PRIMARY)"
	}
	return ""
}

// forUpdate is the row-lock clause of a locking read: FOR UPDATE on MySQL
// and PostgreSQL; nothing on SQLite, whose write transaction (BEGIN
// IMMEDIATE) already excludes other writers.
func (d dialect) forUpdate() string {
	if d == dialect(database.SQLite) {
		return ""
	}
	return " FOR UPDATE"
}

// bigint is the placeholder of a BIGINT parameter where the statement does
// not say its type (PostgreSQL would take it for text).
func (d dialect) bigint() string {
	if d == dialect(database.Postgres) {
		return "?::bigint"
	}
	return "?"
}

// thenInsert returns the statements that run cas (an UPDATE that changes at
// most one row) and insert values into table's columns only if it changed
// one. The first statement's affected count is cas's: on MySQL and SQLite
// it is cas, followed by an INSERT ... SELECT guarded by ROW_COUNT() or
// changes(); on PostgreSQL it is one statement,
//
//	WITH changed AS (<cas> RETURNING 1) INSERT INTO table ... SELECT ... FROM changed
//
// whose count (the rows inserted) is the rows cas changed. Either way the
// insert happened exactly when every statement returned affected 1.
func (d dialect) thenInsert(cas stmt, table, columns string, values []any) []stmt {
	var sb strings.Builder
	if d == dialect(database.Postgres) {
		sb.WriteString("WITH changed AS (")
		sb.WriteString(cas.query)
		sb.WriteString(" RETURNING 1) INSERT INTO " + table + " (" + columns + ") SELECT ")
		for i, v := range values {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(pgParam(v))
		}
		sb.WriteString(" FROM changed")
		args := make([]any, 0, len(cas.args)+len(values))
		args = append(append(args, cas.args...), values...)
		return []stmt{{sb.String(), args}}
	}
	sb.WriteString("INSERT INTO " + table + " (" + columns + ") SELECT " + placeholders(len(values)))
	if d == dialect(database.SQLite) {
		sb.WriteString(" WHERE changes() = 1")
	} else {
		sb.WriteString(" FROM DUAL WHERE ROW_COUNT() = 1")
	}
	return []stmt{cas, {sb.String(), values}}
}

// pgParam is a placeholder typed after v's Go type, for a value PostgreSQL
// cannot type from its context (it would take it for text).
func pgParam(v any) string {
	switch v.(type) {
	case int, int32, int64:
		return "?::bigint"
	case bool:
		return "?::boolean"
	case []byte:
		return "?::bytea"
	default:
		return "?::text"
	}
}

// binds caches statement texts with PostgreSQL's numbered placeholders.
// The store's texts are few (their shapes vary with batch sizes, bounded by
// maxBatch); past maxBinds entries texts are converted each time.
type binds struct {
	mu sync.RWMutex
	m  map[string]string
}

const maxBinds = 4096

// bind returns query as the database takes it: unchanged on MySQL and
// SQLite, with ? replaced by $1, $2, ... on PostgreSQL.
func (s *Store) bind(query string) string {
	if s.dialect != database.Postgres {
		return query
	}
	b := &s.binds
	b.mu.RLock()
	out, ok := b.m[query]
	b.mu.RUnlock()
	if ok {
		return out
	}
	out = rebind(query)
	b.mu.Lock()
	if b.m == nil {
		b.m = make(map[string]string)
	}
	if len(b.m) < maxBinds {
		b.m[query] = out
	}
	b.mu.Unlock()
	return out
}

// rebind numbers the ? placeholders of query outside quoted strings and
// identifiers ("?" never appears in the store's SQL otherwise).
func rebind(query string) string {
	var sb strings.Builder
	sb.Grow(len(query) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			sb.WriteByte('$')
			sb.WriteString(strconv.Itoa(n))
			continue
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

// args returns the statement arguments as the database takes them. A
// participant's error message (stored as a round's last error and an
// attempt's message) may hold bytes a text column refuses, and a refused
// write would be retried forever: invalid UTF-8 (refused by MySQL's
// utf8mb4 in strict mode and by PostgreSQL) and, on PostgreSQL, NUL bytes
// are replaced by U+FFFD. SQLite stores any bytes: its arguments are
// unchanged. Everything the store validates (ids, labels) is unchanged by
// this.
func (s *Store) args(args []any) []any {
	if s.dialect == database.SQLite {
		return args
	}
	pg := s.dialect == database.Postgres
	var out []any
	for i, a := range args {
		v, ok := a.(string)
		if !ok || ((!pg || strings.IndexByte(v, 0) < 0) && utf8.ValidString(v)) {
			continue
		}
		if out == nil {
			out = append([]any(nil), args...)
		}
		v = strings.ToValidUTF8(v, "\uFFFD")
		if pg {
			v = strings.ReplaceAll(v, "\x00", "\uFFFD")
		}
		out[i] = v
	}
	if out == nil {
		return args
	}
	return out
}
