package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestMigratePrint: `migrate -print DIALECT` prints every migration of
// each dialect, in order, in that dialect's SQL; an unknown dialect is
// refused with the known ones named.
func TestMigratePrint(t *testing.T) {
	for dialect, marker := range map[string]string{"sqlite": "WITHOUT ROWID", "mysql": "ENGINE=InnoDB", "postgres": "BYTEA"} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), []string{"migrate", "-print", dialect}, &out, &errOut); err != nil {
			t.Fatalf("migrate -print %s: %v", dialect, err)
		}
		text := out.String()
		last := -1
		for _, name := range []string{"00001_init.sql", "00002_recovery.sql", "00003_history.sql", "00004_decision_cause.sql", "00005_branch_done_call.sql"} {
			i := strings.Index(text, "-- "+name+"\n")
			if i <= last {
				t.Fatalf("migrate -print %s: %s missing or out of order", dialect, name)
			}
			last = i
		}
		if !strings.Contains(text, marker) {
			t.Errorf("migrate -print %s does not look like %s SQL (no %q)", dialect, dialect, marker)
		}
	}
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"migrate", "-print", "oracle"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "sqlite, mysql or postgres") {
		t.Fatalf("migrate -print oracle: %v", err)
	}
}
