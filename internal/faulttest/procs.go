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
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
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

// ErrExitedEarly is returned by Proc.Start when the process exited before
// it served (for example at an armed fault point hit during startup).
var ErrExitedEarly = errors.New("process exited before serving")

// Proc is a restartable child process serving gRPC on a fixed address.
type Proc struct {
	Name string
	Addr string
	bin  string
	args []string
	out  *tailBuffer

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	stopped bool // SIGSTOPped
	starts  int
}

// outputTail is how much of a process's output (stdout and stderr, across
// restarts) is kept.
const outputTail = 64 << 10

// NewProc returns a process that runs bin with args and serves gRPC on
// addr; Start runs it.
func NewProc(name, addr, bin string, args ...string) *Proc {
	return &Proc{Name: name, Addr: addr, bin: bin, args: args, out: &tailBuffer{max: outputTail}}
}

// Start runs the process (with extra environment entries) and waits, at
// most 30 s, until its gRPC health check answers SERVING. A process that
// is still running is killed first.
func (p *Proc) Start(env ...string) error {
	p.Kill()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done, p.stopped = cmd, done, false
	p.starts++
	p.mu.Unlock()
	return p.waitServing(done)
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

// Kill sends SIGKILL (if running) and waits for the exit.
func (p *Proc) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
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
