// Package faulttest is Settle's fault-injection suite: it runs the real
// coordinator and demo participant binaries on loopback, puts a fault proxy
// on every link, kills, pauses and restarts processes while a seeded
// workload places orders, then heals everything and checks the invariants
// of the design brief (I1-I6) from the participants' own tables.
//
// # Overview
//
// Build compiles cmd/coordinator and cmd/participant-demo. StartCluster
// runs one or two coordinators (sharing one database), an accounts
// participant and an inventory participant (each its own process and
// database), and a Proxy on each link:
//
//	initiator   -> coordinator i   (Begin, RegisterBranch, Commit, Rollback, GetTransaction)
//	initiator   -> participant b   (Try, and Cancel sent ahead of Try)
//	coordinator -> participant b   (Confirm, Cancel; the proxy is the registered target)
//	participant -> coordinator 0   (check-back, when the demo has -coordinator)
//
// Proxy is gRPC-aware: an UnknownServiceHandler with a pass-through codec
// forwards each unary call to the backend, so faults are per call: delay,
// drop the request, deliver it twice, or let the server handle it and lose
// the reply; whole links can be cut, and live connections reset (RST).
//
// Run drives a workload (Initiator, GenOrder) from a seeded generator:
// normal orders, orders refused in Try (poor users, a scarce item),
// orders abandoned before Commit/Rollback, duplicated calls and changed
// payloads, Cancel before Try and a Try arriving after the rollback. A
// scheduler injects process faults: SIGKILL and restart of a coordinator
// or a participant, a coordinator armed to kill itself at a named fault
// point (internal/faults), a coordinator SIGSTOPped past its lease while
// the other takes over, and cuts of every link kind. With
// Config.CoverageFirst it first runs the coverage schedule, which fires
// every kind of RequiredKinds once, waiting (bounded) for each to take
// effect: a cut to refuse a call, a fault point to be reached, the
// retry-rate cap to defer a round, another coordinator to take over from
// a paused one.
//
// Every process exit is classified (Exit): killed by the harness, killed
// at the fault point the schedule armed (the process printed that it
// reached it), or a crash. Crashes, recovered panics and harness errors
// that no injected fault explains are violations.
//
// # Checking
//
// After the workload, Cluster.Heal removes every fault and Check waits
// (bounded) until the coordinator reports every transaction COMMITTED or
// ABORTED, then verifies:
//
//   - I1 per gid, both branches confirmed or neither, and in agreement with
//     the coordinator's outcome (from the participants' fence tables);
//   - I2 every balance and sold count equals the baseline moved by the
//     confirmed fences only (an effect applied twice shows up here);
//   - I3 every decision observed during the run (Commit/Rollback replies,
//     polls, check-back answers) equals the final state, and no two
//     observations differ;
//   - I4 every transaction finished within the bound;
//   - I5 no TRIED fence, nothing frozen or reserved; a Try sent after its
//     branch's Cancel was acknowledged was refused and applied nothing; a
//     late Try that was accepted shows tried, then cancelled, in the fence;
//   - I6 money and goods totals equal the baseline;
//   - I7 every gid presumed aborted at a check-back (seen on the wire) is
//     stored as an ABORTED tombstone;
//   - progress: no Commit of an order owed a commit refused before its
//     deadline, at least CommitFloor of those orders committed, at least
//     MinCommitted transactions committed;
//   - no crash, no unexplained harness error, every required fault kind
//     fired (RequiredKinds).
//
// # Failure handling
//
// Every process and proxy is stopped by Cluster.Close, also when a run
// fails; every wait is bounded. The seed fixes the workload and the fault
// schedule, not process timing, so a replay reproduces the same choices
// and usually, not always, the same interleaving.
package faulttest
