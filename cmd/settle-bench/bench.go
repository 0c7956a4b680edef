package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/settle-tcc/settle/client"
	adminv1 "github.com/settle-tcc/settle/gen/settle/admin/v1"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/demo"
	"github.com/settle-tcc/settle/internal/rpcopt"
)

type bench struct {
	cfg      Config
	log      io.Writer
	cleanups []func()
	onWindow func(start bool)

	coordAddr string
	coordPID  int
	dbPID     int
	inproc    *app.App

	noop    []*noopParticipant
	targets []string // per branch index
	payload [][]byte // per branch index, for initiator w: see payloadFor

	coordConns []*grpc.ClientConn
	partConns  map[string][]*grpc.ClientConn
	runID      string
}

func (b *bench) logf(format string, args ...any) { fmt.Fprintf(b.log, format+"\n", args...) }

func (b *bench) cleanup() {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
}

func dial(target string, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	return grpc.NewClient(target, rpcopt.DialOptions(append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, extra...)...)...)
}

func (b *bench) setup(ctx context.Context) error {
	cfg := b.cfg
	rid := make([]byte, 4)
	_, _ = rand.Read(rid)
	b.runID = hex.EncodeToString(rid)

	// Participants.
	switch cfg.Mode {
	case "noop", "baseline":
		for range 2 {
			p, err := startNoop()
			if err != nil {
				return err
			}
			b.cleanups = append(b.cleanups, p.stop)
			b.noop = append(b.noop, p)
		}
		for i := range cfg.Branches {
			b.targets = append(b.targets, b.noop[i%2].addr)
		}
	case "demo":
		for i := range cfg.Branches {
			if i%2 == 0 {
				b.targets = append(b.targets, cfg.DemoAccounts)
			} else {
				b.targets = append(b.targets, cfg.DemoInventory)
			}
		}
		for _, spec := range cfg.DemoSeed {
			if err := seedDemo(ctx, spec, cfg.Concurrency); err != nil {
				return err
			}
		}
	}

	// Coordinator.
	if cfg.Mode != "baseline" {
		switch {
		case cfg.Spawn != "":
			if err := b.spawn(ctx); err != nil {
				return err
			}
		case cfg.InprocDB != "":
			a, err := app.Start(ctx, app.Config{Listen: "127.0.0.1:0", DB: cfg.InprocDB}, nil)
			if err != nil {
				return fmt.Errorf("start in-process coordinator: %w", err)
			}
			b.inproc = a
			b.cleanups = append(b.cleanups, func() { _ = a.Shutdown(context.Background()) })
			b.coordAddr = a.Addr()
			b.coordPID = os.Getpid()
		default:
			b.coordAddr = cfg.Coordinator
			b.coordPID = cfg.CoordinatorPID
			if b.coordPID == 0 {
				pid, err := pidListening(b.coordAddr)
				if err != nil {
					b.logf("coordinator pid not found (%v); its CPU is not reported (use -coordinator-pid)", err)
				}
				b.coordPID = pid
			}
		}
		var auth []grpc.DialOption
		if cfg.TokenFile != "" {
			token, err := client.ReadTokenFile(cfg.TokenFile)
			if err != nil {
				return err
			}
			auth = append(auth, grpc.WithPerRPCCredentials(client.BearerToken(token)))
		}
		for range cfg.Conns {
			cc, err := dial(b.coordAddr, auth...)
			if err != nil {
				return err
			}
			b.cleanups = append(b.cleanups, func() { _ = cc.Close() })
			b.coordConns = append(b.coordConns, cc)
		}
		if err := waitServing(ctx, b.coordConns[0], 30*time.Second); err != nil {
			return fmt.Errorf("coordinator %s: %w", b.coordAddr, err)
		}
	}
	b.partConns = map[string][]*grpc.ClientConn{}
	for _, t := range b.targets {
		if _, ok := b.partConns[t]; ok {
			continue
		}
		for range cfg.Conns {
			cc, err := dial(t)
			if err != nil {
				return err
			}
			b.cleanups = append(b.cleanups, func() { _ = cc.Close() })
			b.partConns[t] = append(b.partConns[t], cc)
		}
	}

	// Database server.
	b.dbPID = cfg.DBPID
	if b.dbPID == 0 && cfg.DBProcess != "" {
		if pids := pidByName(cfg.DBProcess); len(pids) == 1 {
			b.dbPID = pids[0]
		} else if len(pids) > 1 {
			b.logf("%d processes named %s; database CPU not reported (use -db-pid)", len(pids), cfg.DBProcess)
		}
	}
	return nil
}

// spawn starts the coordinator binary on a free loopback port.
func (b *bench) spawn(ctx context.Context) error {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	// The coordinator's defaults (log level info included), except the
	// HTTP listener; its output goes to /dev/null unless -spawn-log.
	args := append([]string{"-listen", addr, "-http-listen", "", "-db", b.cfg.SpawnDB}, b.cfg.SpawnArgs...)
	cmd := exec.Command(b.cfg.Spawn, args...)
	cmd.SysProcAttr = childAttr()
	if b.cfg.SpawnLog != "" {
		f, err := os.Create(b.cfg.SpawnLog)
		if err != nil {
			return err
		}
		b.cleanups = append(b.cleanups, func() { _ = f.Close() })
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("spawn %s: %w", b.cfg.Spawn, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	b.cleanups = append(b.cleanups, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	b.coordAddr = addr
	b.coordPID = cmd.Process.Pid
	return nil
}

func waitServing(ctx context.Context, cc *grpc.ClientConn, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	h := healthpb.NewHealthClient(cc)
	for {
		r, err := h.Check(ctx, &healthpb.HealthCheckRequest{Service: tccv1.CoordinatorService_ServiceDesc.ServiceName})
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not serving: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// started is one transaction begun by an initiator.
type started struct {
	gid        string
	beginError bool // Begin failed: the record may not exist
}

type worker struct {
	id      int
	total   Latencies
	commit  Latencies
	begin   Latencies
	reg     Latencies
	try     Latencies
	done    int
	errs    map[string]int
	started []started
	last    [3]time.Duration // begin, all registrations, all tries of the last transaction
}

func (w *worker) fail(stage string, err error) {
	w.errs[stage+" "+status.Code(err).String()]++
}

func (b *bench) payloadFor(w, branch int) []byte {
	if b.cfg.Mode == "demo" {
		name := "bench-" + strconv.Itoa(w)
		if branch%2 == 0 {
			return demo.AccountsPayload(name, 1)
		}
		return demo.InventoryPayload(name, 1)
	}
	p := make([]byte, b.cfg.PayloadSize)
	for i := range p {
		p[i] = 'a' + byte((w+branch+i)%26)
	}
	return p
}

// run drives the load, measures the window and checks the drain.
func (b *bench) run(ctx context.Context) (*Report, error) {
	cfg := b.cfg
	rep := &Report{Mode: cfg.Mode, Store: cfg.StoreLabel, Concurrency: cfg.Concurrency, Branches: cfg.Branches,
		Errors: map[string]int{}, CPU: map[string]float64{}, LoadAvg: loadAvg()}
	if rep.Mode == "noop" || rep.Mode == "demo" {
		rep.Mode = cfg.Mode
	}
	if b.inproc != nil {
		rep.Notes = append(rep.Notes, "coordinator ran inside the bench process: its CPU includes the load generator")
	}
	var dbstat dbStatus
	if cfg.Mode != "baseline" && (cfg.MySQLStatus != "" || cfg.PostgresStatus != "") {
		var err error
		if cfg.PostgresStatus != "" {
			dbstat, err = openPostgresStatus(cfg.PostgresStatus)
		} else {
			dbstat, err = openMySQLStatus(cfg.MySQLStatus)
		}
		if err != nil {
			return nil, err
		}
		defer dbstat.close()
		rep.DBVars = dbstat.vars(ctx)
	}

	start := time.Now()
	windowStart := start.Add(cfg.Warmup)
	windowEnd := windowStart.Add(cfg.Duration)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	workers := make([]*worker, cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{id: i, errs: map[string]int{}}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.loop(runCtx, w, windowStart, windowEnd)
		}()
	}

	// Snapshots at the window's edges.
	type snap struct {
		coord, db, self, machine, parts float64
		status                          map[string]float64
		roundTrips                      int64
	}
	take := func() snap {
		var s snap
		if b.coordPID > 0 {
			s.coord, _ = procCPU(b.coordPID)
		}
		if b.dbPID > 0 {
			s.db, _ = procCPU(b.dbPID)
		}
		s.self, _ = procCPU(os.Getpid())
		for _, pid := range b.cfg.PartPIDs {
			v, _ := procCPU(pid)
			s.parts += v
		}
		s.machine, _ = machineCPU()
		if dbstat != nil {
			s.status = dbstat.status(ctx)
		}
		if b.inproc != nil {
			s.roundTrips = b.inproc.Store().RoundTrips()
		}
		return s
	}
	sleepUntil := func(t time.Time) bool {
		select {
		case <-time.After(time.Until(t)):
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !sleepUntil(windowStart) {
		cancel()
		wg.Wait()
		return nil, ctx.Err()
	}
	rep.LoadAvg = loadAvg()
	if b.onWindow != nil {
		b.onWindow(true)
	}
	s0 := take()
	ok := sleepUntil(windowEnd)
	s1 := take()
	if b.onWindow != nil {
		b.onWindow(false)
	}
	if !ok {
		cancel()
	}
	wg.Wait()
	stopped := time.Now()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	rep.Duration = cfg.Duration
	if b.coordPID > 0 && b.inproc == nil {
		rep.CPU["coordinator"] = s1.coord - s0.coord
	}
	if b.dbPID > 0 && cfg.Mode != "baseline" {
		rep.CPU["database"] = s1.db - s0.db
	}
	rep.CPU["bench"] = s1.self - s0.self
	if len(cfg.PartPIDs) > 0 {
		rep.CPU["participants"] = s1.parts - s0.parts
	}
	rep.MachineCPU = s1.machine - s0.machine
	if b.inproc != nil {
		rep.DBStatus = map[string]float64{"statements": float64(s1.roundTrips - s0.roundTrips)}
	}
	if dbstat != nil {
		if rep.DBStatus == nil {
			rep.DBStatus = map[string]float64{}
		}
		for k, v := range s1.status {
			rep.DBStatus[k] = v - s0.status[k]
		}
		rep.Notes = append(rep.Notes, dbstat.note())
	}

	var total, commit, begin, reg, try Latencies
	var all []started
	for _, w := range workers {
		total.Merge(&w.total)
		commit.Merge(&w.commit)
		begin.Merge(&w.begin)
		reg.Merge(&w.reg)
		try.Merge(&w.try)
		rep.Committed += w.done
		for k, v := range w.errs {
			rep.Errors[k] += v
		}
		all = append(all, w.started...)
	}
	rep.Total = total.Summarize()
	if cfg.Mode != "baseline" {
		rep.Commit = commit.Summarize()
		rep.Stages = map[string]Summary{"begin": begin.Summarize(), "register (all branches)": reg.Summarize(), "try (all branches)": try.Summarize()}
		rep.Started = len(all)
		var err error
		rep.Unfinished, rep.Drain, err = b.drain(ctx, all, stopped)
		if err != nil {
			return nil, err
		}
	}
	if dbstat != nil {
		rep.DBVars = dbstat.vars(ctx)
	}
	return rep, nil
}

// loop is one initiator.
func (b *bench) loop(ctx context.Context, w *worker, windowStart, windowEnd time.Time) {
	cfg := b.cfg
	var coord tccv1.CoordinatorServiceClient
	if len(b.coordConns) > 0 {
		coord = tccv1.NewCoordinatorServiceClient(b.coordConns[w.id%len(b.coordConns)])
	}
	parts := make([]tccv1.ParticipantServiceClient, cfg.Branches)
	payloads := make([][]byte, cfg.Branches)
	for i, t := range b.targets {
		conns := b.partConns[t]
		parts[i] = tccv1.NewParticipantServiceClient(conns[w.id%len(conns)])
		payloads[i] = b.payloadFor(w.id, i)
	}
	branchIDs := make([]string, cfg.Branches)
	for i := range branchIDs {
		branchIDs[i] = "b" + strconv.Itoa(i)
	}
	for seq := 0; ; seq++ {
		t0 := time.Now()
		if !t0.Before(windowEnd) || ctx.Err() != nil {
			return
		}
		gid := fmt.Sprintf("bench-%s-%d-%d", b.runID, w.id, seq)
		tctx, cancel := context.WithTimeout(ctx, cfg.CallTimeout)
		var ok bool
		var commitTook time.Duration
		if coord == nil {
			ok = b.baselineTx(tctx, w, gid, parts, payloads, branchIDs)
		} else {
			ok, commitTook = b.tx(tctx, w, coord, gid, parts, payloads, branchIDs)
		}
		cancel()
		end := time.Now()
		if ok && !t0.Before(windowStart) && !end.After(windowEnd) {
			w.done++
			w.total.Add(end.Sub(t0))
			if coord != nil {
				w.commit.Add(commitTook)
				w.begin.Add(w.last[0])
				w.reg.Add(w.last[1])
				w.try.Add(w.last[2])
			}
		}
	}
}

func withIDs(ctx context.Context, gid, branchID string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, client.MetadataGID, gid, client.MetadataBranchID, branchID)
}

// tx runs one transaction through the coordinator. It returns whether it
// committed and how long Commit took.
func (b *bench) tx(ctx context.Context, w *worker, coord tccv1.CoordinatorServiceClient, gid string,
	parts []tccv1.ParticipantServiceClient, payloads [][]byte, branchIDs []string) (bool, time.Duration) {
	t0 := time.Now()
	begin := &tccv1.BeginRequest{Gid: gid, Timeout: durationpb.New(b.cfg.TxTimeout)}
	if b.cfg.RegisterAtBegin {
		for i := range parts {
			begin.Branches = append(begin.Branches, &tccv1.BranchRegistration{BranchId: branchIDs[i], Participant: b.targets[i], Payload: payloads[i]})
		}
	}
	_, err := coord.Begin(ctx, begin)
	stages := [3]time.Duration{time.Since(t0)}
	if err != nil {
		w.fail("begin", err)
		w.started = append(w.started, started{gid: gid, beginError: true})
		return false, 0
	}
	w.started = append(w.started, started{gid: gid})
	for i, p := range parts {
		t1 := time.Now()
		var err error
		if !b.cfg.RegisterAtBegin {
			_, err = coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: gid, BranchId: branchIDs[i], Participant: b.targets[i], Payload: payloads[i]})
		}
		t2 := time.Now()
		stages[1] += t2.Sub(t1)
		if err != nil {
			w.fail("register", err)
			b.rollback(ctx, w, coord, gid)
			return false, 0
		}
		if _, err := p.Try(withIDs(ctx, gid, branchIDs[i]), &tccv1.TryRequest{Gid: gid, BranchId: branchIDs[i], Payload: payloads[i]}); err != nil {
			w.fail("try", err)
			b.rollback(ctx, w, coord, gid)
			return false, 0
		}
		stages[2] += time.Since(t2)
	}
	c0 := time.Now()
	r, err := coord.Commit(ctx, &tccv1.CommitRequest{Gid: gid})
	took := time.Since(c0)
	if err != nil {
		w.fail("commit", err)
		return false, 0
	}
	if s := r.GetTransaction().GetState(); s != tccv1.TransactionState_TRANSACTION_STATE_COMMITTING && s != tccv1.TransactionState_TRANSACTION_STATE_COMMITTED {
		w.errs["commit state "+s.String()]++
		return false, 0
	}
	w.last = stages
	return true, took
}

func (b *bench) rollback(ctx context.Context, w *worker, coord tccv1.CoordinatorServiceClient, gid string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.CallTimeout)
	defer cancel()
	if _, err := coord.Rollback(ctx, &tccv1.RollbackRequest{Gid: gid, Reason: "bench: a branch failed"}); err != nil {
		w.fail("rollback", err)
	}
}

// baselineTx makes the same participant calls without a coordinator: every
// Try in turn, then every Confirm in parallel (as the coordinator does).
func (b *bench) baselineTx(ctx context.Context, w *worker, gid string,
	parts []tccv1.ParticipantServiceClient, payloads [][]byte, branchIDs []string) bool {
	for i, p := range parts {
		if _, err := p.Try(withIDs(ctx, gid, branchIDs[i]), &tccv1.TryRequest{Gid: gid, BranchId: branchIDs[i], Payload: payloads[i]}); err != nil {
			w.fail("try", err)
			return false
		}
	}
	if len(parts) == 1 {
		if _, err := parts[0].Confirm(withIDs(ctx, gid, branchIDs[0]), &tccv1.ConfirmRequest{Gid: gid, BranchId: branchIDs[0], Payload: payloads[0]}); err != nil {
			w.fail("confirm", err)
			return false
		}
		return true
	}
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = p.Confirm(withIDs(ctx, gid, branchIDs[i]), &tccv1.ConfirmRequest{Gid: gid, BranchId: branchIDs[i], Payload: payloads[i]})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			w.fail("confirm", err)
			return false
		}
	}
	return true
}

// drain waits until no transaction of this database is left in TRYING,
// COMMITTING or ABORTING (that time, after the load stopped, is the drain
// time), then checks every started transaction individually. It returns
// how many were not COMMITTED or ABORTED (or, for a failed Begin, absent).
func (b *bench) drain(ctx context.Context, all []started, stopped time.Time) (int, time.Duration, error) {
	adminConn := b.coordConns[0]
	if b.cfg.AdminTokenFile != "" {
		token, err := client.ReadTokenFile(b.cfg.AdminTokenFile)
		if err != nil {
			return 0, 0, err
		}
		cc, err := dial(b.coordAddr, grpc.WithPerRPCCredentials(client.BearerToken(token)))
		if err != nil {
			return 0, 0, err
		}
		defer cc.Close()
		adminConn = cc
	}
	admin := adminv1.NewAdminServiceClient(adminConn)
	deadline := stopped.Add(b.cfg.DrainTimeout)
	var drained time.Duration
	for {
		busy := false
		for _, st := range []tccv1.TransactionState{tccv1.TransactionState_TRANSACTION_STATE_COMMITTING,
			tccv1.TransactionState_TRANSACTION_STATE_ABORTING, tccv1.TransactionState_TRANSACTION_STATE_TRYING} {
			r, err := admin.ListTransactions(ctx, &adminv1.ListTransactionsRequest{State: st, PageSize: 1})
			if err != nil {
				return 0, 0, fmt.Errorf("drain: list %s: %w", st, err)
			}
			if len(r.GetTransactions()) > 0 {
				busy = true
				break
			}
		}
		now := time.Now()
		if !busy {
			drained = now.Sub(stopped)
			break
		}
		if now.After(deadline) {
			drained = now.Sub(stopped)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Check each one.
	coord := tccv1.NewCoordinatorServiceClient(b.coordConns[0])
	var unfinished atomic.Int64
	jobs := make(chan started)
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range jobs {
				if !b.finished(ctx, coord, s, deadline) {
					unfinished.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("%s unfinished", s.gid)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, s := range all {
		jobs <- s
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		b.logf("drain: %v (and %d more)", firstErr, unfinished.Load()-1)
	}
	return int(unfinished.Load()), drained, nil
}

// finished polls one transaction until it is final or the deadline passes.
func (b *bench) finished(ctx context.Context, coord tccv1.CoordinatorServiceClient, s started, deadline time.Time) bool {
	for {
		r, err := coord.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: s.gid})
		switch {
		case status.Code(err) == codes.NotFound && s.beginError:
			return true
		case err == nil:
			switch r.GetTransaction().GetState() {
			case tccv1.TransactionState_TRANSACTION_STATE_COMMITTED, tccv1.TransactionState_TRANSACTION_STATE_ABORTED:
				return true
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}
