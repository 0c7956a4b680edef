package main

import "syscall"

// childAttr makes a spawned coordinator receive SIGTERM when the bench
// dies (a crash, a kill, a closed output pipe), so that no coordinator is
// left running against the bench's database.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
