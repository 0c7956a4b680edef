// Package faults lets crash tests stop a coordinator process at a named
// point of the protocol. It is off unless the environment variable
// SETTLE_FAULT_POINT is set, which only tests do:
//
//	SETTLE_FAULT_POINT=after_decision            kill at the first hit
//	SETTLE_FAULT_POINT=after_decision:3          kill at the third hit
//	SETTLE_FAULT_POINT=after_decision:3:kill     the same
//	SETTLE_FAULT_POINT=after_decision:3:panic    panic at every third hit
//
// "Kill" is SIGKILL to the process itself: no deferred function, no
// graceful shutdown, exactly like kill -9 from outside. Before it, the
// process prints
//
//	settle: fault point after_decision reached, SIGKILL
//
// to stderr, which is how a harness tells a fault-point kill it armed from
// any other exit.
//
// "Panic" stands for a bug: the process prints
//
//	settle: fault point after_decision reached, panic
//
// and panics in the calling goroutine, at hits n, 2n, 3n, ... (a
// coordinator that panics now and then). Where that goroutine runs a
// delivery round or the recovery loop (after_branch_call,
// before_record_round, and after_decision when the recovery loop or a
// delivery decides), the process dies with Go's panic report and exit
// status 2; inside a gRPC handler (after_begin, after_register, and
// after_decision under Commit, Rollback or CheckBack) the server's
// recovery interceptor turns it into an INTERNAL status and an error log
// line "panic in handler". The fault-injection suite (internal/faulttest)
// reports both as crashes. It exists so that the suite can prove it
// catches a coordinator that panics.
//
// Points (BRIEF S4): after_begin, after_register, after_decision,
// after_branch_call, before_record_round (see the callers of
// tcc.Hooks.FaultPoint).
package faults

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// EnvVar names the environment variable read by FromEnv.
const EnvVar = "SETTLE_FAULT_POINT"

// Action is what a point does when it is reached.
type Action string

// Actions.
const (
	// Kill SIGKILLs the process (the default).
	Kill Action = "kill"
	// Panic panics in the calling goroutine.
	Panic Action = "panic"
)

// Point kills the process (or panics) at the n-th hit of a named point.
type Point struct {
	name   string
	n      int64
	action Action
	hits   atomic.Int64
}

// Parse reads a SETTLE_FAULT_POINT value: name[:n[:action]].
func Parse(v string) (*Point, error) {
	parts := strings.Split(v, ":")
	if len(parts) > 3 || parts[0] == "" {
		return nil, fmt.Errorf("%s=%q: want name[:count[:kill|panic]]", EnvVar, v)
	}
	p := &Point{name: parts[0], n: 1, action: Kill}
	if len(parts) > 1 {
		n, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s=%q: count must be a positive integer", EnvVar, v)
		}
		p.n = n
	}
	if len(parts) > 2 {
		switch a := Action(parts[2]); a {
		case Kill, Panic:
			p.action = a
		default:
			return nil, fmt.Errorf("%s=%q: action must be kill or panic", EnvVar, v)
		}
	}
	return p, nil
}

// FromEnv returns the point configured in the environment, or nil.
func FromEnv() (*Point, error) {
	v := os.Getenv(EnvVar)
	if v == "" {
		return nil, nil
	}
	return Parse(v)
}

// Name is the point's name.
func (p *Point) Name() string { return p.name }

// Action is what the point does when reached.
func (p *Point) Action() Action { return p.action }

// Hit is called at each named point; it kills the process when the
// configured point is reached for the configured time (or, with the panic
// action, panics at every n-th time). Nil-safe.
func (p *Point) Hit(name string) {
	if p == nil || name != p.name {
		return
	}
	h := p.hits.Add(1)
	switch p.action {
	case Panic:
		if h%p.n == 0 {
			fmt.Fprintf(os.Stderr, "settle: fault point %s reached, panic\n", name)
			panic(fmt.Sprintf("settle: fault point %s reached (hit %d)", name, h))
		}
	default:
		if h == p.n {
			fmt.Fprintf(os.Stderr, "settle: fault point %s reached, SIGKILL\n", name)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // never returns
		}
	}
}
