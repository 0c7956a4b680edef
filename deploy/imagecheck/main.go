// Command imagecheck verifies the container image's recipe on a machine
// that cannot pull base images (CI, .ci/run):
//
//	imagecheck dockerfile [-f Dockerfile]
//	    the final stage is FROM scratch (or distroless static), runs as a
//	    numeric non-root USER, ENTRYPOINT ["/coordinator"], EXPOSE 7400 7401
//	imagecheck build [-f Dockerfile] [-C DIR] -o BIN
//	    runs the Dockerfile's own `go build` line (the one RUN line with
//	    CGO_ENABLED=0 go build), with -o pointed at BIN, from the repository
//	    root, so the flags cannot drift from the Dockerfile's
//	imagecheck binary BIN
//	    BIN is a static ELF (no PT_INTERP, no DT_NEEDED), stripped (-s -w: no
//	    .symtab, no DWARF) and built with -trimpath (no GOPATH/GOROOT or
//	    checkout paths in it)
//	imagecheck context [-f Dockerfile] -bin BIN -o DIR
//	    a build context DIR with a Containerfile made of the Dockerfile's
//	    final stage, its COPY --from=build sources taken from the prebuilt
//	    BIN and files the build stage's RUN lines would make, for a runtime
//	    with no registry access (podman build DIR)
//	imagecheck health [-token T] [-timeout D] ADDR
//	    the gRPC health service at ADDR answers SERVING (retried until D)
package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: imagecheck dockerfile|build|binary|context|health ...")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "dockerfile":
		err = cmdDockerfile(args)
	case "build":
		err = cmdBuild(args)
	case "binary":
		err = cmdBinary(args)
	case "context":
		err = cmdContext(args)
	case "health":
		err = cmdHealth(args)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "imagecheck:", err)
		os.Exit(1)
	}
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	op, args string
	line     int
}

type stage struct {
	from, name string
	ins        []instruction
}

func parseDockerfile(path string) ([]stage, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var stages []stage
	var cur strings.Builder
	start := 0
	flush := func() {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return
		}
		op, args, _ := strings.Cut(text, " ")
		in := instruction{op: strings.ToUpper(op), args: strings.TrimSpace(args), line: start}
		if in.op == "FROM" {
			f := strings.Fields(in.args)
			s := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
			return
		}
		if len(stages) > 0 {
			stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
		}
	}
	for i, l := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(l)
		if cur.Len() == 0 && (t == "" || strings.HasPrefix(t, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(t, "\\") {
			cur.WriteString(strings.TrimSuffix(t, "\\") + " ")
			continue
		}
		cur.WriteString(t)
		flush()
	}
	flush()
	if len(stages) < 2 {
		return nil, fmt.Errorf("%s: want a multi-stage build, found %d stages", path, len(stages))
	}
	return stages, nil
}

func cmdDockerfile(args []string) error {
	fs := flag.NewFlagSet("dockerfile", flag.ExitOnError)
	path := fs.String("f", "Dockerfile", "Dockerfile")
	_ = fs.Parse(args)
	stages, err := parseDockerfile(*path)
	if err != nil {
		return err
	}
	final := stages[len(stages)-1]
	var problems []string
	if final.from != "scratch" && !strings.HasPrefix(final.from, "gcr.io/distroless/static") {
		problems = append(problems, fmt.Sprintf("final stage FROM %s: want scratch or distroless static", final.from))
	}
	user, entry, expose := "", "", ""
	for _, in := range final.ins {
		switch in.op {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entry = in.args
		case "EXPOSE":
			expose = in.args
		case "RUN":
			problems = append(problems, fmt.Sprintf("line %d: RUN in the final stage (it has no shell)", in.line))
		}
	}
	uid, gid, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		problems = append(problems, fmt.Sprintf("final stage USER %q: want a numeric non-root uid (Kubernetes runAsNonRoot checks numbers)", user))
	}
	if gid != "" {
		if n, err := strconv.Atoi(gid); err != nil || n == 0 {
			problems = append(problems, fmt.Sprintf("final stage USER %q: want a numeric non-root gid", user))
		}
	}
	if entry != `["/coordinator"]` {
		problems = append(problems, fmt.Sprintf("ENTRYPOINT %s: want [\"/coordinator\"]", entry))
	}
	if strings.Join(strings.Fields(expose), " ") != "7400 7401" {
		problems = append(problems, fmt.Sprintf("EXPOSE %q: want 7400 7401", expose))
	}
	if _, err := buildLine(stages); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	fmt.Printf("%s: final stage FROM %s, USER %s, ENTRYPOINT %s, EXPOSE %s\n", *path, final.from, user, entry, expose)
	return nil
}

// buildLine returns the build stage's go build command.
func buildLine(stages []stage) (string, error) {
	var lines []string
	for _, s := range stages[:len(stages)-1] {
		for _, in := range s.ins {
			if in.op == "RUN" && strings.Contains(in.args, "go build") {
				lines = append(lines, in.args)
			}
		}
	}
	if len(lines) != 1 {
		return "", fmt.Errorf("want exactly one RUN ... go build line, found %d", len(lines))
	}
	l := lines[0]
	for _, want := range []string{"CGO_ENABLED=0 ", " -trimpath", " -ldflags='-s -w'", " -o /out/coordinator ", " ./cmd/coordinator"} {
		if !strings.Contains(l+" ", want) {
			return "", fmt.Errorf("build line %q lacks %q", l, strings.TrimSpace(want))
		}
	}
	return l, nil
}

func cmdBuild(args []string) error {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	path := fs.String("f", "Dockerfile", "Dockerfile")
	out := fs.String("o", "", "output binary")
	dir := fs.String("C", "", "build in this directory (default: the Dockerfile's, the repository root)")
	_ = fs.Parse(args)
	if *out == "" {
		return errors.New("build: -o is required")
	}
	stages, err := parseDockerfile(*path)
	if err != nil {
		return err
	}
	line, err := buildLine(stages)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	cmdline := strings.Replace(line, "-o /out/coordinator", "-o "+shellQuote(abs), 1)
	fmt.Println("+", cmdline)
	cmd := exec.Command("sh", "-c", cmdline)
	cmd.Dir = filepath.Dir(*path) // the build context: the repository root
	if *dir != "" {
		cmd.Dir = *dir
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func cmdBinary(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: imagecheck binary BIN")
	}
	f, err := elf.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	var problems []string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			problems = append(problems, "has PT_INTERP (dynamically linked)")
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		problems = append(problems, fmt.Sprintf("DT_NEEDED %v", libs))
	}
	if f.Section(".dynamic") != nil {
		problems = append(problems, "has a .dynamic section")
	}
	if _, err := f.Symbols(); !errors.Is(err, elf.ErrNoSymbols) {
		problems = append(problems, "has a symbol table (not built with -ldflags=-s)")
	}
	for _, s := range f.Sections {
		if strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			problems = append(problems, "has DWARF section "+s.Name+" (not built with -ldflags=-w)")
			break
		}
	}
	f.Close()
	data, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	wd, _ := os.Getwd()
	home, _ := os.UserHomeDir()
	for _, p := range []string{wd, filepath.Join(home, "go", "pkg", "mod"), runtimeGOROOT()} {
		if p != "" && p != "/" && bytes.Contains(data, []byte(p+"/")) {
			problems = append(problems, fmt.Sprintf("contains the path %s (not built with -trimpath)", p))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %s", args[0], strings.Join(problems, "; "))
	}
	fmt.Printf("%s: static (no PT_INTERP, no DT_NEEDED), stripped (no symbols, no DWARF), no build paths\n", args[0])
	return nil
}

func runtimeGOROOT() string {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// cmdContext writes DIR/Containerfile: the Dockerfile's final stage, with
// each COPY --from=build SRC... DST taken from DIR/build/SRC instead, and
// fills DIR/build with the prebuilt binary, the host's CA bundle and the
// files the build stage's other RUN lines write under /out.
func cmdContext(args []string) error {
	fs := flag.NewFlagSet("context", flag.ExitOnError)
	path := fs.String("f", "Dockerfile", "Dockerfile")
	bin := fs.String("bin", "", "prebuilt coordinator (imagecheck build)")
	dir := fs.String("o", "", "context directory to create")
	_ = fs.Parse(args)
	if *bin == "" || *dir == "" {
		return errors.New("context: -bin and -o are required")
	}
	stages, err := parseDockerfile(*path)
	if err != nil {
		return err
	}
	build := filepath.Join(*dir, "build")
	if err := os.MkdirAll(filepath.Join(build, "out"), 0o755); err != nil {
		return err
	}
	binData, err := os.ReadFile(*bin)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(build, "out", "coordinator"), binData, 0o755); err != nil {
		return err
	}
	// The build stage's other RUN lines that only write under /out (the
	// passwd and group files), run with /out moved into the context.
	for _, s := range stages[:len(stages)-1] {
		for _, in := range s.ins {
			if in.op != "RUN" || strings.Contains(in.args, "go build") || strings.Contains(in.args, "go mod") {
				continue
			}
			cmdline := strings.ReplaceAll(in.args, "/out/", filepath.Join(build, "out")+"/")
			if c := exec.Command("sh", "-c", cmdline); true {
				c.Stderr = os.Stderr
				if err := c.Run(); err != nil {
					return fmt.Errorf("RUN %s: %w", cmdline, err)
				}
			}
		}
	}
	final := stages[len(stages)-1]
	var cf strings.Builder
	fmt.Fprintf(&cf, "# Generated by imagecheck context from %s's final stage.\nFROM %s\n", *path, final.from)
	copyFrom := regexp.MustCompile(`^--from=(\S+)\s+(.+)$`)
	for _, in := range final.ins {
		if in.op == "COPY" {
			m := copyFrom.FindStringSubmatch(in.args)
			if m == nil {
				return fmt.Errorf("line %d: COPY %s: only COPY --from=STAGE is expected in the final stage", in.line, in.args)
			}
			f := strings.Fields(m[2])
			srcs, dst := f[:len(f)-1], f[len(f)-1]
			var local []string
			for _, src := range srcs {
				rel := filepath.Join("build", filepath.Clean(src))
				if !strings.HasPrefix(src, "/out/") {
					// From the builder image's filesystem (CA bundle): the host's.
					if err := copyFile(src, filepath.Join(*dir, rel)); err != nil {
						return err
					}
				}
				local = append(local, rel)
			}
			fmt.Fprintf(&cf, "COPY %s %s\n", strings.Join(local, " "), dst)
			continue
		}
		fmt.Fprintf(&cf, "%s %s\n", in.op, in.args)
	}
	if err := os.WriteFile(filepath.Join(*dir, "Containerfile"), []byte(cf.String()), 0o644); err != nil {
		return err
	}
	fmt.Print(cf.String())
	return nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

func cmdHealth(args []string) error {
	fs := flag.NewFlagSet("health", flag.ExitOnError)
	token := fs.String("token", "", "bearer token (the health service needs none; sent to check it is accepted)")
	timeout := fs.Duration("timeout", 30*time.Second, "keep trying this long")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("usage: imagecheck health [-token T] ADDR")
	}
	conn, err := grpc.NewClient(fs.Arg(0), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if *token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+*token)
	}
	for {
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			fmt.Printf("%s: gRPC health SERVING\n", fs.Arg(0))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: gRPC health: %v (status %v)", fs.Arg(0), err, resp.GetStatus())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
