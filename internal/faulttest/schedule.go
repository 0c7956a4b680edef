package faulttest

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// RequiredKinds are the fault kinds a run must fire on a cluster of this
// shape, each at least once: every per-call fault, a reset, a cut of every
// link kind that refused at least one call, every named fault point
// reached, coordinator and participant SIGKILLs, a round deferred by the
// retry-rate cap (when it is on), and, with two coordinators, a pause past
// the lease during which the other instance took a transaction over.
func RequiredKinds(coordinators int, checkBack bool, retryRate float64) []string {
	kinds := []string{
		string(FaultDelay), string(FaultDrop), string(FaultDropReply), string(FaultDuplicate), string(FaultReset),
		string(FaultInitCoordCut), string(FaultDown) + ":" + LinkInitToCoord,
		string(FaultInitPartCut), string(FaultDown) + ":" + LinkInitToPart,
		string(FaultPartition), string(FaultDown) + ":" + LinkCoordToPart,
		string(FaultCoordKill), string(FaultPartKill),
	}
	if checkBack {
		kinds = append(kinds, string(FaultCheckBackCut), string(FaultDown)+":"+LinkCheckBack)
	}
	kinds = append(kinds, string(FaultDeciderCut), string(FaultDown)+":"+LinkCoordToDecider)
	for _, p := range FaultPoints {
		kinds = append(kinds, string(FaultCoordPoint)+":"+p, string(FaultCoordPointHit)+":"+p)
	}
	if retryRate > 0 {
		kinds = append(kinds, string(FaultRetryCap))
	}
	if coordinators > 1 {
		kinds = append(kinds, string(FaultCoordPause), string(FaultTakeover))
	}
	slices.Sort(kinds)
	return kinds
}

// MissingKinds returns the required kinds that did not fire.
func MissingKinds(required []string, fired map[string]int64) []string {
	var out []string
	for _, k := range required {
		if fired[k] < 1 {
			out = append(out, k)
		}
	}
	return out
}

// coverage fires every kind of RequiredKinds in turn while the workload
// runs, each step bounded, so that a short run cannot leave one out to
// chance; the random schedule follows it. Steps that depend on the
// system's reaction (a cut refusing a call, a fault point being reached, a
// takeover) wait for it, within a bound; whatever still did not happen is
// reported by the coverage check.
//
// orphan, if not nil, runs an orphan_try order (it returns when the order
// is done): its reservation is checked back a few seconds later, so the
// check-back link surely carries a call while it is cut. killed, if not
// nil, runs a KindLocal order whose initiator dies between its local
// commit and Commit: the coordinator asks the decider at its deadline, so
// the decider link surely carries a call while it is cut.
func coverage(ctx context.Context, c *Cluster, t Timing, rng *rand.Rand, orphan, killed func(), logf func(string, ...any)) {
	started := time.Now()
	// Per-call faults: forced on the next calls of links that always have
	// traffic (the random odds fire them too).
	for _, k := range []FaultKind{FaultDelay, FaultDrop, FaultDropReply, FaultDuplicate} {
		c.initToCoord[0].Force(k)
		c.initToPart[Branches[1]].Force(k)
		c.coordToPart[Branches[0]].Force(k)
	}
	logf("coverage: forced a delay, a dropped request, a lost reply and a duplicate on three links")
	// The check-back link carries few calls (only reservations older than
	// the check-back delay): cut it in the background until one was
	// refused.
	var wg sync.WaitGroup
	if p := c.partToCoord[Branches[0]]; p != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			refused := c.cut(ctx, p, FaultCheckBackCut, time.Second, 15*time.Second)
			logf("coverage: participant-%s -> coordinator (check-back) link was down; a check-back refused: %v", Branches[0], refused)
		}()
		if orphan != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				orphan()
			}()
		}
	}
	if c.LocalOrders() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			refused := c.CutDecider(ctx, time.Second, t.TxTimeout+15*time.Second)
			logf("coverage: coordinator -> decider link was down; a decider call refused: %v", refused)
		}()
		if killed != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				killed()
			}()
		}
	}
	for i := 0; i < 100 && c.faults.Get(string(FaultReset)) == 0 && sleepCtx(ctx, 20*time.Millisecond); i++ {
		c.initToCoord[i%len(c.initToCoord)].ResetConnection()
	}
	logf("coverage: connection reset: %v", c.faults.Get(string(FaultReset)) > 0)
	last := len(c.coords) - 1
	refused := c.cut(ctx, c.initToCoord[last], FaultInitCoordCut, 300*time.Millisecond, 4*time.Second)
	logf("coverage: initiator -> coordinator-%d link was down; a call refused: %v", last, refused)
	refused = c.cut(ctx, c.initToPart[Branches[1]], FaultInitPartCut, 300*time.Millisecond, 4*time.Second)
	logf("coverage: initiator -> participant-%s link was down; a call refused: %v", Branches[1], refused)
	// Coordinator -> participant: long enough that the retries of the
	// rounds that fail meanwhile exceed -participant-retry-rate.
	capped := func() bool { return c.faults.Get(string(FaultRetryCap)) > 0 || t.ParticipantRetryRate <= 0 }
	p := c.coordToPart[Branches[0]]
	c.faults.Add(FaultPartition)
	before := p.Refused()
	p.SetDown(true)
	sleepCtx(ctx, time.Second)
	for end := time.Now().Add(15 * time.Second); (p.Refused() == before || !capped()) && time.Now().Before(end); {
		if !sleepCtx(ctx, 50*time.Millisecond) {
			break
		}
	}
	p.SetDown(false)
	logf("coverage: coordinator -> participant-%s link was down; a call refused: %v; a round deferred by the retry rate: %v",
		Branches[0], p.Refused() > before, capped())
	for _, b := range Branches {
		pause := time.Duration(100+rng.IntN(200)) * time.Millisecond
		logf("coverage: SIGKILL participant-%s, restart after %s", b, pause)
		if err := c.KillParticipant(b, pause); err != nil {
			logf("coverage: %v", err)
		}
	}
	logf("coverage: SIGKILL coordinator-0, restart after 200ms")
	if err := c.KillCoordinator(0, 200*time.Millisecond); err != nil {
		logf("coverage: %v", err)
	}
	for j, point := range FaultPoints {
		ci := j % len(c.coords)
		hit := string(FaultCoordPointHit) + ":" + point
		logf("coverage: coordinator-%d armed to SIGKILL itself at %s:1", ci, point)
		if err := c.ArmFaultPoint(ci, point, 1); err != nil {
			logf("coverage: %v", err)
		}
		for end := time.Now().Add(15 * time.Second); c.faults.Get(hit) == 0 && time.Now().Before(end); {
			if !sleepCtx(ctx, 20*time.Millisecond) {
				break
			}
		}
		logf("coverage: %s reached: %v", point, c.faults.Get(hit) > 0)
	}
	if len(c.coords) > 1 {
		for attempt := 1; attempt <= 3 && c.faults.Get(string(FaultTakeover)) == 0 && ctx.Err() == nil; attempt++ {
			d := t.LeaseTTL + t.LeaseTTL/2 + time.Duration(rng.Int64N(int64(t.LeaseTTL)))
			logf("coverage: SIGSTOP coordinator-0 while it holds a lease, for %s (lease %s), then SIGCONT", d, t.LeaseTTL)
			taken := c.PauseCoordinator(ctx, 0, d, true)
			logf("coverage: transactions coordinator-1 took over from the paused coordinator-0: %d", taken)
		}
	}
	wg.Wait()
	logf("coverage: schedule done in %s", time.Since(started).Round(time.Millisecond))
}

// injectProcessFault draws one process or link fault and applies it.
func injectProcessFault(ctx context.Context, c *Cluster, rng *rand.Rand, t Timing, logf func(string, ...any)) error {
	ci := rng.IntN(c.Coordinators())
	b := Branches[rng.IntN(len(Branches))]
	switch r := rng.IntN(100); {
	case r < 18:
		pause := time.Duration(rng.IntN(500)) * time.Millisecond
		logf("fault: SIGKILL coordinator-%d, restart after %s", ci, pause)
		return c.KillCoordinator(ci, pause)
	case r < 36:
		point := FaultPoints[rng.IntN(len(FaultPoints))]
		n := 1 + rng.IntN(5)
		logf("fault: coordinator-%d armed to SIGKILL itself at %s:%d", ci, point, n)
		return c.ArmFaultPoint(ci, point, n)
	case r < 50:
		pause := time.Duration(rng.IntN(800)) * time.Millisecond
		logf("fault: SIGKILL participant-%s, restart after %s", b, pause)
		return c.KillParticipant(b, pause)
	case r < 61 && c.Coordinators() > 1:
		d := t.LeaseTTL + t.LeaseTTL/2 + time.Duration(rng.Int64N(int64(t.LeaseTTL)))
		logf("fault: SIGSTOP coordinator-%d for %s (lease %s), then SIGCONT", ci, d, t.LeaseTTL)
		if taken := c.PauseCoordinator(ctx, ci, d, false); taken > 0 {
			logf("fault: %d transaction(s) taken over from the paused coordinator-%d", taken, ci)
		}
	case r < 72:
		d := time.Duration(500+rng.IntN(2500)) * time.Millisecond
		logf("fault: coordinator -> participant-%s link down for %s", b, d)
		c.Partition(ctx, b, d)
	case r < 79 && c.CheckBackProxied():
		d := time.Duration(1000+rng.IntN(3000)) * time.Millisecond
		logf("fault: participant-%s -> coordinator (check-back) link down for %s", b, d)
		c.CutCheckBack(ctx, b, d)
	case r < 85:
		d := time.Duration(300+rng.IntN(1200)) * time.Millisecond
		logf("fault: initiator -> coordinator-%d link down for %s", ci, d)
		c.CutInitiatorToCoordinator(ctx, ci, d)
	case r < 91:
		d := time.Duration(300+rng.IntN(1200)) * time.Millisecond
		logf("fault: initiator -> participant-%s link down for %s", b, d)
		c.CutInitiatorToParticipant(ctx, b, d)
	case r < 95 && c.LocalOrders():
		d := time.Duration(1000+rng.IntN(4000)) * time.Millisecond
		logf("fault: coordinator -> decider link down for %s", d)
		c.CutDecider(ctx, d, d)
	default:
		n := 1 + rng.IntN(4)
		for i := 0; i < n; i++ {
			c.ResetRandomConnection(rng)
		}
	}
	return nil
}

// formatKinds prints kinds on lines of at most 100 characters.
func formatKinds(kinds []string, indent string) string {
	s, line := "", indent
	for _, k := range kinds {
		if len(line)+len(k)+1 > 100 && line != indent {
			s += line + "\n"
			line = indent
		}
		line += k + " "
	}
	if line != indent {
		s += line + "\n"
	}
	return s
}
