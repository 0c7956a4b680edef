package database

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadSpecHidesSecrets: a mistyped spec is refused without repeating
// what may hold a password.
func TestBadSpecHidesSecrets(t *testing.T) {
	for _, spec := range []string{
		"mysq:root:hunter2@tcp(127.0.0.1:3306)/settle",
		"root:hunter2@tcp(127.0.0.1:3306)/settle",
		"postgress://root:hunter2@127.0.0.1/settle",
		"pg:host=127.0.0.1 password=hunter2",
		"hunter2",
		"",
	} {
		_, _, err := Open(spec)
		if !errors.Is(err, ErrBadSpec) {
			t.Fatalf("Open(%q) = %v, want ErrBadSpec", spec, err)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%q): the error repeats the password: %v", spec, err)
		}
	}
	_, _, err := Open("mysq:whatever")
	if err == nil || !strings.Contains(err.Error(), `"mysq:..."`) {
		t.Errorf("the error should name the mistyped kind: %v", err)
	}
}

// TestOpenExisting: a missing SQLite file is refused and not created; an
// existing one opens.
func TestOpenExisting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "missing.db")
	if _, _, err := OpenExisting("sqlite:" + path); !errors.Is(err, ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("OpenExisting of a missing file: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OpenExisting created %s", path)
	}
	db, _, err := Open("sqlite:" + path)
	if err != nil {
		t.Fatal(err)
	}
	_ = Close(db)
	db, d, err := OpenExisting("sqlite:" + path + "?_pragma=busy_timeout(1)")
	if err != nil || d != SQLite {
		t.Fatalf("OpenExisting of an existing file: %v", err)
	}
	_ = Close(db)
}
