package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

//go:generate go test -run TestConfigurationReference -update .

var update = flag.Bool("update", false, "rewrite docs/configuration.md from the coordinator's flags")

const referencePath = "../../docs/configuration.md"

// configurationReference renders docs/configuration.md from the serve
// command's FlagSet: every flag with its environment variable, default and
// description.
func configurationReference(t *testing.T) []byte {
	t.Helper()
	for _, kv := range os.Environ() {
		// Defaults are the FlagSet's own (DefValue), whatever the
		// environment; this only keeps a stray SETTLE_CONFIG from reading
		// a file.
		if strings.HasPrefix(kv, "SETTLE_CONFIG=") {
			t.Setenv("SETTLE_CONFIG", "")
		}
	}
	_, fs, err := parseFlags("coordinator", nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteString(`# Configuration reference

<!-- Generated from the coordinator's flag definitions (cmd/coordinator,
parseFlags) by TestConfigurationReference; do not edit by hand. After
changing a flag: go generate ./cmd/coordinator (it runs
go test -run TestConfigurationReference -update) -->

Every flag of ` + "`coordinator`" + ` (the serve command) can also be given as an
environment variable, ` + "`SETTLE_`" + ` and the flag name in upper case with ` + "`-`" + ` as
` + "`_`" + `, or in a file named by ` + "`-config`" + ` (one ` + "`flag value`" + ` per line).
Precedence: flag, then environment, then file. A default of 0 or empty
that the description gives another value for ("default 30s") means the
coordinator picks that value. Invalid values are refused at start.

` + "`coordinator migrate`" + ` takes ` + "`-db`" + ` (` + "`SETTLE_DB`" + `) and ` + "`-print DIALECT`" + `;
` + "`coordinator admin -h`" + ` lists the admin commands and their flags. How to
set these in Kubernetes is in ` + "`deploy/helm/settle/values.yaml`" + ` and
` + "[operations.md](operations.md)" + `.

| flag | environment | default | description |
| --- | --- | --- | --- |
`)
	fs.VisitAll(func(f *flag.Flag) {
		def := "`" + f.DefValue + "`"
		if f.DefValue == "" {
			def = "(empty)"
		}
		fmt.Fprintf(&b, "| `-%s` | `%s` | %s | %s |\n", f.Name, envName(f.Name), def, cell(f.Usage))
	})
	return b.Bytes()
}

func envName(flagName string) string {
	return "SETTLE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func cell(s string) string {
	// Markdown: a | ends the cell, <x> is an HTML tag, *x* emphasis.
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;", "*", `\*`).Replace(s)
}

// TestConfigurationReference fails when docs/configuration.md is not what
// the flags generate; -update rewrites it.
func TestConfigurationReference(t *testing.T) {
	want := configurationReference(t)
	if *update {
		if err := os.WriteFile(referencePath, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatalf("%v (generate it: go test ./cmd/coordinator -run TestConfigurationReference -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: regenerate it with go test ./cmd/coordinator -run TestConfigurationReference -update", filepath.Clean(referencePath))
	}
}

// TestConfigurationReferenceEnvironment: each variable the reference names
// sets its flag (the ff prefix is SETTLE and every flag has one).
func TestConfigurationReferenceEnvironment(t *testing.T) {
	_, fs, err := parseFlags("coordinator", nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n < 40 {
		t.Fatalf("only %d flags", n)
	}
	for name, value := range map[string]string{"shutdown-timeout": "17s", "max-in-flight": "77", "allow-participants": "*.svc:7501", "insecure-no-auth": "true"} {
		t.Setenv(envName(name), value)
	}
	_, fs, err = parseFlags("coordinator", nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"shutdown-timeout": "17s", "max-in-flight": "77", "allow-participants": "*.svc:7501", "insecure-no-auth": "true"} {
		if got := fs.Lookup(name).Value.String(); got != want {
			t.Errorf("%s from %s = %q, want %q", name, envName(name), got, want)
		}
	}
}
