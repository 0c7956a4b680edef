package sqlstore_test

import (
	"context"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/settle-tcc/settle/internal/database"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/sqlstore"
)

// TestMigrationsMatchAcrossDialects: every dialect has the same migration
// files (a migration added for one must be written for the others).
func TestMigrationsMatchAcrossDialects(t *testing.T) {
	names := map[database.Dialect][]string{}
	for _, d := range []database.Dialect{database.SQLite, database.MySQL, database.Postgres} {
		files, err := sqlstore.MigrationSQL(d)
		if err != nil {
			t.Fatal(err)
		}
		for n := range files {
			names[d] = append(names[d], n)
		}
		sort.Strings(names[d])
	}
	for _, d := range []database.Dialect{database.MySQL, database.Postgres} {
		if !reflect.DeepEqual(names[d], names[database.SQLite]) {
			t.Errorf("%s migrations %v, sqlite %v: each migration must exist for every dialect", d, names[d], names[database.SQLite])
		}
	}
}

// TestSchemaMatchesAcrossDialects: once migrated, every backend has the
// same tables with the same columns, and MySQL and PostgreSQL the same
// secondary indexes.
func TestSchemaMatchesAcrossDialects(t *testing.T) {
	type schema struct{ columns, indexes map[string][]string }
	got := map[string]schema{}
	for _, b := range dbtest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			s, err := sqlstore.Open(context.Background(), b.New(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			sc := schema{columns: map[string][]string{}, indexes: map[string][]string{}}
			for _, table := range []string{"transaction_record", "branch_record", "transaction_event"} {
				var cols, idx []string
				var err error
				switch s.Dialect() {
				case database.SQLite:
					err = s.DB().Raw("SELECT name FROM pragma_table_info(?)", table).Scan(&cols).Error
				case database.MySQL:
					err = s.DB().Raw("SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?", table).Scan(&cols).Error
					if err == nil {
						err = s.DB().Raw(`SELECT DISTINCT index_name FROM information_schema.statistics
							WHERE table_schema = DATABASE() AND table_name = ? AND index_name <> 'PRIMARY'`, table).Scan(&idx).Error
					}
				case database.Postgres:
					err = s.DB().Raw("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?", table).Scan(&cols).Error
					if err == nil {
						err = s.DB().Raw(`SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ?
							AND indexname NOT LIKE '%_pkey'`, table).Scan(&idx).Error
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				if len(cols) == 0 {
					t.Fatalf("%s: no columns", table)
				}
				for i := range cols {
					cols[i] = strings.ToLower(cols[i])
				}
				sort.Strings(cols)
				sort.Strings(idx)
				sc.columns[table], sc.indexes[table] = cols, idx
			}
			if s.Dialect() != database.SQLite && !reflect.DeepEqual(sc.indexes["transaction_record"], []string{"idx_transaction_attention", "idx_transaction_due"}) {
				t.Fatalf("transaction_record's secondary indexes: %v", sc.indexes["transaction_record"])
			}
			got[b.Name] = sc
		})
	}
	base, ok := got["sqlite"]
	if !ok {
		t.Fatal("no sqlite schema")
	}
	for name, sc := range got {
		if !reflect.DeepEqual(sc.columns, base.columns) {
			t.Errorf("%s columns %v\nsqlite columns %v", name, sc.columns, base.columns)
		}
	}
	if my, ok := got["mysql"]; ok {
		if pg, ok := got["postgres"]; ok && !reflect.DeepEqual(my.indexes, pg.indexes) {
			t.Errorf("mysql indexes %v, postgres indexes %v", my.indexes, pg.indexes)
		}
	}
}
