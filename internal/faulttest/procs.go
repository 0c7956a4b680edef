package faulttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/settle-tcc/settle/internal/faults"
)

// Binaries are the real programs the harness runs.
type Binaries struct {
	// Coordinator is the path of cmd/coordinator.
	Coordinator string
	// Demo is the path of cmd/participant-demo.
	Demo string
	// DemoCheckBack reports that participant-demo serve has a -coordinator
	// flag (the SDK's check-back worker), so that the participant ->
	// coordinator link can be proxied too.
	DemoCheckBack bool
	// DemoCheckBackTuning reports -checkback-after and -checkback-interval.
	DemoCheckBackTuning bool
	// Revision is `git describe --always --dirty` of the tree built
	// (empty outside a git checkout).
	Revision string
	dir      string
}

// Build compiles the coordinator and the demo participant into a new
// temporary directory (go build, from the current module). Call Remove when
// done.
func Build(ctx context.Context) (*Binaries, error) {
	dir, err := os.MkdirTemp("", "settle-faulttest-")
	if err != nil {
		return nil, err
	}
	b := &Binaries{dir: dir, Coordinator: filepath.Join(dir, "coordinator"), Demo: filepath.Join(dir, "participant-demo")}
	for _, x := range []struct{ out, pkg string }{
		{b.Coordinator, "github.com/settle-tcc/settle/cmd/coordinator"},
		{b.Demo, "github.com/settle-tcc/settle/cmd/participant-demo"},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", x.out, x.pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Remove()
			return nil, fmt.Errorf("build %s (run from the settle repository): %v\n%s", x.pkg, err, out)
		}
	}
	if rev, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output(); err == nil {
		b.Revision = string(bytes.TrimSpace(rev))
	}
	help, _ := exec.CommandContext(ctx, b.Demo, "serve", "-h").CombinedOutput()
	b.DemoCheckBack = bytes.Contains(help, []byte("-coordinator"))
	b.DemoCheckBackTuning = bytes.Contains(help, []byte("-checkback-after")) && bytes.Contains(help, []byte("-checkback-interval"))
	return b, nil
}

// Remove deletes the binaries.
func (b *Binaries) Remove() { _ = os.RemoveAll(b.dir) }

// FreeAddr returns a loopback address whose port was free a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// tailBuffer keeps the last max bytes a process wrote.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// procWriter receives a process's output (stdout and stderr through one
// writer, so os/exec copies them in one goroutine): it keeps the shared
// tail and the current life's tail, and hands every complete line to
// onLine.
type procWriter struct {
	out, life *tailBuffer
	onLine    func(string)
	mu        sync.Mutex
	partial   []byte
}

// maxLine bounds a line kept for onLine; longer lines are cut.
const maxLine = 8 << 10

func (w *procWriter) Write(b []byte) (int, error) {
	_, _ = w.out.Write(b)
	_, _ = w.life.Write(b)
	if w.onLine == nil {
		return len(b), nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	rest := b
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			if room := maxLine - len(w.partial); room > 0 {
				w.partial = append(w.partial, rest[:min(room, len(rest))]...)
			}
			break
		}
		if room := maxLine - len(w.partial); room > 0 {
			w.partial = append(w.partial, rest[:min(room, i)]...)
		}
		w.onLine(string(w.partial))
		w.partial = w.partial[:0]
		rest = rest[i+1:]
	}
	return len(b), nil
}

// flush hands a last unterminated line to onLine.
func (w *procWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.onLine != nil && len(w.partial) > 0 {
		w.onLine(string(w.partial))
		w.partial = nil
	}
}

// ErrExitedEarly is returned by Proc.Start when the process exited before
// it served (for example at an armed fault point hit during startup).
var ErrExitedEarly = errors.New("process exited before serving")

// ExitKind classifies how a process ended.
type ExitKind string

// Exit kinds.
const (
	// ExitHarness: the harness killed it (a scheduled SIGKILL, a restart,
	// Close).
	ExitHarness ExitKind = "harness"
	// ExitFaultPoint: it printed that it reached the fault point armed at
	// its start and died of SIGKILL (internal/faults).
	ExitFaultPoint ExitKind = "fault_point"
	// ExitCrash: anything else: a panic, a fatal error, a non-zero exit,
	// or any exit the harness did not cause.
	ExitCrash ExitKind = "crash"
)

// Exit is one ended life of a process.
type Exit struct {
	Proc string
	// Life counts the starts of the process, from 1.
	Life int
	Kind ExitKind
	// Armed is the fault point armed at this start ("" if none).
	Armed string
	// Status is the exit status as the OS reported it ("signal: killed",
	// "exit status 2", ...).
	Status string
	// Ran is how long the life lasted.
	Ran time.Duration
	// Tail is the end of this life's output.
	Tail string
}

func (e Exit) String() string {
	s := fmt.Sprintf("%s (life %d, after %s): %s", e.Proc, e.Life, e.Ran.Round(time.Millisecond), e.Status)
	if e.Armed != "" {
		s += ", armed with fault point " + e.Armed
	}
	return s
}

// Proc is a restartable child process serving gRPC on a fixed address.
type Proc struct {
	Name string
	Addr string
	bin  string
	args []string
	out  *tailBuffer

	// OnExit, if set before Start, is called with every ended life, before
	// WaitExit and Exited report the exit.
	OnExit func(Exit)
	// OnLine, if set before Start, is called with every complete line the
	// process writes (stdout and stderr), from the goroutine copying its
	// output.
	OnLine func(line string)

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	stopped  bool // SIGSTOPped
	killing  bool // the harness sent SIGKILL to the current life
	starts   int
	lastExit Exit
}

// outputTail is how much of a process's output (stdout and stderr, across
// restarts) is kept.
const outputTail = 64 << 10

// lifeTail is how much of one life's output is kept for its Exit.
const lifeTail = 16 << 10

// NewProc returns a process that runs bin with args and serves gRPC on
// addr; Start runs it.
func NewProc(name, addr, bin string, args ...string) *Proc {
	return &Proc{Name: name, Addr: addr, bin: bin, args: args, out: &tailBuffer{max: outputTail}}
}

// armedPoint returns the fault point named in env (SETTLE_FAULT_POINT),
// the last entry winning as in os/exec.
func armedPoint(env []string) string {
	point := ""
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, faults.EnvVar+"="); ok {
			point, _, _ = strings.Cut(v, ":")
		}
	}
	return point
}

// faultPointLine is what internal/faults prints before it SIGKILLs the
// process at point.
func faultPointLine(point string) string {
	return "settle: fault point " + point + " reached, SIGKILL"
}

// crashLine reports whether a line of output is Go's report of a panic or
// a fatal runtime error.
func crashLine(line string) bool {
	return strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ")
}

// classify decides how a life ended: its own output and exit status say
// whether it reached the armed fault point; a panic report is a crash even
// if the harness killed it meanwhile.
func classify(killedByHarness bool, armed string, ws syscall.WaitStatus, tail string) ExitKind {
	lines := strings.Split(tail, "\n")
	panicked := false
	for _, l := range lines {
		panicked = panicked || crashLine(l)
	}
	switch {
	case panicked:
		return ExitCrash
	case armed != "" && ws.Signaled() && ws.Signal() == syscall.SIGKILL && strings.Contains(tail, faultPointLine(armed)):
		return ExitFaultPoint
	case killedByHarness && ws.Signaled() && ws.Signal() == syscall.SIGKILL:
		return ExitHarness
	default:
		return ExitCrash
	}
}

// Start runs the process (with extra environment entries) and waits, at
// most 30 s, until its gRPC health check answers SERVING. A process that
// is still running is killed first.
func (p *Proc) Start(env ...string) error {
	p.Kill()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), env...)
	life := &tailBuffer{max: lifeTail}
	w := &procWriter{out: p.out, life: life, onLine: p.OnLine}
	cmd.Stdout, cmd.Stderr = w, w
	// A child the process left behind cannot hold Wait (and Kill) up by
	// keeping the output pipe open.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.stopped, p.killing = cmd, done, false, false
	p.starts++
	n := p.starts
	p.mu.Unlock()
	armed := armedPoint(env)
	began := time.Now()
	go func() {
		_ = cmd.Wait()
		w.flush()
		p.mu.Lock()
		killed := p.killing
		p.mu.Unlock()
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		tail := life.String()
		ex := Exit{Proc: p.Name, Life: n, Kind: classify(killed, armed, ws, tail), Armed: armed,
			Status: cmd.ProcessState.String(), Ran: time.Since(began), Tail: tail}
		p.mu.Lock()
		p.lastExit = ex
		p.mu.Unlock()
		if p.OnExit != nil {
			p.OnExit(ex)
		}
		close(done)
	}()
	return p.waitServing(done)
}

// LastExit returns the last ended life (zero if none ended yet).
func (p *Proc) LastExit() Exit {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastExit
}

func (p *Proc) waitServing(done chan struct{}) error {
	cc, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s: %w:\n%s", p.Name, ErrExitedEarly, p.Tail(1500))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not serving after 30s: %v\n%s", p.Name, err, p.Tail(4000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL (if running) and waits for the exit; the exit is
// classified as caused by the harness.
func (p *Proc) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	if cmd != nil && !p.exitedLocked() {
		p.killing = true
	}
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// WaitExit waits at most d for the process to exit on its own (e.g. at a
// fault point) and reports whether it did.
func (p *Proc) WaitExit(d time.Duration) bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// Stop pauses the process with SIGSTOP.
func (p *Proc) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !p.exitedLocked() {
		_ = p.cmd.Process.Signal(syscall.SIGSTOP)
		p.stopped = true
	}
}

// Cont resumes a paused process with SIGCONT.
func (p *Proc) Cont() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.stopped {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		p.stopped = false
	}
}

// Exited reports whether the process has exited (e.g. at a fault point).
func (p *Proc) Exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitedLocked()
}

func (p *Proc) exitedLocked() bool {
	if p.done == nil {
		return true
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Tail returns the last n bytes of the process's output.
func (p *Proc) Tail(n int) string {
	s := p.out.String()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}
