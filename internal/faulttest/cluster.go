package faulttest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/demo"
)

// Process faults.
const (
	FaultCoordKill     FaultKind = "proc_coordinator_sigkill"
	FaultCoordPoint    FaultKind = "proc_coordinator_fault_point_armed"
	FaultCoordPointHit FaultKind = "proc_coordinator_fault_point_hit"
	FaultCoordPause    FaultKind = "proc_coordinator_sigstop_past_lease"
	FaultPartKill      FaultKind = "proc_participant_sigkill"
	FaultPartition     FaultKind = "net_partition_coord_to_participant"
	FaultCheckBackCut  FaultKind = "net_partition_checkback"
)

// FaultPoints are the coordinator's named fault points (internal/faults).
var FaultPoints = []string{"after_begin", "after_register", "after_decision", "after_branch_call", "before_record_round"}

// Timing is the coordinator and participant tuning used by the harness:
// short leases and retries so that a run converges in seconds.
type Timing struct {
	LeaseTTL         time.Duration
	CallTimeout      time.Duration
	RecoveryInterval time.Duration
	RetryInitial     time.Duration
	RetryMax         time.Duration
	CheckBackAfter   time.Duration
	TxTimeout        time.Duration // the Begin timeout of each order
	// ParticipantRetryRate is the coordinators' -participant-retry-rate:
	// low enough that retries after a healed fault hit it, so deferred
	// calls are part of every run.
	ParticipantRetryRate float64
}

// DefaultTiming converges quickly on a loaded 2-core machine.
var DefaultTiming = Timing{
	LeaseTTL:         2 * time.Second,
	CallTimeout:      time.Second,
	RecoveryInterval: 100 * time.Millisecond,
	RetryInitial:     100 * time.Millisecond,
	RetryMax:         time.Second,
	CheckBackAfter:   3 * time.Second,
	TxTimeout:        4 * time.Second,

	ParticipantRetryRate: 20,
}

// member is a supervised process: the supervisor restarts it (without a
// fault point) when it exits on its own, unless an operation holds opMu.
type member struct {
	proc  *Proc
	opMu  sync.Mutex
	point string // fault point armed at the last start, "" if none
}

// Cluster is the system under test: coordinators, one accounts and one
// inventory participant (each its own process and database), and a fault
// proxy on every link.
type Cluster struct {
	bins   *Binaries
	timing Timing
	faults *Stats

	coords []*member
	// initToCoord[i] proxies initiator -> coordinator i.
	initToCoord []*Proxy
	parts       map[string]*member // by branch id
	partDB      map[string]string  // by branch id
	// coordToPart proxies coordinator -> participant (registered target),
	// initToPart proxies initiator -> participant (Try, direct Cancel),
	// partToCoord proxies participant -> coordinator 0 (check-back).
	coordToPart, initToPart, partToCoord map[string]*Proxy

	conns []*grpc.ClientConn
	// CoordClients[i] calls coordinator i through its proxy.
	CoordClients []tccv1.CoordinatorServiceClient
	// DirectCoord calls coordinator 0 without a proxy (checker).
	DirectCoord []tccv1.CoordinatorServiceClient
	// PartClients calls each participant (by branch id) through the
	// initiator's proxy.
	PartClients map[string]tccv1.ParticipantServiceClient

	stopSup chan struct{}
	supDone chan struct{}
}

// Branches are the two branches of every order, each served by its own
// participant process.
var Branches = []string{demo.BranchAccounts, demo.BranchInventory}

// ClusterConfig configures StartCluster.
type ClusterConfig struct {
	Bins         *Binaries
	Timing       Timing
	Coordinators int
	// CoordDB is the coordinators' database spec (shared by all of them).
	CoordDB string
	// PartDB maps each branch id to its participant's database spec.
	PartDB map[string]string
	// Seed seeds the proxies' fault decisions.
	Seed   uint64
	Faults *Stats
	// LogLevel of the child processes ("warn" by default).
	LogLevel string
}

// StartCluster starts every process and proxy. On error everything
// started is stopped.
func StartCluster(cfg ClusterConfig) (c *Cluster, err error) {
	if cfg.LogLevel == "" {
		cfg.LogLevel = "warn"
	}
	c = &Cluster{bins: cfg.Bins, timing: cfg.Timing, faults: cfg.Faults, parts: map[string]*member{}, partDB: cfg.PartDB,
		coordToPart: map[string]*Proxy{}, initToPart: map[string]*Proxy{}, partToCoord: map[string]*Proxy{},
		PartClients: map[string]tccv1.ParticipantServiceClient{}, stopSup: make(chan struct{})}
	defer func() {
		if err != nil {
			c.Close()
			c = nil
		}
	}()
	seq := uint64(0)
	proxy := func(name, backend string) (*Proxy, error) {
		seq++
		return NewProxy(name, backend, rand.New(rand.NewPCG(cfg.Seed, 1000+seq)), cfg.Faults)
	}
	t := cfg.Timing
	for i := 0; i < cfg.Coordinators; i++ {
		addr, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		p := NewProc(fmt.Sprintf("coordinator-%d", i), addr, cfg.Bins.Coordinator,
			"-listen", addr, "-http-listen", "", "-db", cfg.CoordDB, "-instance-id", fmt.Sprintf("c%d", i),
			"-lease-ttl", t.LeaseTTL.String(), "-call-timeout", t.CallTimeout.String(),
			"-recovery-interval", t.RecoveryInterval.String(), "-retry-initial", t.RetryInitial.String(),
			"-retry-max", t.RetryMax.String(), "-participant-retry-rate", strconv.FormatFloat(t.ParticipantRetryRate, 'g', -1, 64),
			"-allow-participants", "127.0.0.1:*", "-log-level", cfg.LogLevel)
		c.coords = append(c.coords, &member{proc: p})
		// Start one at a time: the first applies the migrations.
		if err := p.Start(); err != nil {
			return nil, err
		}
		px, err := proxy(fmt.Sprintf("initiator->coordinator-%d", i), addr)
		if err != nil {
			return nil, err
		}
		c.initToCoord = append(c.initToCoord, px)
		cc, err := c.dial(px.Addr())
		if err != nil {
			return nil, err
		}
		c.CoordClients = append(c.CoordClients, tccv1.NewCoordinatorServiceClient(cc))
		dc, err := c.dial(addr)
		if err != nil {
			return nil, err
		}
		c.DirectCoord = append(c.DirectCoord, tccv1.NewCoordinatorServiceClient(dc))
	}
	for _, b := range Branches {
		addr, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		args := []string{"serve", "-listen", addr, "-db", cfg.PartDB[b], "-resources", b, "-log-level", cfg.LogLevel}
		if cfg.Bins.DemoCheckBack {
			px, err := proxy("participant-"+b+"->coordinator-0", c.coords[0].proc.Addr)
			if err != nil {
				return nil, err
			}
			c.partToCoord[b] = px
			args = append(args, "-coordinator", px.Addr())
			if cfg.Bins.DemoCheckBackTuning {
				args = append(args, "-checkback-after", t.CheckBackAfter.String(), "-checkback-interval", "500ms")
			}
		}
		p := NewProc("participant-"+b, addr, cfg.Bins.Demo, args...)
		c.parts[b] = &member{proc: p}
		if err := p.Start(); err != nil {
			return nil, err
		}
		if c.coordToPart[b], err = proxy("coordinator->participant-"+b, addr); err != nil {
			return nil, err
		}
		if c.initToPart[b], err = proxy("initiator->participant-"+b, addr); err != nil {
			return nil, err
		}
		cc, err := c.dial(c.initToPart[b].Addr())
		if err != nil {
			return nil, err
		}
		c.PartClients[b] = tccv1.NewParticipantServiceClient(cc)
	}
	c.supDone = make(chan struct{})
	go c.supervise()
	return c, nil
}

func (c *Cluster) dial(addr string) (*grpc.ClientConn, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	c.conns = append(c.conns, cc)
	return cc, nil
}

// ParticipantTarget is the address registered for branch b: the proxy in
// front of its participant.
func (c *Cluster) ParticipantTarget(b string) string { return c.coordToPart[b].Addr() }

// Coordinators is the number of coordinator processes.
func (c *Cluster) Coordinators() int { return len(c.coords) }

// CheckBackProxied reports whether participants check back through a proxy.
func (c *Cluster) CheckBackProxied() bool { return len(c.partToCoord) > 0 }

func (c *Cluster) proxies() []*Proxy {
	out := append([]*Proxy(nil), c.initToCoord...)
	for _, b := range Branches {
		for _, m := range []map[string]*Proxy{c.coordToPart, c.initToPart, c.partToCoord} {
			if p := m[b]; p != nil {
				out = append(out, p)
			}
		}
	}
	return out
}

// SetOdds sets the per-call network fault odds on every proxy.
func (c *Cluster) SetOdds(o Odds) {
	for _, p := range c.proxies() {
		p.SetOdds(o)
	}
}

// supervise restarts members that exited on their own (a fault point),
// every 100 ms, until Close.
func (c *Cluster) supervise() {
	defer close(c.supDone)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-c.stopSup:
			return
		case <-tick.C:
		}
		for _, m := range c.members() {
			if !m.opMu.TryLock() {
				continue
			}
			if m.proc.Exited() {
				if m.point != "" {
					c.faults.AddName(string(FaultCoordPointHit)+":"+m.point, 1)
					m.point = ""
				}
				_ = m.proc.Start() // retried at the next tick if it fails
			}
			m.opMu.Unlock()
		}
	}
}

func (c *Cluster) members() []*member {
	out := append([]*member(nil), c.coords...)
	for _, b := range Branches {
		out = append(out, c.parts[b])
	}
	return out
}

// KillCoordinator SIGKILLs coordinator i and restarts it after pause.
func (c *Cluster) KillCoordinator(i int, pause time.Duration) error {
	m := c.coords[i]
	m.opMu.Lock()
	defer m.opMu.Unlock()
	m.proc.Kill()
	c.faults.Add(FaultCoordKill)
	time.Sleep(pause)
	m.point = ""
	return m.proc.Start()
}

// ArmFaultPoint restarts coordinator i so that it SIGKILLs itself at the
// n-th hit of point; the supervisor restarts it cleanly after it dies.
func (c *Cluster) ArmFaultPoint(i int, point string, n int) error {
	m := c.coords[i]
	m.opMu.Lock()
	defer m.opMu.Unlock()
	m.proc.Kill()
	c.faults.AddName(string(FaultCoordPoint)+":"+point, 1)
	m.point = point
	err := m.proc.Start(fmt.Sprintf("SETTLE_FAULT_POINT=%s:%d", point, n))
	if errors.Is(err, ErrExitedEarly) && strings.Contains(m.proc.Tail(1500), "fault point "+point+" reached") {
		return nil // hit during startup (recovery pass); the supervisor restarts it
	}
	return err
}

// PauseCoordinator SIGSTOPs coordinator i for d (longer than its lease, so
// another instance takes its transactions over), then SIGCONTs it.
func (c *Cluster) PauseCoordinator(ctx context.Context, i int, d time.Duration) {
	m := c.coords[i]
	m.opMu.Lock()
	defer m.opMu.Unlock()
	m.proc.Stop()
	c.faults.Add(FaultCoordPause)
	sleepCtx(ctx, d)
	m.proc.Cont()
}

// KillParticipant SIGKILLs the participant of branch b and restarts it
// after pause.
func (c *Cluster) KillParticipant(b string, pause time.Duration) error {
	m := c.parts[b]
	m.opMu.Lock()
	defer m.opMu.Unlock()
	m.proc.Kill()
	c.faults.Add(FaultPartKill)
	time.Sleep(pause)
	return m.proc.Start()
}

// Partition cuts the coordinator -> participant link of branch b for d.
func (c *Cluster) Partition(ctx context.Context, b string, d time.Duration) {
	c.faults.Add(FaultPartition)
	c.coordToPart[b].SetDown(true)
	sleepCtx(ctx, d)
	c.coordToPart[b].SetDown(false)
}

// CutCheckBack cuts the participant -> coordinator link of branch b for d.
func (c *Cluster) CutCheckBack(ctx context.Context, b string, d time.Duration) {
	p := c.partToCoord[b]
	if p == nil {
		return
	}
	c.faults.Add(FaultCheckBackCut)
	p.SetDown(true)
	sleepCtx(ctx, d)
	p.SetDown(false)
}

// ResetRandomConnection resets one live connection on a random proxy.
func (c *Cluster) ResetRandomConnection(rng *rand.Rand) {
	ps := c.proxies()
	ps[rng.IntN(len(ps))].ResetConnection()
}

// Heal removes every fault: proxies pass everything, paused processes
// resume, and every process runs without a fault point (coordinators with
// an armed point are restarted cleanly).
func (c *Cluster) Heal() error {
	for _, p := range c.proxies() {
		p.Heal()
	}
	var errs []error
	for _, m := range c.members() {
		m.opMu.Lock()
		m.proc.Cont()
		if m.point != "" || m.proc.Exited() {
			if m.point != "" && m.proc.Exited() {
				c.faults.AddName(string(FaultCoordPointHit)+":"+m.point, 1)
			}
			m.point = ""
			if err := m.proc.Start(); err != nil {
				errs = append(errs, err)
			}
		}
		m.opMu.Unlock()
	}
	return errors.Join(errs...)
}

// Logs returns the tail of every process's output.
func (c *Cluster) Logs(n int) string {
	var s string
	for _, m := range c.members() {
		s += fmt.Sprintf("--- %s\n%s\n", m.proc.Name, m.proc.Tail(n))
	}
	return s
}

// CoordinatorLogLines counts the lines containing substr in what the
// coordinators' output tails still hold (the last outputTail bytes of each).
func (c *Cluster) CoordinatorLogLines(substr string) int {
	n := 0
	for _, m := range c.coords {
		for _, line := range strings.Split(m.proc.Tail(outputTail), "\n") {
			if strings.Contains(line, substr) {
				n++
			}
		}
	}
	return n
}

// Close stops the supervisor, kills every process and closes every proxy
// and connection.
func (c *Cluster) Close() {
	select {
	case <-c.stopSup:
	default:
		close(c.stopSup)
	}
	if c.supDone != nil {
		select {
		case <-c.supDone:
		case <-time.After(40 * time.Second):
		}
	}
	for _, m := range c.members() {
		if m != nil {
			m.proc.Cont()
			m.proc.Kill()
		}
	}
	for _, cc := range c.conns {
		_ = cc.Close()
	}
	for _, p := range c.proxies() {
		p.Close()
	}
}
