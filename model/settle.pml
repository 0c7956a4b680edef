/*
 * settle.pml -- a Promela model of one Settle global transaction (one gid)
 * with two branches, checked with spin.  See README.md beside this file.
 * Other transactions appear only where the store's shared writer
 * (sqlstore/batch.go) puts their writes into the same statement or script
 * as this one's: as an arbitrary partner (see "The shared writer" below).
 *
 * Processes (each names the Go code it models):
 *   Initiator         client.Client.Run: Begin, then per branch
 *                     RegisterBranch + Try, then Commit or Rollback
 *   Coordinator(1,2)  two coordinator instances on one database: each
 *                     serves Commit/Rollback/CheckBack, runs the recovery
 *                     loop and delivery rounds; each can crash at any step
 *                     and restart with empty memory
 *   Participant(0,1)  each branch's fence: participant.Participant.Apply
 *   Checker(0,1)      each participant's check-back worker:
 *                     participant.Checker.checkOne
 *   Environment       time (deadline, lease expiry) and crashes
 *
 * The database.  Globals rec_* and br_* are the coordinator's rows; fence[]
 * and res_* are the participants' rows.  One SQL statement, or one short
 * local database transaction, is one `atomic` block: nothing interleaves
 * inside it, as with a row compare-and-set (CAS).  No atomic block waits
 * for the network (S2).
 *
 * The network.  One bit per kind of message, sender and destination: the
 * set of messages in flight.  Identical messages merge; different ones are
 * taken in any order (reordering) and may stay in flight for any time
 * (delay).  A message can be lost when sent, and a request can be delivered
 * twice; a caller waiting for a reply can give up when its request or reply
 * was lost, or while it is merely slow (spurious timeout).  A timeout is an
 * "unknown" outcome for the caller, never a definite failure.
 *
 * Faults.  Loss, duplicate, spurious timeout, crash, a lease that expires
 * under a slow but live owner, and an initiator that calls Try before
 * Begin all draw on one budget, MAXFAULTS per run, which keeps the state
 * space finite ("the network is eventually reliable, crashes are
 * bounded").  The initiator vanishing, the deadline passing, a lease
 * expiring after its owner crashed and a business refusal of Try are not
 * faults: they are always possible.
 *
 * Each protocol step carries a comment `model: <step>`; the Go code names
 * the same steps.  The steps:
 *   begin register try decide expire checkback claim drive record_round
 *   finish fence_try fence_confirm fence_cancel checker
 *
 * Broken variants (spin must find a counterexample for each):
 *   -DBUG_CHECKBACK_NO_RECORD   CheckBack answers CANCEL for a TRYING
 *                               transaction past its deadline without
 *                               recording the abort (no Decide CAS)
 *   -DBUG_FENCE_NO_ANTIHANGING  the fence lets a Try through after a Cancel
 *   -DBUG_ROUND_NO_VERSION      RecordRound's record update without
 *                               "version = ?": a stale lease owner's write
 *                               is accepted (property L1)
 *   -DBUG_CLAIM_NO_VERSION_BUMP Claim takes the lease without incrementing
 *                               the version (property L1)
 *   -DBUG_BATCH_TOTAL_COUNT     a shared write reports a decision won from
 *                               the statement's total row count, not from
 *                               the transaction's own compare-and-set (I1)
 *   -DDECIDER -DBUG_DECIDER_NO_INSERT  the decider answers ABORT for a gid
 *                               with no decision row without inserting one
 *                               (I1 with the initiator's own row)
 *   -DDECIDER -DBUG_LOCAL_COMMIT_THEN_ROLLBACK  after its local commit the
 *                               initiator settles a Commit that timed out
 *                               with a Rollback (I1 likewise)
 *   -DBUG_BATCH_GROUP_FAILED    a shared write groups a round that has a
 *                               failed branch with other transactions'
 *                               finishing rounds, whose one branch UPDATE
 *                               (union of branch ids) then marks the failed
 *                               branch done (property B1)
 * -DDECIDER adds the initiator's local transaction and its decider
 * (issue 18): the initiator commits its own change and the decision row
 * (gid, commit) in one local transaction, then calls Commit; the
 * coordinator never aborts a TRYING transaction past its deadline without
 * asking the decider, which inserts (gid, abort) if the row is absent.
 * -DLIVENESS adds the Environment's "calm" move (no faults from then on),
 * needed only when checking the liveness claim under weak fairness.
 * -DLOAD_AFTER_CAS reads the record back after Claim's and the single
 * Decide's compare-and-set with a separate statement, as the Go code does
 * today: L1 then fails (README.md, "A gap in the Go code").
 */

#ifndef MAXFAULTS
#define MAXFAULTS 1   /* faults of any kind in one run                   */
#endif
#ifndef MAXNETFAULTS
#define MAXNETFAULTS MAXFAULTS  /* of which network faults (loss, duplicate, timeout) */
#endif
#ifndef MAXREFUSE
#define MAXREFUSE 1   /* Tries refused by the business (e.g. no funds)   */
#endif

mtype = {
  /* transaction_record.state; NOREC = no row for this gid */
  NOREC, TRYING, COMMITTING, COMMITTED, ABORTING, ABORTED,
  /* branch_record.state; B_NONE = no row */
  B_NONE, B_REG, B_CONF, B_CANC,
  /* participant fence row state; F_NONE = no row */
  F_NONE, F_TRIED, F_CONF, F_CANC,
  /* CheckBack answer in flight to a checker; V_NONE = none */
  V_NONE, V_CONFIRM, V_CANCEL,
  /* one branch in a delivery round (Coordinator's memory) */
  R_SKIP, R_WAIT, R_OK, R_FAIL, R_CONFLICT,
  /* ghost: the recorded decision */
  D_NONE, D_COMMIT, D_ABORT,
  /* -DDECIDER: the initiator's decision-table row (L_NONE = no row) */
  L_NONE, L_COMMIT, L_ABORT
};

/* ---------- coordinator database: transaction_record, branch_record ---------- */
mtype rec_state   = NOREC;
byte  rec_owner   = 0;      /* lease_owner: instance 1 or 2                         */
bool  rec_leased  = false;  /* next_attempt_us (the lease) is still in the future   */
/* version: every write bumps it; Claim and RecordRound check that it is still
 * the one the instance read.  Only "is my version still the current one?"
 * matters and an old version never comes back, so the counter is modelled
 * exactly by one bit per instance: ver_mine[c] <=> the version instance c
 * remembers == the row's version. */
bool  ver_mine[3];
mtype br_state[2] = B_NONE;
bool  br_conflict[2];       /* branch_record.conflict (S11, needs an operator) */

/* ---------- participant databases: fence rows and business effects ---------- */
mtype fence[2] = F_NONE;
byte  res_reserved[2];      /* times Try applied the reservation     */
byte  res_applied[2];       /* times Confirm applied the effect      */
byte  res_released[2];      /* times Cancel released the reservation */

/* ---------- the world (Environment) ---------- */
bool deadline_passed = false;
bool busy[3];               /* instance c is alive and running a round under its lease */
bool crash_req[3];          /* instance c crashes at its next step                      */
bool vanish    = false;     /* the initiator disappears at its next step                */
bool init_done = false;     /* the initiator has finished (it can no longer vanish)     */
bool calm      = false;     /* LIVENESS only: no more faults from now on                */
byte faults, refusals;

/* ---------- ghost state, only for the properties ---------- */
mtype decision = D_NONE;

#ifdef DECIDER
/* ---------- -DDECIDER: the initiator's own database and its decider ----------
 * client.Txn.CommitLocal writes the initiator's business change and the row
 * (gid, commit) of its decision table in one local transaction, then calls
 * Commit.  client.Decider answers "what is the outcome of gid?" by INSERTing
 * (gid, abort) if no row exists -- on the primary key, so it waits while a
 * running local transaction holds the key -- and answering what the row
 * says.  The recovery loop asks it at the deadline instead of aborting.
 * local_row is the committed row (the business change commits with it);
 * local_busy: a local transaction has inserted the row and holds the key. */
mtype local_row = L_NONE;
bool  local_busy = false;
bool  m_decide[3];                    /* instance c -> the decider           */
mtype r_decide[3] = L_NONE;           /* the decider's answer -> instance c  */
/* I1 with the initiator's own row: its change is never committed under an
 * abort decision (and, in check_fence, never beside a cancelled branch). */
#define CHECK_LOCAL assert(!(local_row == L_COMMIT && decision == D_ABORT))
#else
#define CHECK_LOCAL skip
#endif

/* ---------- the network: sets of messages in flight ---------- */
/* k = K(c,i) = 2*(c-1)+i names the pair (coordinator instance c, branch i) */
#define K(c,i) (2*((c)-1)+(i))
bool  m_try[2];                       /* initiator -> participant i            */
bool  r_try_ok[2], r_try_no[2];       /* participant i -> initiator            */
bool  m_confirm[4], m_cancel[4];      /* instance c -> participant i, at K(c,i)*/
bool  r_ack_ok[4], r_ack_err[4];      /* participant i -> instance c           */
bool  m_commit, m_rollback;           /* initiator -> any instance             */
bool  m_checkback[2];                 /* checker i -> any instance             */
mtype r_verdict[2] = V_NONE;          /* CheckBack answer -> checker i         */

hidden mtype h_res;         /* scratch, used inside one atomic block only */
hidden byte  h_k;
hidden byte  h_pd;          /* the partner round's done branch ids, bits 0 and 1 */

#define FAULT_OK (faults < MAXFAULTS && !calm)
#define NET_OK   (faults < MAXNETFAULTS && !calm)

/* Any write to transaction_record: version = version + 1.  Writer c (1 or 2)
 * then holds the current version; c = 0: a write by a call that does not
 * fence on the version later (Begin, RegisterBranch, presumed abort). */
inline bump_version(c) {
  ver_mine[1] = false; ver_mine[2] = false;
  if :: c != 0 -> ver_mine[c] = true :: else fi
}

/* Put a message on the wire: lost (a fault) or in flight. */
inline send(m) {
  if
  :: NET_OK -> faults++                 /* lost */
  :: true -> m = true                   /* in flight; merges with an identical one */
  fi
}

/* Take a request off the wire; a copy may stay behind (a duplicate, a fault). */
inline recv(m) {
  if
  :: NET_OK -> faults++                 /* duplicated: it will be delivered again */
  :: true -> m = false
  fi
}

/* Every write of transaction_record.state goes through here.
 * I3 one decision: once commit or abort is recorded, it never changes. */
inline set_state(s) {
  rec_state = s;
  if
  :: s == COMMITTING || s == COMMITTED -> assert(decision != D_ABORT);  decision = D_COMMIT
  :: s == ABORTING   || s == ABORTED   -> assert(decision != D_COMMIT); decision = D_ABORT
  :: else -> assert(decision == D_NONE)
  fi;
  CHECK_LOCAL
}

/* Checked after every write of a branch_record row by a delivery round.
 * B1 a branch row is final only if the participant's fence row is final
 * the same way: the coordinator records a branch done only on that
 * branch's own acknowledgement (the ack is sent after the fence commits,
 * and the fence row never changes after that). */
inline check_branch_row(i) {
  assert(br_state[i] != B_CONF || fence[i] == F_CONF);
  assert(br_state[i] != B_CANC || fence[i] == F_CANC)
}

/* Checked after every fence operation (the only place participant rows change). */
inline check_fence(i) {
  /* I5 no orphaned reservation: a cancelled branch holds no reservation */
  assert(fence[i] != F_CANC || res_reserved[i] == res_released[i]);
  /* I2 at most once: each business effect applied at most once */
  assert(res_reserved[i] <= 1 && res_applied[i] <= 1 && res_released[i] <= 1);
  /* I1 all or nothing: never one branch confirmed and the other cancelled */
  assert(!((fence[0] == F_CONF && fence[1] == F_CANC) ||
           (fence[0] == F_CANC && fence[1] == F_CONF)));
  /* and a branch is confirmed only after the commit was recorded */
  assert(fence[i] != F_CONF || decision == D_COMMIT);
#ifdef DECIDER
  assert(fence[i] != F_CANC || local_row != L_COMMIT);
#endif
  CHECK_LOCAL
}

/* ======================================================================
 * The fence: participant.Participant.doTry / doConfirm / doCancel, each one
 * local database transaction writing the fence row (gid, branch i) together
 * with the business effect.  Result in h_res (R_OK or R_CONFLICT).
 * ====================================================================== */
inline fence_try(i) {
  /* model: fence_try */
  if
  :: fence[i] == F_NONE ->
       if
       :: refusals < MAXREFUSE -> refusals++; h_res = R_CONFLICT  /* the business says no; */
       :: true -> fence[i] = F_TRIED; res_reserved[i]++; h_res = R_OK  /* its tx rolls back */
       fi
  :: fence[i] == F_TRIED || fence[i] == F_CONF -> h_res = R_OK  /* repeat: same answer, no effect */
  :: fence[i] == F_CANC ->
#ifdef BUG_FENCE_NO_ANTIHANGING
       /* BUG: a Try that finds the row treats anything but a payload
        * mismatch as "go ahead": the reservation is made, the row stays
        * CANCELLED, and no Cancel will ever come for it. */
       res_reserved[i]++; h_res = R_OK
#else
       h_res = R_CONFLICT                                      /* anti-hanging: refused */
#endif
  fi;
  check_fence(i)
}

inline fence_confirm(i) {
  /* model: fence_confirm */
  if
  :: fence[i] == F_TRIED -> fence[i] = F_CONF; res_applied[i]++; h_res = R_OK
  :: fence[i] == F_CONF  -> h_res = R_OK                  /* repeat: no effect            */
  :: fence[i] == F_CANC  -> h_res = R_CONFLICT            /* ErrConflict (S11)            */
  :: fence[i] == F_NONE  -> h_res = R_CONFLICT            /* ErrConfirmWithoutTry         */
  fi;
  check_fence(i)
}

inline fence_cancel(i) {
  /* model: fence_cancel */
  if
  :: fence[i] == F_NONE  -> fence[i] = F_CANC; h_res = R_OK   /* null compensation */
  :: fence[i] == F_TRIED -> fence[i] = F_CANC; res_released[i]++; h_res = R_OK
  :: fence[i] == F_CANC  -> h_res = R_OK                  /* repeat: no effect            */
  :: fence[i] == F_CONF  -> h_res = R_CONFLICT            /* ErrConflict (S11)            */
  fi;
  check_fence(i)
}

/* ======================================================================
 * Participant(i) models participant.Participant.Try / Confirm / Cancel
 * (the gRPC handlers, through Apply and the fence).  A refusal is a gRPC
 * FAILED_PRECONDITION, which the coordinator reads as ErrParticipantRefused.
 * ====================================================================== */
proctype Participant(byte i) {
end:
  do
  :: atomic { m_try[i] -> recv(m_try[i]); fence_try(i);
       if :: h_res == R_OK -> send(r_try_ok[i]) :: else -> send(r_try_no[i]) fi }
  :: atomic { (m_confirm[K(1,i)] || m_confirm[K(2,i)]) ->
       if :: m_confirm[K(1,i)] -> h_k = K(1,i) :: m_confirm[K(2,i)] -> h_k = K(2,i) fi;
       recv(m_confirm[h_k]); fence_confirm(i);
       if :: h_res == R_OK -> send(r_ack_ok[h_k]) :: else -> send(r_ack_err[h_k]) fi }
  :: atomic { (m_cancel[K(1,i)] || m_cancel[K(2,i)]) ->
       if :: m_cancel[K(1,i)] -> h_k = K(1,i) :: m_cancel[K(2,i)] -> h_k = K(2,i) fi;
       recv(m_cancel[h_k]); fence_cancel(i);
       if :: h_res == R_OK -> send(r_ack_ok[h_k]) :: else -> send(r_ack_err[h_k]) fi }
  od
}

/* ======================================================================
 * Checker(i) models participant.Checker.checkOne: a fence row left TRIED
 * "for a while" makes it call CheckBack; a CONFIRM or CANCEL answer is
 * applied through the fence (Apply).  PENDING, an error or a timeout only
 * reschedules the row: it asks again later.
 * ====================================================================== */
proctype Checker(byte i) {
end:
  do
  :: atomic { fence[i] == F_TRIED && !m_checkback[i] && r_verdict[i] == V_NONE ->
       /* model: checker -- ask (the request may be lost) */
       send(m_checkback[i]) }
  :: atomic { r_verdict[i] != V_NONE ->
       /* model: checker -- apply the verdict through the fence */
       if
       :: r_verdict[i] == V_CONFIRM -> fence_confirm(i)
       :: r_verdict[i] == V_CANCEL  -> fence_cancel(i)
       fi;
       r_verdict[i] = V_NONE }
  od
}

/* ======================================================================
 * Initiator models client.Client.Run: Client.Begin (tcc.Coordinator.Begin),
 * then Txn.Try per branch (RegisterBranch, then the participant's Try),
 * then Txn.Commit, or Txn.Rollback when a Try failed or its outcome is
 * unknown.  Begin and RegisterBranch are shown as the database step they
 * run: a lost reply to them is the same as the initiator vanishing.  It
 * may vanish at any step.  Misbehaving once (a fault), it may call Try for
 * branch 0 before Begin: the only way a participant can hold a TRIED row
 * for a gid the coordinator has never heard of (presumed abort).
 * ====================================================================== */
proctype Initiator() {
  byte i = 0;
  {
    if
    :: true
    :: atomic { FAULT_OK -> faults++; m_try[0] = true }   /* Try before Begin */
    fi;
    atomic {
      /* model: begin -- INSERT the record in TRYING; refused on a tombstone */
      if
      :: rec_state == NOREC -> set_state(TRYING); bump_version(0)
      :: else -> goto gone
      fi }
    do
    :: i == 2 -> break
    :: i < 2 ->
       atomic {
         /* model: register -- UPDATE record WHERE state = TRYING + INSERT branch, one tx */
         if
         :: rec_state == TRYING -> br_state[i] = B_REG; bump_version(0)
         :: else -> goto rollback
         fi }
       /* model: try -- only after the branch is registered */
       atomic { send(m_try[i]) }
       if
       :: atomic { r_try_ok[i] -> r_try_ok[i] = false; i++ }
       :: atomic { r_try_no[i] -> r_try_no[i] = false; goto rollback }
       :: atomic { NET_OK -> faults++; goto rollback }     /* spurious timeout: unknown */
       :: atomic { !m_try[i] && !r_try_ok[i] && !r_try_no[i] -> goto rollback } /* lost */
       fi
    od;
#ifdef DECIDER
    /* model: commit_local -- Txn.CommitLocal's local transaction.  Its
     * INSERT (gid, commit) takes the key; a row already there (the
     * decider's abort) is a duplicate key: it rolls back, and so does the
     * global transaction. */
    atomic {
      if
      :: local_row == L_NONE -> local_busy = true
      :: else -> goto rollback
      fi }
    atomic {
      if
      :: local_busy = false; local_row = L_COMMIT; CHECK_LOCAL  /* COMMIT */
      :: local_busy = false; goto rollback    /* the business change refused */
      fi }
    /* model: commit -- after the local commit, Commit is never followed by
     * a Rollback: lost, timed out or never sent (the initiator vanished
     * here), the decider answers for it at the deadline */
    atomic { send(m_commit) }
#ifdef BUG_LOCAL_COMMIT_THEN_ROLLBACK
    /* BUG: as Client.Run does without a local transaction, a Commit whose
     * outcome is unknown is settled with a Rollback -- after the local
     * commit, which the Rollback cannot undo */
    if
    :: goto gone
    :: atomic { NET_OK -> faults++ }; goto rollback
    fi;
#endif
    goto gone;
#endif
    atomic { send(m_commit) }
    if
    :: goto gone
    :: atomic { NET_OK -> faults++ };   /* Commit timed out, outcome unknown: */
       goto rollback                   /* Run settles it with a Rollback     */
    fi;
rollback:
    atomic { send(m_rollback) }
gone:
    init_done = true
  } unless { vanish }
}

/* tcc.Store.Decide: UPDATE transaction_record SET state = o, version + 1,
 * lease_owner = c, next_attempt_us = now + LeaseTTL WHERE state = 'TRYING'.
 * The winner runs a delivery round (startRound); a loser does nothing (a
 * repeat is answered OK, a conflicting request is refused).
 * The round's snapshot (tx.Branches): a REGISTERED branch is called unless
 * it already carries the conflict flag, which counts as conflicted (the
 * round cannot finish, deliver's `conflicted`). */
#define SNAPSHOT(i) st[i] = (br_state[i] == B_REG -> (br_conflict[i] -> R_CONFLICT : R_WAIT) : R_SKIP)
inline decide(o) {
  /* model: decide.  The shared writer (decideShare, decideBatch) may
   * carry other transactions' decisions in the same write; each caller is
   * told won from its own record's compare-and-set only, whatever the
   * others' did, which is the guard below. */
  if
  :: rec_state == TRYING ->
       set_state(o); bump_version(c);
       rec_owner = c; rec_leased = true; busy[c] = true;
       if
       :: true ->
#ifdef LOAD_AFTER_CAS
            if
            :: true        /* a remembered record (known.go) or decideBatch */
            :: ver_mine[c] = false; goto load   /* sqlstore.Store.decide: read after */
            fi;
#endif
            dec = o; SNAPSHOT(0); SNAPSHOT(1);
            goto drive
       :: /* startRound defers the round (MaxRounds rounds running, or
           * closing): the decision stands, the lease runs out unused and
           * a recovery claim delivers it */
          busy[c] = false; ver_mine[c] = false
       fi
#ifdef BUG_BATCH_TOTAL_COUNT
  :: rec_state != TRYING ->
       /* BUG: this CAS matched nothing, but the shared statement also
        * decided another transaction (its CAS matched), and the batch
        * reports "won" to every request when the statement's total row
        * count is not 0.  The caller gets the record as it would be after
        * its own decision (known.go's `decided`) and delivers o: no write
        * was made, so it holds neither the lease nor the version. */
       busy[c] = true; dec = o; SNAPSHOT(0); SNAPSHOT(1);
       goto drive
#endif
  :: else
  fi
}

#ifdef DECIDER
/* A TRYING transaction with a decider, past its deadline: act on the
 * decider's answer if this instance has one (decide by it through the one
 * compare-and-set), else ask the decider if no question is in flight.
 * Both the recovery loop and a check-back run it: in Go they are separate
 * goroutines, and here one idle loop, so a stream of check-backs must not
 * starve the answer under weak fairness. */
inline ask_or_decide() {
  if
  :: r_decide[c] != L_NONE ->
       /* model: decide_by_decider */
       if
       :: r_decide[c] == L_COMMIT -> r_decide[c] = L_NONE; decide(COMMITTING)
       :: else -> r_decide[c] = L_NONE; decide(ABORTING)
       fi
  :: r_decide[c] == L_NONE && rec_state == TRYING && deadline_passed && !m_decide[c] ->
       /* model: ask_decider (the call, its reply or both may be lost) */
       send(m_decide[c])
  :: else
  fi
}
#endif

/* ======================================================================
 * Coordinator(c), one coordinator instance, models
 *   tcc.Coordinator.Commit / Rollback / Decide   (sqlstore.Store.Decide)
 *   tcc.Coordinator.CheckBack and presumeAbort
 *   recovery.Loop.process, tcc.Coordinator.Resume (sqlstore.Store.Claim)
 *   tcc.Coordinator.deliver                       (sqlstore.Store.RecordRound)
 * Its local variables are its memory.  A crash (crash_req[c], set by the
 * Environment) can hit it at any step: the memory is wiped and it restarts.
 * ====================================================================== */
proctype Coordinator(byte c) {
  mtype dec = NOREC;          /* what I am driving: COMMITTING or ABORTING     */
  mtype st[2] = R_SKIP;       /* this round, per branch (tx.Branches snapshot)  */
  byte  i = 0;                /* branch being called                            */

end_restart:
  do
  :: {
end_idle:
    do
    /* ---- tcc.Coordinator.Commit / Rollback: any instance may get it ---- */
    :: atomic { (m_commit || m_rollback) ->
         if
         :: m_commit   -> recv(m_commit);   decide(COMMITTING)
         :: m_rollback -> recv(m_rollback); decide(ABORTING)
         fi }

    /* ---- tcc.Coordinator.CheckBack: any instance may get it.  One
     * database step; it keeps nothing in memory unless it decides. ---- */
    :: atomic { (m_checkback[0] || m_checkback[1]) ->
         if :: m_checkback[0] -> h_k = 0 :: m_checkback[1] -> h_k = 1 fi;
         recv(m_checkback[h_k]);
         /* model: checkback */
         if
         :: rec_state == COMMITTING || rec_state == COMMITTED -> h_res = V_CONFIRM
         :: rec_state == ABORTING   || rec_state == ABORTED   -> h_res = V_CANCEL
         :: rec_state == TRYING && !deadline_passed -> h_res = V_NONE  /* PENDING: ask later */
         :: rec_state == NOREC ->
              /* presumeAbort: INSERT an ABORTED tombstone (a late Begin is refused) */
              set_state(ABORTED); bump_version(0); h_res = V_CANCEL
#ifdef DECIDER
         /* a decider decides a TRYING transaction past its deadline: the
          * check-back says PENDING (ask later) and the recovery loop asks */
         :: rec_state == TRYING && deadline_passed -> h_res = V_NONE
#else
         :: rec_state == TRYING && deadline_passed -> h_res = V_CANCEL
#endif
         fi;
         if                                          /* the answer goes on the wire */
         :: h_res == V_NONE -> skip
         :: h_res != V_NONE && NET_OK -> faults++  /* lost */
         :: h_res != V_NONE -> r_verdict[h_k] = h_res
         fi;
#ifdef DECIDER
         ask_or_decide();
#elif !defined(BUG_CHECKBACK_NO_RECORD)
         /* model: expire -- TRYING past its deadline: Decide(Abort) first,
          * the same CAS as Rollback; here it wins, and this instance drives */
         if :: rec_state == TRYING && deadline_passed -> decide(ABORTING) :: else fi
#endif
         /* BUG_CHECKBACK_NO_RECORD: the CANCEL answer went out, the record
          * stays TRYING: a Commit can still win the CAS */
       }

#ifdef DECIDER
    /* ---- recovery.Loop.process, a TRYING record with a decider past its
     * deadline: ask the decider and decide by its answer ---- */
    :: atomic { (r_decide[c] != L_NONE ||
                 (rec_state == TRYING && deadline_passed && !m_decide[c])) ->
         ask_or_decide() }
#else
    /* ---- recovery.Loop.process, a TRYING record past its deadline ---- */
    :: atomic { rec_state == TRYING && deadline_passed ->
         /* model: expire -- Decide(Abort), the winner cancels */
         decide(ABORTING) }
#endif

    /* ---- tcc.Coordinator.Resume (from recovery.Loop.process), a decided record whose lease ran out:
     * sqlstore.Store.Claim, UPDATE ... WHERE version = read version AND
     * next_attempt_us <= now ---- */
    :: atomic { !rec_leased && (rec_state == COMMITTING || rec_state == ABORTING) ->
         /* model: claim */
#ifdef BUG_CLAIM_NO_VERSION_BUMP
         /* BUG: the claim sets the lease but not version = version + 1:
          * the version the previous owner read is still the current one. */
         ver_mine[c] = true;
#else
         bump_version(c);
#endif
         rec_owner = c; rec_leased = true; busy[c] = true;
#ifdef LOAD_AFTER_CAS
         ver_mine[c] = false; goto load
#else
         dec = rec_state; SNAPSHOT(0); SNAPSHOT(1);
         goto drive
#endif
       }
    od;
#ifdef LOAD_AFTER_CAS
load:
    /* -DLOAD_AFTER_CAS: the Go code as it is.  sqlstore.Store.Claim and
     * the single-request Store.decide write the compare-and-set (decide:
     * with its history event, one transaction) and read the record back
     * with a separate statement (load).  The round then uses the version
     * it read, whoever wrote it. */
    atomic {
      if
      :: rec_state == COMMITTING || rec_state == ABORTING ->
           ver_mine[c] = true; dec = rec_state; SNAPSHOT(0); SNAPSHOT(1)
      :: else -> busy[c] = false      /* final: deliver refuses to run */
      fi }
    if :: dec == NOREC -> goto end_idle :: else fi;
#endif

drive:
    /* ---- tcc.Coordinator.deliver: Confirm (Cancel) every branch that was
     * REGISTERED and not in conflict when the record was read.  Go calls
     * them in parallel; one after the other is the same here, since each
     * call ends on its own and nothing is written before all have ended. */
    /* model: drive */
    i = 0;
    do
    :: i == 2 -> break
    :: i < 2 && st[i] != R_WAIT -> i++
    :: i < 2 && st[i] == R_WAIT ->
       atomic {                           /* a new call: old replies are discarded */
         r_ack_ok[K(c,i)] = false; r_ack_err[K(c,i)] = false;
         if
         :: dec == COMMITTING -> send(m_confirm[K(c,i)])
         :: else              -> send(m_cancel[K(c,i)])
         fi }
       if                                 /* wait for the answer */
       :: atomic { r_ack_ok[K(c,i)]  -> r_ack_ok[K(c,i)] = false;  st[i] = R_OK; i++ }
       :: atomic { r_ack_err[K(c,i)] -> r_ack_err[K(c,i)] = false; st[i] = R_CONFLICT; i++ }
       :: atomic { NET_OK -> faults++; st[i] = R_FAIL; i++ }          /* spurious timeout */
       :: atomic { !m_confirm[K(c,i)] && !m_cancel[K(c,i)] &&
                   !r_ack_ok[K(c,i)] && !r_ack_err[K(c,i)] -> st[i] = R_FAIL; i++ } /* lost */
       fi
    od;
    atomic {
      /* model: record_round -- sqlstore.Store.RecordRound.  First the
       * branch rows: the UPDATEs check only the branch state (REGISTERED),
       * not the lease: an acknowledged call is a fact whoever holds it.
       *
       * The shared writer (roundShare) may write this round together with
       * other transactions' rounds.  Finishing rounds (every called branch
       * acknowledged: no failure, no conflict) of the same outcome share
       * one UPDATE of their branches: WHERE state = REGISTERED AND gid IN
       * (the group's gids) AND branch_id IN (the union of their Done
       * lists) (finishBranches).  Branch ids repeat across transactions
       * (e.g. "payment"), so a branch of this transaction is also matched
       * by an id only the partner acknowledged: h_pd, any non-empty set,
       * is the partner's Done list over this transaction's ids.  Any other
       * round is written with its own per-gid statements. */
      h_pd = 0;
#ifdef BUG_BATCH_GROUP_FAILED
      /* BUG: every round with an acknowledged branch is grouped, also one
       * with a failed branch (the group's condition lost "no Failed"). */
      if
      :: (st[0] == R_OK || st[1] == R_OK) && st[0] != R_CONFLICT && st[1] != R_CONFLICT ->
#else
      if
      :: (st[0] == R_OK || st[1] == R_OK) && st[0] != R_FAIL && st[1] != R_FAIL &&
         st[0] != R_CONFLICT && st[1] != R_CONFLICT ->
#endif
           if :: h_pd = 1 :: h_pd = 2 :: h_pd = 3 :: skip /* written alone */ fi
      :: else
      fi;
      i = 0;
      do
      :: i == 2 -> break
      :: else ->
         if
         :: (st[i] == R_OK || ((h_pd >> i) & 1)) && br_state[i] == B_REG ->
              br_state[i] = (dec == COMMITTING -> B_CONF : B_CANC)
         :: st[i] == R_CONFLICT && br_state[i] == B_REG -> br_conflict[i] = true
         :: else
         fi;
         check_branch_row(i);
         i++
      od;
      i = 0; h_pd = 0 };
    atomic {
      /* Then the record, fenced on version and state.  The store writes
       * both in one transaction (one round trip on MySQL); modelling them
       * as two steps allows a superset of its interleavings, so what
       * holds here holds for it.  In a shared write each transaction's
       * record has its own compare-and-set (WHERE gid = ? AND version = ?
       * AND state = ?) and its own row count (cas[i] in roundShare). */
      if
#ifdef BUG_ROUND_NO_VERSION
      /* BUG: the record update lost "AND version = ?": only the state is
       * checked, so the write of an owner whose lease was taken over is
       * accepted while the record is still decided. */
      :: rec_state == dec ->
#else
      :: ver_mine[c] && rec_state == dec ->
#endif
           /* L1 lease fence (S15, S16): a round's write to the record is
            * accepted only while this instance is still the record's lease
            * owner: no other instance has claimed it since this round's
            * lease was taken. */
           assert(rec_owner == c);
           if
           :: st[0] != R_FAIL && st[1] != R_FAIL && st[0] != R_CONFLICT && st[1] != R_CONFLICT ->
                /* model: finish -- ... AND NOT EXISTS a REGISTERED branch */
                if
                :: br_state[0] != B_REG && br_state[1] != B_REG ->
                     h_res = (dec == COMMITTING -> COMMITTED : ABORTED); set_state(h_res);
                     bump_version(c); rec_leased = false; rec_owner = 0
                :: else                          /* 0 rows: ErrConflict */
                fi
           :: else ->
                /* not finished: release the lease, next attempt after a backoff */
                bump_version(c); rec_leased = false; rec_owner = 0
           fi
      :: else                                    /* 0 rows: fenced out (ErrConflict) */
      fi;
      busy[c] = false; ver_mine[c] = false; dec = NOREC;
      st[0] = R_SKIP; st[1] = R_SKIP; i = 0 };
    goto end_idle
  } unless {
    atomic { crash_req[c] ->
      /* crash and restart: the memory is lost, the database is not; the
       * connections are gone, so no reply reaches this instance */
      crash_req[c] = false; busy[c] = false; ver_mine[c] = false;
#ifdef DECIDER
      r_decide[c] = L_NONE;
#endif
      r_ack_ok[K(c,0)] = false; r_ack_err[K(c,0)] = false;
      r_ack_ok[K(c,1)] = false; r_ack_err[K(c,1)] = false;
      dec = NOREC; st[0] = R_SKIP; st[1] = R_SKIP; i = 0 }
  }
  od
}

#ifdef DECIDER
/* ======================================================================
 * Decider models client.Decider, served by the initiator's service (or an
 * adapter in front of a third party's "query" API).  One statement:
 * INSERT (gid, abort) if no row exists, on the primary key, so it waits
 * while a local transaction holds the key; then the row is the answer.
 * ====================================================================== */
proctype Decider() {
end:
  do
  :: atomic { (m_decide[1] || m_decide[2]) && !local_busy ->
       if :: m_decide[1] -> h_k = 1 :: m_decide[2] -> h_k = 2 fi;
       recv(m_decide[h_k]);
       /* model: decider */
#ifdef BUG_DECIDER_NO_INSERT
       /* BUG: no row means "abort", answered without inserting one: a
        * local transaction that starts later still commits */
       if :: local_row == L_NONE -> h_res = L_ABORT :: else -> h_res = local_row fi;
#else
       if :: local_row == L_NONE -> local_row = L_ABORT :: else fi;
       h_res = local_row;
#endif
       if
       :: NET_OK -> faults++                /* the answer is lost */
       :: true -> r_decide[h_k] = h_res
       fi }
  od
}
#endif

/* ======================================================================
 * Environment: time and faults (not Go code: the world around it).
 * Under weak fairness it cannot stay idle while a move is open, so the
 * deadline passes and an abandoned lease expires.  With -DLIVENESS it may
 * also turn calm (no faults from then on), so that fairness never forces a
 * fault to happen.
 * ====================================================================== */
proctype Environment() {
end:
  do
  :: !deadline_passed -> deadline_passed = true
  :: atomic { rec_leased && (!busy[rec_owner] || FAULT_OK) ->
       /* model: expire -- the lease (next_attempt_us) passes.  Allowed when
        * the owner crashed or is not running a round, or (a fault) while it
        * is alive but slow: its later writes then fail on the version. */
       if :: busy[rec_owner] -> faults++ :: else fi;
       rec_leased = false }
  :: atomic { FAULT_OK && !crash_req[1] -> faults++; crash_req[1] = true }
  :: atomic { FAULT_OK && !crash_req[2] -> faults++; crash_req[2] = true }
#ifdef DECIDER
  /* the initiator's process dies: its database connection too, so a
   * running local transaction rolls back and releases the key */
  :: atomic { !calm && !vanish && !init_done -> vanish = true; local_busy = false }
#else
  :: atomic { !calm && !vanish && !init_done -> vanish = true }
#endif
#ifdef LIVENESS
  :: !calm -> calm = true
#endif
  od
}

init {
  atomic {
    run Environment();
    run Initiator();
    run Coordinator(1); run Coordinator(2);
    run Participant(0); run Participant(1);
    run Checker(0);     run Checker(1)
#ifdef DECIDER
    ; run Decider()
#endif
  }
}

/* ---------------- liveness: I4 and I5 ----------------
 * Eventually and for good, the record is final and each branch's fence is
 * final (CONFIRMED or CANCELLED) or was never tried.  NOREC counts as final
 * (the initiator vanished before Begin).  Check with -DLIVENESS and
 * `pan -a -f` (weak fairness). */
#define rec_final     (rec_state == COMMITTED || rec_state == ABORTED || rec_state == NOREC)
#define fence_done(i) (fence[i] == F_CONF || fence[i] == F_CANC || fence[i] == F_NONE)
#ifdef DECIDER
/* and the initiator's committed change is never left beside an unfinished
 * or aborted transaction */
ltl live { <> [] (rec_final && fence_done(0) && fence_done(1) &&
                  (local_row != L_COMMIT || rec_state == COMMITTED)) }
#else
ltl live { <> [] (rec_final && fence_done(0) && fence_done(1)) }
#endif
