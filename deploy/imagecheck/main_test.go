package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestRepositoryDockerfile: the Dockerfile at the root passes the checks
// CI runs, and its build line is the one CI executes.
func TestRepositoryDockerfile(t *testing.T) {
	if err := cmdDockerfile([]string{"-f", "../../Dockerfile"}); err != nil {
		t.Fatal(err)
	}
	stages, err := parseDockerfile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	line, err := buildLine(stages)
	if err != nil {
		t.Fatal(err)
	}
	if want := "CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/coordinator ./cmd/coordinator"; line != want {
		t.Errorf("build line %q, want %q", line, want)
	}
	// The builder's Go is the one go.mod asks for (a toolchain download
	// inside the build would need the network).
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	arg := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)$`).FindSubmatch(df)
	if goLine == nil || arg == nil || string(goLine[1]) != string(arg[1]) {
		t.Errorf("Dockerfile ARG GO_VERSION %q, go.mod go %q: keep them equal", arg, goLine)
	}
}

const good = `FROM golang:1.26 AS build
WORKDIR /src
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/coordinator ./cmd/coordinator
RUN mkdir -p /out/etc && \
    echo 'nonroot:x:65532:65532::/:/sbin/nologin' > /out/etc/passwd
FROM scratch
COPY --from=build /out/etc/passwd /etc/
COPY --from=build /out/coordinator /coordinator
USER 65532:65532
EXPOSE 7400 7401
ENTRYPOINT ["/coordinator"]
`

// TestDockerfileRefusals: each way of breaking the recipe is named.
func TestDockerfileRefusals(t *testing.T) {
	for _, c := range []struct{ old, new, want string }{
		{"", "", ""},
		{"USER 65532:65532", "USER root", "numeric non-root uid"},
		{"USER 65532:65532", "USER 0:0", "numeric non-root uid"},
		{"USER 65532:65532", "USER 65532:0", "non-root gid"},
		{"USER 65532:65532\n", "", "numeric non-root uid"},
		{"FROM scratch", "FROM debian:12", "want scratch or distroless"},
		{"ENTRYPOINT [\"/coordinator\"]", "ENTRYPOINT /coordinator", "ENTRYPOINT"},
		{"EXPOSE 7400 7401", "EXPOSE 7400", "EXPOSE"},
		{"USER 65532:65532", "RUN true\nUSER 65532:65532", "RUN in the final stage"},
		{" -trimpath", "", "lacks \"-trimpath\""},
		{"CGO_ENABLED=0 ", "", "lacks \"CGO_ENABLED=0\""},
		{"-ldflags='-s -w'", "-ldflags='-s'", "lacks \"-ldflags='-s -w'\""},
		{"WORKDIR /src\n", "WORKDIR /src\nRUN go build ./...\n", "exactly one RUN ... go build"},
	} {
		df := strings.Replace(good, c.old, c.new, 1)
		path := filepath.Join(t.TempDir(), "Dockerfile")
		if err := os.WriteFile(path, []byte(df), 0o644); err != nil {
			t.Fatal(err)
		}
		err := cmdDockerfile([]string{"-f", path})
		switch {
		case c.want == "" && err != nil:
			t.Errorf("good Dockerfile refused: %v", err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q -> %q: err = %v, want %q", c.old, c.new, err, c.want)
		}
	}
}

// TestBinaryRefusesBuildPaths: the test binary itself (built without
// -trimpath; go test strips it, and it is dynamic with cgo or -race) is
// refused, naming the path.
func TestBinaryRefusesBuildPaths(t *testing.T) {
	err := cmdBinary([]string{os.Args[0]})
	if err == nil || !strings.Contains(err.Error(), "not built with -trimpath") {
		t.Fatalf("err = %v, want the build path named", err)
	}
}
