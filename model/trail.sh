#!/usr/bin/env bash
# Print the key steps of the counterexample spin found, one line each:
#   step  Process(pid)  line  [statement]
# Run it in the directory where pan wrote settle.pml.trail, with the same
# -D flags the model was generated with, e.g.  trail.sh -DBUG_FENCE_NO_ANTIHANGING
# (`spin -t -p settle.pml` prints the full trail.)
set -euo pipefail
key='\[(rec_state = |faults = \(|rec_owner = c|rec_leased = 0|busy\[c\] = 0|dec = (rec_state|2[0-4])|br_state\[[^]]*\] = [A-Z(]|fence\[[^]]*\] = |res_[a-z]*\[[^]]*\] = |deadline_passed = 1|m_commit = 1|m_rollback = 1|m_try\[[^]]*\] = 1|m_confirm\[[^]]*\] = 1|m_cancel\[[^]]*\] = 1|m_checkback\[[^]]*\] = 1|r_verdict\[[^]]*\] = h_res|r_try_ok\[[^]]*\] = 1|r_ack_ok\[[^]]*\] = 1|vanish = 1|crash_req\[[^]]*\] = 1)'
spin "$@" -t -p settle.pml 2>&1 >trail.full || true
grep -E '^ *[0-9]+:\s*proc' trail.full |
  sed -E 's/^ *([0-9]+):\s*proc +([0-9]+) \(([A-Za-z]+):[0-9]+\) settle.pml:([0-9]+) \(state [0-9]+\)\s*/\1 \3(\2) line \4 /' |
  grep -E "$key" || true
grep -E 'assertion violated|text of failed' trail.full || true
rm -f trail.full
