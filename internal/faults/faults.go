// Package faults lets crash tests stop a coordinator process at a named
// point of the protocol. It is off unless the environment variable
// SETTLE_FAULT_POINT is set, which only tests do:
//
//	SETTLE_FAULT_POINT=after_decision      kill at the first hit
//	SETTLE_FAULT_POINT=after_decision:3    kill at the third hit
//
// "Kill" is SIGKILL to the process itself: no deferred function, no
// graceful shutdown, exactly like kill -9 from outside.
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

// Point kills the process at the n-th hit of a named point.
type Point struct {
	name string
	n    int64
	hits atomic.Int64
}

// FromEnv returns the point configured in the environment, or nil.
func FromEnv() (*Point, error) {
	v := os.Getenv(EnvVar)
	if v == "" {
		return nil, nil
	}
	name, count, found := strings.Cut(v, ":")
	n := int64(1)
	if found {
		var err error
		if n, err = strconv.ParseInt(count, 10, 64); err != nil || n < 1 {
			return nil, fmt.Errorf("%s=%q: count must be a positive integer", EnvVar, v)
		}
	}
	return &Point{name: name, n: n}, nil
}

// Hit is called at each named point; it kills the process when the
// configured point is reached for the configured time. Nil-safe.
func (p *Point) Hit(name string) {
	if p == nil || name != p.name {
		return
	}
	if p.hits.Add(1) == p.n {
		fmt.Fprintf(os.Stderr, "settle: fault point %s reached, SIGKILL\n", name)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never returns
	}
}
