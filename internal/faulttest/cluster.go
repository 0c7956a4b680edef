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
	"google.golang.org/protobuf/proto"
	"gorm.io/gorm"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/database"
	"github.com/settle-tcc/settle/internal/demo"
	"github.com/settle-tcc/settle/internal/tcc"
)

// Process faults, link cuts, and what they caused.
const (
	FaultCoordKill     FaultKind = "proc_coordinator_sigkill"
	FaultCoordPoint    FaultKind = "proc_coordinator_fault_point_armed"
	FaultCoordPointHit FaultKind = "proc_coordinator_fault_point_hit"
	FaultCoordPause    FaultKind = "proc_coordinator_sigstop_past_lease"
	// FaultTakeover counts transactions a paused coordinator was driving
	// (it held their lease when it was stopped) that another instance
	// took over while it was stopped (their row changed under it).
	FaultTakeover     FaultKind = "proc_coordinator_takeover_observed"
	FaultPartKill     FaultKind = "proc_participant_sigkill"
	FaultPartition    FaultKind = "net_partition_coord_to_participant"
	FaultCheckBackCut FaultKind = "net_partition_checkback"
	FaultInitCoordCut FaultKind = "net_partition_initiator_to_coordinator"
	FaultInitPartCut  FaultKind = "net_partition_initiator_to_participant"
	// FaultRetryCap counts the coordinators' "delivery round failed" log
	// lines that name the per-participant retry rate limit: rounds with
	// calls deferred by -participant-retry-rate.
	FaultRetryCap FaultKind = "coord_round_deferred_by_retry_rate"
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
// fault point) when it exits, unless an operation holds opMu.
type member struct {
	proc  *Proc
	opMu  sync.Mutex
	point string // fault point armed at the last start, "" if none
}

// HarnessError is something the harness itself failed to do (a restart, a
// heal), with its classification. Only an unclassified one fails the run:
// the others are expected consequences of an injected fault (Cause says
// which) or of a crash that is reported on its own.
type HarnessError struct {
	Op    string
	Err   string
	Cause string // "" if unexplained
}

// Fails reports whether the error fails the run.
func (h HarnessError) Fails() bool { return h.Cause == "" }

func (h HarnessError) String() string {
	cause := "UNEXPECTED (fails the run)"
	if h.Cause != "" {
		cause = "expected: " + h.Cause
	}
	return fmt.Sprintf("%s: %s [%s]", h.Op, firstLine(h.Err), cause)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// CheckBackAnswer is a check-back the coordinator answered, as seen on the
// participant -> coordinator proxy.
type CheckBackAnswer struct {
	Branch  string
	Verdict tccv1.Verdict
	State   tccv1.TransactionState
	At      time.Time
}

// Cluster is the system under test: coordinators, one accounts and one
// inventory participant (each its own process and database), and a fault
// proxy on every link.
type Cluster struct {
	bins    *Binaries
	timing  Timing
	faults  *Stats
	coordDB string
	env     []string // extra environment of every coordinator start

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

	mu          sync.Mutex
	crashes     []Exit   // exits nobody caused
	panics      []string // "panic in handler" log lines (recovered panics)
	harnessErrs []HarnessError
	checkBacks  map[string][]CheckBackAnswer // by gid
	db          *gorm.DB                     // the coordinators' database, opened on first use
	// orders is the order service of KindLocal orders (local.go); nil
	// without ClusterConfig.OrdersDB.
	orders *orderService

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
	// OrdersDB, if set, is the database of the order service whose
	// initiators commit locally (KindLocal, local.go).
	OrdersDB string
	// CoordEnv is added to the environment of every coordinator start,
	// without the fault schedule knowing (a test arms a panic with it, to
	// prove that the suite reports a crashing product).
	CoordEnv []string
}

// StartCluster starts every process and proxy. On error everything
// started is stopped.
func StartCluster(cfg ClusterConfig) (c *Cluster, err error) {
	if cfg.LogLevel == "" {
		cfg.LogLevel = "warn"
	}
	c = &Cluster{bins: cfg.Bins, timing: cfg.Timing, faults: cfg.Faults, coordDB: cfg.CoordDB, env: cfg.CoordEnv,
		parts: map[string]*member{}, partDB: cfg.PartDB,
		coordToPart: map[string]*Proxy{}, initToPart: map[string]*Proxy{}, partToCoord: map[string]*Proxy{},
		PartClients: map[string]tccv1.ParticipantServiceClient{}, checkBacks: map[string][]CheckBackAnswer{},
		stopSup: make(chan struct{})}
	defer func() {
		if err != nil {
			c.Close()
			c = nil
		}
	}()
	seq := uint64(0)
	proxy := func(name, link, backend string, observe Observer) (*Proxy, error) {
		seq++
		return NewProxy(name, link, backend, rand.New(rand.NewPCG(cfg.Seed, 1000+seq)), cfg.Faults, observe)
	}
	t := cfg.Timing
	for i := 0; i < cfg.Coordinators; i++ {
		addr, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		p := NewProc(fmt.Sprintf("coordinator-%d", i), addr, cfg.Bins.Coordinator,
			"-listen", addr, "-http-listen", "", "-db", cfg.CoordDB, "-instance-id", instanceID(i),
			"-lease-ttl", t.LeaseTTL.String(), "-call-timeout", t.CallTimeout.String(),
			"-recovery-interval", t.RecoveryInterval.String(), "-retry-initial", t.RetryInitial.String(),
			"-retry-max", t.RetryMax.String(), "-participant-retry-rate", strconv.FormatFloat(t.ParticipantRetryRate, 'g', -1, 64),
			"-allow-participants", "127.0.0.1:*", "-log-level", cfg.LogLevel)
		c.watch(p, true)
		c.coords = append(c.coords, &member{proc: p})
		// Start one at a time: the first applies the migrations.
		if err := p.Start(c.env...); err != nil {
			return nil, err
		}
		px, err := proxy(fmt.Sprintf("initiator->coordinator-%d", i), LinkInitToCoord, addr, nil)
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
			px, err := proxy("participant-"+b+"->coordinator-0", LinkCheckBack, c.coords[0].proc.Addr, c.observeCheckBack)
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
		c.watch(p, false)
		c.parts[b] = &member{proc: p}
		if err := p.Start(); err != nil {
			return nil, err
		}
		if c.coordToPart[b], err = proxy("coordinator->participant-"+b, LinkCoordToPart, addr, nil); err != nil {
			return nil, err
		}
		if c.initToPart[b], err = proxy("initiator->participant-"+b, LinkInitToPart, addr, nil); err != nil {
			return nil, err
		}
		cc, err := c.dial(c.initToPart[b].Addr())
		if err != nil {
			return nil, err
		}
		c.PartClients[b] = tccv1.NewParticipantServiceClient(cc)
	}
	if cfg.OrdersDB != "" {
		addrs := make([]string, len(c.initToCoord))
		for i, p := range c.initToCoord {
			addrs[i] = p.Addr()
		}
		newProxy := func(name, link, backend string) (*Proxy, error) { return proxy(name, link, backend, nil) }
		if c.orders, err = startOrderService(cfg.OrdersDB, addrs, newProxy); err != nil {
			return nil, err
		}
	}
	c.supDone = make(chan struct{})
	go c.supervise()
	return c, nil
}

// instanceID is coordinator i's -instance-id (its name in leases).
func instanceID(i int) string { return fmt.Sprintf("c%d", i) }

// watch classifies p's exits and scans its output lines.
func (c *Cluster) watch(p *Proc, coordinator bool) {
	p.OnExit = func(ex Exit) {
		switch ex.Kind {
		case ExitFaultPoint:
			c.faults.AddName(string(FaultCoordPointHit)+":"+ex.Armed, 1)
		case ExitCrash:
			c.mu.Lock()
			c.crashes = append(c.crashes, ex)
			c.mu.Unlock()
		}
	}
	rateLimited := tcc.ErrRateLimited.Error()
	p.OnLine = func(line string) {
		if coordinator && strings.Contains(line, rateLimited) {
			c.faults.Add(FaultRetryCap)
		}
		if strings.Contains(line, "panic in handler") {
			c.mu.Lock()
			c.panics = append(c.panics, p.Name+": "+line)
			c.mu.Unlock()
		}
	}
}

// observeCheckBack records a check-back answered by the coordinator.
func (c *Cluster) observeCheckBack(method string, req, reply []byte) {
	if method != tccv1.CoordinatorService_CheckBack_FullMethodName {
		return
	}
	var q tccv1.CheckBackRequest
	var r tccv1.CheckBackResponse
	if proto.Unmarshal(req, &q) != nil || proto.Unmarshal(reply, &r) != nil {
		return
	}
	c.mu.Lock()
	c.checkBacks[q.GetGid()] = append(c.checkBacks[q.GetGid()], CheckBackAnswer{Branch: q.GetBranchId(),
		Verdict: r.GetVerdict(), State: r.GetState(), At: time.Now()})
	c.mu.Unlock()
}

// CheckBacks returns the check-backs answered so far, by gid.
func (c *Cluster) CheckBacks() map[string][]CheckBackAnswer {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string][]CheckBackAnswer, len(c.checkBacks))
	for g, a := range c.checkBacks {
		out[g] = append([]CheckBackAnswer(nil), a...)
	}
	return out
}

// Crashes returns every process exit nobody caused so far, and every
// panic a server recovered from (as log lines).
func (c *Cluster) Crashes() ([]Exit, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Exit(nil), c.crashes...), append([]string(nil), c.panics...)
}

// HarnessErrors returns what the harness failed to do so far.
func (c *Cluster) HarnessErrors() []HarnessError {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]HarnessError(nil), c.harnessErrs...)
}

// NoteHarnessError records a harness error with its cause ("" if
// unexplained, which fails the run).
func (c *Cluster) NoteHarnessError(op string, err error, cause string) {
	c.mu.Lock()
	c.harnessErrs = append(c.harnessErrs, HarnessError{Op: op, Err: err.Error(), Cause: cause})
	c.mu.Unlock()
}

// started classifies the result of starting p: a start that ended at the
// fault point the schedule armed is expected (the point is counted hit by
// the exit); one that ended in a crash is a consequence of that crash
// (reported as a crash); anything else is an unexplained harness error.
// It returns err unless it was expected.
func (c *Cluster) started(op string, p *Proc, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrExitedEarly) {
		switch ex := p.LastExit(); ex.Kind {
		case ExitFaultPoint:
			c.NoteHarnessError(op, err, "the armed fault point "+ex.Armed+" was reached before the health check answered SERVING")
			return nil
		case ExitCrash:
			c.NoteHarnessError(op, err, "the process crashed ("+ex.Status+"), reported as a crash")
			return err
		}
	}
	c.NoteHarnessError(op, err, "")
	return err
}

func (c *Cluster) dial(addr string) (*grpc.ClientConn, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	c.conns = append(c.conns, cc)
	return cc, nil
}

// coordinatorDB returns a handle on the coordinators' database (opened on
// first use, closed by Close).
func (c *Cluster) coordinatorDB() (*gorm.DB, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db != nil {
		return c.db, nil
	}
	db, _, err := database.Open(c.coordDB)
	if err != nil {
		return nil, err
	}
	c.db = db
	return db, nil
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
	if c.orders != nil {
		out = append(out, c.orders.proxy)
	}
	return out
}

// SetOdds sets the per-call network fault odds on every proxy.
func (c *Cluster) SetOdds(o Odds) {
	for _, p := range c.proxies() {
		p.SetOdds(o)
	}
}

// supervise restarts members that exited (at a fault point, or a crash,
// which their exit reports), every 100 ms, until Close.
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
				m.point = ""
				// Retried at the next tick if it fails.
				_ = c.started("supervisor restart of "+m.proc.Name, m.proc, m.proc.Start(c.envOf(m)...))
			}
			m.opMu.Unlock()
		}
	}
}

// envOf is the environment of a clean start of m.
func (c *Cluster) envOf(m *member) []string {
	for _, cm := range c.coords {
		if cm == m {
			return c.env
		}
	}
	return nil
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
	return c.started("restart of "+m.proc.Name+" after SIGKILL", m.proc, m.proc.Start(c.env...))
}

// ArmFaultPoint restarts coordinator i so that it SIGKILLs itself at the
// n-th hit of point; the supervisor restarts it cleanly after it dies. The
// point counts as hit only when the process says it reached it.
func (c *Cluster) ArmFaultPoint(i int, point string, n int) error {
	m := c.coords[i]
	m.opMu.Lock()
	defer m.opMu.Unlock()
	m.proc.Kill()
	c.faults.AddName(string(FaultCoordPoint)+":"+point, 1)
	m.point = point
	env := append(append([]string(nil), c.env...), fmt.Sprintf("SETTLE_FAULT_POINT=%s:%d", point, n))
	return c.started("start of "+m.proc.Name+" armed with "+point, m.proc, m.proc.Start(env...))
}

// PauseCoordinator SIGSTOPs coordinator i for d (longer than its lease, so
// another instance takes its transactions over), then SIGCONTs it. It
// reports how many of the transactions i was driving when stopped (it held
// their lease) another instance took over meanwhile (their row changed
// while i was stopped), or -1 if that could not be read. With holdLease
// it first makes the coordinator -> participant links slow and waits
// (bounded) until i holds a lease, so that there is something to take
// over.
func (c *Cluster) PauseCoordinator(ctx context.Context, i int, d time.Duration, holdLease bool) int {
	m := c.coords[i]
	m.opMu.Lock()
	defer m.opMu.Unlock()
	db, err := c.coordinatorDB()
	if err != nil {
		db = nil
	}
	if holdLease && db != nil {
		for _, p := range c.coordToPart {
			p.SetSlow(400 * time.Millisecond)
		}
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
			if leases, err := leasedBy(ctx, db, instanceID(i)); err == nil && len(leases) > 0 {
				break
			}
			if !sleepCtx(ctx, 20*time.Millisecond) {
				break
			}
		}
	}
	m.proc.Stop()
	stopped := time.Now()
	for _, p := range c.coordToPart {
		p.SetSlow(0)
	}
	c.faults.Add(FaultCoordPause)
	// Statements i sent just before it stopped finish meanwhile; what it
	// holds afterwards stays its own until another instance claims it.
	sleepCtx(ctx, 100*time.Millisecond)
	var held map[string]int64
	if db != nil {
		held, _ = leasedBy(ctx, db, instanceID(i))
	}
	sleepCtx(ctx, d-time.Since(stopped))
	taken := -1
	if db != nil && held != nil {
		taken = 0
		for gid, v := range held {
			var now int64
			if err := db.WithContext(ctx).Raw("SELECT version FROM transaction_record WHERE gid = ?", gid).Row().Scan(&now); err == nil && now != v {
				taken++
			}
		}
		c.faults.AddName(string(FaultTakeover), int64(taken))
	}
	m.proc.Cont()
	return taken
}

// leasedBy returns gid -> version of the decided transactions whose lease
// owner is instance.
func leasedBy(ctx context.Context, db *gorm.DB, instance string) (map[string]int64, error) {
	rows, err := db.WithContext(ctx).Raw("SELECT gid, version FROM transaction_record WHERE lease_owner = ? AND state IN (?, ?)",
		instance, string(tcc.StateCommitting), string(tcc.StateAborting)).Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var gid string
		var v int64
		if err := rows.Scan(&gid, &v); err != nil {
			return nil, err
		}
		out[gid] = v
	}
	return out, rows.Err()
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
	return c.started("restart of "+m.proc.Name+" after SIGKILL", m.proc, m.proc.Start())
}

// cut takes link p down for at least least and then until it has refused
// a call, at most most; it reports whether a call was refused.
func (c *Cluster) cut(ctx context.Context, p *Proxy, kind FaultKind, least, most time.Duration) bool {
	if p == nil {
		return false
	}
	c.faults.Add(kind)
	before := p.Refused()
	p.SetDown(true)
	defer p.SetDown(false)
	sleepCtx(ctx, least)
	for end := time.Now().Add(most - least); p.Refused() == before && time.Now().Before(end); {
		if !sleepCtx(ctx, 20*time.Millisecond) {
			break
		}
	}
	return p.Refused() > before
}

// Partition cuts the coordinator -> participant link of branch b for d.
func (c *Cluster) Partition(ctx context.Context, b string, d time.Duration) {
	c.cut(ctx, c.coordToPart[b], FaultPartition, d, d)
}

// CutCheckBack cuts the participant -> coordinator link of branch b for d.
func (c *Cluster) CutCheckBack(ctx context.Context, b string, d time.Duration) {
	c.cut(ctx, c.partToCoord[b], FaultCheckBackCut, d, d)
}

// CutInitiatorToCoordinator cuts initiator -> coordinator i for d.
func (c *Cluster) CutInitiatorToCoordinator(ctx context.Context, i int, d time.Duration) {
	c.cut(ctx, c.initToCoord[i], FaultInitCoordCut, d, d)
}

// LocalOrders reports whether the cluster has an order service for
// KindLocal orders.
func (c *Cluster) LocalOrders() bool { return c.orders != nil }

// CutDecider cuts the coordinator -> decider link for d; with least < d,
// only until a call was refused (least at the least).
func (c *Cluster) CutDecider(ctx context.Context, least, d time.Duration) bool {
	if c.orders == nil {
		return false
	}
	return c.cut(ctx, c.orders.proxy, FaultDeciderCut, least, d)
}

// CutInitiatorToParticipant cuts initiator -> participant b for d.
func (c *Cluster) CutInitiatorToParticipant(ctx context.Context, b string, d time.Duration) {
	c.cut(ctx, c.initToPart[b], FaultInitPartCut, d, d)
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
			m.point = ""
			if err := c.started("heal: restart of "+m.proc.Name, m.proc, m.proc.Start(c.envOf(m)...)); err != nil {
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
	if c.orders != nil {
		c.orders.close() // closes its proxy too
	}
	for _, p := range c.proxies() {
		if c.orders == nil || p != c.orders.proxy {
			p.Close()
		}
	}
	c.mu.Lock()
	if c.db != nil {
		_ = database.Close(c.db)
		c.db = nil
	}
	c.mu.Unlock()
}
